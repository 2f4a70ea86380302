#!/usr/bin/env bash
# On the GPU machine (the `device` tool): bring up the engine and the toolkit from a GPU-host kit, install
# gpudoctor from this checkout, run the real-stack matrix, and pack what it recorded into $OUT.
#   bash scripts/real-stack-run.sh KIT_DIR ENGINE [matrix options…]     e.g. .gpuhost 29.7 --states a,b
# The kit comes from ../shared/tools/pack-gpu-host-kit.sh (--engine 29.7|20.10 --toolkit).
set -uo pipefail
kit=$1; engine=$2; shift 2
# A fresh engine each call: Docker 29 keeps images in containerd's store, which 20.10 cannot read.
pkill -x dockerd; sleep 1; pkill -9 -x containerd; rm -rf /var/lib/docker /var/lib/containerd /var/run/docker.sock
bash "$kit/gpu-host-up.sh" --install-toolkit >/tmp/gpu-host-up.log 2>&1 || { tail -20 /tmp/gpu-host-up.log; exit 1; }
tail -4 /tmp/gpu-host-up.log
export PATH=/opt/gpuhost/bin:/usr/local/nvidia/bin:$PATH
rm -rf /opt/gpudoctor-site
python3 -m pip install -q --no-build-isolation --no-deps --no-compile --target /opt/gpudoctor-site . >/tmp/pip.log 2>&1 \
  || { tail -20 /tmp/pip.log; exit 1; }
export PYTHONPATH=/opt/gpudoctor-site:/opt/gpuhost/site
out=/tmp/matrix-$engine; rm -rf "$out"
timeout "${MATRIX_TIMEOUT:-520}" python3 scripts/real_stack_matrix.py --engine "$engine" --out "$out" "$@"
rc=$?
tar -C /tmp -czf "${OUT:-/tmp}/matrix-$engine.tgz" "matrix-$engine"
docker ps -a --format '{{.ID}} {{.Image}} {{.Status}}' | head
exit $rc
