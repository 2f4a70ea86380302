"""`gpudoctor merge` on the reports of every recorded real bundle in tests/fixtures (the H100 host and the H200
real-stack matrix on Docker 20.10 and 29.7): each host's row must carry its own report's verdict, the summary must
group exactly the not-ready hosts by root cause, and stdin (one report per line, or concatenated) must read the same
as files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpudoctor.render.json_report import render_json
from gpudoctor.runner import RunRequest, run_check
from tests.support.cli import run_cli

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLES = [FIXTURES / "real-h100-host" / "bundle.json", *sorted(FIXTURES.glob("real-h200-docker2*-toolkit/*/bundle.json"))]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, dict[str, Any]]]:
    """The JSON report of each bundle's replay (`gpudoctor check --replay B --format json`, run in-process)."""
    out = tmp_path_factory.mktemp("reports")
    made = []
    for bundle in BUNDLES:
        run = run_check(RunRequest(replay=str(bundle)))
        assert run.report is not None, run.problem
        path = out / f"{bundle.parent.parent.name}--{bundle.parent.name}.json"
        path.write_text(render_json(run.report))
        made.append((path, json.loads(path.read_text())))
    return made


def _merge(args: list[str], stdin: str | None = None) -> tuple[int, str]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "gpudoctor", "merge", *args], input=stdin, capture_output=True, text=True, timeout=120,
        cwd="/",  # as tests/support/cli.py: no ./gpudoctor folder shadows the installed package
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, proc.stdout


def test_summary_carries_each_hosts_own_verdict(reports: list[tuple[Path, dict[str, Any]]]) -> None:
    assert len(reports) == 50  # the H100 host + 24 states on Docker 20.10 + 25 on Docker 29.7
    code, raw = _merge(["--format", "json", *(str(p) for p, _ in reports)])
    summary = json.loads(raw)
    assert summary["schema"] == "gpudoctor.fleet/v1" and summary["hosts"] == len(reports)
    assert summary["unreadable"] == []
    rows = summary["host_rows"]
    # Every bundle's hostname is "vm": rows are told apart by the replayed bundle's folder.
    assert len({r["host"] for r in rows}) == len(rows)
    for row, (path, report) in zip(rows, reports):
        assert str(path) in row["source"]
        assert row["ready"] == report["verdict"]["ready"]
        assert (row["root_cause"], row["layer"]) == (report["verdict"]["root_cause"], report["verdict"]["layer"])
        for layer, status in row["layers"].items():
            statuses = [c["status"] for c in report["checks"] if c["layer"] == layer]
            order = ["pass", "skip", "warn", "fail", "error"]
            assert status == max(statuses, key=order.index)
    not_ready = {r["host"] for r in rows if not r["ready"]}
    assert set(summary["not_ready"]) == not_ready and not_ready
    assert set(summary["ready"]) == {r["host"] for r in rows if r["ready"]} and summary["ready"]
    assert code == 1  # some hosts are not ready

    # The groups partition the not-ready hosts, each under its own root cause, largest group first.
    grouped = [h for g in summary["by_root_cause"] for h in g["hosts"]]
    assert sorted(grouped) == sorted(not_ready)
    by_host = {r["host"]: r for r in rows}
    for g in summary["by_root_cause"]:
        assert g["count"] == len(g["hosts"])
        assert all(by_host[h]["root_cause"] == g["root_cause"] and by_host[h]["layer"] == g["layer"] for h in g["hosts"])
    counts = [g["count"] for g in summary["by_root_cause"]]
    assert counts == sorted(counts, reverse=True)
    # The real H100 host lacks the toolkit (tests/fixtures/real-h100-host/README.md).
    h100 = next(r for r in rows if "real-h100-host" in r["source"])
    assert (h100["root_cause"], h100["layer"]) == ("toolkit.installed", "toolkit")
    # broken_at: a host is under every layer where one of its checks failed or errored.
    for layer, hosts in summary["broken_at"].items():
        assert set(hosts) == {r["host"] for r in rows if r["layers"].get(layer) in ("fail", "error")}
    for r in rows:
        if not r["ready"]:
            assert r["host"] in summary["broken_at"][r["layer"]]


def test_table_has_one_row_per_host_with_its_root_cause(reports: list[tuple[Path, dict[str, Any]]]) -> None:
    _, text = _merge([str(p) for p, _ in reports])
    lines = text.splitlines()
    header = lines[0].split()
    assert header[:10] == ["host", "platform", "pci", "kernel", "devices", "nvml", "toolkit", "cdi", "docker", "containers"]
    table = lines[1 : 1 + len(reports)]
    _, raw = _merge(["--format", "json", *(str(p) for p, _ in reports)])
    for line, row in zip(table, json.loads(raw)["host_rows"]):
        assert line.startswith(row["host"])
        assert line.endswith("ready" if row["ready"] else f"{row['root_cause']} ({row['layer']})")
    assert lines[len(reports) + 2].startswith(f"{len(reports)} host(s):")


def test_stdin_one_per_line_or_concatenated(reports: list[tuple[Path, dict[str, Any]]]) -> None:
    chosen = reports[:6]
    _, from_files = _merge(["--format", "json", *(str(p) for p, _ in chosen)])
    per_line = "".join(json.dumps(r) + "\n" for _, r in chosen)
    concatenated = "".join(p.read_text() for p, _ in chosen)
    for text in (per_line, concatenated):
        _, from_stdin = _merge(["--format", "json", "-"], stdin=text)
        a, b = json.loads(from_files), json.loads(from_stdin)
        for row in (*a["host_rows"], *b["host_rows"]):
            row.pop("source")
        assert a == b


def test_all_ready_exits_0_and_bad_inputs_are_named(reports: list[tuple[Path, dict[str, Any]]], tmp_path: Path) -> None:
    ready = [p for p, r in reports if r["verdict"]["ready"]][:3]
    code, _ = _merge([str(p) for p in ready])
    assert code == 0
    junk = tmp_path / "junk.json"
    junk.write_text('{"schema": "something-else"}')
    proc = run_cli(["merge", str(ready[0]), str(junk), str(tmp_path / "missing.json")])
    assert proc.returncode == 1  # an input that is not a report fails the gate
    assert "junk.json: not a gpudoctor report" in proc.stderr and "missing.json: cannot read" in proc.stderr
    assert "2 unreadable input(s)" in proc.stdout
    proc = run_cli(["merge", str(junk)])
    assert proc.returncode == 2 and "no report to merge" in proc.stderr
