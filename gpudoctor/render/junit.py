"""JUnit XML for CI systems: one testsuite per layer, one testcase per check.

fail → <failure>, error → <error>, skip → <skipped>; warn stays a passing testcase whose
<system-out> carries the warning (with --strict it becomes a <failure>, matching the exit code).
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


def render_junit(report: Report, strict: bool = False) -> str:
    suites = ET.Element("testsuites", name="gpudoctor", tests=str(len(report.outcomes)))
    ordered = sorted(report.outcomes, key=lambda o: o.check.layer.rank)
    for layer, group in groupby(ordered, key=lambda o: o.check.layer):
        outcomes = list(group)
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"gpudoctor.{layer.value}",
            tests=str(len(outcomes)),
            failures=str(sum(o.status == Status.FAIL or (strict and o.status == Status.WARN) for o in outcomes)),
            errors=str(sum(o.status == Status.ERROR for o in outcomes)),
            skipped=str(sum(o.status == Status.SKIP for o in outcomes)),
            time=f"{sum(o.duration_s for o in outcomes):.3f}",
        )
        for o in outcomes:
            case = ET.SubElement(
                suite, "testcase", classname=f"gpudoctor.{layer.value}", name=o.check.id, time=f"{o.duration_s:.3f}"
            )
            worst = next((r for r in o.results if r.status == o.status), o.results[0])
            if o.status == Status.FAIL or (strict and o.status == Status.WARN):
                ET.SubElement(case, "failure", message=_message(worst), type=o.status.value).text = _body(o)
            elif o.status == Status.ERROR:
                ET.SubElement(case, "error", message=_message(worst), type="error").text = _body(o)
            elif o.status == Status.SKIP:
                ET.SubElement(case, "skipped", message=_message(worst))
            else:
                ET.SubElement(case, "system-out").text = _body(o)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
