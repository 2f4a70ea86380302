"""The command as users and CI steps meet it: help, formats, exit codes, bundles."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from tests.support.cli import run_cli

HEAVY = ("docker", "pynvml", "yaml", "requests", "urllib3")


def test_help_imports_nothing_heavy():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gpudoctor", "--help"], capture_output=True, text=True, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr
    assert "check" in proc.stdout and "explain" in proc.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_shell_completion():
    """--install-completion/--show-completion are offered; the installed script's call (Click's protocol: the
    words in COMP_WORDS, _GPUDOCTOR_COMPLETE naming the shell) completes commands, options and choices."""
    helped = run_cli(["--help"])
    assert "--install-completion" in helped.stdout and "--show-completion" in helped.stdout

    def complete(words: str) -> list[str]:
        env = {"_GPUDOCTOR_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
        proc = run_cli([], env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert complete("gpudoctor ch") == ["check"]
    assert complete("gpudoctor check --for") == ["--format", "--forms"]
    assert complete("gpudoctor check --format ") == ["text", "json", "junit", "prometheus"]


def test_usage_errors_exit_2():
    assert run_cli(["--no-such-flag"]).returncode == 2
    assert run_cli(["check", "--format", "xml"]).returncode == 2
    proc = run_cli(["check", "--only", "no.such.check"])
    assert proc.returncode == 2 and "no check matches" in proc.stderr
    proc = run_cli(["check", "--forms", "gpus-all,gpus-one"])
    assert proc.returncode == 2 and "unknown request form(s) gpus-one" in proc.stderr
    for short in ("5", "nan", "-1"):  # the probes need room for their own cleanup (cli.py MIN_TIMEOUT_S)
        proc = run_cli(["check", "--timeout", short])
        assert proc.returncode == 2 and "--timeout must be at least 20 seconds" in proc.stderr, proc.stderr


def test_corrupt_bundle_exits_3_with_a_message(tmp_path):
    bad = tmp_path / "bundle.json"
    bad.write_text('{"format": "gpudoctor.bundle/v1", "answers": [')
    proc = run_cli(["check", "--replay", str(bad)])
    assert proc.returncode == 3
    assert "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_json_report_shape_and_junit_agree(tmp_path):
    proc = run_cli(["check", "--format", "json", "--no-probes"])
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["schema"] == "gpudoctor.report/v1"
    assert set(report) == {"schema", "tool_version", "created", "host", "verdict", "checks", "timings"}
    assert report["checks"], "no checks ran"
    for c in report["checks"]:
        assert {"id", "title", "layer", "status", "results"} <= set(c)
        for r in c["results"]:
            if r["status"] == "fail":
                assert r["fix"] and r["fix"]["summary"], c["id"]
    assert (proc.returncode == 0) == report["verdict"]["ready"]

    out = tmp_path / "report.xml"
    junit = run_cli(["check", "--format", "junit", "--no-probes", "--output", str(out)])
    assert junit.returncode == proc.returncode
    root = ET.parse(out).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(report["checks"])
    failures = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failures == {c["id"] for c in report["checks"] if c["status"] == "fail"}


def test_record_then_replay_reproduces_the_report(tmp_path):
    bundle = tmp_path / "bundle.json"
    rec = run_cli(["facts", "--record", str(bundle), "--no-probes"])
    assert rec.returncode == 0, rec.stderr
    assert "recorded" in rec.stderr
    replay = run_cli(["check", "--replay", str(bundle), "--format", "json"])
    assert replay.returncode in (0, 1), replay.stderr
    live = run_cli(["check", "--format", "json", "--no-probes"])

    def essence(text):
        data = json.loads(text)
        return data["verdict"], [(c["id"], c["status"], [r["summary"] for r in c["results"]]) for c in data["checks"]]

    assert essence(replay.stdout) == essence(live.stdout)
    assert json.loads(replay.stdout)["host"]["replay"] == str(bundle)


def test_replay_of_an_incomplete_bundle_fails_loudly(tmp_path):
    bundle = tmp_path / "bundle.json"
    assert run_cli(["facts", "--record", str(bundle), "--no-probes"]).returncode == 0
    data = json.loads(bundle.read_text())
    data["answers"] = [a for a in data["answers"] if a["op"] != "read"]
    bundle.write_text(json.dumps(data))
    proc = run_cli(["check", "--replay", str(bundle)])
    assert proc.returncode == 3
    assert "lacks" in proc.stderr and "read" in proc.stderr


def test_host_strings_are_never_rich_markup(tmp_path):
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/hostname").write_text("[bold red]evil[/bold red]\n")
    proc = run_cli(["check", "--root", str(tmp_path), "--no-probes", "--no-color"])
    # 4 (partial) where a daemon answers on this machine: it names this machine's hostname, not the tree's, so it
    # is judged another host's (facts/locality.py).
    assert proc.returncode in (0, 1, 4), proc.stderr
    assert "[bold red]evil[/bold red]" in proc.stdout


def test_facts_prints_json():
    proc = run_cli(["facts", "--no-probes"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert "host_identity" in data["facts"]
    assert "nvml" in data["facts"] or "nvml" in data["errors"]


def test_list_names_every_check_with_its_source():
    proc = run_cli(["list", "--format", "json"])
    assert proc.returncode == 0
    listed = json.loads(proc.stdout)
    assert listed and all(c["source"] == "builtin" for c in listed)
    assert len({c["id"] for c in listed}) == len(listed)


def test_an_app_narrowed_to_the_named_command_reads_as_the_whole_app():
    """cli._app_for builds only the command a command line names (Typer reads every command's signature first):
    its help and its usage errors must not tell that apart."""
    import pytest
    from typer.testing import CliRunner

    from gpudoctor import cli

    runner = CliRunner()
    argvs = [["check", "--help"], ["facts", "--help"], ["list", "--help"], ["explain", "--help"], ["merge", "--help"],
             ["check", "--bogus"], ["check", "--format", "xml"], ["list", "extra"], ["chek"], ["--help"]]
    narrowed_any = False
    for argv in argvs:
        narrowed = cli._app_for(argv)
        narrowed_any |= narrowed is not cli.app
        if argv[0] in ("chek", "--help"):
            assert narrowed is cli.app  # no command named: the whole app, with its "No such command"
        got = runner.invoke(narrowed, argv, prog_name="gpudoctor")
        want = runner.invoke(cli.app, argv, prog_name="gpudoctor")
        assert (got.exit_code, got.output) == (want.exit_code, want.output), argv
    assert narrowed_any
    assert len(cli._app_for(["check"]).registered_commands) == 1
    with pytest.MonkeyPatch.context() as mp:  # completion asks about every command
        mp.setenv("_GPUDOCTOR_COMPLETE", "complete_bash")
        assert cli._app_for(["check"]) is cli.app
