"""Render explanations as text (Rich) or JSON. Renderers never decide anything.

User and host strings are never interpolated into Rich markup: everything is built from
`rich.text.Text` pieces and printed with markup and highlighting off.
"""

from __future__ import annotations

import io
import json
from typing import Any, Sequence, Union

from ..frozen import frozen
from .checkinfo import CheckDoc
from .model import ErrorText, Explanation

SCHEMA = "gpudoctor.explain/v1"
KIND_WORDS = {"gpus": "--gpus value", "cmdline": "docker command line", "sdk": "Docker SDK (Python)", "compose": "Compose", "env": "NVIDIA_VISIBLE_DEVICES value", "check": "check id"}


@frozen
class InputProblem:
    """An input explain could not read (exit 2), or an unknown check id."""

    input: str
    kind: str | None
    message: str
    expected: str = ""
    suggestions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "kind": self.kind, "error": self.message, "expected": self.expected, "did_you_mean": list(self.suggestions), "exit_code": 2}


Item = Union[Explanation, CheckDoc, InputProblem]


def to_json(items: Sequence[Item], exit_code: int) -> str:
    return json.dumps({"schema": SCHEMA, "exit_code": exit_code, "items": [i.to_dict() for i in items]}, indent=2, ensure_ascii=False) + "\n"


def to_text(items: Sequence[Item], *, color: bool, width: int = 100) -> str:
    from rich.console import Console
    from rich.text import Text

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, color_system="standard" if color else None,
                      width=width, highlight=False, markup=False, emoji=False, soft_wrap=True)

    def line(*parts: Any, indent: int = 0) -> None:
        t = Text(" " * indent)
        for p in parts:
            if isinstance(p, tuple):
                t.append(str(p[0]), style=p[1])
            else:
                t.append(str(p))
        console.print(t)

    def block(text: str, indent: int, style: str | None = None) -> None:
        for ln in text.splitlines() or [""]:
            line((ln, style) if style else ln, indent=indent)

    def error(e: ErrorText, indent: int) -> None:
        where = e.source + (f"; {e.versions}" if e.versions else "")
        line(("error: ", "bold"), (e.text, "red"), (f"  [{where}]", "dim"), indent=indent)

    for n, item in enumerate(items):
        if n:
            console.print(Text(""))
        if isinstance(item, InputProblem):
            line(("cannot explain: ", "bold red"), item.input)
            line(item.message, indent=2)
            if item.expected:
                line(("expected: ", "bold"), item.expected, indent=2)
            if item.suggestions:
                line(("did you mean: ", "bold"), ", ".join(item.suggestions), indent=2)
            continue
        if isinstance(item, CheckDoc):
            line((item.id, "bold"), "  ", item.title, (f"  [layer {item.layer}; {item.source}]", "dim"))
            line(("What it verifies", "bold underline"))
            block(item.what, 2)
            if item.why:
                line(("Why", "bold underline"))
                block(item.why, 2)
            if item.fix:
                line(("Fix", "bold underline"))
                block(item.fix, 2, "cyan")
            if item.after:
                line(("Runs after: ", "dim"), ", ".join(item.after))
            continue
        ex = item
        label = ex.request.label if ex.request else ex.input
        status = ("OK", "bold green") if ex.exit_code == 0 else ("PROBLEMS", "bold red")
        line(("explain ", "bold"), (label, "bold"), f"  ({KIND_WORDS.get(ex.kind, ex.kind)})  ", status)
        if ex.rejected:
            line(("Rejected before reaching dockerd", "bold underline"))
            error(ex.rejected, 2)
        req = ex.request
        if req is not None and (req.device_requests or req.runtime or req.env):
            line(("What Docker will send", "bold underline"))
            for d in req.device_requests:
                line("DeviceRequest ", (json.dumps(d.to_api(), ensure_ascii=False), "cyan"), indent=2)
            if req.runtime:
                line("HostConfig.Runtime ", (json.dumps(req.runtime), "cyan"), indent=2)
            for k, v in req.env:
                line("Env ", (f"{k}={v}", "cyan"), indent=2)
            if req.privileged:
                line("HostConfig.Privileged ", ("true", "cyan"), indent=2)
        if ex.meaning:
            line(("What it means", "bold underline"))
            for m in ex.meaning:
                line("- ", m, indent=2)
        if ex.selection is not None:
            line(("Which GPUs", "bold underline"))
            line("in general: ", ex.selection.general, indent=2)
            if ex.selection.on_host is not None:
                line("on this host: ", ", ".join(ex.selection.on_host) or "none", indent=2)
            elif ex.host is None:
                line(("(no host facts: explained in general terms)", "dim"), indent=2)
        if ex.pitfalls:
            line((f"Pitfalls ({len(ex.pitfalls)})", "bold underline"))
            for p in ex.pitfalls:
                mark = ("✗ ", "bold red") if p.severity == "fail" else ("! ", "bold yellow")
                line(mark, (p.summary, "bold"), (f"  [{p.id}; failure mode #{p.failure_mode_number} {p.failure_mode}]", "dim"), indent=2)
                if p.subject:
                    line(("in: ", "dim"), p.subject, indent=6)
                if p.detail:
                    block(p.detail, 6)
                for e in p.errors:
                    error(e, 6)
        if ex.requirements:
            line(("What the host must provide", "bold underline"))
            for r in ex.requirements:
                line("- ", r.summary, indent=2)
                for e in r.errors:
                    error(e, 6)
        if ex.corrections:
            title = "Corrected" if ex.exit_code else "The same request in every dialect"
            line((title, "bold underline"))
            for c in ex.corrections:
                line(("→ ", "bold"), (c.meaning, "bold"), indent=2)
                line(("CLI", "bold"), indent=4)
                block(c.cli, 6, "green")
                line(("SDK", "bold"), indent=4)
                block(c.sdk, 6, "green")
                line(("Compose", "bold"), indent=4)
                block(c.compose, 6, "green")
                for note in c.notes:
                    line("note: ", note, indent=4)
    return buf.getvalue()
