"""JUnit XML for CI systems: one testsuite per layer, one testcase per check.

Shape: the Apache Ant JUnit schema as CI test reporters read it (Jenkins, GitLab, GitHub actions that publish
test results), validated in tests against Windy Road's JUnit.xsd (tests/fixtures/junit/JUnit.xsd): `<testsuites>`
holds `<testsuite>`s, each with `package`, `id`, `hostname` (per-host files merged in one CI job stay apart),
`timestamp`, its totals and real time, `<properties>` (root cause, verdict, tool version, engine, driver, run
totals), its testcases, `<system-out>`, `<system-err>`.

fail → <failure>, error → <error>, skip → <skipped>; warn stays a passing testcase whose warning is written in
its suite's <system-out> (with --strict it becomes a <failure>, matching the exit code).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby

from ..model import CheckOutcome, Report, Result, Status


def _message(result: Result) -> str:
    return f"{result.subject}: {result.summary}" if result.subject else result.summary


def _body(outcome: CheckOutcome) -> str:
    lines = []
    for r in outcome.results:
        lines.append(f"[{r.status.value}] {_message(r)}")
        lines.extend(f"    {d}" for d in r.details)
        if r.fix:
            lines.append(f"    fix: {r.fix.summary}")
            lines.extend(f"      $ {c}" for c in r.fix.commands)
            if r.fix.link:
                lines.append(f"      see {r.fix.link}")
    return "\n".join(lines)


def _properties(report: Report, strict: bool) -> dict[str, str]:
    v = report.verdict
    host = report.host
    totals = {s.value: sum(o.status is s for o in report.outcomes) for s in Status}
    props = {
        "gpudoctor.version": report.tool_version,
        "gpudoctor.verdict": v.headline,
        "gpudoctor.ready": "true" if v.ready else "false",
        "gpudoctor.partial": "true" if v.partial else "false",
        "gpudoctor.exit_code": str(report.exit_code(strict=strict)),
        "gpudoctor.root_cause": v.root_cause or "",
        "gpudoctor.root_cause_layer": v.layer.value if v.layer else "",
        "gpudoctor.fix": v.fix.summary if v.fix else "",
        "host.kernel": str(host.get("kernel") or ""),
        "docker.engine": str(host.get("engine") or ""),
        "docker.endpoint": str(host.get("docker_endpoint") or ""),
        "nvidia.driver": str(host.get("driver") or ""),
        "run.tests": str(len(report.outcomes)),
        **{f"run.{k}": str(n) for k, n in totals.items()},
        "run.time_s": f"{float(report.timings.get('total_s') or 0.0):.3f}",
    }
    if host.get("replay"):
        props["gpudoctor.replay"] = str(host["replay"])
    return props


def render_junit(report: Report, strict: bool = False) -> str:
    suites = ET.Element("testsuites")
    hostname = str(report.host.get("hostname") or "localhost")
    # The schema's timestamp is local-style, without a zone: report.created is UTC ("...Z").
    timestamp = (report.created or "1970-01-01T00:00:00Z").rstrip("Z")[:19]
    props = _properties(report, strict)
    ordered = sorted(report.outcomes, key=lambda o: o.check.layer.rank)
    for index, (layer, group) in enumerate(groupby(ordered, key=lambda o: o.check.layer)):
        outcomes = list(group)
        times = [report.check_seconds(o) for o in outcomes]
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"gpudoctor.{layer.value}",
            package="gpudoctor",
            id=str(index),
            hostname=hostname,
            timestamp=timestamp,
            tests=str(len(outcomes)),
            failures=str(sum(o.status == Status.FAIL or (strict and o.status == Status.WARN) for o in outcomes)),
            errors=str(sum(o.status == Status.ERROR for o in outcomes)),
            skipped=str(sum(o.status == Status.SKIP for o in outcomes)),
            # Facts are gathered concurrently: a layer took as long as its slowest check.
            time=f"{max(times, default=0.0):.3f}",
        )
        properties = ET.SubElement(suite, "properties")
        for name, value in props.items():
            ET.SubElement(properties, "property", name=name, value=value)
        out: list[str] = []
        for o, seconds in zip(outcomes, times):
            case = ET.SubElement(
                suite, "testcase", classname=f"gpudoctor.{layer.value}", name=o.check.id, time=f"{seconds:.3f}"
            )
            worst = next((r for r in o.results if r.status == o.status), o.results[0])
            if o.status == Status.FAIL or (strict and o.status == Status.WARN):
                ET.SubElement(case, "failure", message=_message(worst), type=o.status.value).text = _body(o)
            elif o.status == Status.ERROR:
                ET.SubElement(case, "error", message=_message(worst), type="error").text = _body(o)
            elif o.status == Status.SKIP:
                ET.SubElement(case, "skipped", message=_message(worst))
            if o.status in (Status.WARN, Status.PASS):
                out.append(f"{o.check.id}\n{_body(o)}")
        ET.SubElement(suite, "system-out").text = "\n\n".join(out)
        ET.SubElement(suite, "system-err").text = ""
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
