#!/usr/bin/env bash
# On a CPU machine (no GPU): the speed benchmark against simulated hosts (tests/sim), with gpudoctor installed as
# a user's `pip install` leaves it, byte-compiled (a checkout run in place under PYTHONDONTWRITEBYTECODE compiles
# every changed module on every start, which no user pays). Needs root, dockerd, runc and a static busybox.
#   bash scripts/cpu-machine-speed.sh [--repeat N] [--json FILE]   (run from the checkout; uses .venv's Python)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
# Without build isolation where setuptools and wheel are at hand (no index needed), else pip's own.
"$py" -m pip install -q --no-build-isolation --no-deps --target "$site" . >/dev/null 2>&1 \
  || "$py" -m pip install -q --no-deps --target "$site" . >/dev/null
PYTHONPATH="$site" "$py" -P benchmarks/check_speed.py --sim --repeat 5 --warm 1 \
  --gpudoctor "$(cd "$(dirname "$py")" && pwd)/$(basename "$py") -P -m gpudoctor" "$@"
