"""The simulated-host description: what GPUs a simulated NVIDIA host has, as one small JSON file.

One description drives every part of the test bed, so a test can simply say "a host with 4 GPUs":

* the fake NVML (`tests/sim/fake_nvml/pynvml.py`) answers from it;
* the host tree (`tests/sim/tree.py`) turns it into `/proc/driver/nvidia`, `/sys/bus/pci`, `/dev`;
* the stand-in toolkit (`tests/sim/standin.py`) resolves `NVIDIA_VISIBLE_DEVICES` against it and
  injects its device nodes into containers; the `nvidia-smi` stand-in lists its GPUs.

Values default to a real H100 host (names, memory, majors taken from
`tests/fixtures/real-h100-docker20-toolkit-cdi/`: `NVIDIA H100 80GB HBM3`, nvidia-uvm major 238).

    host = SimHost.standard(4)                       # 4 x H100, driver 580.95.05, CUDA 13.0
    host = SimHost.standard(8, mig_on=(3,))           # GPU 3 in MIG mode with two 3g.40gb slices
    host.save(path); SimHost.load(path)               # JSON round trip

The JSON file is read by the fake NVML through `GPUDOCTOR_SIM_HOST` (SIM_HOST_ENV), a variable only
the simulation reads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable

SIM_HOST_ENV = "GPUDOCTOR_SIM_HOST"
SCHEMA = "gpudoctor.sim-host/v1"

# Character-device majors (Linux: the nvidia core driver registers 195; nvidia-uvm and nvidia-caps
# get dynamic majors: the real H100 host shows 238 for nvidia-uvm and 241 for nvidia-caps).
NVIDIA_MAJOR = 195
NVIDIACTL_MINOR = 255
DEFAULT_UVM_MAJOR = 238
DEFAULT_CAPS_MAJOR = 241  # tests/fixtures/real-h100-host/proc-devices: 241 nvidia-caps

H100 = "NVIDIA H100 80GB HBM3"
H100_PCI_DEVICE_ID = 0x2330
H100_MEMORY = 85520809984  # 81559 MiB, what NVML reports for an H100 80GB HBM3
NVIDIA_VENDOR_ID = 0x10DE

# A bus id per index, as on an 8-GPU HGX board (NVML form: 8-digit domain, upper-case hex).
HGX_BUSES = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")

# H100 80GB MIG profile 3g.40gb: two fit on one GPU (NVIDIA MIG user guide, "H100 MIG profiles").
MIG_PROFILE = "3g.40gb"
MIG_SLICES = 2
MAX_MIG_DEVICES = 7  # nvmlDeviceGetMaxMigDeviceCount on H100


def _uuid(prefix: str, seed: str) -> str:
    import uuid  # only where a host is made: the stand-ins only read one (and uuid imports platform)

    return f"{prefix}-{uuid.uuid5(uuid.NAMESPACE_URL, 'gpudoctor-sim/' + seed)}"


@dataclass(frozen=True)
class SimMig:
    """One MIG device (GPU instance + compute instance) on a GPU in MIG mode."""

    index: int  # MIG device index on its GPU (nvmlDeviceGetMigDeviceHandleByIndex)
    uuid: str  # MIG-<uuid>
    profile: str  # e.g. 3g.40gb
    gi: int  # GPU instance id
    ci: int  # compute instance id
    gi_cap_minor: int  # /dev/nvidia-caps/nvidia-cap<minor> granting access to the GPU instance
    ci_cap_minor: int  # ... and to the compute instance


@dataclass(frozen=True)
class SimGpu:
    index: int
    uuid: str
    name: str = H100
    pci_bus_id: str = "00000000:18:00.0"  # NVML form
    minor: int = 0  # /dev/nvidia<minor>
    memory_total: int = H100_MEMORY
    memory_used: int = 0
    pci_device_id: int = H100_PCI_DEVICE_ID
    persistence_mode: int = 1
    compute_mode: int = 0  # 0 default, 2 prohibited, 3 exclusive-process
    mig_current: int = 0
    mig_pending: int = 0
    migs: tuple[SimMig, ...] = ()
    # NVML return code of nvmlDeviceGetHandleByIndex for this GPU (15 = GPU is lost), or None.
    handle_error: int | None = None

    @property
    def sysfs_bus_id(self) -> str:
        """`0000:18:00.0`: the name of the GPU's directory under /sys/bus/pci/devices."""
        dom, bus, devfn = self.pci_bus_id.lower().split(":")
        return f"{dom[-4:]}:{bus}:{devfn}"

    @property
    def dev_node(self) -> str:
        return f"/dev/nvidia{self.minor}"


@dataclass(frozen=True)
class SimHost:
    gpus: tuple[SimGpu, ...]
    driver_version: str = "580.95.05"
    cuda_driver_version: int = 13000  # nvmlSystemGetCudaDriverVersion_v2: 13000 = CUDA 13.0
    # NVML return code of nvmlInit (9 = driver not loaded, 12 = library not found, 18 = version
    # mismatch), or None when NVML initialises.
    nvml_init_error: int | None = None
    uvm_major: int = DEFAULT_UVM_MAJOR
    caps_major: int = DEFAULT_CAPS_MAJOR
    uvm_nodes: bool = True  # /dev/nvidia-uvm{,-tools} exist (failure mode uvm-or-control-nodes-missing)
    hostname: str = "sim-gpu-host"
    schema: str = SCHEMA

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def standard(
        cls,
        count: int = 1,
        *,
        name: str = H100,
        mig_on: Iterable[int] = (),
        driver_version: str = "580.95.05",
        cuda_driver_version: int = 13000,
        seed: str = "",
    ) -> SimHost:
        """`count` identical GPUs, indices 0.. in bus order, minors equal to indices.

        `mig_on`: indices of GPUs in MIG mode, each with two 3g.40gb MIG devices.
        UUIDs are derived from `seed` and the index, so they are stable across runs.
        """
        mig_on = set(mig_on)
        gpus = []
        cap_minor = 21  # nvidia-caps minors of MIG instances start after the config/monitor caps
        for i in range(count):
            bus = HGX_BUSES[i] if count > 1 and i < len(HGX_BUSES) else f"{0x18 + i * 0x10:02X}"
            migs: list[SimMig] = []
            if i in mig_on:
                for m in range(MIG_SLICES):
                    migs.append(
                        SimMig(
                            index=m,
                            uuid=_uuid("MIG", f"{seed}/gpu{i}/mig{m}"),
                            profile=MIG_PROFILE,
                            gi=1 + m,
                            ci=0,
                            gi_cap_minor=cap_minor,
                            ci_cap_minor=cap_minor + 1,
                        )
                    )
                    cap_minor += 2
            gpus.append(
                SimGpu(
                    index=i,
                    uuid=_uuid("GPU", f"{seed}/gpu{i}"),
                    name=name,
                    pci_bus_id=f"00000000:{bus}:00.0",
                    minor=i,
                    mig_current=1 if i in mig_on else 0,
                    mig_pending=1 if i in mig_on else 0,
                    migs=tuple(migs),
                )
            )
        return cls(gpus=tuple(gpus), driver_version=driver_version, cuda_driver_version=cuda_driver_version)

    def with_gpu(self, index: int, **changes: Any) -> SimHost:
        """A copy with GPU `index` changed (e.g. `handle_error=15`)."""
        return replace(self, gpus=tuple(replace(g, **changes) if g.index == index else g for g in self.gpus))

    def without_gpu(self, index: int) -> SimHost:
        """A copy where GPU `index` is gone (the rest keep their indices' order, renumbered)."""
        kept = [g for g in self.gpus if g.index != index]
        return replace(self, gpus=tuple(replace(g, index=i) for i, g in enumerate(kept)))

    # -- lookups --------------------------------------------------------------------------------
    @property
    def mig_devices(self) -> tuple[tuple[SimGpu, SimMig], ...]:
        return tuple((g, m) for g in self.gpus for m in g.migs)

    @property
    def cuda_version_text(self) -> str:
        v = self.cuda_driver_version
        return f"{v // 1000}.{(v % 1000) // 10}"

    # -- JSON -----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimHost:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} description: schema={data.get('schema')!r}")
        gpus = []
        for g in data["gpus"]:
            migs = tuple(SimMig(**m) for m in g.get("migs", ()))
            gpus.append(SimGpu(**{**g, "migs": migs}))
        return cls(**{**data, "gpus": tuple(gpus)})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> SimHost:
        return cls.from_json(json.loads(Path(path).read_text()))


__all__ = [
    "SIM_HOST_ENV",
    "SimHost",
    "SimGpu",
    "SimMig",
    "NVIDIA_MAJOR",
    "NVIDIACTL_MINOR",
]
