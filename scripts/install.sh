#!/usr/bin/env bash
# Create .venv and install the project. torch is pinned and installed first so pip takes the
# CPU wheel instead of several GB of CUDA packages. Usage: scripts/install.sh [serve|dev]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-dev}"
python3 -m venv .venv 2>/dev/null || test -x .venv/bin/python
stamp=".venv/.installed-${profile}-$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then exit 0; fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ "$profile" = dev ]; then
  "${pip[@]}" "torch==2.13.0"
  "${pip[@]}" -e ".[dev]"
else
  "${pip[@]}" -e .
fi
touch "$stamp"
