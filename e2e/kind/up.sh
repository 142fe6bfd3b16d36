#!/usr/bin/env bash
# Brings up the e2e suite's kind cluster (e2e/kind/README.md) on this machine, offline:
#   1. a Docker engine (e2e/kind/docker.sh up: installs and starts one when none answers);
#   2. every image the cluster needs, built here from Go modules and Debian packages (python -m e2e.kind.images
#      build, cached by version; TIDEOVER_KIND_IMAGES=upstream uses kind's own kindest/node instead);
#   3. tideover's image from the repository's Dockerfile, its Python wheels built on the host (no network in
#      the build);
#   4. the cluster tideover-e2e (reused when it exists), tideover deployed from config/ through
#      e2e/kind/manifests (its ServiceAccount, RBAC, ConfigMap, Deployment, PDB, Service), kwok's controller,
#      and the virtual node (virtual-kubelet's mock provider).
#
#   bash e2e/kind/up.sh            # then: TIDEOVER_E2E=1 TIDEOVER_E2E_TARGET=kind .venv/bin/python -m pytest e2e
#   bash e2e/kind/down.sh          # delete the cluster
#
# Running it again on an existing cluster rebuilds and reloads tideover's image and restarts tideover with it.
# kube-scheduler's configuration is rendered into .e2e-work/kind/scheduler/, mounted into the control-plane node.
# The kubeconfig goes to .e2e-work/kind/kubeconfig, never to ~/.kube/config. Stage timings go to stderr.
set -euo pipefail

CLUSTER_NAME="${TIDEOVER_KIND_CLUSTER:-tideover-e2e}"
NAMESPACE="kube-system"
VIRTUAL_NODE="virtual-node-aci-linux"
NODE_PORT="30888"
TIDEOVER_IMAGE="tideover:e2e"
KIND_NODE_LABEL="tideover.io/kind-node=true"
TIMEOUT="300s"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="${ROOT}/e2e/kind"
WORK="${ROOT}/.e2e-work/kind"
KUBECONFIG_PATH="${WORK}/kubeconfig"
PYTHON="${ROOT}/.venv/bin/python"

started=${SECONDS}
stage_started=${SECONDS}
log() { printf '[kind-up] %s\n' "$*" >&2; }
stage() {
  log "$1 (+$((SECONDS - stage_started)) s for the previous stage, $((SECONDS - started)) s in all)"
  stage_started=${SECONDS}
}
die() {
  printf '[kind-up] error: %s\n' "$*" >&2
  exit 1
}

[[ -x "${PYTHON}" ]] || bash "${ROOT}/scripts/bootstrap.sh"
mkdir -p "${WORK}/scheduler" "${WORK}/audit"

# --- 1. Docker ------------------------------------------------------------------------------------------------
stage "Docker engine"
bash "${HERE}/docker.sh" up

# --- 2. images: KIND, KUBECTL, NODE_IMAGE, PYTHON_IMAGE, VIRTUAL_KUBELET_IMAGE, KWOK_IMAGE, KWOK_MANIFESTS -----
stage "cluster images (python -m e2e.kind.images build)"
images_env="$("${PYTHON}" -m e2e.kind.images build)" || die "building the cluster's images failed (see above)"
eval "${images_env}"
for var in KIND KUBECTL NODE_IMAGE PYTHON_IMAGE VIRTUAL_KUBELET_IMAGE KWOK_IMAGE KWOK_MANIFESTS; do
  [[ -n "${!var:-}" ]] || die "python -m e2e.kind.images build did not print ${var}"
done
kube() { "${KUBECTL}" --kubeconfig "${KUBECONFIG_PATH}" "$@"; }
kind_() { "${KIND}" "$@"; }

# --- 3. tideover's image ----------------------------------------------------------------------------------------
stage "tideover's image from the Dockerfile"
# Wheels for every runtime dependency at the lock file's versions and hashes, cached by the lock file's hash;
# tideover's own wheel, built each time.
deps_hash="$(sha256sum "${ROOT}/requirements/runtime.txt" | cut -c1-16)"
deps_dir="${TIDEOVER_CACHE_DIR:-${HOME}/.cache/tideover}/wheels/${deps_hash}"
if [[ ! -f "${deps_dir}/.complete" ]]; then
  log "building the runtime dependencies' wheels on the host into ${deps_dir}"
  rm -rf "${deps_dir}" && mkdir -p "${deps_dir}"
  "${PYTHON}" -m pip wheel --quiet --require-hashes --wheel-dir "${deps_dir}" -r "${ROOT}/requirements/runtime.txt"
  touch "${deps_dir}/.complete"
fi
rm -rf "${ROOT}/wheelhouse" && mkdir -p "${ROOT}/wheelhouse"
cp "${deps_dir}"/*.whl "${ROOT}/wheelhouse/"
"${PYTHON}" -m pip wheel --quiet --no-deps --wheel-dir "${ROOT}/wheelhouse" "${ROOT}"
rm -rf "${ROOT}/build" "${ROOT}"/*.egg-info
docker build --quiet --build-arg "PYTHON_IMAGE=${PYTHON_IMAGE}" -t "${TIDEOVER_IMAGE}" "${ROOT}" >/dev/null \
  || { rm -rf "${ROOT}/wheelhouse"; die "docker build of ${TIDEOVER_IMAGE} failed"; }
rm -rf "${ROOT}/wheelhouse"
# The previous build's image, now untagged: nothing else refers to it.
docker image prune --force --filter "label=org.opencontainers.image.title=tideover" >/dev/null

# --- 4. kube-scheduler's configuration, then the cluster -----------------------------------------------------------
SCHEDULER_CONFIG="${WORK}/scheduler/scheduler-config.yaml"
bash "${HERE}/render-scheduler-config.sh" "http://127.0.0.1:${NODE_PORT}" >"${SCHEDULER_CONFIG}.new"
cluster_exists() { kind_ get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; }
if cluster_exists && [[ -f "${SCHEDULER_CONFIG}" ]] && ! cmp -s "${SCHEDULER_CONFIG}" "${SCHEDULER_CONFIG}.new"; then
  log "warning: the scheduler configuration changed, but kube-scheduler reads it only at start;"
  log "         run bash e2e/kind/down.sh and this script again to use it."
fi
mv "${SCHEDULER_CONFIG}.new" "${SCHEDULER_CONFIG}"

existed=false
if cluster_exists; then
  existed=true
  stage "reusing the kind cluster ${CLUSTER_NAME}"
  kind_ export kubeconfig --name "${CLUSTER_NAME}" --kubeconfig "${KUBECONFIG_PATH}"
else
  stage "creating the kind cluster ${CLUSTER_NAME} (node image ${NODE_IMAGE})"
  # From the repository root: cluster.yaml's extraMounts hostPath is relative to it.
  (cd "${ROOT}" && kind_ create cluster --name "${CLUSTER_NAME}" --config "${HERE}/cluster.yaml" \
    --image "${NODE_IMAGE}" --kubeconfig "${KUBECONFIG_PATH}" --wait 0s)
fi
kube wait --for=condition=Ready nodes --all --timeout="${TIMEOUT}"

stage "loading ${TIDEOVER_IMAGE} into the nodes"
# Into the workers only: tideover runs there (it tolerates their taint, not the control plane's).
workers="$(kind_ get nodes --name "${CLUSTER_NAME}" | grep -v control-plane | paste -sd, -)"
kind_ load docker-image --name "${CLUSTER_NAME}" --nodes "${workers}" "${TIDEOVER_IMAGE}"
if [[ "${TIDEOVER_KIND_IMAGES:-offline}" == upstream ]]; then
  # kindest/node does not carry them: the offline node image does.
  kind_ load docker-image --name "${CLUSTER_NAME}" "${VIRTUAL_KUBELET_IMAGE}" "${KWOK_IMAGE}"
fi

# kind's DaemonSets (kindnet, kube-proxy) tolerate every taint, so they would also place a pod on each kwok node,
# taking capacity the scenarios count, and on the virtual node. Keep them on kind's own nodes. Their pods on the
# kind nodes are replaced all at once (maxUnavailable 100%), and nothing waits for it: the old pods serve meanwhile.
stage "restricting kube-system DaemonSets to the kind nodes"
daemonset_patch="{\"spec\":{\"updateStrategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxUnavailable\":\"100%\"}},
  \"template\":{\"spec\":{\"nodeSelector\":{\"${KIND_NODE_LABEL%%=*}\":\"${KIND_NODE_LABEL#*=}\"}}}}}"
for daemonset in $(kube -n "${NAMESPACE}" get daemonsets -o name); do
  kube -n "${NAMESPACE}" patch "${daemonset}" --type strategic -p "${daemonset_patch}" >/dev/null
done

# --- kwok: the controller that makes the tests' fake VM nodes (and their pods) look alive -------------------------
stage "kwok (its controller and fast stages, from the kwok module's kustomize at the pinned version)"
# The Stages need kwok's CRDs established first: one apply that may refuse them, a wait, and the full apply.
kube apply -f "${KWOK_MANIFESTS}" >/dev/null 2>&1 || true
kube wait --for=condition=Established crd/stages.kwok.x-k8s.io --timeout="${TIMEOUT}" >/dev/null
kube apply -f "${KWOK_MANIFESTS}" >/dev/null
kube -n "${NAMESPACE}" patch deployment kwok-controller --type strategic -p "{\"spec\":{\"template\":{\"spec\":{
  \"nodeSelector\":{\"${KIND_NODE_LABEL%%=*}\":\"${KIND_NODE_LABEL#*=}\"},
  \"tolerations\":[{\"key\":\"CriticalAddonsOnly\",\"operator\":\"Exists\"}],
  \"containers\":[{\"name\":\"kwok-controller\",\"imagePullPolicy\":\"Never\"}]}}}}" >/dev/null

# --- the virtual node and tideover -----------------------------------------------------------------------------
stage "tideover (helm install of charts/tideover) and the virtual node"
tls_dir="$(mktemp -d)"
trap 'rm -rf "${tls_dir}"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=${VIRTUAL_NODE}" \
  -keyout "${tls_dir}/tls.key" -out "${tls_dir}/tls.crt" 2>/dev/null
kube -n "${NAMESPACE}" create secret tls virtual-kubelet-tls \
  --cert "${tls_dir}/tls.crt" --key "${tls_dir}/tls.key" --dry-run=client -o yaml | kube apply -f - >/dev/null
kube kustomize "${HERE}/manifests" | sed "s#image: tideover-virtual-kubelet:e2e#image: ${VIRTUAL_KUBELET_IMAGE}#" \
  | kube apply -f - >/dev/null
# tideover as users install it: the chart, with the kind cluster's values (values.yaml) and the e2e configuration.
HELM="$("${PYTHON}" -c 'from e2e.harness import chart; print(chart.helm_binary())')" || die "building helm failed (see above)"
"${HELM}" upgrade --install tideover "${ROOT}/charts/tideover" --kubeconfig "${KUBECONFIG_PATH}" \
  --namespace "${NAMESPACE}" --values "${HERE}/values.yaml" --set-file "configFile=${HERE}/tideover.yaml" >/dev/null \
  || die "helm install of charts/tideover failed"
if [[ "${existed}" == true ]]; then
  # Same image tag, new image: restart to run it.
  kube -n "${NAMESPACE}" rollout restart deployment/tideover >/dev/null
fi
kube -n "${NAMESPACE}" rollout status deployment/kwok-controller --timeout="${TIMEOUT}"
kube -n "${NAMESPACE}" rollout status deployment/virtual-kubelet --timeout="${TIMEOUT}"
kube -n "${NAMESPACE}" rollout status deployment/tideover --timeout="${TIMEOUT}"

for _ in $(seq 1 120); do
  kube get node "${VIRTUAL_NODE}" >/dev/null 2>&1 && break
  sleep 1
done
kube wait --for=condition=Ready "node/${VIRTUAL_NODE}" --timeout="${TIMEOUT}"
# Labels AKS's virtual node carries and virtual-kubelet does not set (as e2e/harness/cluster.py adds them).
kube label node "${VIRTUAL_NODE}" --overwrite kubernetes.io/os=linux kubernetes.azure.com/managed=false >/dev/null

ok=false
for _ in $(seq 1 60); do
  if curl -fsS --max-time 2 "http://127.0.0.1:${NODE_PORT}/readyz" >/dev/null 2>&1; then
    ok=true
    break
  fi
  sleep 1
done
[[ "${ok}" == true ]] || die "tideover is Ready in the cluster but http://127.0.0.1:${NODE_PORT}/readyz does not answer"
stage "ready"

cat >&2 <<EOF
[kind-up] the kind cluster ${CLUSTER_NAME} is ready.
  kubeconfig:  ${KUBECONFIG_PATH}   (${KUBECTL} --kubeconfig ${KUBECONFIG_PATH} get pods -A)
  tideover:    http://127.0.0.1:${NODE_PORT} (/readyz, /metrics)
  the suite:   TIDEOVER_E2E=1 TIDEOVER_E2E_TARGET=kind .venv/bin/python -m pytest e2e -s
  remove it:   bash e2e/kind/down.sh
EOF
