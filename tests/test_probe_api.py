"""The probe's create body is the one docker-py builds (gpudoctor/probes/api.py): whichever client makes the
call, the daemon gets the same container; and the socket client reads logs as the SDK does."""

from __future__ import annotations

import docker
import pytest

from gpudoctor.facts.docker_http import demux
from gpudoctor.gpu_requests.request import HostGpu
from gpudoctor.probes import runner
from gpudoctor.probes.api import CallFailed, container_config
from gpudoctor.probes.forms import FORMS, FormContext

GPUS = (HostGpu(0, "GPU-3e3d6e36-006a-9d2c-d5b7-1a7a25973821", 0, mig_enabled=True,
                mig_devices=((0, "MIG-aaaa", "1g.10gb"),)),
        HostGpu(1, "GPU-11111111-2222-3333-4444-555555555555", 1))
CTX = FormContext(GPUS, "probe:busybox", True, True)
SPECS = [s for f in FORMS for s in f.expand(CTX)]


def _sdk_body(api_version, image, args, hardening, entrypoint, command, labels):
    api = docker.APIClient(base_url="unix:///nonexistent", version=api_version)
    requests = [docker.types.DeviceRequest(driver=r.get("Driver") or "", count=r.get("Count") or 0,
                                           device_ids=r.get("DeviceIDs"), capabilities=r.get("Capabilities"),
                                           options=r.get("Options") or {})
                for r in args.get("device_requests") or []]
    host_config = api.create_host_config(
        network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"], privileged=False,
        mem_limit=hardening["memory"], pids_limit=hardening["pids_limit"], nano_cpus=runner.PROBE_NANO_CPUS,
        log_config=docker.types.LogConfig(type="json-file",
                                          config={"max-size": runner.PROBE_LOG_MAX_SIZE, "max-file": "1"}),
        read_only=bool(hardening.get("read_only_rootfs")), device_requests=requests or None,
        runtime=args.get("runtime") or None,
    )
    environment = api._proxy_configs.inject_proxy_environment(list(args.get("environment") or [])) or None
    return api.create_container_config(image, command, None, hardening.get("user") or None, False, False, False,
                                       None, environment, None, True, entrypoint, None, None, host_config, None,
                                       labels, None, None, None, None, None)


@pytest.mark.parametrize("spec", SPECS, ids=[s.key for s in SPECS])
@pytest.mark.parametrize("runtime, nodes_open, command", [("runc", True, None), ("nvidia", False, None),
                                                           (None, True, ["nvidia-smi", "-L"])])
def test_the_create_body_is_the_sdks(spec, runtime, nodes_open, command, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no config.json: no proxies for the SDK to inject
    args = {**spec.create_args(), **({"command": command} if command else {})}
    hardening = runner.hardening_for(args, runtime, nodes_open)
    entrypoint = None if command else ["sh", "-c", "probe"]
    labels = {runner.LABEL: "1", runner.RUN_LABEL: "r"}
    ours = container_config(
        "probe:busybox", "1.43", entrypoint=entrypoint, command=list(command or []),
        environment=list(args["environment"]), labels=labels, user=hardening.get("user") or None,
        memory=hardening["memory"], pids_limit=hardening["pids_limit"], nano_cpus=runner.PROBE_NANO_CPUS,
        log_max_size=runner.PROBE_LOG_MAX_SIZE, read_only=bool(hardening.get("read_only_rootfs")),
        device_requests=args["device_requests"], runtime=args.get("runtime") or None,
    )
    assert ours == dict(_sdk_body("1.43", "probe:busybox", args, hardening, entrypoint, list(command or []), labels))


def test_device_requests_before_api_1_40_are_refused_in_the_sdks_words():
    spec = next(s for s in SPECS if s.key == "gpus-all")
    with pytest.raises(CallFailed) as e:
        container_config("img", "1.39", entrypoint=None, command=[], environment=[], labels={}, user=None,
                         memory="256m", pids_limit=64, nano_cpus=1, log_max_size="1m", read_only=False,
                         device_requests=spec.create_args()["device_requests"], runtime=None)
    api = docker.APIClient(base_url="unix:///nonexistent", version="1.39")
    with pytest.raises(docker.errors.InvalidVersion) as sdk:
        api.create_host_config(device_requests=[docker.types.DeviceRequest(count=-1)])
    assert e.value.status is None and e.value.explanation == str(sdk.value)


def test_demux_joins_frames_in_order_and_keeps_a_raw_stream():
    framed = b"\x01\0\0\0\0\0\0\x03out" + b"\x02\0\0\0\0\0\0\x04err\n" + b"\x01\0\0\0\0\0\0\x01!"
    assert demux(framed) == b"outerr\n!"
    assert demux(b"@@gpudoctor-probe 1\n") == b"@@gpudoctor-probe 1\n"
    assert demux(b"") == b""
