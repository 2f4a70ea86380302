"""A whole `docker run …` / `docker create …` command line → the GPU parts of the request.

Shell quoting is undone with `shlex` (POSIX rules, like sh/bash would) unless the caller already
has the argv (the user's own shell split it). Then the run/create flags are walked the way the
docker CLI (pflag, interspersed=false) does: flags until the image, the rest is the command.
Only GPU-relevant flags are interpreted: --gpus (repeatable), --runtime, -e/--env, --env-file,
--device (CDI names and /dev/nvidia* nodes), --privileged. Pure: nothing is executed.

Hints set for the analysis:
  gpus_values: the raw --gpus values, in order; gpus_parses: their GpusParse objects;
  cdi_devices: CDI names given with --device; raw_nvidia_devices: /dev/nvidia* paths;
  env_files: --env-file paths (contents unknown); wrapper: "nvidia-docker" when used;
  subcommand: run | create.
"""

from __future__ import annotations

import re
import shlex
from typing import Sequence

from .gpus_flag import GpusParse, parse_gpus_value
from .model import DeviceRequest, ExplainInputError, GpuRequest

EXPECTED = "a `docker run …` / `docker create …` command line, or its flags (e.g. `--gpus all --runtime=nvidia`)"

# Boolean flags of `docker run`/`docker create` (docker/cli cli/command/container/opts.go, run.go).
BOOL_LONG = {
    "detach", "disable-content-trust", "help", "init", "interactive", "no-healthcheck", "oom-kill-disable",
    "privileged", "publish-all", "quiet", "read-only", "rm", "sig-proxy", "tty", "use-api-socket",
}
BOOL_SHORT = set("diPqt")
# Global `docker` flags that take a value (docker/cli cli/flags/options.go).
GLOBAL_VALUE = {"-H", "--host", "-c", "--context", "--config", "-l", "--log-level", "--tlscacert", "--tlscert", "--tlskey"}
SEPARATORS = {"&&", "||", ";", "|", "&", ";;", "(", ")", "|&"}
DOCKER_NAMES = {"docker", "docker.exe", "nvidia-docker", "com.docker.cli"}
# CDI qualified device name: vendor/class=name (tags.cncf.io/container-device-interface parser.IsQualifiedName).
CDI_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z][A-Za-z0-9_.-]*=[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def shell_split(text: str) -> list[str]:
    """POSIX shell word splitting, with ; && | & as separate tokens. Raises ExplainInputError."""
    # A backslash-newline is a line continuation in sh: it vanishes.
    text = re.sub(r"\\\r?\n", "", text)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError as e:  # "No closing quotation" / "No escaped character"
        raise ExplainInputError(f"cannot split the command line like a shell would: {e}", EXPECTED) from None


def looks_like_cmdline(tokens: Sequence[str]) -> bool:
    for tok in tokens:
        base = tok.rsplit("/", 1)[-1]
        if base in DOCKER_NAMES or base == "sudo":
            return True
        if "=" in tok and not tok.startswith("-") and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tok):
            continue  # VAR=value prefix
        break
    return bool(tokens) and tokens[0].startswith("--")


def _commands(tokens: Sequence[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for tok in tokens:
        if tok in SEPARATORS:
            out.append([])
        else:
            out[-1].append(tok)
    return [c for c in out if c]


def _docker_args(cmd: list[str]) -> tuple[str, str, list[str]] | None:
    """(wrapper, subcommand, args after it) when `cmd` runs docker run/create; None otherwise."""
    i = 0
    while i < len(cmd) and cmd[i].rsplit("/", 1)[-1] not in DOCKER_NAMES:
        i += 1
    if i == len(cmd):
        return None
    wrapper = cmd[i].rsplit("/", 1)[-1]
    i += 1
    while i < len(cmd) and cmd[i].startswith("-"):
        flag = cmd[i].split("=", 1)[0]
        i += 2 if (flag in GLOBAL_VALUE and "=" not in cmd[i]) else 1
    if i < len(cmd) and cmd[i] == "container":
        i += 1
    if i < len(cmd) and cmd[i] in ("run", "create"):
        return wrapper, cmd[i], cmd[i + 1 :]
    return None


def parse_cmdline(text: str | None = None, argv: Sequence[str] | None = None, label: str | None = None) -> list[GpuRequest]:
    """Every `docker run/create` in the text (or argv) → one GpuRequest each."""
    tokens = list(argv) if argv is not None else shell_split(text or "")
    if not tokens:
        raise ExplainInputError("the command line is empty", EXPECTED)
    found: list[GpuRequest] = []
    for cmd in _commands(tokens):
        got = _docker_args(cmd)
        if got is None:
            continue
        wrapper, sub, args = got
        found.append(parse_run_args(args, subcommand=sub, wrapper=wrapper, label=label or " ".join(cmd)))
    if not found and tokens[0].startswith("-"):
        found.append(parse_run_args(tokens, subcommand="run", wrapper="docker", label=label or " ".join(tokens)))
    if not found:
        first = tokens[0].rsplit("/", 1)[-1]
        if first == "podman":
            raise ExplainInputError("podman command lines are not handled (podman maps --gpus to CDI itself)", EXPECTED)
        raise ExplainInputError(f"no `docker run` or `docker create` found in {' '.join(tokens)[:80]!r}", EXPECTED)
    return found


def parse_run_args(args: Sequence[str], *, subcommand: str = "run", wrapper: str = "docker", label: str = "") -> GpuRequest:
    gpus_values: list[str] = []
    runtime: str | None = None
    env: list[tuple[str, str]] = []
    env_from_caller: list[str] = []
    env_files: list[str] = []
    devices: list[str] = []
    privileged = False
    image: str | None = None
    unknown_missing: list[str] = []
    ignored: list[str] = []  # options that are not about devices or the runtime (explain --run leaves them out)

    def take(flag: str, inline: str | None, i: int) -> tuple[str | None, int]:
        if inline is not None:
            return inline, i + 1
        if i + 1 < len(args):
            return args[i + 1], i + 2
        unknown_missing.append(flag)
        return None, i + 1

    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            image = args[i + 1] if i + 1 < len(args) else None
            break
        if a.startswith("--"):
            name, eq, inline = a[2:].partition("=")
            value_inline = inline if eq else None
            if name in BOOL_LONG:
                if name == "privileged":
                    privileged = (value_inline or "true").lower() not in ("false", "0")
                else:
                    ignored.append(a)
                i += 1
                continue
            value, i = take(a, value_inline, i)
            if value is None:
                continue
            if name == "gpus":
                gpus_values.append(value)
            elif name == "runtime":
                runtime = value
            elif name == "env":
                _add_env(value, env, env_from_caller)
            elif name == "env-file":
                env_files.append(value)
            elif name == "device":
                devices.append(value)
            else:
                ignored.append(f"--{name} {value}")
            continue
        if a.startswith("-") and len(a) > 1:
            j = 1
            consumed = False
            while j < len(a):
                ch = a[j]
                if ch in BOOL_SHORT:
                    ignored.append(f"-{ch}")
                    j += 1
                    continue
                rest = a[j + 1 :]
                if rest.startswith("="):
                    rest = rest[1:]
                value, i = take(f"-{ch}", rest if rest else None, i)
                consumed = True
                if value is not None and ch == "e":
                    _add_env(value, env, env_from_caller)
                elif value is not None:
                    ignored.append(f"-{ch} {value}")
                break
            if not consumed:
                i += 1
            continue
        image = a
        if args[i + 1:]:
            ignored.append("the container's command: " + " ".join(args[i + 1:]))
        break

    parses: list[GpusParse] = [parse_gpus_value(v) for v in gpus_values]
    requests = [p.request for p in parses if p.request is not None]
    cdi = [d for d in devices if CDI_NAME.match(d)]
    if cdi:
        # docker/cli >= 25.0 turns all CDI names into one DeviceRequest{Driver:"cdi"} (commit dad225d1e2).
        requests.append(DeviceRequest(driver="cdi", count=0, device_ids=tuple(cdi), capabilities=None, options=None, origin="--device " + " --device ".join(cdi)))
    raw_nodes = [d.split(":", 1)[0] for d in devices if not CDI_NAME.match(d) and d.startswith("/dev/nvidia")]
    if wrapper == "nvidia-docker" and runtime is None:
        runtime = "nvidia"  # nvidia-docker (v2) is a wrapper that adds --runtime=nvidia to run/create
    return GpuRequest(
        kind="cmdline",
        label=label or f"docker {subcommand}",
        device_requests=tuple(requests),
        runtime=runtime,
        env=tuple(env),
        privileged=privileged,
        image=image,
        hints={
            "gpus_values": tuple(gpus_values),
            "gpus_parses": tuple(parses),
            "cdi_devices": tuple(cdi),
            "raw_nvidia_devices": tuple(raw_nodes),
            "env_files": tuple(env_files),
            "env_from_caller": tuple(env_from_caller),
            "wrapper": wrapper,
            "subcommand": subcommand,
            "missing_values": tuple(unknown_missing),
            "ignored_options": tuple(ignored) + tuple(
                f"--device {d} (raw device nodes are not reproduced; request GPUs with --gpus or CDI names)"
                for d in devices if not CDI_NAME.match(d)),
        },
    )


def _add_env(value: str, env: list[tuple[str, str]], from_caller: list[str]) -> None:
    name, eq, val = value.partition("=")
    if eq:
        env.append((name, val))
    else:
        from_caller.append(name)  # `-e NAME`: the value comes from the caller's environment
