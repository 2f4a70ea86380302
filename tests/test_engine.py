"""The engine's rules: blocking by lower layers, errors instead of tracebacks, plugins, verdict."""

from __future__ import annotations

from dataclasses import dataclass


from gpudoctor.checking import check
from gpudoctor.engine import plugin_checks, run_checks, select, verdict
from gpudoctor.facts.host import LiveHost
from gpudoctor.facts.registry import FactError, FactSet, FactSpec, gather
from gpudoctor.model import Fix, Layer, Status, failed, passed, warned

FIX = Fix("do the thing", ("sudo thing --now",), "https://example.invalid/doc")


@check("low.ok", "Low layer works", layer=Layer.PCI, needs=("n",))
def low_ok(n: int):
    return passed(f"n is {n}")


@check("low.bad", "Low layer works", layer=Layer.KERNEL, needs=("n",))
def low_bad(n: int):
    return failed(f"n is {n}, want 0", FIX)


@check("mid", "Middle layer works", layer=Layer.NVML, needs=("n",), after=("low.bad",))
def mid(n: int):
    return passed("fine")


@check("top", "Top layer works", layer=Layer.DOCKER, after=("mid",))
def top():
    return warned("never runs")


@check("crashy", "Crashes", layer=Layer.DOCKER)
def crashy():
    raise ZeroDivisionError("boom")


@check("needs-missing", "Needs a fact that failed", layer=Layer.DOCKER, needs=("broken",))
def needs_missing(broken):
    return passed("unreachable")


@check("returns-none", "Returns nothing", layer=Layer.DOCKER)
def returns_none():
    return None


def facts(**values) -> FactSet:
    return FactSet(values, {"broken": FactError("broken", "timeout", "timed out after 1s")}, {})


def test_blocked_checks_name_the_root_cause_transitively():
    out = {o.check.id: o for o in run_checks([low_ok, low_bad, mid, top], facts(n=3))}
    assert out["low.ok"].status is Status.PASS
    assert out["low.bad"].status is Status.FAIL
    assert out["mid"].status is Status.SKIP and out["mid"].blocked_by == "low.bad"
    # `top` comes after `mid`, which was blocked: the root cause propagates, not the symptom.
    assert out["top"].blocked_by == "low.bad"
    assert out["top"].results[0].summary == "blocked by low.bad"


def test_crash_missing_fact_and_bad_return_become_error_rows():
    out = {o.check.id: o for o in run_checks([crashy, needs_missing, returns_none], facts())}
    assert out["crashy"].status is Status.ERROR
    assert "ZeroDivisionError: boom" in out["crashy"].results[0].summary
    assert out["needs-missing"].status is Status.ERROR
    assert "timed out" in out["needs-missing"].results[0].summary
    assert out["returns-none"].status is Status.ERROR


def test_verdict_names_lowest_failing_layer_and_its_fix():
    @check("docker.bad", "Docker works", layer=Layer.DOCKER)
    def docker_bad():
        return failed("docker broken", Fix("restart", ("sudo systemctl restart docker",)))

    outcomes = run_checks([docker_bad, low_ok, low_bad], facts(n=1))
    v = verdict(outcomes)
    assert not v.ready
    assert v.root_cause == "low.bad" and v.layer is Layer.KERNEL
    assert v.fix == FIX
    assert "Kernel driver" in v.headline


def test_ready_verdict_and_exit_codes():
    from gpudoctor.engine import build_report

    @check("w", "Warns", layer=Layer.DOCKER)
    def w():
        return warned("risky")

    report = build_report(run_checks([low_ok, w], facts(n=0)), LiveHost())
    assert report.verdict.ready and "1 warning" in report.verdict.headline and "no layer" in report.verdict.headline
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1
    bad = build_report(run_checks([low_bad], facts(n=1)), LiveHost())
    assert bad.exit_code() == 1


def test_select_by_prefix():
    chosen = select([low_ok, low_bad, mid, top], only=["low"], skip=["low.bad"])
    assert [c.id for c in chosen] == ["low.ok"]


@dataclass
class FakeEntryPoint:
    name: str
    target: object

    def load(self):
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def test_plugins_broken_colliding_and_good():
    @check("plugin.good", "A plugin check", layer=Layer.DOCKER)
    def good():
        return passed("ok")

    eps = [
        FakeEntryPoint("broken", ImportError("No module named 'nope'")),
        FakeEntryPoint("collides", [low_ok]),
        FakeEntryPoint("good", good),
        FakeEntryPoint("junk", [42]),
    ]
    got = plugin_checks({"low.ok"}, entry_points=lambda: eps)
    by_source = {c.info.source: c for c in got}
    assert set(by_source) == {"plugin:broken", "plugin:collides", "plugin:good", "plugin:junk"}
    out = {o.check.source: o for o in run_checks(got, facts())}
    assert out["plugin:broken"].status is Status.ERROR and "No module named" in out["plugin:broken"].results[0].summary
    assert out["plugin:collides"].status is Status.SKIP and "already exists" in out["plugin:collides"].results[0].summary
    assert out["plugin:good"].status is Status.PASS
    assert out["plugin:junk"].status is Status.ERROR


def test_gather_times_out_a_hanging_fact_and_shares_values():
    import threading

    calls = []
    release = threading.Event()

    def slow(ctx):
        release.wait(5)
        return 1

    def base(ctx):
        calls.append(1)
        return 20

    def derived(ctx):
        return ctx.get("base") + 1

    specs = {
        "slow": FactSpec("slow", slow, 0.2, ""),
        "base": FactSpec("base", base, 2, ""),
        "derived": FactSpec("derived", derived, 2, ""),
    }
    got = gather(LiveHost(), ["slow", "base", "derived"], specs=specs)
    release.set()
    assert got.errors["slow"].kind == "timeout"
    assert got.values == {"base": 20, "derived": 21}
    assert calls == [1]  # computed once, shared


def test_the_run_deadline_bounds_every_wait_and_facts_can_read_it():
    """`deadline_s` (the CLI's --timeout): a fact whose own limit is far away still ends at the deadline,
    says so, and a fact that keeps to `ctx.deadline` finishes in time with its value."""
    import threading
    import time

    from gpudoctor.facts.registry import FactOptions

    release = threading.Event()
    seen = {}

    def hangs(ctx):
        release.wait(10)
        return 1

    def keeps_time(ctx):
        seen["remaining"] = ctx.remaining()
        release.wait(max(0.0, ctx.remaining() - 0.5))
        return "in time"

    specs = {"hangs": FactSpec("hangs", hangs, 60, ""), "keeps": FactSpec("keeps", keeps_time, 60, "")}
    started = time.monotonic()
    got = gather(LiveHost(), ["hangs", "keeps"], FactOptions({"deadline_s": 1.5}), specs=specs)
    release.set()
    assert time.monotonic() - started < 3
    assert got.errors["hangs"].kind == "timeout"
    assert got.errors["hangs"].message == "not finished within the run's deadline (1.5s)"
    assert got.values == {"keeps": "in time"} and 0 < seen["remaining"] <= 1.5


def test_gather_turns_a_crashing_fact_into_an_error():
    def bad(ctx):
        raise KeyError("nope")

    got = gather(LiveHost(), ["bad", "unknown"], specs={"bad": FactSpec("bad", bad, 1, "")})
    assert got.errors["bad"].kind == "error" and "KeyError" in got.errors["bad"].message
    assert got.errors["unknown"].kind == "unknown"


def test_an_unfiltered_run_gathers_every_builtin_fact():
    """runner._start_early starts every registered fact before the checks are loaded: that is right only while
    the built-in checks need each one (a fact no check needs would be gathered for nothing)."""
    from gpudoctor.engine import builtin_checks, facts_to_gather
    from gpudoctor.facts.registry import registered_facts

    assert set(facts_to_gather(builtin_checks())) == set(registered_facts())


def test_a_gathering_started_with_some_fact_modules_finds_the_rest_when_a_fact_asks():
    """runner._start_early starts the probes once their own fact modules are loaded (facts/probe_chain.py): a fact
    that asks for one not loaded yet gets it all the same (the gathering loads the rest), never 'unknown fact'."""
    from gpudoctor.facts.registry import Gathering

    loads: list[int] = []
    rest = {"late": FactSpec("late", lambda ctx: "late value", 5.0, "")}

    def load_rest() -> dict[str, FactSpec]:
        loads.append(1)
        return rest

    first = {"early": FactSpec("early", lambda ctx: f"early saw {ctx.get('late')}", 5.0, "")}
    gathering = Gathering(LiveHost(), specs=first, load_rest=load_rest)
    gathering.start(["early"])
    names = gathering.load_more()
    assert sorted(names) == ["early", "late"]
    got = gathering.start(names).collect(names)
    assert got.values == {"early": "early saw late value", "late": "late value"} and not got.errors
    assert loads  # asked for before load_more, or loaded by it

    # Without somewhere to load more from, a fact nobody registered stays an error, as before.
    alone = Gathering(LiveHost(), specs=first).start(["early"]).collect(["early"])
    assert "early" in alone.errors and "late" in alone.errors["early"].message
