#!/usr/bin/env bash
# Create .venv and install the project. torch is pinned and installed first so pip takes the
# CPU wheel instead of several GB of CUDA packages. Every other package is pinned by
# constraints.txt, so a new release upstream changes nothing without a commit here.
# Usage: scripts/install.sh [serve|dev]. Says what it is doing on stderr; silent when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-dev}"
say() { echo "install.sh: $*" >&2; }
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
hash=$(cat pyproject.toml constraints.txt scripts/install.sh | sha256sum | cut -c1-16)
stamp=".venv/.installed-${profile}-${hash}"
if [ -f "$stamp" ]; then exit 0; fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt)
if [ "$profile" = dev ]; then
  say "torch 2.13.0, CPU wheel (first install: a few minutes)"
  "${pip[@]}" "torch==2.13.0"
  say "citeqa and its dev dependencies, pinned by constraints.txt"
  "${pip[@]}" -e ".[dev]"
else
  say "citeqa and its dependencies, pinned by constraints.txt"
  "${pip[@]}" -e .
fi
rm -f .venv/.installed-"${profile}"-*
touch "$stamp"
say "done (.venv, profile ${profile})"
