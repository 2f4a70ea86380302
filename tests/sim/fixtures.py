"""pytest fixtures for the simulated NVIDIA host (for probe and Docker-layer tests).

Import the fixture into your test module (pytest picks up fixtures a module imports):

    from tests.sim.fixtures import sim_beds  # noqa: F401  (pytest fixture)
    from tests.sim.bed import NVIDIA_RUNTIME
    from tests.sim.host import SimHost
    from tests.sim.toolkit import ToolkitSpec

    @pytest.mark.docker
    def test_every_form_on_a_healthy_two_gpu_host(sim_beds):
        bed = sim_beds.shared(SimHost.standard(2), ToolkitSpec(mode="legacy"), NVIDIA_RUNTIME)
        report = bed.check_json("--image", bed.image, "--all-forms")     # gpudoctor subprocess
        bed.env(), bed.root                                              # for your own subprocess

`shared(host, toolkit, daemon_config)` returns one running bed per distinct argument set for the
whole session (a private dockerd with the stand-in toolkit in that mode, the host tree, the busybox
image `probe:busybox`); do not restart it or change its tree. `private(...)` returns a bed the test
owns (restart it, install/uninstall the toolkit, rewrite daemon.json); it is closed at session end,
or earlier with `bed.close()`. Both skip the test when the machine cannot run a private dockerd.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Iterator, Mapping

import pytest

from tests.sim.bed import SimBed, bed_or_skip
from tests.sim.host import SimHost
from tests.sim.toolkit import ToolkitSpec
from tests.support.engines import Engine


class SimBedFactory:
    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._shared: dict[str, SimBed] = {}
        self._all: list[SimBed] = []
        self._lock = threading.Lock()

    @staticmethod
    def _key(host: SimHost, toolkit: ToolkitSpec | None, daemon: Mapping[str, Any] | None, changes: Mapping[str, Any] | None,
             engine: Engine | None) -> str:
        return json.dumps([host.to_json(), repr(toolkit), dict(daemon or {}), dict(changes or {}), engine.id if engine else None],
                          sort_keys=True, default=str)

    def shared(
        self,
        host: SimHost,
        toolkit: ToolkitSpec | None = None,
        daemon_config: Mapping[str, Any] | None = None,
        *,
        host_changes: Mapping[str, Any] | None = None,
        engine: Engine | None = None,
    ) -> SimBed:
        bed_or_skip()
        key = self._key(host, toolkit, daemon_config, host_changes, engine)
        with self._lock:
            bed = self._shared.get(key)
            if bed is None:
                bed = SimBed.create(self._tmp.mktemp("simbed"), host, toolkit, daemon_config, host_changes=host_changes,
                                    engine=engine)
                self._shared[key] = bed
                self._all.append(bed)
        return bed

    def private(
        self,
        host: SimHost,
        toolkit: ToolkitSpec | None = None,
        daemon_config: Mapping[str, Any] | None = None,
        *,
        host_changes: Mapping[str, Any] | None = None,
        start: bool = True,
        engine: Engine | None = None,
    ) -> SimBed:
        bed_or_skip()
        bed = SimBed.create(self._tmp.mktemp("simbed"), host, toolkit, daemon_config, host_changes=host_changes, start=start,
                            engine=engine)
        with self._lock:
            self._all.append(bed)
        return bed

    def close(self) -> None:
        with self._lock:
            beds, self._all, self._shared = self._all, [], {}
        for bed in beds:
            try:
                bed.close()
            except Exception:
                pass


@pytest.fixture(scope="session")
def sim_beds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimBedFactory]:
    """Session-wide factory of simulated-host beds (see the module docstring)."""
    factory = SimBedFactory(tmp_path_factory)
    try:
        yield factory
    finally:
        factory.close()
