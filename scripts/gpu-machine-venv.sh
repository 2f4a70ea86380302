#!/usr/bin/env bash
# On the GPU machine (no index): gpudoctor installed as README installs it, into its own venv (`python3 -m venv`,
# then `pip install .`), from a wheelhouse of its dependencies carried in KIT_DIR/wheels (the kit's docker wheel
# and what `pip download` gives for cp312 manylinux: typer, rich, nvidia-ml-py, PyYAML, requests, ...).
# Prints the venv's gpudoctor command. The venv's Python is the machine's base interpreter, without the machine's
# own environment (its PyTorch venv's .pth files, its uncompiled nvidia-ml-py).
#   bash scripts/gpu-machine-venv.sh KIT_DIR [VENV_DIR]
set -euo pipefail
# Nothing on PYTHONPATH: pip would take what it finds there as installed already, and leave it out of the venv.
unset PYTHONPATH
kit=$1; venv=${2:-/opt/gpudoctor-venv}
base=$(python3 -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')
rm -rf "$venv" /tmp/gpudoctor-wheel
"$base" -m venv --without-pip "$venv"
python3 -m pip wheel -q --no-deps --no-build-isolation -w /tmp/gpudoctor-wheel . >/tmp/venv-pip.log 2>&1 \
  || { tail -20 /tmp/venv-pip.log >&2; exit 1; }
# pip runs under the venv's interpreter (--python), installing and byte-compiling as a user's `pip install` does.
python3 -m pip --python "$venv/bin/python" install -q --no-index --find-links "$kit/wheels" \
  /tmp/gpudoctor-wheel/*.whl >>/tmp/venv-pip.log 2>&1 || { tail -20 /tmp/venv-pip.log >&2; exit 1; }
echo "$venv/bin/gpudoctor"
