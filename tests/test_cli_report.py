"""Issue 11: the command as a new user and a CI step meet it (through the real console script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.cli import run_cli


# -- 1. explain takes inputs as pasted ------------------------------------------------------------
def test_explain_takes_gpus_values_and_command_lines_as_pasted():
    for args in (['--gpus "device=0,1"'], ["--gpus all"], ["--gpus=all"], ["--gpus", "all"],
                 ["docker", "run", "--gpus", "all", "IMG"], ["docker", "run", "-h", "box", "--gpus", "all", "IMG"]):
        proc = run_cli(["explain", "--no-host", *args])
        assert proc.returncode in (0, 1), (args, proc.stderr)
        assert "No such option" not in proc.stderr
        assert "DeviceRequest" in proc.stdout, (args, proc.stdout)


def test_explain_options_still_work_around_pasted_inputs():
    proc = run_cli(["explain", "--no-host", "--gpus all", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "gpudoctor.explain/v1"
    proc = run_cli(["explain", "-f", "json", "--no-host", "docker", "run", "--gpus=all", "IMG"])
    assert proc.returncode == 0 and json.loads(proc.stdout)["exit_code"] == 0
    assert run_cli(["explain", "--kind", "docker-run", "--no-host", "docker run --gpus all IMG"]).returncode == 0


def test_explain_reads_a_file_named_like_a_check_id(tmp_path):
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  app:\n    image: x\n    deploy: {resources: {reservations: {devices: "
        "[{driver: nvidia, count: all, capabilities: [gpu]}]}}}\n")
    proc = run_cli(["explain", "--no-host", "docker-compose.yml"], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'service "app"' in proc.stdout and '"Driver": "nvidia"' in proc.stdout
    missing = run_cli(["explain", "--no-host", "compose.yaml"], cwd=str(tmp_path))
    assert missing.returncode == 2 and "compose.yaml: no such file" in missing.stdout


# -- 3. partial runs ------------------------------------------------------------------------------
def test_partial_runs_never_say_ready():
    for args in (["--only", "containers"], ["--only", "containers", "--no-probes"],
                 ["--only", "docker.runtime.nvidia"], ["--skip", "pci"]):
        proc = run_cli(["check", "--format", "json", *args])
        assert proc.returncode in (1, 4), (args, proc.stderr)
        verdict = json.loads(proc.stdout)["verdict"]
        assert verdict["partial"] is True and verdict["ready"] is False, args
        assert verdict["unchecked"], args
        assert not verdict["headline"].startswith("Ready"), verdict["headline"]
        if proc.returncode == 4:
            assert verdict["headline"].startswith("Partial: ")
    text = run_cli(["check", "--only", "containers", "--no-probes"], env={"COLUMNS": "300"})
    assert text.returncode == 4
    assert "not checked: " in text.stdout and "PCI hardware: not checked" in text.stdout and "Ready" not in text.stdout


def test_a_partly_checked_layer_is_named_with_how_much_of_it_ran():
    """`--only docker.reachable` checked one of the Docker daemon's checks: the headline must not list that layer
    as "not checked" while saying nothing in it is broken."""
    from gpudoctor.engine import all_checks, select
    from gpudoctor.model import Layer, Verdict
    from gpudoctor.runner import partial_verdict

    every = all_checks()
    ran = select(every, ("docker.reachable",), ())
    docker_checks = sum(1 for c in every if c.info.layer is Layer.DOCKER)
    v = partial_verdict(Verdict(True, "Ready"), ran, every)
    assert v.headline.startswith(f"Partial: nothing broken in Docker daemon (1 of {docker_checks} checks); "), v.headline
    assert "Docker daemon" not in v.unchecked and "PCI hardware" in v.unchecked
    whole = partial_verdict(Verdict(True, "Ready"), select(every, ("docker",), ()), every)
    assert whole.headline.startswith("Partial: nothing broken in Docker daemon; not checked: "), whole.headline


def test_unknown_skip_and_only_ids_are_usage_errors():
    proc = run_cli(["check", "--skip", "no.such.check"])
    assert proc.returncode == 2 and "--skip no.such.check" in proc.stderr
    proc = run_cli(["check", "--only", "docker", "--only", "dockr"])
    assert proc.returncode == 2 and "--only dockr" in proc.stderr


# -- 6. environment switches ----------------------------------------------------------------------
def test_no_color_any_value_and_strict_spellings():
    proc = run_cli(["check", "--no-probes"], env={"NO_COLOR": "x"})
    assert proc.returncode in (0, 1), proc.stderr
    assert "\x1b[" not in proc.stdout
    base = run_cli(["check", "--no-probes", "--format", "json"]).returncode
    for value, strict in (("enabled", True), ("on", True), ("YES", True), ("1", True),
                          ("disabled", False), ("off", False), ("no", False), ("0", False)):
        proc = run_cli(["check", "--no-probes", "--format", "json"], env={"GPUDOCTOR_STRICT": value})
        assert proc.returncode in (0, 1), (value, proc.stderr)
        if not strict:
            assert proc.returncode == base, value
    bad = run_cli(["check", "--no-probes"], env={"GPUDOCTOR_STRICT": "maybe"})
    assert bad.returncode == 2 and "GPUDOCTOR_STRICT='maybe'" in bad.stderr


# -- 9. help text and usage -----------------------------------------------------------------------
def test_help_shows_clean_types_and_only_accepted_values():
    proc = run_cli(["explain", "--help"], env={"COLUMNS": "200"})
    assert proc.returncode == 0
    for bad in ("<str>", "<list[str]>", "{inputs}", "junit"):
        assert bad not in proc.stdout, bad
    assert "docker-run" in proc.stdout and "INPUT..." in proc.stdout
    check = run_cli(["check", "--help"], env={"COLUMNS": "200"})
    assert "<str>" not in check.stdout and "<list[str]>" not in check.stdout


def test_list_format_and_output_are_validated_before_work():
    proc = run_cli(["list", "--format", "bogus"])
    assert proc.returncode == 2
    proc = run_cli(["check", "--output", "/nonexistent/x"])
    assert proc.returncode == 2 and "/nonexistent" in proc.stderr and "internal error" not in proc.stderr
    proc = run_cli(["explain", "--no-host", "--output", "/nonexistent/x", "--gpus all"])
    assert proc.returncode == 2


def test_a_closed_stdout_is_not_an_error():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before gpudoctor writes a byte: every write is EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "gpudoctor", "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, cwd="/", timeout=60, check=False)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


# -- 5. a broken plugin is its own row, outside the host verdict ----------------------------------
def test_a_plugin_that_fails_to_import_does_not_become_the_root_cause():
    from gpudoctor.engine import builtin_checks, plugin_checks, run_checks, verdict
    from gpudoctor.facts.registry import FactSet
    from gpudoctor.model import Report

    class BrokenEntryPoint:
        name = "bad"

        def load(self):
            raise ImportError("No module named 'bad_plugin'")

    plugins = plugin_checks({c.id for c in builtin_checks()}, entry_points=lambda: [BrokenEntryPoint()])
    outcomes = run_checks(plugins, FactSet({}, {}, {}))
    v = verdict(outcomes)
    assert v.ready and v.root_cause is None, v.headline
    assert v.outside and "plugin 'bad' failed to load" in v.outside[0]
    assert outcomes[0].status.value == "error" and outcomes[0].outside_host
    report = Report(outcomes, v, "test", "")
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1
