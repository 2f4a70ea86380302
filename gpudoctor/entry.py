"""The `gpudoctor` console script: start what the run surely needs from the machine, then load and run the CLI.

Loading the CLI (Typer, Click, the checks) takes a good part of a `gpudoctor check --no-probes`; NVML's worker,
which runs in its own process anyway (gpudoctor/facts/nvml_process.py), starts before that load when the command
line says the run will ask NVML, so that the two overlap instead of following each other; so does the worker that
parses this host's CDI specs (gpudoctor/facts/yaml_process.py), where there are some."""

from __future__ import annotations

import os
import sys

# Options after which a run asks no live NVML (a replay) or may not ask it at all (--only/--skip pick the
# checks, and the runner then starts only what those need: gpudoctor/runner.py `_start_early`).
_NO_EARLY_NVML = ("--replay", "--only", "--skip", "-h", "--help")


def default_to_check(argv: list[str]) -> list[str]:
    """`gpudoctor [check options]` is `gpudoctor check [check options]`."""
    if not argv:
        return ["check"]
    first = argv[0]
    if first.startswith("-") and first not in ("-h", "--help", "--version", "--install-completion", "--show-completion"):
        return ["check", *argv]
    return argv


def asks_nvml_early(argv: list[str]) -> bool:
    """Whether this command line (after `default_to_check`) is a live `check` or `facts` of every fact."""
    if not argv or argv[0] not in ("check", "facts") or "_GPUDOCTOR_COMPLETE" in os.environ:
        return False
    return not any(arg.split("=", 1)[0] in _NO_EARLY_NVML for arg in argv[1:])


def judges_this_host(argv: list[str]) -> bool:
    """Whether this command line (after `default_to_check`) reads this host's own files (no --root tree): the
    YAML worker is started for the CDI specs in its default dirs (gpudoctor/facts/yaml_process.py)."""
    return (asks_nvml_early(argv) and not any(arg.split("=", 1)[0] == "--root" for arg in argv[1:])
            and os.environ.get("GPUDOCTOR_ROOT", "/") in ("", "/"))


def main() -> None:
    argv = default_to_check(sys.argv[1:])
    if asks_nvml_early(argv):
        from .facts import nvml_process

        nvml_process.start_early()
    if judges_this_host(argv):
        from .facts import yaml_process

        yaml_process.start_early()
    from .cli import main as cli_main

    cli_main()
