#!/usr/bin/env bash
# Deletes the e2e suite's kind cluster and what e2e/kind/up.sh generated for it (.e2e-work/kind: the kubeconfig
# and kube-scheduler's configuration). `kind delete cluster` removes the node containers with their volumes.
# Images: see the end of this script.
#
#   bash e2e/kind/down.sh                       # delete the cluster
#   bash e2e/kind/down.sh --export-logs DIR     # first save the cluster's logs (kind export logs) into DIR
set -euo pipefail

CLUSTER_NAME="${TIDEOVER_KIND_CLUSTER:-tideover-e2e}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${ROOT}/.e2e-work/kind"
KIND="${KIND:-$("${ROOT}/.venv/bin/python" -m e2e.kind.images path kind)}"

if [[ "${1:-}" == --export-logs && -n "${2:-}" ]]; then
  mkdir -p "$2"
  "${KIND}" export logs --name "${CLUSTER_NAME}" "$2" >/dev/null 2>&1 \
    && printf '[kind-down] the cluster'"'"'s logs (kind export logs): %s\n' "$2" >&2 \
    || printf '[kind-down] kind export logs failed\n' >&2
fi
if "${KIND}" get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
  "${KIND}" delete cluster --name "${CLUSTER_NAME}" --kubeconfig "${WORK}/kubeconfig"
else
  printf '[kind-down] no kind cluster named %s\n' "${CLUSTER_NAME}" >&2
fi
rm -rf "${WORK}"
# tideover images a later build replaced (untagged now) and the Dockerfile's build stage: nothing else uses them.
# The cached images (tideover-kind/*, tideover:e2e) stay: they make the next up.sh fast.
docker image prune --force --filter "label=org.opencontainers.image.title=tideover" >/dev/null 2>&1 || true
docker image prune --force --filter "label=tideover.io/image=build" >/dev/null 2>&1 || true
