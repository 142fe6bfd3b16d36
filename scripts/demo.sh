#!/usr/bin/env bash
# The main job, locally: builds (once) and starts a cluster of real Kubernetes components with tideover,
# cluster-autoscaler and a simulated VM Scale Set, runs seed 001's burst (1 -> 20 replicas), and prints
# where each pod went and why: pending -> spilled to the virtual node -> back on VMs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/python -m e2e.components build
exec .venv/bin/python -m e2e.demo "$@"
