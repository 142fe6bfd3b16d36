#!/usr/bin/env bash
# The main job: seed 001's burst (1 -> 20 replicas) with tideover, cluster-autoscaler and a simulated VM Scale Set,
# printing where each pod went and why: pending -> spilled to the virtual node -> back on VMs.
#
#   bash scripts/demo.sh          # local: real Kubernetes components as local processes (built once, cached)
#   bash scripts/demo.sh --kind   # kind: a kind cluster with tideover deployed from its image and config/, as
#                                 # users run it (Docker installed and the images built offline on first use);
#                                 # the cluster is deleted afterwards
# Other arguments go to python -m e2e.demo (--no-returns, --work-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/python -m e2e.harness.components build
kind=false
args=()
for arg in "$@"; do
  if [ "${arg}" = --kind ]; then kind=true; else args+=("${arg}"); fi
done
if [ "${kind}" = false ]; then
  exec .venv/bin/python -m e2e.demo ${args[@]+"${args[@]}"}
fi
trap 'bash e2e/kind/down.sh || true; bash e2e/kind/docker.sh down || true' EXIT
bash e2e/kind/up.sh
.venv/bin/python -m e2e.demo --kind ${args[@]+"${args[@]}"}
