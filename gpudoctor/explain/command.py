"""`gpudoctor explain`: the function the Typer command calls (gpudoctor/cli.py, owned by the lead).

    explain_command(inputs, *, kind, fmt, output, replay, root, use_host, no_color) -> exit code
    0 = explained, no pitfall; 1 = pitfalls found / the request would fail; 2 = bad input.

This module does the little I/O explain needs (reading a Compose/Python file named on the command
line, NVML facts through the host interface, writing --output); the parsers and the analysis are
pure.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

EXIT_OK, EXIT_PITFALLS, EXIT_BAD_INPUT = 0, 1, 2
# A Compose file or a Python snippet is a few KiB; bigger inputs are refused, not parsed.
INPUT_FILE_LIMIT = 4 << 20
_FILE_SUFFIXES = (".yml", ".yaml", ".py", ".json")


def explain_command(
    inputs: list[str],
    *,
    kind: str | None,
    fmt: str,
    output: str | None,
    replay: str | None,
    root: str,
    use_host: bool,
    no_color: bool,
    run: bool = False,
    image: str | None = None,
    command: Sequence[str] | None = None,
    timeout_s: float = 60.0,
) -> int:
    from .model import ExplainInputError
    from .render import InputProblem, to_json, to_text

    items: list[Any] = []
    host_state: dict[str, Any] = {}

    def host_view() -> Any:
        if "view" not in host_state:
            host_state["view"] = _load_host_view(replay=replay, root=root, use_host=use_host)
        return host_state["view"]

    fmt = (fmt or "text").lower()
    if fmt not in ("text", "json"):
        items.append(InputProblem(fmt, None, f"unknown --format {fmt!r}", "text or json"))
    elif not inputs:
        items.append(InputProblem("", kind, "nothing to explain", "a --gpus value, a docker run command line, a Docker SDK snippet, a Compose file, an NVIDIA_VISIBLE_DEVICES value or a check id"))
    else:
        try:
            forced = _normalize_kind(kind)
        except ExplainInputError as e:
            items.append(InputProblem(kind or "", kind, e.message, e.expected))
        else:
            for text, argv, k in _split_inputs(inputs, forced):
                items.extend(explain_one(text, kind=k, argv=argv, host_view=host_view))

    code = max((_exit(i) for i in items), default=EXIT_BAD_INPUT)
    runs: list[Any] = []
    if run and code != EXIT_BAD_INPUT:
        runs = _run_all(items, root, image=image, command=command, timeout_s=timeout_s)
        code = max([code, *(r.exit_code for r in runs)]) if runs else code
    if fmt == "json":
        rendered = to_json(items, code)
        if run:
            import json

            data = json.loads(rendered)
            data["runs"] = [r.to_dict() for r in runs]
            rendered = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        # The CLI decides about colour (NO_COLOR, a TTY, --output); a file never gets escape codes.
        rendered = to_text(items, color=not no_color and output is None)
        if run:
            from .run import render_text

            rendered += "\n" + (render_text(runs) if runs else
                                "run: nothing to run (no GPU request was read, or no Docker daemon answers)\n")
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(rendered)
    else:
        sys.stdout.write(rendered)
        sys.stdout.flush()
    return code


def _run_all(items: Sequence[Any], root: str, *, image: str | None, command: Sequence[str] | None,
             timeout_s: float) -> list[Any]:
    """`--run`: each explained request reproduced on this host's daemon (explain/run.py)."""
    from ..facts.host import LiveHost
    from ..facts.registry import gather
    from ..gpu_requests.request import host_gpus
    from ..gpu_requests.stack import stack_from_facts
    from .model import Explanation
    from .run import RunPlan, RunResult, run

    explained = [i.request for i in items if isinstance(i, Explanation) and i.request is not None]
    if not explained:
        return []
    v = gather(LiveHost(root), ["nvml", "docker", "dockerd_process", "toolkit", "cdi"]).values
    stack = stack_from_facts(v.get("docker"), v.get("dockerd_process"), v.get("toolkit"), v.get("cdi"))
    gpus = host_gpus(v.get("nvml"))  # () on a host without NVML: every GPU the request names is then missing
    if stack.engine is None:
        return [RunResult(e.label, image or "", RunPlan(None), None, None,
                          problem="no Docker daemon answers on this host: nothing can be run")
                for e in explained]
    chosen, env, why = _probe_image(image, root)
    if why:
        return [RunResult(e.label, chosen, RunPlan(None), None, None, problem=why) for e in explained]
    return [run(e, gpus=gpus, stack=stack, image=chosen, image_env=env, command=command,
                timeout_s=timeout_s) for e in explained]


def _probe_image(image: str | None, root: str = "/") -> tuple[str, dict[str, str], str | None]:
    """The image to run in, its ENV, and why there is none: the user's (--image), else a CUDA base image already
    on the daemon, else gpudoctor's own (probes/image.py, made from this host's files); never pulled."""
    from ..gpu_requests.request import env_mapping
    from ..probes import image as host_image
    from ..probes import runner
    from ..probes.cuda_images import REPOSITORY, present_fit

    if not image:
        try:
            image = present_fit(None, runner.local_images(REPOSITORY))
            if image is None:
                made = host_image.ensure_host_image(root)
                if not made.get("present"):
                    return "", {}, f"no image to run in ({made.get('error')}): pass --image IMAGE"
                image = str(made["image"])
        except Exception as e:
            return "", {}, f"cannot list the daemon's images: {e}"
    try:
        info = runner.ensure_image(image, False)
    except Exception as e:
        return image, {}, f"cannot inspect {image}: {e}"
    if not info.get("present"):
        return image, {}, f"the image {image} is not on this host (explain --run never pulls): pass --image IMAGE"
    return image, env_mapping(info.get("env")), None


def _normalize_kind(kind: str | None) -> str | None:
    from .detect import normalize_kind

    return normalize_kind(kind)


def _exit(item: Any) -> int:
    from .checkinfo import CheckDoc
    from .render import InputProblem

    if isinstance(item, InputProblem):
        return EXIT_BAD_INPUT
    if isinstance(item, CheckDoc):
        return EXIT_OK
    return item.exit_code


def _split_inputs(inputs: Sequence[str], forced: str | None) -> list[tuple[str, list[str] | None, str | None]]:
    """Several words that form one command line (the shell already split it) stay together."""
    from .cmdline import looks_like_cmdline

    if len(inputs) > 1 and (forced == "cmdline" or (forced is None and looks_like_cmdline(list(inputs)))):
        return [(" ".join(inputs), list(inputs), "cmdline")]
    return [(text, None, forced) for text in inputs]


def explain_one(text: str, *, kind: str | None, argv: list[str] | None = None, host_view: Any = lambda: None) -> list[Any]:
    """One input → explanations (a Compose file gives one per GPU service) or one InputProblem."""
    from .analysis import analyze
    from .detect import detect_kind
    from .model import ExplainInputError
    from .render import InputProblem

    may_be_file = kind not in ("gpus", "env", "check", "cmdline") and argv is None
    is_file = may_be_file and _is_file(text)
    k = kind or detect_kind(text, is_file=is_file)
    try:
        if may_be_file and not is_file:
            _refuse_odd_file(text)
        if k == "check":
            if kind is None and text.strip().endswith(_FILE_SUFFIXES) and not _known_check(text.strip()):
                raise ExplainInputError(f"{text}: no such file (and no check has this id)",
                                        "a Compose or Python file that exists, or a check id from `gpudoctor list`")
            return [_explain_check(text)]
        source = text
        body = text
        if is_file and k in ("compose", "sdk"):
            body = _read_input_file(text)
        requests = _parse(k, body, argv=argv, source=source)
        view = host_view()
        return [analyze(r, view, text) for r in requests]
    except ExplainInputError as e:
        return [InputProblem(text, k, e.message, e.expected)]
    except (RecursionError, MemoryError):
        # Python's own parser gives up on deeply nested code with these (CPython raises MemoryError
        # for "too complex" source): the input is too deep to explain, not a gpudoctor failure.
        return [InputProblem(_short(text), k, "the input is nested too deeply to explain", "a Compose file, a Docker SDK call or a docker command line of ordinary depth")]


def _short(text: str) -> str:
    return text if len(text) <= 200 else text[:200] + f"... ({len(text)} characters)"


def _read_input_file(path: str) -> str:
    """A Compose or Python file named on the command line: a regular file, at most INPUT_FILE_LIMIT, UTF-8."""
    from ..facts.bounded import read_regular
    from .model import ExplainInputError

    expected = "a readable Compose YAML or Python file"
    try:
        return read_regular(path, INPUT_FILE_LIMIT).decode("utf-8")
    except OSError as e:
        raise ExplainInputError(f"cannot read {path}: {e.strerror or e}", expected) from None
    except UnicodeDecodeError as e:
        raise ExplainInputError(f"cannot read {path}: not UTF-8 text ({e.reason} at byte {e.start})", expected) from None


def _refuse_odd_file(text: str) -> None:
    """A FIFO, directory or device named like an input file (`pipe.yaml`) is bad input, never read."""
    from ..facts.bounded import not_regular
    from .model import ExplainInputError

    if "\n" in text or len(text) > 4096 or not text.endswith(_FILE_SUFFIXES):
        return
    try:
        what = not_regular(os.stat(text).st_mode)
    except (OSError, ValueError):
        return
    if what:
        raise ExplainInputError(f"{text} is {what}, not a regular file", "a readable Compose YAML or Python file")


def _is_file(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    try:
        return os.path.isfile(text)
    except (OSError, ValueError):
        return False


def _parse(k: str, body: str, *, argv: list[str] | None, source: str) -> list[Any]:
    from .model import GpuRequest

    if k == "gpus":
        from .gpus_flag import parse_gpus_value

        value = body
        for prefix in ("--gpus=", "--gpus "):
            if value.startswith(prefix):
                value = value[len(prefix):]
        p = parse_gpus_value(value)
        return [GpuRequest(kind="gpus", label=f"--gpus {value}", device_requests=(p.request,) if p.request else (),
                           hints={"gpus_values": (value,), "gpus_parses": (p,)})]
    if k == "cmdline":
        from .cmdline import parse_cmdline

        return parse_cmdline(text=None if argv is not None else body, argv=argv)
    if k == "sdk":
        from .sdk import parse_sdk

        return [parse_sdk(body)]
    if k == "compose":
        from .compose import parse_compose

        found = parse_compose(body, source=source if source != body else "<inline>")
        gpu = [r for r in found if r.hints.get("has_gpu_keys") or r.runtime or r.env_value("NVIDIA_VISIBLE_DEVICES") is not None]
        return gpu or found[:1]
    if k == "env":
        from .visible_devices import ENV_NAME, strip_env_prefix

        value = strip_env_prefix(body)
        return [GpuRequest(kind="env", label=f"{ENV_NAME}={value}", env=((ENV_NAME, value),), hints={"standalone": True})]
    from .model import ExplainInputError

    raise ExplainInputError(f"cannot explain kind {k!r}")


def _known_check(check_id: str) -> bool:
    try:
        from ..engine import all_checks

        return any(c.id == check_id for c in all_checks())
    except Exception:
        return False


def _explain_check(text: str) -> Any:
    from .checkinfo import describe, suggestions
    from .render import InputProblem

    wanted = text.strip()
    try:
        from ..engine import all_checks

        checks = all_checks()
    except Exception as e:  # a half-written check module must not crash explain
        return InputProblem(wanted, "check", f"could not load the checks: {type(e).__name__}: {e}")
    for c in checks:
        if c.id == wanted:
            return describe(c.info)
    known = [c.id for c in checks]
    return InputProblem(wanted, "check", f"no check with id {wanted!r} ({len(known)} checks known)", "a check id from `gpudoctor list`", tuple(suggestions(wanted, known)))


def _load_host_view(*, replay: str | None, root: str, use_host: bool) -> Any:
    """This host's GPUs from the `nvml` fact (live or from a bundle); None = general terms."""
    if not replay and not use_host:
        return None
    from ..facts.registry import gather
    from .analysis import host_view_from_nvml

    try:
        if replay:
            from ..facts.host import ReplayHost

            host: Any = ReplayHost.load(replay)
        else:
            from ..facts.host import LiveHost

            host = LiveHost(root)
        facts = gather(host, ["nvml", "docker", "dockerd_process", "toolkit", "cdi"])
    except Exception:  # an unreadable bundle or a broken host: explain in general terms
        return None
    v = facts.values
    return host_view_from_nvml(v.get("nvml"), v.get("docker"), v.get("dockerd_process"), v.get("toolkit"), v.get("cdi"))
