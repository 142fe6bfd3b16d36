#!/usr/bin/env bash
# Refresh the lock files of tideover's Python dependencies from pyproject.toml:
#   requirements/runtime.txt   what the image installs (the Dockerfile, e2e/kind/up.sh's wheels)
#   requirements/dev.txt       runtime + the [dev] extras: what scripts/bootstrap.sh installs into .venv (and CI)
# Both pin every package with its hashes (pip install --require-hashes), for CPython 3.11 on x86_64 Linux (the
# image's Python; the development machines'). Run after changing dependencies in pyproject.toml:
#   bash scripts/lock.sh                 # keep the current pins where pyproject.toml still allows them
#   bash scripts/lock.sh --upgrade       # newest versions pyproject.toml allows
# then bash scripts/bootstrap.sh (reinstalls .venv from the new lock) and commit requirements/.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
[ -x .venv/bin/python ] || bash scripts/bootstrap.sh
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "${UV_VERSION}" ]; then
  .venv/bin/python -m pip install --quiet "uv==${UV_VERSION}"
fi
compile() {
  .venv/bin/uv pip compile pyproject.toml --quiet --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    --generate-hashes --custom-compile-command "bash scripts/lock.sh" "$@"
}
compile "${@}" -o requirements/runtime.txt
compile "${@}" --extra dev -o requirements/dev.txt
echo "lock.sh: requirements/runtime.txt ($(grep -c '==' requirements/runtime.txt) packages), requirements/dev.txt ($(grep -c '==' requirements/dev.txt))"
