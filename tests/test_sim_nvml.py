"""The fake NVML (tests/sim/fake_nvml/pynvml.py) against gpudoctor's real NVML worker."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpudoctor.facts import nvml_worker
from gpudoctor.facts.nvml import parse_snapshot
from tests.sim.host import SIM_HOST_ENV, SimHost

FAKE_DIR = Path(__file__).resolve().parent / "sim" / "fake_nvml"
REPO = Path(__file__).resolve().parent.parent


def _fake_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fake_pynvml_under_test", FAKE_DIR / "pynvml.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _worker(host: SimHost | None, tmp_path: Path) -> dict:
    """Run the real worker (`python -m gpudoctor.facts.nvml_worker`) with the fake on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != SIM_HOST_ENV}
    env["PYTHONPATH"] = str(FAKE_DIR)
    if host is not None:
        env[SIM_HOST_ENV] = str(host.save(tmp_path / "host.json"))
    proc = subprocess.run(
        [sys.executable, "-m", "gpudoctor.facts.nvml_worker"], capture_output=True, text=True, env=env, cwd="/", check=True
    )
    return json.loads(proc.stdout)


def test_fake_implements_exactly_the_functions_the_worker_calls():
    fake = _fake_module()
    public = {n for n, v in vars(fake).items() if n.startswith("nvml") and inspect.isfunction(v)}
    assert public == set(nvml_worker.PYNVML_FUNCTIONS)


def test_errors_carry_nvml_codes_like_the_real_bindings():
    fake = _fake_module()
    err = fake.NVMLError(fake.NVML_ERROR_GPU_IS_LOST)
    assert err.value == 15 and isinstance(err, fake.NVMLError)
    assert type(err).__name__ == "NVMLError_GpuIsLost" and str(err) == "GPU is lost"
    assert str(fake.NVMLError(9)) == "Driver Not Loaded"


def test_worker_reads_a_four_gpu_host_through_the_fake(tmp_path):
    host = SimHost.standard(4)
    facts = parse_snapshot(_worker(host, tmp_path))
    assert facts.ok and facts.device_count == 4
    assert facts.driver_version == host.driver_version and facts.cuda_version_text == "13.0"
    assert [g.uuid for g in facts.gpus] == [g.uuid for g in host.gpus]
    assert [g.pci_address for g in facts.gpus] == [g.sysfs_bus_id for g in host.gpus]
    assert [g.minor for g in facts.gpus] == [0, 1, 2, 3]
    assert all(g.name == "NVIDIA H100 80GB HBM3" and not g.errors for g in facts.gpus)


def test_mig_devices_come_through(tmp_path):
    host = SimHost.standard(8, mig_on=(3,))
    facts = parse_snapshot(_worker(host, tmp_path))
    mig_gpu = facts.gpus[3]
    assert (mig_gpu.mig_current, mig_gpu.mig_pending) == (1, 1)
    assert [m.uuid for m in mig_gpu.mig_devices] == [m.uuid for m in host.gpus[3].migs]
    assert all(m.name.endswith("MIG 3g.40gb") for m in mig_gpu.mig_devices)
    assert all(not g.mig_devices for i, g in enumerate(facts.gpus) if i != 3)


@pytest.mark.parametrize(("code", "name"), [(9, "driver-not-loaded"), (18, "lib-rm-version-mismatch")])
def test_init_failures_are_reported_with_their_code(tmp_path, code, name):
    host = SimHost.standard(1)
    from dataclasses import replace

    facts = parse_snapshot(_worker(replace(host, nvml_init_error=code), tmp_path))
    assert facts.init_error is not None
    assert (facts.init_error.code, facts.init_error.name) == (code, name)


def test_a_lost_gpu_fails_only_its_handle(tmp_path):
    host = SimHost.standard(2).with_gpu(1, handle_error=15)
    facts = parse_snapshot(_worker(host, tmp_path))
    assert facts.device_count == 2
    assert not facts.gpus[0].errors
    assert facts.gpus[1].errors["handle"].name == "gpu-is-lost"


def test_without_a_description_the_fake_is_a_host_without_libnvidia_ml(tmp_path):
    facts = parse_snapshot(_worker(None, tmp_path))
    assert facts.init_error is not None and facts.init_error.code == 12


def test_the_product_runs_the_worker_without_site_and_it_still_finds_pynvml(tmp_path):
    """run_worker starts `python -S` (no site: its .pth files cost more than NVML's answer on big environments) with
    PYTHONPATH naming where this process finds pynvml and gpudoctor — from any working directory."""
    host = SimHost.standard(2)
    env = {k: v for k, v in os.environ.items() if k != SIM_HOST_ENV}
    env["PYTHONPATH"] = str(FAKE_DIR)
    env[SIM_HOST_ENV] = str(host.save(tmp_path / "host.json"))
    code = ("import json; from gpudoctor.facts.nvml import run_worker; from gpudoctor.facts.nvml_process import worker_command; "
            "print(json.dumps([worker_command()[0], run_worker()]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/", check=True)
    cmd, raw = json.loads(proc.stdout)
    assert cmd[1:] == ["-S", "-m", "gpudoctor.facts.nvml_worker"]
    facts = parse_snapshot(raw)
    assert facts.ok and facts.device_count == 2, raw


def test_the_worker_asks_the_pynvml_this_process_uses_when_gpudoctor_s_directory_holds_another(tmp_path):
    """A venv holds gpudoctor and the real pynvml side by side; a pynvml handed on PYTHONPATH (the test bed's fake)
    comes first for gpudoctor, so it must come first for its worker too (on the GPU machine the worker asked the
    real NVML of a simulated host: its driver 'mismatched' the tree's)."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "gpudoctor", site / "gpudoctor", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "pynvml.py").write_text("def nvmlInit():\n    raise RuntimeError('the other pynvml was asked')\n")
    host = SimHost.standard(2)
    env = {k: v for k, v in os.environ.items() if k != SIM_HOST_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(FAKE_DIR), str(site)])
    env[SIM_HOST_ENV] = str(host.save(tmp_path / "host.json"))
    code = ("import json, gpudoctor; from gpudoctor.facts.nvml import run_worker; "
            "from gpudoctor.facts.nvml_process import worker_command; "
            "print(json.dumps([gpudoctor.__file__, worker_command()[0], run_worker()]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/", check=True)
    where, cmd, raw = json.loads(proc.stdout)
    assert where.startswith(str(site))  # gpudoctor came from the directory that holds the other pynvml
    assert cmd[1:] == ["-S", "-m", "gpudoctor.facts.nvml_worker"]
    facts = parse_snapshot(raw)
    assert facts.ok and facts.device_count == 2, raw
