"""Where plugin checks come from: the `gpudoctor.checks` entry-point group, read without importlib.metadata's scan.

`importlib.metadata.entry_points(group=…)` reads every installed distribution's METADATA to tell one project from
another before it filters by group: on the GPU machine's Python (about 200 distributions in a PyTorch venv) that took
0.19–0.29 s, the largest single cost of `gpudoctor check --no-probes` (issue 12). GPU hosts are exactly the ones with
big environments. This reads what the group needs: each `*.dist-info`/`*.egg-info` directory's `entry_points.txt` on
sys.path, the first distribution of a (normalized) name winning, as importlib.metadata's `unique_everseen` does
(https://docs.python.org/3/library/importlib.metadata.html#entry-points; the file format:
https://packaging.python.org/en/latest/specifications/entry-points/#file-format).
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

_META_SUFFIXES = (".dist-info", ".egg-info")


def _project(dir_name: str) -> str:
    """`nvidia_ml_py-13.580.dist-info` → `nvidia-ml-py` (PEP 503 normalization of the name part)."""
    stem = dir_name.rsplit(".", 1)[0]
    return re.sub(r"[-_.]+", "-", stem.split("-", 1)[0]).lower()


def entry_points(group: str, path: list[str] | None = None) -> list[EntryPoint]:
    """The entry points of `group` declared by the distributions on `path` (default sys.path)."""
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in sys.path if path is None else path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # a zip, a missing directory
            continue
        for name in names:
            if not name.endswith(_META_SUFFIXES):
                continue
            project = _project(name)
            if project in seen:
                continue
            seen.add(project)
            try:
                with open(os.path.join(entry or ".", name, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:  # no entry points, or an egg-info file rather than a directory
                continue
            if group not in text:
                continue
            # Only a distribution that names the group costs these imports (importlib.metadata brings email:
            # 14 ms on the GPU machine, for a class most runs never make).
            import configparser
            from importlib.metadata import EntryPoint

            parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
            parser.optionxform = str  # type: ignore[assignment,method-assign]  # entry point names keep their case
            try:
                parser.read_string(text)
            except configparser.Error:
                continue  # importlib.metadata would fail the same file; a broken plugin must not break the tool
            if parser.has_section(group):
                found.extend(EntryPoint(name, value.strip(), group) for name, value in parser.items(group))
    return found
