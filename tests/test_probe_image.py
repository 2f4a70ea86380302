"""gpudoctor's own probe image, made from the host's files (gpudoctor/probes/image.py), and the choice of image.

The first half reads trees laid out like real hosts (tests/support/userland.py copies this machine's busybox, glibc
and tools, symlinks and all) and compares what gpudoctor puts into the image with what `ldd` says the programs
load. The second half runs the real `gpudoctor check` against a real private dockerd: on a simulated GPU host with
no image at all, and on this machine (no GPU), as CI does.
"""

from __future__ import annotations

import json
import os
import tarfile
import io
from pathlib import Path

import pytest

from gpudoctor.facts.bounded import resolve_in_root
from gpudoctor.probes import image as host_image
from gpudoctor.probes.elf import NotElf, read_elf
from gpudoctor.probes.forms import FORMS
from tests.sim.bed import healthy_args as healthy
from tests.sim.bed import healthy_exit, judged_healthy
from tests.support import userland
from tests.support.cli import run_cli

TOOLS = host_image.PROBE_TOOLS
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _tree(tmp_path: Path, *, busybox: bool = True, tools: bool = False) -> Path:
    root = tmp_path / "host"
    root.mkdir()
    if busybox:
        userland.install_busybox(root)
    if tools:
        userland.install_tools(root, TOOLS)
    userland.install_glibc(root)
    return root


def _tree_path(root: Path, host_path: str) -> Path:
    return Path(resolve_in_root(str(root), host_path))


# -- reading ELF files -------------------------------------------------------------------------------------------
def test_the_elf_reader_names_what_ldd_loads():
    for tool in ("sh", "ls", "grep"):
        path = os.path.realpath(f"/bin/{tool}")
        info = read_elf(Path(path).read_bytes())
        loaded = userland.needed_by(path)
        assert info.interp in loaded or os.path.realpath(info.interp) in map(os.path.realpath, loaded), (tool, loaded)
        sonames = {os.path.basename(p) for p in loaded}
        assert info.needed and set(info.needed) <= sonames, (tool, info.needed, sonames)
    busybox = read_elf(Path(os.path.realpath("/bin/busybox")).read_bytes())
    assert busybox.static and busybox.bits == 64 and busybox.machine == 62


def test_the_elf_reader_refuses_what_is_not_elf():
    for data in (b"#!/bin/sh\nexit 0\n", b"\x7fELF" + b"\0" * 10, b"\x7fELF\x02\x01" + b"\xff" * 60):
        with pytest.raises(NotElf):
            read_elf(data)


# -- what goes into the image ------------------------------------------------------------------------------------
def test_the_image_holds_busybox_and_glibc_read_under_the_root(tmp_path):
    root = _tree(tmp_path)
    # The tree's loader is an absolute link (/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/…): it must be
    # followed inside the tree. Make the tree's copy differ from this machine's to tell them apart.
    loader = _tree_path(root, userland.LOADER)
    assert loader.is_relative_to(root) and os.path.islink(root / userland.LOADER.lstrip("/"))
    with open(loader, "ab") as f:
        f.write(b"tree")
    inputs = host_image.collect_inputs(str(root), "x86_64")
    members = {m.path: m for m in inputs.members}
    assert inputs.tools == "busybox /bin/busybox (static)"
    assert members["bin/busybox"].kind == "file"
    assert all(members[f"bin/{t}"].target == "busybox" for t in TOOLS)
    for lib in userland.GLIBC:
        m = members[f"lib/x86_64-linux-gnu/{lib}"]
        assert m.data == _tree_path(root, f"{userland.LIB_DIR}/{lib}").read_bytes()
    assert members["lib64/ld-linux-x86-64.so.2"].data.endswith(b"tree")
    assert inputs.missing == ()
    assert members["tmp"].mode == 0o1777 and members["usr/lib/x86_64-linux-gnu"].kind == "dir"
    assert all(s.startswith("/") and not s.startswith(str(root)) for s in inputs.sources)  # host paths, not ours


def test_without_busybox_the_hosts_own_tools_and_what_ldd_says_they_load(tmp_path):
    root = _tree(tmp_path, busybox=False, tools=True)
    inputs = host_image.collect_inputs(str(root), "x86_64")
    assert inputs.tools.startswith("the host's own ")
    files = {m.path for m in inputs.members if m.kind in ("file", "link")}
    assert {f"bin/{t}" for t in TOOLS} <= files
    wanted = {os.path.basename(p) for t in TOOLS for p in userland.needed_by(os.path.realpath(f"/bin/{t}"))}
    have = {os.path.basename(p) for p in files}
    assert wanted <= have, wanted - have  # every library ldd lists, and nothing gpudoctor could not find
    tar = tarfile.open(fileobj=io.BytesIO(inputs.tar()))
    assert sorted(tar.getnames()) == sorted(m.path for m in inputs.members)
    assert all(i.mtime == 0 and i.uid == 0 for i in tar.getmembers())


def test_a_busybox_whose_libraries_are_missing_gives_way_to_the_hosts_tools(tmp_path):
    import shutil
    import sys

    root = _tree(tmp_path, busybox=False, tools=True)
    # A dynamic "busybox" that needs libraries this tree lacks (Python's: libz, libexpat).
    shutil.copy(os.path.realpath(sys.executable), root / "usr/bin/busybox")
    inputs = host_image.collect_inputs(str(root), "x86_64")
    assert inputs.tools.startswith("the host's own ") and "bin/busybox" not in {m.path for m in inputs.members}
    (root / "usr/bin/sh").unlink()
    with pytest.raises(host_image.ImageInputError, match=r"no sh .*; its busybox is unusable: .* needs lib"):
        host_image.collect_inputs(str(root), "x86_64")


def test_a_host_without_a_shell_or_a_library_is_told_what_it_lacks(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(host_image.ImageInputError, match="no busybox and no sh"):
        host_image.collect_inputs(str(empty), "x86_64")
    root = _tree(tmp_path, busybox=False, tools=True)
    pcre = next(Path(p) for p in (root / "usr/lib/x86_64-linux-gnu").glob("libpcre2-8.so.0*"))
    pcre.unlink()
    with pytest.raises(host_image.ImageInputError, match="needs libpcre2-8.so.0"):
        host_image.collect_inputs(str(root), "x86_64")


def test_the_tag_names_the_inputs(tmp_path):
    root = _tree(tmp_path)
    first, again = host_image.collect_inputs(str(root), "x86_64"), host_image.collect_inputs(str(root), "x86_64")
    assert first.tag == again.tag and first.tar() == again.tar()
    assert first.tag == f"gpudoctor-probe:{first.digest[:16]}"
    with open(_tree_path(root, f"{userland.LIB_DIR}/libm.so.6"), "ab") as f:
        f.write(b"\0")  # a glibc update
    assert host_image.collect_inputs(str(root), "x86_64").tag != first.tag


# -- on a real daemon ----------------------------------------------------------------------------------------------
def _images(daemon) -> list[str]:
    out = daemon.docker("images", "-a", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    return sorted(line for line in out.split() if line)


@pytest.fixture(scope="module")
def bed(tmp_path_factory, docker_engine):
    """A healthy simulated 2-GPU host (legacy toolkit, a CDI spec, nvidia runtime registered) whose daemon holds no
    image at all, and whose tree has what a Debian host with busybox-static has."""
    from tests.sim.bed import NVIDIA_RUNTIME, SimBed, bed_or_skip
    from tests.sim.host import SimHost
    from tests.sim.toolkit import ToolkitSpec

    bed_or_skip()
    b = SimBed.create(tmp_path_factory.mktemp("imgbed"), SimHost.standard(2), ToolkitSpec(mode="legacy", cdi="index+uuid"),
                      NVIDIA_RUNTIME, start=False, engine=docker_engine)
    try:
        # An air-gapped host: the daemon reaches no registry (a pull fails at once, wherever the tests run).
        b.dockerd.extra_env.update({"HTTPS_PROXY": UNREACHABLE, "HTTP_PROXY": UNREACHABLE, "NO_PROXY": ""})
        b.start(image=False)
        userland.install_busybox(b.root)
        userland.install_glibc(b.root)
        yield b
    finally:
        b.close()


def _checks(report):
    return {c["id"]: c for c in report["checks"]}


@pytest.mark.docker
def test_with_no_image_the_default_check_probes_every_default_form(bed):
    assert _images(bed.dockerd) == []
    report = bed.check_json(*healthy(bed))
    checks = _checks(report)
    image = checks["containers.image"]["results"][0]
    tag = image["evidence"]["image"]
    assert checks["containers.image"]["status"] == "pass", image
    assert tag.startswith("gpudoctor-probe:") and image["evidence"]["source"] == "host-built"
    assert image["evidence"]["built"] is True and image["evidence"]["tools"].startswith("busybox")
    assert "made from this host's files" in image["summary"] and "--pull was not given" in image["evidence"]["why"]
    # Every default form was probed and judged: all work (CDI needs Docker >= 25: not applicable on 20.10).
    summary = checks["containers.summary"]["results"][0]
    rows = {row["form"]: row["verdict"] for row in summary["evidence"]["table"]["rows"]}
    defaults = {f.id: f for f in FORMS if f.default}
    cdi_applies = bed.dockerd.engine.at_least(25)
    assert set(rows) == {f for f in defaults if cdi_applies or f != "cdi-all"}
    assert all(v == "works" for f, v in rows.items() if f != "cdi-all")
    assert all(checks[defaults[f].check_id]["status"] == "pass" for f in rows if f != "cdi-all")
    if not cdi_applies:
        assert "not applicable" in checks["containers.cdi"]["results"][0]["summary"]
    assert summary["evidence"]["image"] == tag and summary["evidence"]["image_source"] == "host-built"
    gpus = checks["containers.gpus-all"]["results"][0]["evidence"]["seen"]
    assert "GPU-" in gpus  # the injected nvidia-smi ran in gpudoctor's image and named the GPUs by UUID
    assert judged_healthy(report), report["verdict"]["headline"]
    # Nothing but gpudoctor's own image was made, and nothing is left running.
    assert _images(bed.dockerd) == [tag]
    assert bed.dockerd.containers() == []


@pytest.mark.docker
def test_the_image_is_reused_and_strict_passes_on_a_healthy_host(bed):
    first = _checks(bed.check_json())["containers.image"]["results"][0]["evidence"]
    again = bed.gpudoctor("check", "--strict", "--format", "json", *healthy(bed))
    assert again.returncode == healthy_exit(bed), again.stdout[-3000:]
    ev = _checks(json.loads(again.stdout))["containers.image"]["results"][0]["evidence"]
    assert ev["built"] is False and ev["image_id"] == first["image_id"] and "inputs unchanged" in ev["why"]
    assert _images(bed.dockerd) == [first["image"]]


@pytest.mark.docker
def test_a_changed_input_makes_a_new_image_and_only_old_ones_of_gpudoctor_go(bed, monkeypatch):
    old = _checks(bed.check_json())["containers.image"]["results"][0]["evidence"]
    busybox = _tree_path(bed.root, "/bin/busybox")
    original = busybox.read_bytes()
    bed.dockerd.docker("tag", old["image"], "someone/else:kept", check=True)  # someone else's name for gpudoctor's image
    try:
        busybox.write_bytes(original + b"\0")  # a busybox upgrade
        new = _checks(bed.check_json())["containers.image"]["results"][0]["evidence"]
        assert new["built"] is True and new["image"] != old["image"]
        # The old one is kept for a while: a concurrent run may still use it.
        assert set(_images(bed.dockerd)) == {old["image"], new["image"], "someone/else:kept"}
        assert new["removed"] == []
        # Past the grace period, a build removes gpudoctor's older images, never one someone else named.
        busybox.write_bytes(original)
        bed.dockerd.docker("rmi", old["image"], check=True)  # untags only: someone/else:kept holds the image
        monkeypatch.setenv("DOCKER_HOST", bed.dockerd.url)
        monkeypatch.setattr(host_image, "PRUNE_GRACE_S", 0)
        made = host_image.ensure_host_image(str(bed.root))
        assert made["built"] is True and made["image"] == old["image"]
        assert made["removed"] == [new["image_id"]]
        assert set(_images(bed.dockerd)) == {old["image"], "someone/else:kept"}
    finally:
        busybox.write_bytes(original)
        bed.docker("rmi", "someone/else:kept")


@pytest.mark.docker
def test_pull_that_cannot_reach_a_registry_falls_back_to_gpudoctors_image(bed):
    """--pull asks for the tag published for the driver's CUDA 13.0; offline, the probes still run."""
    checks = _checks(bed.check_json("--pull", "--only", "containers"))
    image = checks["containers.image"]["results"][0]
    assert image["status"] == "pass" and image["evidence"]["source"] == "host-built", image
    assert "--pull could not fetch nvidia/cuda:13.0.3-base-ubuntu24.04" in image["evidence"]["why"]
    assert checks["containers.gpus-all"]["status"] == "pass"
    assert all(i.startswith("gpudoctor-probe:") for i in _images(bed.dockerd))


@pytest.mark.docker
def test_explain_run_without_image_runs_in_gpudoctors_image(bed):
    """`explain --run` takes the same image: the user's request is reproduced on a host with no image at all."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "gpudoctor", "explain", "--run", "--format", "json", "--root",
                           str(bed.root), "--", "--gpus all"], capture_output=True, text=True, env=bed.env(), cwd="/",
                          timeout=180)
    run = json.loads(proc.stdout)["runs"][0]
    assert run["image"].startswith("gpudoctor-probe:") and run["verdict"] == "works", run
    assert "GPU-" in run["seen"]
    assert all(i.startswith("gpudoctor-probe:") for i in _images(bed.dockerd)) and bed.dockerd.containers() == []


@pytest.mark.docker
def test_the_choice_replays_from_a_bundle(bed, tmp_path):
    bundle = tmp_path / "bundle.json"
    rec = bed.gpudoctor("facts", "--record", str(bundle))
    assert rec.returncode == 0, rec.stderr
    answers = [a for a in json.loads(bundle.read_text())["answers"] if a["op"] == "probe.host-image"]
    assert len(answers) == 1 and answers[0]["answer"]["value"]["present"] is True
    replay = run_cli(["check", "--format", "json", "--replay", str(bundle)])
    ev = _checks(json.loads(replay.stdout))["containers.image"]["results"][0]["evidence"]
    assert ev["source"] == "host-built" and ev["image"] == answers[0]["answer"]["value"]["image"]


@pytest.mark.docker
def test_on_a_machine_without_gpus_the_baseline_runs_in_gpudoctors_image(private_dockerd):
    """CI's case: this machine's own files, a daemon with no image, no GPU: the baseline is probed and judged, and
    no CUDA image is suggested."""
    proc = run_cli(["check", "--format", "json", "--only", "containers"], env={"DOCKER_HOST": private_dockerd.url})
    checks = _checks(json.loads(proc.stdout))
    assert checks["containers.baseline"]["status"] == "pass", checks["containers.baseline"]
    image = checks["containers.image"]["results"][0]
    assert image["status"] == "pass" and image["evidence"]["source"] == "host-built"
    assert image["fix"] is None and "pull" not in json.dumps(checks["containers.image"]).replace("--pull was not", "")
    assert [i.split(":")[0] for i in _images(private_dockerd)] == ["gpudoctor-probe"]
    assert private_dockerd.containers() == []


@pytest.mark.docker
def test_an_image_that_cannot_be_made_names_the_published_cuda_tag_on_a_gpu_host(bed):
    """No shell under the root: no probe can run. On a host with GPUs the advice names a tag that is published for
    the driver's CUDA version (13.0 here), never a derived one."""
    busybox = _tree_path(bed.root, "/bin/busybox")
    aside = busybox.with_name("busybox.aside")
    busybox.rename(aside)
    try:
        checks = _checks(bed.check_json("--only", "containers"))
    finally:
        aside.rename(busybox)
    image = checks["containers.image"]["results"][0]
    assert image["status"] == "warn" and "no busybox and no sh" in image["summary"], image
    assert "docker pull nvidia/cuda:13.0.3-base-ubuntu24.04" in image["fix"]["commands"]
    assert checks["containers.baseline"]["status"] == "skip"
    assert bed.dockerd.containers() == []
