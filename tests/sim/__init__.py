"""A simulated NVIDIA host for CI (issue 4): no GPU, a real Docker engine, a stand-in toolkit.

Everything here is a *simulation* used only by gpudoctor's tests; nothing under `tests/sim/` is
NVIDIA software, and gpudoctor itself never installs or reads it (its product code holds no
simulation hook). The pieces:

* `host.py`        the simulated-host description (GPUs, MIG, driver/CUDA version) as JSON;
* `fake_nvml/`     a fake `pynvml` module driven by that description (put it on PYTHONPATH);
* `tree.py`        builds the host's files under a temp root (`gpudoctor --root <tree>`);
* `toolkit.py`     installs the stand-in NVIDIA Container Toolkit into such a tree;
* `standin.py`     what the stand-in binaries do (runtime wrapper, hook, runc shim, nvidia-ctk...);
* `bed.py`         a private dockerd wired to the stand-in toolkit, plus env/--root for gpudoctor;
* `scenarios.py`   named broken hosts from docs/failure-modes, each with the expected verdict.
"""
