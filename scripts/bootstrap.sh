#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install tideover with its development tools, at the versions of the lock file
# requirements/dev.txt (hash-checked; refresh it with bash scripts/lock.sh). Idempotent: reinstalls only when the
# lock file or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.tideover-installed
wanted="$(cat requirements/dev.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "bootstrap: installing the locked dependencies (requirements/dev.txt) and tideover"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet --require-hashes -r requirements/dev.txt
  .venv/bin/python -m pip install --quiet --no-deps -e .
  echo "$wanted" >"$stamp"
fi
