#!/usr/bin/env bash
# Deletes the e2e suite's kind cluster (tideover-e2e) and what e2e/kind/up.sh generated for it (.e2e-work/kind:
# the kubeconfig and kube-scheduler's configuration). The images tideover:e2e and tideover-virtual-kubelet:e2e
# stay in Docker (docker image rm them if you want the space back).
set -euo pipefail

CLUSTER_NAME="tideover-e2e"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${ROOT}/.e2e-work/kind"

command -v kind >/dev/null 2>&1 || {
  printf '[kind-down] error: kind is not installed (or not on PATH)\n' >&2
  exit 1
}

if kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
  kind delete cluster --name "${CLUSTER_NAME}" --kubeconfig "${WORK}/kubeconfig"
else
  printf '[kind-down] no kind cluster named %s\n' "${CLUSTER_NAME}"
fi
rm -rf "${WORK}"
