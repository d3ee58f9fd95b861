#!/usr/bin/env bash
# Install, then run everything CI runs: ruff (lint + format), mypy, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
.venv/bin/ruff check qa api eval tests
.venv/bin/ruff format --check qa api eval tests
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
