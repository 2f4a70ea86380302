"""A Docker SDK for Python (docker-py) snippet → the request it sends. Parsed with `ast`, never run.

Understood calls (the last attribute name counts, so `docker.types.DeviceRequest`, `DeviceRequest`,
`client.containers.run` and `cli.containers.run` all work):
  DeviceRequest(...)                          docker/types/containers.py (4.3.0+)
  <x>.containers.run/create(image, ...)       docker/models/containers.py: runtime and
                                              device_requests go into HostConfig
  <x>.create_container(image, ..., runtime=, host_config=...)   low-level APIClient
  <x>.create_host_config(...) / HostConfig(...)
Simple assignments (`req = DeviceRequest(...)`) are followed; anything else that is not a literal
(`count=n_gpus`, `device_ids=os.environ["GPUS"]`) is decided at run time: the field is named in
`DeviceRequest.unknown` (docker-py's default stands in for its value, never judged), an unknown
`device_requests` list or entry becomes a request whose every field is unknown, and an unknown
runtime or environment value is left out rather than guessed.

docker-py behaviour reproduced (docker-gpu-internals.md §5.1–5.2, checked against docker-py 7.1.0):
DeviceRequest always sends all five keys with defaults Driver "", Count 0, DeviceIDs [],
Capabilities [], Options {}; it reads snake_case or CamelCase keys and silently ignores any other
keyword; type checks raise ValueError("DeviceRequest.<field> must be a ..."); dict entries of
device_requests go through DeviceRequest(**d); a non-list device_requests raises TypeError;
containers.run/create reject unknown keywords with TypeError("run() got an unexpected keyword
argument '<name>'").

Hints: sdk_call, toplevel_runtime (create_container(runtime=...)), client_error (ErrorText the SDK
raises before anything is sent), ignored_kwargs ((origin, name) pairs), unknown (names of values
that are not literals).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from ..frozen import frozen
from .model import DeviceRequest, ErrorText, ExplainInputError, GpuRequest

EXPECTED = (
    "a Docker SDK call such as `docker.types.DeviceRequest(count=-1, capabilities=[[\"gpu\"]])` or "
    "`client.containers.run(\"IMAGE\", device_requests=[...])`"
)
CONTAINER_CALLS = {"run", "create"}
LOWLEVEL_CREATE = "create_container"
HOSTCONFIG_CALLS = {"create_host_config", "HostConfig"}
DR_FIELDS = {
    "driver": "driver", "Driver": "driver", "count": "count", "Count": "count",
    "device_ids": "device_ids", "DeviceIDs": "device_ids", "capabilities": "capabilities",
    "Capabilities": "capabilities", "options": "options", "Options": "options",
}
_DR_TYPES = {"driver": (str, "a string"), "count": (int, "an integer"), "device_ids": (list, "a list"), "capabilities": (list, "a list"), "options": (dict, "a dict")}
SOURCE_SHOWN = 120  # characters of a snippet's source quoted in messages
SPLAT = "**"  # the kwargs key standing for `**name` whose contents are not literal
# Line ends as Python's tokenizer counts them (\n, \r\n, \r), for ast's line numbers.
_LINE_END = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


@frozen
class Unknown:
    """A value that is not a literal in the snippet (a variable, a call)."""

    source: str

    def __repr__(self) -> str:
        return f"<{self.source}>"


@frozen
class _HostConfigCall:
    kwargs: dict[str, Any]
    source: str


def _has_unknown(value: Any) -> bool:
    if isinstance(value, Unknown):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_unknown(v) for v in value)
    if isinstance(value, dict):
        return any(_has_unknown(k) or _has_unknown(v) for k, v in value.items())
    return False


def parse_python(text: str) -> ast.Module:
    """ast.parse, every refusal an ExplainInputError (CPython raises MemoryError or RecursionError on
    source nested too deeply, and ValueError on a NUL byte before 3.12)."""
    try:
        return ast.parse(text, mode="exec")
    except SyntaxError as e:
        where = f" (line {e.lineno}, column {e.offset})" if e.lineno else ""
        raise ExplainInputError(f"not valid Python: {e.msg}{where}", EXPECTED) from None
    except (MemoryError, RecursionError):
        raise ExplainInputError("this Python is nested too deeply to parse", EXPECTED) from None
    except ValueError as e:
        raise ExplainInputError(f"not valid Python: {e}", EXPECTED) from None


class _Snippet:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tree = parse_python(text)
        self._lines = _LINE_END.split(text)
        self._encoded: dict[int, bytes] = {}
        self.names: dict[str, ast.AST] = {}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.names[node.targets[0].id] = node.value
        self.client_errors: list[ErrorText] = []
        self.ignored: list[tuple[str, str]] = []
        self.unknown: list[str] = []

    def _line(self, i: int) -> bytes:
        if i not in self._encoded:
            self._encoded[i] = self._lines[i].encode("utf-8") if 0 <= i < len(self._lines) else b""
        return self._encoded[i]

    def src(self, node: ast.AST) -> str:
        """The node's source, at most SOURCE_SHOWN characters: in time independent of the snippet's
        size (ast.get_source_segment re-splits the whole text on every call: quadratic on a long line)."""
        try:
            first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1  # type: ignore[attr-defined]
            col, end_col = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]  # UTF-8 byte offsets
        except AttributeError:
            return type(node).__name__
        budget = 4 * SOURCE_SHOWN  # bytes: enough for SOURCE_SHOWN characters of any UTF-8
        pieces: list[bytes] = []
        for i in range(first, last + 1):
            line = self._line(i)
            start = col if i == first else 0
            stop = end_col if (i == last and end_col is not None) else len(line)
            pieces.append(line[start:min(stop, start + budget)])
            budget -= len(pieces[-1])
            if budget <= 0:
                break
        text = b"".join(pieces).decode("utf-8", "replace")
        return text if len(text) <= SOURCE_SHOWN else text[: SOURCE_SHOWN - 3] + "..."

    def value(self, node: ast.AST, depth: int = 0) -> Any:
        if depth > 20:
            return Unknown(self.src(node))
        if isinstance(node, ast.Name) and node.id in self.names:
            return self.value(self.names[node.id], depth + 1)
        if isinstance(node, ast.Call) and call_name(node) == "DeviceRequest":
            return self.device_request(node)
        if isinstance(node, ast.Call) and call_name(node) in HOSTCONFIG_CALLS:
            return _HostConfigCall(self.kwargs(node), self.src(node))
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.value(e, depth + 1) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
            try:
                return {self.value(k, depth + 1): self.value(v, depth + 1) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
            except TypeError:  # an unhashable key ({[1]: 2}): Python itself would refuse it at run time
                self.unknown.append(self.src(node))
                return Unknown(self.src(node))
        try:
            if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
                raise ValueError("not a literal")  # never one: skip literal_eval's own walk
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            self.unknown.append(self.src(node))
            return Unknown(self.src(node))

    def kwargs(self, call: ast.Call) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kw in call.keywords:
            if kw.arg is None:  # **something
                v = self.value(kw.value)
                if isinstance(v, dict):
                    out.update({str(k): x for k, x in v.items()})
                else:
                    self.unknown.append("**" + self.src(kw.value))
                    out[SPLAT] = Unknown("**" + self.src(kw.value))  # may set any keyword: see device_request_from
                continue
            out[kw.arg] = self.value(kw.value)
        return out

    def device_request(self, call: ast.Call) -> DeviceRequest:
        return self.device_request_from(self.kwargs(call), origin=self.src(call))

    def device_request_from(self, kw: dict[str, Any], origin: str) -> DeviceRequest:
        fields: dict[str, Any] = {}
        for k, v in kw.items():
            if k == SPLAT:
                continue
            f = DR_FIELDS.get(k)
            if f is None:
                self.ignored.append((origin, k))
                continue
            # docker-py: kwargs.get('count', kwargs.get('Count')): the snake_case key wins.
            if f in fields and k[0].isupper():
                continue
            fields[f] = v
        if SPLAT in kw:  # DeviceRequest(**kw) with kw unknown: every field not spelled out may come from it
            fields.update({f: kw[SPLAT] for f in _DR_TYPES if f not in fields})
        # A field computed at run time is named, never judged; docker-py's default stands in for it.
        unknown = tuple(f for f, v in fields.items() if _has_unknown(v))
        for f in unknown:
            fields[f] = None
        for f, (typ, word) in _DR_TYPES.items():
            v = fields.get(f)
            if v is None:
                continue
            if not isinstance(v, typ):
                self.client_errors.append(
                    ErrorText(f"ValueError: DeviceRequest.{f} must be {word}", "docker-py (raised before anything is sent)")
                )
        def tup(v: Any) -> Any:
            if isinstance(v, list):
                return tuple(tup(x) for x in v)
            return v

        return DeviceRequest(
            driver=fields.get("driver") if fields.get("driver") is not None else "",
            count=fields.get("count") if fields.get("count") is not None else 0,
            device_ids=tup(fields.get("device_ids")) if fields.get("device_ids") is not None else (),
            capabilities=tup(fields.get("capabilities")) if fields.get("capabilities") is not None else (),
            options=fields.get("options") if fields.get("options") is not None else {},
            unknown=unknown,
            origin=origin,
        )

    def decided_at_run_time(self, value: Unknown) -> DeviceRequest:
        """A request whose every field comes from `value`, a name the snippet computes at run time."""
        return DeviceRequest(unknown=("driver", "count", "device_ids", "capabilities", "options"), origin=value.source)

    def device_requests(self, value: Any, origin: str) -> tuple[DeviceRequest, ...]:
        if isinstance(value, Unknown):
            return (self.decided_at_run_time(value),)
        if not isinstance(value, list):
            self.client_errors.append(
                ErrorText(
                    f"TypeError: Invalid type for device_requests param: expected list but found {type(value)}",
                    "docker-py (raised before anything is sent)",
                )
            )
            value = list(value) if isinstance(value, tuple) else [value]
        out = []
        for item in value:
            if isinstance(item, DeviceRequest):
                out.append(item)
            elif isinstance(item, dict):
                out.append(self.device_request_from({str(k): v for k, v in item.items()}, origin=repr(item)[:SOURCE_SHOWN]))
            elif isinstance(item, Unknown):
                out.append(self.decided_at_run_time(item))
            else:
                self.unknown.append(repr(item)[:SOURCE_SHOWN])
        return tuple(out)


def call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return ""


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return _dotted(node.value) + "." + node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return "?"


def _env_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """The literal variables only: a name or value computed at run time is not guessed."""
    if isinstance(value, dict):
        return tuple((str(k), str(v)) for k, v in value.items() if not _has_unknown(k) and not _has_unknown(v))
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            if isinstance(item, str):
                k, _, v = item.partition("=")
                out.append((k, v))
        return tuple(out)
    return ()


def _allowed_run_kwargs() -> set[str] | None:
    try:  # docker is a dependency; imported here only (heavy), and optional for this check
        from docker.models.containers import RUN_CREATE_KWARGS, RUN_HOST_CONFIG_KWARGS
    except Exception:
        return None
    return set(RUN_CREATE_KWARGS) | set(RUN_HOST_CONFIG_KWARGS) | {"image", "command", "stdout", "stderr", "remove", "detach", "stream", "platform"}


def parse_sdk(text: str) -> GpuRequest:
    snip = _Snippet(text)
    calls = [n for n in ast.walk(snip.tree) if isinstance(n, ast.Call)]
    if not calls:
        raise ExplainInputError("this Python has no function call in it", EXPECTED)

    def is_container_call(c: ast.Call) -> bool:
        name = call_name(c)
        if name == LOWLEVEL_CREATE:
            return True
        return name in CONTAINER_CALLS and isinstance(c.func, ast.Attribute) and _dotted(c.func).split(".")[-2:-1] == ["containers"]

    container = next((c for c in calls if is_container_call(c)), None)
    hostcfg = next((c for c in calls if call_name(c) in HOSTCONFIG_CALLS), None)
    drs = [c for c in calls if call_name(c) == "DeviceRequest"]
    runtime: Any = None
    env: tuple[tuple[str, str], ...] = ()
    privileged = False
    image = None
    requests: tuple[DeviceRequest, ...] = ()
    sdk_call = ""
    toplevel_runtime = False

    def from_hostconfig(kw: dict[str, Any], origin: str) -> None:
        nonlocal runtime, privileged, requests
        if "device_requests" in kw:
            requests = requests + snip.device_requests(kw["device_requests"], origin)
        if kw.get("runtime") is not None:
            runtime = kw["runtime"]
        privileged = privileged or kw.get("privileged") is True

    if container is not None:
        name = call_name(container)
        sdk_call = "create_container" if name == LOWLEVEL_CREATE else f"containers.{name}"
        kw = snip.kwargs(container)
        if container.args:
            image = snip.value(container.args[0])
        image = kw.get("image", image)
        env = _env_pairs(kw.get("environment"))
        if name == LOWLEVEL_CREATE:
            hc = kw.get("host_config")
            if isinstance(hc, _HostConfigCall):
                from_hostconfig(hc.kwargs, hc.source)
            elif isinstance(hc, dict):
                from_hostconfig({"device_requests": hc.get("DeviceRequests", []), "runtime": hc.get("Runtime")}, "host_config")
            if kw.get("runtime") is not None:
                toplevel_runtime = True
                runtime = kw["runtime"]
        else:
            allowed = _allowed_run_kwargs()
            bad = [k for k in kw if allowed is not None and k not in allowed and k != SPLAT]
            if bad:
                snip.client_errors.append(
                    ErrorText(f"TypeError: run() got an unexpected keyword argument '{bad[0]}'", "docker-py (raised before anything is sent)")
                )
            from_hostconfig(kw, snip.src(container))
    elif hostcfg is not None:
        sdk_call = call_name(hostcfg)
        from_hostconfig(snip.kwargs(hostcfg), snip.src(hostcfg))
    elif drs:
        sdk_call = "DeviceRequest"
        requests = tuple(snip.device_request(c) for c in drs)
    else:
        names = ", ".join(sorted({_dotted(c.func) for c in calls}))[:120]
        raise ExplainInputError(f"no Docker SDK call found (saw: {names})", EXPECTED)

    label = {
        "DeviceRequest": "DeviceRequest(...)",
        "create_container": "APIClient.create_container(...)",
    }.get(sdk_call, f"{sdk_call}(...)")
    return GpuRequest(
        kind="sdk",
        label=label,
        device_requests=requests,
        runtime=runtime if isinstance(runtime, str) else (None if runtime is None or _has_unknown(runtime) else repr(runtime)),
        env=env,
        privileged=privileged,
        image=image if isinstance(image, str) else None,
        hints={
            "sdk_call": sdk_call,
            "toplevel_runtime": toplevel_runtime,
            "client_errors": tuple(snip.client_errors),
            "ignored_kwargs": tuple(snip.ignored),
            "unknown": tuple(dict.fromkeys(snip.unknown)),
            "standalone": sdk_call == "DeviceRequest",
        },
    )
