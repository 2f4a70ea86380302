# gpudoctor probe: runs inside a probe container (POSIX sh: busybox-only images and CUDA images).
# Prints a bounded, sectioned report on stdout; gpudoctor/probes/parse.py reads it.
# Each section is capped (head) so a strange image cannot flood the logs.
# Judge visibility by device nodes and nvidia-smi, not by /proc/driver/nvidia/gpus or
# NVIDIA_VISIBLE_DEVICES inside: in CDI mode those show every GPU / "void" (seen on a real H100 host).
echo "@@gpudoctor-probe 1"
echo "@@dev"
ls -ln /dev/nvidia* /dev/nvidia-caps/* /dev/dxg 2>/dev/null | head -n 200
echo "@@smi-path"
smi=""
if command -v nvidia-smi >/dev/null 2>&1; then smi=$(command -v nvidia-smi); fi
if [ -z "$smi" ]; then
  for d in /usr/bin /usr/local/nvidia/bin /usr/local/bin /bin /opt/bin; do
    if [ -x "$d/nvidia-smi" ]; then smi="$d/nvidia-smi"; break; fi
  done
fi
echo "$smi"
if [ -n "$smi" ]; then
  # The two calls at once where a scratch file can be written (/dev/shm is a tmpfs even with a read-only rootfs):
  # each spends most of its time starting NVML, which is most of the probe's own run.
  q=""
  for d in /dev/shm /tmp; do
    if q=$(mktemp "$d/gpudoctor-smi.XXXXXX" 2>/dev/null); then break; fi
    q=""
  done
  if [ -n "$q" ]; then
    { "$smi" --query-gpu=uuid,pci.bus_id,name --format=csv,noheader >"$q" 2>&1; echo "$?" >"$q.rc"; } &
  fi
  out=$("$smi" -L 2>&1); rc=$?
  echo "@@smi-L $rc"
  printf '%s\n' "$out" | head -n 64
  if [ -n "$q" ]; then
    wait
    out=$(cat "$q" 2>/dev/null); rc=$(cat "$q.rc" 2>/dev/null); rm -f "$q" "$q.rc"
  else
    out=$("$smi" --query-gpu=uuid,pci.bus_id,name --format=csv,noheader 2>&1); rc=$?
  fi
  echo "@@smi-query $rc"
  printf '%s\n' "$out" | head -n 64
fi
echo "@@libs"
# Driver libraries: from the loader cache when there is one, else the usual directories.
# /usr/local/cuda*/lib64/stubs holds link-time stubs, which are not driver libraries.
if command -v ldconfig >/dev/null 2>&1; then
  ldconfig -p 2>/dev/null | grep -E 'lib(cuda|nvidia-ml)\.so\.1 ' | sed 's/.*=> //' | head -n 16
fi
for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /lib64 /lib /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/wsl/lib; do
  for l in "$d"/libcuda.so.* "$d"/libnvidia-ml.so.*; do
    [ -e "$l" ] && echo "$l"
  done
done 2>/dev/null | head -n 32
echo "@@mounts"
grep -E 'nvidia|cuda' /proc/self/mountinfo 2>/dev/null | head -n 64
echo "@@env"
env | grep -E '^(NVIDIA_VISIBLE_DEVICES|NVIDIA_DRIVER_CAPABILITIES|CUDA_VISIBLE_DEVICES|NVIDIA_REQUIRE_CUDA|CUDA_VERSION)=' | head -n 16
echo "@@end"
