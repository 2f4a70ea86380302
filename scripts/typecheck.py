#!/usr/bin/env python3
"""mypy with pyproject's [tool.mypy], where checks/ is the package gpudoctor.checks (as setuptools installs it).

mypy names a file by where it lies (checks/x.py would be `checks.x`) and cannot follow the editable install's
import hook, so this renames those sources and runs the same build as the `mypy` command:
    .venv/bin/python scripts/typecheck.py [mypy arguments]
It uses mypy.main's process_options and run_build, which are not a public API: the test extra pins mypy.
"""

from __future__ import annotations

import os
import sys
import time

from mypy import util
from mypy.fscache import FileSystemCache
from mypy.main import process_options, run_build
from mypy.modulefinder import BuildSource

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    t0 = time.time()
    fscache = FileSystemCache()
    sources, options = process_options(argv, fscache=fscache)
    for source in sources:
        if source.module == "checks" or source.module.startswith("checks."):
            source.module = "gpudoctor." + source.module
    # Nothing else finds gpudoctor.checks' modules: where files were named, check the package along with them.
    named = {os.path.abspath(s.path) for s in sources if s.path}
    for name in sorted(os.listdir("checks")):
        path = os.path.join("checks", name)
        if name.endswith(".py") and os.path.abspath(path) not in named:
            module = "gpudoctor.checks" + ("" if name == "__init__.py" else "." + name[:-3])
            sources.append(BuildSource(path, module, base_dir=ROOT))
    _, messages, blockers = run_build(sources, options, fscache, t0, sys.stdout, sys.stderr)
    n_errors, n_notes, n_files = util.count_stats(messages)
    formatter = util.FancyFormatter(sys.stdout, sys.stderr, options.hide_error_codes)
    if n_errors:
        print(formatter.format_error(n_errors, n_files, len(sources), blockers=blockers, use_color=options.color_output))
    elif not messages or n_notes == len(messages):
        print(formatter.format_success(len(sources), options.color_output))
    return (2 if blockers else 1) if messages and n_notes < len(messages) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
