"""The contract every built-in check keeps: listed, named, documented, and every failure carries a fix."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path


import gpudoctor.checks as builtin
from gpudoctor.engine import all_checks, builtin_checks, run
from gpudoctor.facts.host import LiveHost, ReplayHost
from gpudoctor.facts.registry import FactOptions, registered_facts
from gpudoctor.model import Status

ID = re.compile(r"^[a-z0-9]+(\.[a-z0-9-]+)+$")
REAL_BUNDLE = Path(__file__).parent / "fixtures/real-h100-host/bundle.json"


def test_checks_init_lists_every_module_of_the_folder():
    folder = {m.name for m in pkgutil.iter_modules(builtin.__path__)}
    listed = {m.__name__.rsplit(".", 1)[-1] for m in builtin.BUILTIN_MODULES}
    assert listed == folder


def test_modules_are_listed_in_chain_order():
    ranks = [max(c.info.layer.rank for c in m.CHECKS) for m in builtin.BUILTIN_MODULES if m.CHECKS]
    assert ranks == sorted(ranks)


def test_ids_titles_docs_and_dependencies():
    checks = builtin_checks()
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids)), "duplicate check ids"
    known = set(ids)
    facts = set(registered_facts())
    seen: set[str] = set()
    for c in checks:
        info = c.info
        assert ID.match(info.id), info.id
        assert info.id.split(".")[0] == info.layer.value, f"{info.id} is not in layer {info.layer.value}"
        assert info.title and not info.title.endswith("."), f"{info.id}: a title states a condition, no full stop"
        assert "Why:" in info.doc and "Fix:" in info.doc, f"{info.id}: docstring needs 'Why:' and 'Fix:'"
        for need in info.needs:
            assert need in facts, f"{info.id} needs unknown fact {need!r}"
        for dep in info.after:
            assert dep in known, f"{info.id} comes after unknown check {dep!r}"
            assert dep in seen, f"{info.id} comes after {dep!r}, which runs later"
        seen.add(info.id)


def _assert_fixes(report):
    for o in report.outcomes:
        for r in o.results:
            if r.status is Status.FAIL:
                assert r.fix is not None and r.fix.summary, o.check.id
                assert r.fix.commands or r.fix.link, f"{o.check.id}: a fix needs commands or a link"


def test_every_failure_on_the_real_gpu_host_has_a_fix():
    host = ReplayHost.load(str(REAL_BUNDLE))
    report, _ = run(host, all_checks(), FactOptions(host.meta["options"]))
    assert report.outcomes
    _assert_fixes(report)


def test_every_failure_on_this_machine_has_a_fix():
    report, _ = run(LiveHost(), all_checks(), FactOptions({"probes": False}))
    _assert_fixes(report)
    assert all(o.status is not Status.ERROR for o in report.outcomes), [
        (o.check.id, o.results[0].summary) for o in report.outcomes if o.status is Status.ERROR
    ]
