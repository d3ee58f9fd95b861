#!/usr/bin/env bash
# Install, then serve the bundled corpus on 127.0.0.1:8000 (the index is built on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh serve
exec .venv/bin/qa serve "$@"
