#!/usr/bin/env bash
# The test command: installs what it needs, then runs the unit tests and (unless TIDEOVER_E2E=0)
# the end-to-end tests on real Kubernetes components built from source (see e2e/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/python -m pytest tests -q
