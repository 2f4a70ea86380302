"""`gpudoctor explain <check-id>`: what a check verifies, why, and its fix — from its docstring.

Docstrings are written as: first paragraph = what it verifies; a paragraph starting "Why:"; a
paragraph starting "Fix:" (the project convention for check docstrings). Unknown ids get "did you mean".
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Sequence

from ..frozen import frozen


@frozen
class CheckDoc:
    id: str
    title: str
    layer: str
    what: str
    why: str
    fix: str
    needs: tuple[str, ...]
    after: tuple[str, ...]
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "check", "id": self.id, "title": self.title, "layer": self.layer, "what": self.what, "why": self.why,
                "fix": self.fix, "needs": list(self.needs), "after": list(self.after), "source": self.source}


def split_doc(doc: str) -> tuple[str, str, str]:
    """(what, why, fix) from a "what / Why: / Fix:" docstring; missing parts are ""."""
    text = (doc or "").strip()
    parts = re.split(r"(?m)^\s*(Why|Fix):\s*", text)
    what = parts[0].strip()
    found = {"Why": "", "Fix": ""}
    for label, body in zip(parts[1::2], parts[2::2]):
        found[label] = (found[label] + "\n" + body.strip()).strip()
    return _unindent(what), _unindent(found["Why"]), _unindent(found["Fix"])


def _unindent(s: str) -> str:
    return "\n".join(line.strip() for line in s.splitlines()).strip()


def describe(info: Any) -> CheckDoc:
    what, why, fix = split_doc(info.doc)
    layer = getattr(info.layer, "value", str(info.layer))
    return CheckDoc(info.id, info.title, layer, what or info.title, why, fix, tuple(info.needs), tuple(info.after), info.source)


def suggestions(wanted: str, known: Sequence[str], n: int = 3) -> list[str]:
    close = difflib.get_close_matches(wanted, known, n=n, cutoff=0.6)
    prefix = [k for k in known if k.startswith(wanted.rstrip(".") + ".") or wanted.startswith(k)]
    tail = wanted.rsplit(".", 1)[-1]
    same_tail = [k for k in known if k.rsplit(".", 1)[-1] == tail]
    return list(dict.fromkeys(close + prefix + same_tail))[:n]
