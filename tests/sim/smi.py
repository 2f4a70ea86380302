"""The `nvidia-smi` stand-in: a POSIX sh script generated from a simulated-host description.

It lives in the simulated host tree at `<root>/usr/bin/nvidia-smi` (the driver's tool) and the
stand-in toolkit bind-mounts that same file read-only at `/usr/bin/nvidia-smi` in containers that get
the `utility` capability. Like the real tool, it only sees GPUs whose device node it can see: it
derives the root from its own path (`<root>/usr/bin/nvidia-smi` on the host, `/usr/bin/nvidia-smi`
in a container) and lists the GPUs whose `/dev/nvidia<minor>` exists there, renumbered from 0 as
inside a container. MIG devices show in a container only when their `/dev/nvidia-caps` node was
injected; on the host they always show.

Answers (formats of the real tool, tests/fixtures/real-h100-host/nvidia-smi-*.txt):
  -L / --list-gpus    GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-…)   [+ "  MIG 3g.40gb     Device  0: (UUID: MIG-…)"]
  --query-gpu=F,… --format=csv[,noheader][,nounits]
      fields: index uuid name pci.bus_id driver_version memory.total mig.mode.current
              compute_mode persistence_mode
No GPU visible: "No devices were found", exit 6. A lost GPU (handle error 15): "Unable to determine the
device handle for GPU …: GPU is lost. Reboot the system to recover this GPU", exit 15. NVML init error on the host: the real failure
text ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver…"), exit 9.
Anything else: a message naming the simulation, exit 2.
"""

from __future__ import annotations

from tests.sim.host import SimHost

MARKER = "GPUDOCTOR-SIMULATED-NVIDIA-TOOLKIT"

_INIT_FAILURES = {
    9: (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running.",
        9,
    ),
    18: ("Failed to initialize NVML: Driver/library version mismatch", 18),
    12: ("NVIDIA-SMI couldn't find libnvidia-ml.so library in your system. Please make sure that the NVIDIA Display Driver is properly installed and present in your system.", 12),
}

_TEMPLATE = r"""#!/bin/sh
# __MARKER__
# nvidia-smi STAND-IN written by gpudoctor's test bed (tests/sim/smi.py). Not NVIDIA software.
root="${0%/usr/bin/nvidia-smi}"
[ "$root" = "$0" ] && root=""
driver='__DRIVER__'
init_msg='__INIT_MSG__'
init_rc=__INIT_RC__
gpus() {
cat <<'EOF'
__GPUS__
EOF
}
migs() {
cat <<'EOF'
__MIGS__
EOF
}
if [ -n "$init_msg" ]; then echo "$init_msg"; exit "$init_rc"; fi
list=0; query=""; format="csv"
for a in "$@"; do
  case "$a" in
    -L|--list-gpus) list=1 ;;
    --query-gpu=*) query="${a#--query-gpu=}" ;;
    --format=*) format="${a#--format=}" ;;
    *) echo "nvidia-smi (gpudoctor simulation): unsupported argument: $a" >&2; exit 2 ;;
  esac
done
if [ "$list" = 0 ] && [ -z "$query" ]; then
  echo "nvidia-smi (gpudoctor simulation): only -L and --query-gpu=... --format=csv are simulated" >&2; exit 2
fi
noheader=0; nounits=0
case ",$format," in *,noheader,*) noheader=1 ;; esac
case ",$format," in *,nounits,*) nounits=1 ;; esac
for f in $(echo "$query" | tr ',' ' '); do
  case "$f" in
    index|uuid|gpu_uuid|name|gpu_name|pci.bus_id|gpu_bus_id|driver_version|memory.total|mig.mode.current|compute_mode|persistence_mode) ;;
    *) echo "Field \"$f\" is not a valid field to query."; echo; exit 2 ;;
  esac
done
visible() { [ -n "$root" ] || [ -e "$root/dev/nvidia-caps/nvidia-cap$1" ]; }
out=$(n=0; gpus | while IFS='|' read -r minor uuid name bus mem mig lost; do
  [ -n "$minor" ] || continue
  [ -e "$root/dev/nvidia$minor" ] || continue
  if [ "$lost" = 1 ]; then
    echo "Unable to determine the device handle for GPU ${bus#0000}: GPU is lost. Reboot the system to recover this GPU"
    continue
  fi
  if [ "$list" = 1 ]; then
    echo "GPU $n: $name (UUID: $uuid)"
    migs | while IFS='|' read -r pminor midx profile muuid capminor; do
      [ "$pminor" = "$minor" ] || continue
      visible "$capminor" || continue
      printf '  MIG %-12sDevice %2d: (UUID: %s)\n' "$profile" "$midx" "$muuid"
    done
  else
    line=""
    for f in $(echo "$query" | tr ',' ' '); do
      case "$f" in
        index) v="$n" ;;
        uuid|gpu_uuid) v="$uuid" ;;
        name|gpu_name) v="$name" ;;
        pci.bus_id|gpu_bus_id) v="$bus" ;;
        driver_version) v="$driver" ;;
        memory.total) if [ "$nounits" = 1 ]; then v="$mem"; else v="$mem MiB"; fi ;;
        mig.mode.current) v="$mig" ;;
        compute_mode) v="Default" ;;
        persistence_mode) v="Enabled" ;;
      esac
      if [ -z "$line" ]; then line="$v"; else line="$line, $v"; fi
    done
    echo "$line"
  fi
  n=$((n + 1))
done)
if [ -z "$out" ]; then echo "No devices were found"; exit 6; fi
if [ "$list" = 0 ] && [ "$noheader" = 0 ]; then echo "$query" | sed 's/,/, /g'; fi
printf '%s\n' "$out"
case "$out" in *"GPU is lost"*) exit 15 ;; esac
"""


def render(host: SimHost) -> str:
    gpus = "\n".join(
        f"{g.minor}|{g.uuid}|{g.name}|{g.pci_bus_id}|{g.memory_total // (1 << 20)}|{'Enabled' if g.mig_current else 'Disabled'}|{1 if g.handle_error == 15 else 0}"
        for g in host.gpus
    )
    migs = "\n".join(f"{g.minor}|{m.index}|{m.profile}|{m.uuid}|{m.ci_cap_minor}" for g, m in host.mig_devices)
    msg, rc = _INIT_FAILURES.get(host.nvml_init_error or 0, ("", 0))
    if host.nvml_init_error and not msg:
        msg, rc = "Failed to initialize NVML: Unknown Error", 255
    return (
        _TEMPLATE.replace("__MARKER__", MARKER)
        .replace("__DRIVER__", host.driver_version)
        .replace("__INIT_MSG__", msg.replace("'", "'\\''"))
        .replace("__INIT_RC__", str(rc))
        .replace("__GPUS__", gpus)
        .replace("__MIGS__", migs)
    )
