#!/usr/bin/env bash
# On the GPU machine: the stack from a GPU-host kit, gpudoctor from this checkout, then one healthy real-stack
# state and what a user runs there (scripts/gpu-machine-checks.py), and the speed benchmark (benchmarks/check_speed.py)
# of gpudoctor installed two ways: into the machine's own Python environment (its PyTorch venv, on PYTHONPATH), and
# as README installs it, into a venv of its own (scripts/gpu-machine-venv.sh; needs KIT_DIR/wheels).
#   bash scripts/gpu-machine-final.sh KIT_DIR ENGINE STATE [machine|venv|both]
set -uo pipefail
kit=$1; engine=$2; state=$3; installs=${4:-both}
pkill -x dockerd; sleep 1; pkill -9 -x containerd; rm -rf /var/lib/docker/* /var/lib/containerd /var/run/docker.sock
bash "$kit/gpu-host-up.sh" --install-toolkit >/tmp/gpu-host-up.log 2>&1 || { tail -20 /tmp/gpu-host-up.log; exit 1; }
export PATH=/opt/gpuhost/bin:/usr/local/nvidia/bin:$PATH
# The simulated beds of the 8-vs-1 goal import a static busybox as their probe image; a kit may carry one.
# (as busybox.xz where the call's 64 MiB carry limit is tight).
[ -e /usr/bin/busybox ] || [ ! -e "$kit/busybox.xz" ] || { xz -dc "$kit/busybox.xz" >/usr/bin/busybox && chmod 0755 /usr/bin/busybox; }
[ -e /usr/bin/busybox ] || [ ! -x "$kit/busybox" ] || install -m 0755 "$kit/busybox" /usr/bin/busybox
# gpu-host-up.sh unpacks the kit's own static busybox into /opt/gpuhost/bin (pack-gpu-host-kit.sh packs it in kit.tar.xz).
[ -e /usr/bin/busybox ] || [ ! -x /opt/gpuhost/bin/busybox ] || install -m 0755 /opt/gpuhost/bin/busybox /usr/bin/busybox
rm -rf /opt/gpudoctor-site
# Compiled as a user's `pip install` compiles it: without .pyc files every run compiles gpudoctor's 60 modules again
# (0.15 s on that machine, where PYTHONDONTWRITEBYTECODE is set), which no user pays.
python3 -m pip install -q --no-build-isolation --no-deps --target /opt/gpudoctor-site . >/tmp/pip.log 2>&1 \
  || { tail -20 /tmp/pip.log; exit 1; }
export PYTHONPATH=/opt/gpudoctor-site:/opt/gpuhost/site
out=${OUT:-/tmp}
python3 scripts/gpu-machine-checks.py --engine "$engine" --state "$state" --out "$out"
bench() {  # $1: the gpudoctor command, $2: the JSON file
  python3 -P benchmarks/check_speed.py --image probe:glibc --gpus --sim-ratio --warm 1 --repeat "${REPEAT:-5}" --gpudoctor "$1" \
    --json "$2" 2>&1 | tail -30
}
if [ "$installs" != venv ]; then echo "== gpudoctor in the machine's Python environment"; bench "python3 -P -m gpudoctor" "$out/speed.json"; fi
if [ "$installs" != machine ]; then
  venv_cmd=$(bash scripts/gpu-machine-venv.sh "$kit") || exit 1
  echo "== gpudoctor in its own venv, as README installs it ($venv_cmd)"
  (unset PYTHONPATH; bench "$venv_cmd" "$out/speed-venv.json")
fi
docker ps -a --format '{{.ID}} {{.Image}} {{.Status}}' | head
