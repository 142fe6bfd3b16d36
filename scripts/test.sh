#!/usr/bin/env bash
# The test command. Installs what it needs (.venv, and the Kubernetes components built from Go modules at
# the versions in e2e/versions.toml, cached in ~/.cache/tideover), then runs the unit tests and the
# end-to-end tests on real kube-apiserver, kube-scheduler, kube-controller-manager, etcd, virtual-kubelet,
# kwok and cluster-autoscaler, as local processes. TIDEOVER_E2E=0 runs the unit tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
e2e=${TIDEOVER_E2E:-1}
if [ "$e2e" = "1" ]; then
  command -v go >/dev/null || { echo "test.sh: the end-to-end tests need Go (>= 1.26) to build Kubernetes; set TIDEOVER_E2E=0 to skip them" >&2; exit 2; }
  .venv/bin/python -m e2e.components build
fi
TIDEOVER_E2E=$e2e .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
