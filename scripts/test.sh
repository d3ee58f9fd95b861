#!/usr/bin/env bash
# Install, then run everything CI runs: ruff (lint + format), mypy, the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
# tests/test_page.py drives Debian's chromium (never Playwright's own browser download). As root,
# install it and the CJK fonts when missing; otherwise those tests are skipped and say why.
if { [ ! -x /usr/bin/chromium ] || [ ! -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]; } \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test.sh: apt-get install chromium fonts-noto-cjk (browser tests)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; } \
    >/dev/null || echo "test.sh: could not install chromium; the browser tests will be skipped" >&2
fi
.venv/bin/ruff check qa api eval cli tests scripts
.venv/bin/ruff format --check qa api eval cli tests scripts
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
