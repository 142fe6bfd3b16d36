#!/usr/bin/env bash
# Brings up the e2e suite's kind cluster (e2e/kind/README.md): builds the tideover and virtual-kubelet images,
# creates the cluster tideover-e2e (or reuses it), loads the images, installs kwok, tideover and the virtual node,
# and waits until they are ready. Needs docker (with a running engine), kind, kubectl and openssl.
#
#   bash e2e/kind/up.sh                 # then: TIDEOVER_E2E=1 TIDEOVER_E2E_TARGET=kind .venv/bin/python -m pytest e2e
#   KIND_NODE_IMAGE=kindest/node:<version> bash e2e/kind/up.sh     # another node image than kind's default
#
# Running it again on an existing cluster rebuilds and reloads the images and restarts tideover and virtual-kubelet
# with them (kube-scheduler's configuration is read only when the cluster is created: after changing
# config/scheduler-config.yaml, run down.sh first). The kubeconfig goes to .e2e-work/kind/kubeconfig, not to
# ~/.kube/config. Remove everything with e2e/kind/down.sh.
set -euo pipefail

CLUSTER_NAME="tideover-e2e"
NAMESPACE="kube-system"
VIRTUAL_NODE="virtual-node-aci-linux"
NODE_PORT="30888"
TIDEOVER_IMAGE="tideover:e2e"
VIRTUAL_KUBELET_IMAGE="tideover-virtual-kubelet:e2e"
KIND_NODE_LABEL="tideover.io/kind-node=true"
TIMEOUT="300s"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="${ROOT}/e2e/kind"
WORK="${ROOT}/.e2e-work/kind"
KUBECONFIG_PATH="${WORK}/kubeconfig"

log() { printf '\n[kind-up] %s\n' "$*"; }
die() {
  printf '[kind-up] error: %s\n' "$*" >&2
  exit 1
}

# --- prerequisites -------------------------------------------------------------------------------------------
require() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (or not on PATH). $2"
}
require docker "Install Docker: https://docs.docker.com/get-docker/"
require kind "Install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
require kubectl "Install kubectl: https://kubernetes.io/docs/tasks/tools/"
require openssl "It generates the virtual node's serving certificate."
docker info >/dev/null 2>&1 || die "docker is installed but its engine does not answer (docker info failed): start Docker first."

# A version pinned in e2e/versions.toml: the value of `version = "..."` in section [$1].
pinned_version() {
  local version
  version="$(awk -v section="[$1]" '
    $0 == section { inside = 1; next }
    /^\[/ { inside = 0 }
    inside && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
  ' "${ROOT}/e2e/versions.toml")"
  [[ -n "${version}" ]] || die "no version for [$1] in e2e/versions.toml"
  printf '%s' "${version}"
}
VIRTUAL_KUBELET_VERSION="$(pinned_version virtual-kubelet)"
KWOK_VERSION="$(pinned_version kwok)"
KWOK_RELEASE="https://github.com/kubernetes-sigs/kwok/releases/download/${KWOK_VERSION}"

kube() { kubectl --kubeconfig "${KUBECONFIG_PATH}" "$@"; }

# --- kube-scheduler's configuration, mounted into the control-plane node (cluster.yaml) ------------------------
mkdir -p "${WORK}/scheduler"
SCHEDULER_CONFIG="${WORK}/scheduler/scheduler-config.yaml"
bash "${HERE}/render-scheduler-config.sh" "http://127.0.0.1:${NODE_PORT}" >"${SCHEDULER_CONFIG}.new"

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; }

if cluster_exists && [[ -f "${SCHEDULER_CONFIG}" ]] && ! cmp -s "${SCHEDULER_CONFIG}" "${SCHEDULER_CONFIG}.new"; then
  printf '[kind-up] warning: the scheduler configuration changed, but kube-scheduler reads it only at start;\n' >&2
  printf '[kind-up]          run bash e2e/kind/down.sh and this script again to use it.\n' >&2
fi
mv "${SCHEDULER_CONFIG}.new" "${SCHEDULER_CONFIG}"

# --- images --------------------------------------------------------------------------------------------------
log "building ${TIDEOVER_IMAGE} from the repository's Dockerfile"
docker build -t "${TIDEOVER_IMAGE}" "${ROOT}"
log "building ${VIRTUAL_KUBELET_IMAGE} (virtual-kubelet ${VIRTUAL_KUBELET_VERSION})"
docker build -t "${VIRTUAL_KUBELET_IMAGE}" --build-arg "VIRTUAL_KUBELET_VERSION=${VIRTUAL_KUBELET_VERSION}" \
  - <"${HERE}/virtual-kubelet.Dockerfile"

# --- the cluster ---------------------------------------------------------------------------------------------
existed=false
if cluster_exists; then
  existed=true
  log "reusing the existing kind cluster ${CLUSTER_NAME}"
  kind export kubeconfig --name "${CLUSTER_NAME}" --kubeconfig "${KUBECONFIG_PATH}"
else
  log "creating the kind cluster ${CLUSTER_NAME}"
  image_args=()
  if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
    image_args=(--image "${KIND_NODE_IMAGE}")
  fi
  # From the repository root: cluster.yaml's extraMounts hostPath is relative to it.
  (cd "${ROOT}" && kind create cluster --name "${CLUSTER_NAME}" --config "${HERE}/cluster.yaml" \
    --kubeconfig "${KUBECONFIG_PATH}" ${image_args[@]+"${image_args[@]}"})
fi
kube wait --for=condition=Ready nodes --all --timeout="${TIMEOUT}"

log "loading the images into the nodes"
kind load docker-image --name "${CLUSTER_NAME}" "${TIDEOVER_IMAGE}" "${VIRTUAL_KUBELET_IMAGE}"

# kind's DaemonSets (kindnet, kube-proxy) tolerate every taint, so they would also place a pod on each kwok node,
# taking capacity the scenarios count (kindnet requests 100m of CPU), and on the virtual node. Keep them on
# kind's own nodes.
log "restricting kube-system DaemonSets to the kind nodes"
node_selector_patch="{\"spec\":{\"template\":{\"spec\":{\"nodeSelector\":{\"${KIND_NODE_LABEL%%=*}\":\"${KIND_NODE_LABEL#*=}\"}}}}}"
daemonsets="$(kube -n "${NAMESPACE}" get daemonsets -o name)"
for daemonset in ${daemonsets}; do
  kube -n "${NAMESPACE}" patch "${daemonset}" --type strategic -p "${node_selector_patch}"
  kube -n "${NAMESPACE}" rollout status "${daemonset}" --timeout="${TIMEOUT}"
done

# --- kwok: the controller that makes the tests' fake VM nodes (and their pods) look alive -------------------------
log "installing kwok ${KWOK_VERSION} (controller and its fast stages, from its GitHub release)"
kube apply -f "${KWOK_RELEASE}/kwok.yaml"
kube wait --for=condition=Established crd/stages.kwok.x-k8s.io --timeout="${TIMEOUT}"
kube apply -f "${KWOK_RELEASE}/stage-fast.yaml"
# On a kind worker, never on one of the kwok nodes it fakes.
kube -n "${NAMESPACE}" patch deployment kwok-controller --type strategic -p "{\"spec\":{\"template\":{\"spec\":{
  \"nodeSelector\":{\"${KIND_NODE_LABEL%%=*}\":\"${KIND_NODE_LABEL#*=}\"},
  \"tolerations\":[{\"key\":\"CriticalAddonsOnly\",\"operator\":\"Exists\"}]}}}}"
kube -n "${NAMESPACE}" rollout status deployment/kwok-controller --timeout="${TIMEOUT}"

# --- the virtual node and tideover -----------------------------------------------------------------------------
log "generating the virtual node's serving certificate"
tls_dir="$(mktemp -d)"
trap 'rm -rf "${tls_dir}"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=${VIRTUAL_NODE}" \
  -keyout "${tls_dir}/tls.key" -out "${tls_dir}/tls.crt" 2>/dev/null
kube -n "${NAMESPACE}" create secret tls virtual-kubelet-tls \
  --cert "${tls_dir}/tls.crt" --key "${tls_dir}/tls.key" --dry-run=client -o yaml | kube apply -f -

log "applying e2e/kind/manifests (tideover from config/, virtual-kubelet)"
kube apply -k "${HERE}/manifests"
if [[ "${existed}" == true ]]; then
  # Same image tags, new images: restart to run them.
  kube -n "${NAMESPACE}" rollout restart deployment/tideover deployment/virtual-kubelet
fi
kube -n "${NAMESPACE}" rollout status deployment/virtual-kubelet --timeout="${TIMEOUT}"
kube -n "${NAMESPACE}" rollout status deployment/tideover --timeout="${TIMEOUT}"

log "waiting for the virtual node ${VIRTUAL_NODE}"
for _ in $(seq 1 120); do
  kube get node "${VIRTUAL_NODE}" >/dev/null 2>&1 && break
  sleep 1
done
kube wait --for=condition=Ready "node/${VIRTUAL_NODE}" --timeout="${TIMEOUT}"
# Labels AKS's virtual node carries and virtual-kubelet does not set (as e2e/cluster.py adds them).
kube label node "${VIRTUAL_NODE}" --overwrite kubernetes.io/os=linux kubernetes.azure.com/managed=false

if command -v curl >/dev/null 2>&1; then
  log "checking tideover through its NodePort from this machine"
  ok=false
  for _ in $(seq 1 60); do
    if curl -fsS --max-time 2 "http://127.0.0.1:${NODE_PORT}/readyz" >/dev/null 2>&1; then
      ok=true
      break
    fi
    sleep 1
  done
  [[ "${ok}" == true ]] || die "tideover is Ready in the cluster but http://127.0.0.1:${NODE_PORT}/readyz does not answer"
fi

cat <<EOF

[kind-up] the kind cluster ${CLUSTER_NAME} is ready.
  kubeconfig:  ${KUBECONFIG_PATH}
               (export KUBECONFIG=${KUBECONFIG_PATH} to use kubectl on it)
  tideover:    http://127.0.0.1:${NODE_PORT} (/readyz, /metrics)
  run the e2e suite against it:
    TIDEOVER_E2E=1 TIDEOVER_E2E_TARGET=kind .venv/bin/python -m pytest e2e -s
  remove it:   bash e2e/kind/down.sh
EOF
