"""The docker CLI's `--gpus` value, parsed exactly as docker/cli `opts/gpus.go` `GpuOpts.Set` does.

Algorithm (docker/cli opts/gpus.go, since 19.03.0; docs/docker-gpu-internals.md §6):
one CSV record (Go encoding/csv); each field split on the first `=`; a field without `=` is a
count (`all` = -1) and also marks `count` as seen; keys `driver`, `count`, `device` (split on
","), `capabilities` (split on "," and "gpu" appended), `options` (a nested CSV of k=v);
any other key is an error; a key seen twice is an error; no count and no device → Count 1;
Options default {}; Capabilities default [["gpu"]].

Pure: no I/O. `parse_gpus_value` returns the DeviceRequest or the CLI's exact rejection.
"""

from __future__ import annotations


from ..frozen import frozen
from .gocompat import GoCsvError, atoi_error, csv_read_record, go_quote
from .model import DeviceRequest

KNOWN_KEYS = ("count", "device", "capabilities", "driver", "options")
# The CLI word for a rejected flag value (pflag); the CLI then prints "See 'docker run --help'." and exits 125.
CLI_EXIT_CODE = 125


@frozen
class GpusRejection:
    """Why the CLI refuses the value; `message` is what modern CLIs print, `legacy` older ones."""

    value: str
    message: str
    legacy: str
    field: str | None = None

    def full(self, legacy: bool = False) -> str:
        msg = self.legacy if legacy else self.message
        return f"invalid argument {go_quote(self.value)} for \"--gpus\" flag: {msg}"


@frozen
class GpusParse:
    value: str
    fields: tuple[str, ...]  # the CSV fields as the CLI saw them (empty if CSV failed)
    request: DeviceRequest | None
    rejection: GpusRejection | None
    bare_count_fields: tuple[str, ...] = ()  # fields without "=", read as a count (`1`, `all`)


def _count(value: str, s: str, field: str) -> tuple[int | None, GpusRejection | None]:
    if s == "all":
        return -1, None
    err = atoi_error(s)
    if err is None:
        return int(s), None
    return None, GpusRejection(value, err, atoi_error(s, legacy=True) or err, field)


def _options(val: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in csv_read_record(val):
        k, _, v = item.partition("=")
        result[k] = v
    return result


def parse_gpus_value(value: str) -> GpusParse:
    try:
        fields = csv_read_record(value)
    except GoCsvError as e:
        return GpusParse(value, (), None, GpusRejection(value, e.text, e.text))

    driver = ""
    count = 0
    device_ids: tuple[str, ...] | None = None
    caps: tuple[tuple[str, ...], ...] | None = None
    options: dict[str, str] | None = None
    seen: set[str] = set()
    bare: list[str] = []
    for field in fields:
        key, sep, val = field.partition("=")
        if key in seen:
            msg = f"gpu request key '{key}' can be specified only once"
            return GpusParse(value, tuple(fields), None, GpusRejection(value, msg, msg, field), tuple(bare))
        seen.add(key)
        if not sep:
            seen.add("count")
            n, rej = _count(value, key, field)
            if rej:
                return GpusParse(value, tuple(fields), None, rej, tuple(bare))
            count = n  # type: ignore[assignment]
            bare.append(field)
            continue
        if key == "driver":
            driver = val
        elif key == "count":
            n, rej = _count(value, val, field)
            if rej:
                return GpusParse(value, tuple(fields), None, rej, tuple(bare))
            count = n  # type: ignore[assignment]
        elif key == "device":
            device_ids = tuple(val.split(","))
        elif key == "capabilities":
            caps = (tuple(val.split(",")) + ("gpu",),)
        elif key == "options":
            try:
                options = _options(val)
            except GoCsvError as e:
                msg = f"failed to read gpu options: {e.text}"
                return GpusParse(value, tuple(fields), None, GpusRejection(value, msg, msg, field), tuple(bare))
        else:
            msg = f"unexpected key '{key}' in '{field}'"
            return GpusParse(value, tuple(fields), None, GpusRejection(value, msg, msg, field), tuple(bare))

    if "count" not in seen and device_ids is None:
        count = 1
    req = DeviceRequest(
        driver=driver,
        count=count,
        device_ids=device_ids,
        capabilities=caps if caps is not None else (("gpu",),),
        options=options if options is not None else {},
        origin=f"--gpus {value}",
    )
    return GpusParse(value, tuple(fields), req, None, tuple(bare))


@frozen
class GpusIntent:
    """What the writer most likely meant, read leniently from the raw text (for corrections only)."""

    driver: str = ""
    count: int | None = None  # None: not given
    devices: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    count_was_bare: bool = False


def guess_intent(value: str) -> GpusIntent | None:
    """Re-read a `--gpus` value the way people mean it: commas after `device=`/`capabilities=`
    continue that list, spaces around fields are noise, quotes are decoration.

    `device=0,1` → devices 0,1; `device=0, capabilities=compute,utility` → devices 0, caps
    compute,utility. Returns None when nothing sensible comes out (`foo`)."""
    text = value.replace('"', "").replace("'", "")
    parts = [p.strip() for p in text.split(",")]
    driver = ""
    count: int | None = None
    bare = False
    devices: list[str] = []
    caps: list[str] = []
    options: list[tuple[str, str]] = []
    current: str | None = None
    for part in parts:
        if not part:
            continue
        key, sep, val = part.partition("=")
        key = key.strip().lower()
        if sep and key in KNOWN_KEYS + ("devices", "capability", "gpus", "gpu", "caps", "device_ids"):
            current = {"devices": "device", "device_ids": "device", "gpu": "device", "gpus": "device", "capability": "capabilities", "caps": "capabilities"}.get(key, key)
            val = val.strip()
            if current == "driver":
                driver = val
            elif current == "count":
                count = -1 if val == "all" else (int(val) if val.lstrip("+-").isdigit() else None)
            elif current == "device":
                devices.append(val)
            elif current == "capabilities":
                caps.append(val)
            elif current == "options":
                k, _, v = val.partition("=")
                options.append((k, v))
            continue
        if current == "device":
            devices.append(part)
        elif current == "capabilities":
            caps.append(part)
        elif current == "options" and sep:
            options.append((part.partition("=")[0], part.partition("=")[2]))
        elif part == "all":
            count, bare = -1, True
        elif part.lstrip("+-").isdigit():
            count, bare = int(part), True
        else:
            return None
    devices = [d for d in devices if d]
    caps = [c for c in caps if c and c != "gpu"]
    if count is not None and devices:
        count = None  # device list wins: a count next to it was a mis-split device id
    return GpusIntent(driver, count, tuple(devices), tuple(caps), tuple(options), bare)
