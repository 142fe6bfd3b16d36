#!/usr/bin/env bash
# The test command. Installs what it needs, then runs every test:
#   1. unit tests, and the end-to-end tests that need the local-process cluster (real kube-apiserver,
#      kube-scheduler, kube-controller-manager, etcd, virtual-kubelet, kwok, cluster-autoscaler, built from Go
#      modules at the versions in e2e/versions.toml and cached in ~/.cache/tideover);
#   2. the kind suite: a Docker engine (installed and started if none answers), the offline node image, tideover's
#      image from the Dockerfile, a kind cluster with tideover installed by helm from charts/, every kind-marked scenario
#      against it; then the cluster is deleted (its logs kept first if anything failed).
#
#   bash scripts/test.sh                       # all of it
#   TIDEOVER_E2E=0 bash scripts/test.sh        # unit tests only
#   TIDEOVER_E2E_TARGET=local bash scripts/test.sh   # unit + every e2e scenario on local processes (fast loop)
#   TIDEOVER_E2E_TARGET=kind bash scripts/test.sh    # unit + the kind suite only
# Extra arguments go to each pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
e2e=${TIDEOVER_E2E:-1}
target=${TIDEOVER_E2E_TARGET:-both}
case "${target}" in local | kind | both) ;; *) echo "test.sh: TIDEOVER_E2E_TARGET=${target}: expected local, kind or both" >&2; exit 2 ;; esac
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider)

if [ "$e2e" != "1" ]; then
  TIDEOVER_E2E=0 exec "${pytest[@]}" "$@"
fi
command -v go >/dev/null || { echo "test.sh: the end-to-end tests need Go (>= 1.26) to build Kubernetes; set TIDEOVER_E2E=0 to skip them" >&2; exit 2; }
.venv/bin/python -m e2e.harness.components build

status=0
# --- 1. unit tests + local-process scenarios (with `both`, only those the kind suite does not run) ----------------
t0=${SECONDS}
if [ "${target}" = local ]; then
  TIDEOVER_E2E=1 TIDEOVER_E2E_TARGET=local "${pytest[@]}" "$@" || status=$?
else
  TIDEOVER_E2E=1 TIDEOVER_E2E_TARGET=local "${pytest[@]}" -m "not kind or local_only" "$@" || status=$?
fi
echo "[test.sh] unit + local-process tests: $((SECONDS - t0)) s (exit ${status})"
[ "${target}" = local ] && exit "${status}"

# --- 2. the kind suite ------------------------------------------------------------------------------------------
cleanup() {
  bash e2e/kind/down.sh || true   # the cluster, and the tideover images this run replaced
  bash e2e/kind/docker.sh down || true
}
trap cleanup EXIT
t0=${SECONDS}
kind_status=0
# A fresh cluster every run: one a killed run left behind (stopped containers that come back with dockerd) would
# carry its state into this one. up.sh reuses a running cluster on purpose, for the developer's loop.
bash e2e/kind/docker.sh up
bash e2e/kind/down.sh >/dev/null 2>&1 || true
bash e2e/kind/up.sh || kind_status=$?
echo "[test.sh] kind cluster up: $((SECONDS - t0)) s (exit ${kind_status})"
if [ "${kind_status}" = 0 ]; then
  t0=${SECONDS}
  TIDEOVER_E2E=1 TIDEOVER_E2E_TARGET=kind "${pytest[@]}" e2e "$@" || kind_status=$?
  echo "[test.sh] kind suite: $((SECONDS - t0)) s (exit ${kind_status})"
fi
if [ "${kind_status}" != 0 ]; then
  logs="${TMPDIR:-/tmp}/tideover-kind-logs-$(date +%Y%m%d-%H%M%S)"
  bash e2e/kind/down.sh --export-logs "${logs}" || true
  echo "[test.sh] the kind suite failed: the cluster's logs are in ${logs} (tideover's pod logs: see the test output)"
  status=${kind_status}
fi
exit "${status}"
