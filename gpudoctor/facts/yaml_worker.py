"""YAML, parsed in a child process: `python -m gpudoctor.facts.yaml_worker` (started by facts/yaml_process.py).

Reads one JSON request per line on stdin (`{"text": "..."}`) and answers each with one JSON line on stdout:
`{"doc": ...}`, the document as gpudoctor's bounded loader builds it (facts/bounded.py `load_yaml`, the same limits
on nesting and aliases), or `{"fallback": "<why>"}` where it cannot say it faithfully in JSON (a YAML error, a limit,
a date, a non-string key): the parent then parses that text itself, and meets the same error first hand. Ends at
the end of its input, as when the parent exits."""

from __future__ import annotations

import json
import sys
from typing import Any

from .bounded import load_yaml


def json_faithful(value: Any) -> bool:
    """Whether JSON carries this value back unchanged: str-keyed mappings, lists and JSON scalars only."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(json_faithful(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_faithful(v) for k, v in value.items())
    return False  # a date, bytes, a set: YAML has them, JSON does not


def answer(line: str) -> dict[str, Any]:
    try:
        doc = load_yaml(json.loads(line)["text"])
    except Exception as e:  # yaml.YAMLError, ParseLimit, a malformed request: the parent parses it itself
        return {"fallback": type(e).__name__}
    return {"doc": doc} if json_faithful(doc) else {"fallback": "not JSON"}


def main() -> int:
    import yaml  # noqa: F401  (loaded before the first request: that is what this process is for)

    for line in sys.stdin:
        sys.stdout.write(json.dumps(answer(line)) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
