#!/usr/bin/env bash
# On a CPU machine (no GPU): the speed benchmark against simulated hosts (tests/sim), with gpudoctor installed as
# a user's `pip install` leaves it: byte-compiled (a checkout run in place under PYTHONDONTWRITEBYTECODE compiles
# every changed module on every start, which no user pays), and in a venv of its own. .venv holds gpudoctor as an
# editable install, whose import finder every start of .venv's Python loads (12 ms on the 2-core CI machine): the
# benchmark's venv takes .venv's packages through a .pth line, which adds the directory without running its .pth
# files. Needs root, dockerd, runc and a static busybox.
#   bash scripts/cpu-machine-speed.sh [--repeat N] [--json FILE]   (run from the checkout; uses .venv's Python)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
site="$tmp/site"
# Without build isolation where setuptools and wheel are at hand (no index needed), else pip's own.
"$py" -m pip install -q --no-build-isolation --no-deps --target "$site" . >/dev/null 2>&1 \
  || "$py" -m pip install -q --no-deps --target "$site" . >/dev/null 2>&1
rm -rf build  # what setuptools leaves in the checkout would leak stale files into the next install
"$py" -m venv --without-pip "$tmp/venv"
bench_py="$tmp/venv/bin/python"
deps=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
own=$("$bench_py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n%s\n' "$site" "$deps" > "$own/gpudoctor-benchmark.pth"
"$bench_py" -P benchmarks/check_speed.py --sim --repeat 5 --warm 1 --gpudoctor "$bench_py -P -m gpudoctor" "$@"
