"""Reading and parsing files that may be hostile, in bounded time and memory.

gpudoctor reads files it does not control: a host's CDI specs, config.toml and daemon.json (under
`--root`, possibly a tree someone else prepared), replay bundles, and the Compose or Python files a
user hands to `explain`. Every such read and parse goes through here, so that none of them can hang
or exhaust memory (issue 14: a FIFO where a spec should be blocked a run for 40 s; a 1 KB YAML alias
bomb grew past 5 GB; deeply nested JSON crashed with RecursionError):

* `read_regular`: regular files only (stat first, then open with O_NONBLOCK, so a FIFO, socket or
  device is refused without blocking or side effects), at most `limit` bytes;
* `resolve_in_root`: a host path under `--root`, every symlink resolved inside the tree (an absolute
  target restarts at the root, `..` never climbs above it), like openat2(RESOLVE_IN_ROOT);
* `load_json` / `load_toml` / `load_yaml`: nesting capped at `MAX_DEPTH`; YAML aliases capped at
  `MAX_ALIAS_NODES` expanded nodes. Over a limit they raise `ParseLimit` (a ValueError) whose message
  says which limit, e.g. "nested deeper than 100 levels".

A leaf module: it imports nothing from gpudoctor, and PyYAML / tomllib only when asked to parse.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from typing import Any

# No configuration file gpudoctor reads nests more than about 8 levels (a Compose device
# reservation: services.app.deploy.resources.reservations.devices[0].capabilities[0]).
MAX_DEPTH = 100
# Nodes that YAML aliases may add by expansion. Compose files use anchors for shared blocks
# (`x-common: &common` + `<<: *common`), a few hundred nodes at most; nvidia-ctk's specs use none
# (tests/fixtures/real-h100-docker20-toolkit-cdi/cdi-nvidia.yaml spells its device "0" and its UUID
# device out twice). go-yaml, which Docker, Compose and the CDI library use, also refuses
# "document contains excessive aliasing" (gopkg.in/yaml.v3 decode.go allowedAliasRatio).
MAX_ALIAS_NODES = 10_000

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class ParseLimit(ValueError):
    """The input is over one of this module's limits (depth, alias expansion)."""


def not_regular(mode: int) -> str | None:
    """Why a file of this st_mode cannot be read as a file ("a named pipe (FIFO)"), or None if it can."""
    if stat.S_ISREG(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _refuse(path: str, mode: int) -> OSError:
    what = not_regular(mode) or "not a regular file"
    code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
    return OSError(code, f"is {what}, not a regular file", path)


def read_regular(path: str, limit: int) -> bytes:
    """The bytes of the regular file at `path` (a real path); OSError naming `path` otherwise.

    A directory raises EISDIR; a FIFO, socket or device EINVAL ("is a named pipe (FIFO), not a
    regular file"), found by stat before any open, so opening never blocks and never touches a
    device; more than `limit` bytes EFBIG. /proc and /sys files report size 0 or 4096 whatever
    they hold, so the size is enforced on the read, not on st_size.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, st.st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)  # the file may have been replaced between stat and open
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, st.st_mode)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise OSError(errno.EFBIG, f"larger than {limit} bytes", path)
    return b"".join(chunks)


MAX_SYMLINKS = 40  # Linux's own limit (MAXSYMLINKS) before ELOOP


def resolve_in_root(root: str, path: str, follow_last: bool = True) -> str:
    """The real path under `root` of host path `path`, with every symlink resolved inside `root`.

    A link to `/usr/lib/x` means `<root>/usr/lib/x` (the host's view), never the caller's /usr/lib;
    `..` stops at the root. With `follow_last=False` the last component is not resolved (lstat,
    readlink). More than 40 links raise ELOOP, as the kernel would. Components that do not exist
    are kept as they are: the caller's open or stat then fails with ENOENT.
    """
    pending = [p for p in reversed(path.split("/")) if p]
    resolved: list[str] = []
    links = 0
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        if not pending and not follow_last:
            resolved.append(name)
            break
        try:
            target = os.readlink(os.path.join(root, *resolved, name))
        except OSError:  # not a link (EINVAL), absent (ENOENT), unreadable parent: keep the name
            resolved.append(name)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "Too many levels of symbolic links", path)
        if target.startswith("/"):
            resolved = []
        pending.extend(p for p in reversed(target.split("/")) if p)
    return os.path.join(root, *resolved)


# -- nesting depth -------------------------------------------------------------------------------
def _too_deep(max_depth: int) -> ParseLimit:
    return ParseLimit(f"nested deeper than {max_depth} levels")


def _check_depth(value: Any, max_depth: int) -> None:
    """ParseLimit if lists/dicts nest deeper than `max_depth` (iteratively: no recursion on hostile data)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if depth > max_depth:
            raise _too_deep(max_depth)
        stack.extend((c, depth + 1) for c in children)


def load_json(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads with nesting capped: ValueError for bad JSON, ParseLimit beyond `max_depth`.

    The C decoder guards its recursion (Py_EnterRecursiveCall): input nested past the interpreter's
    recursion limit raises RecursionError early, which becomes the same ParseLimit.
    """
    import json

    try:
        data = json.loads(text)
    except RecursionError:
        raise _too_deep(max_depth) from None
    _check_depth(data, max_depth)
    return data


def load_toml(text: str, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """tomllib.loads with nesting capped: ValueError (TOMLDecodeError) for bad TOML, ParseLimit beyond `max_depth`."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib

    try:
        data = tomllib.loads(text)
    except RecursionError:  # tomllib is a recursive-descent parser
        raise _too_deep(max_depth) from None
    _check_depth(data, max_depth)
    return data


def load_yaml(text: str, max_depth: int = MAX_DEPTH, max_alias_nodes: int = MAX_ALIAS_NODES) -> Any:
    """yaml.safe_load of one document, refusing alias bombs and deep nesting before building anything.

    A first pass over the parser's events (linear, no objects built) measures the nesting and how
    many nodes the aliases stand for once expanded (an anchor's size includes the aliases inside
    it, so 9 levels of 9 aliases count 9**9); a recursive alias (`&a [*a]`) is refused too. Only
    then is the document constructed. Raises yaml.YAMLError for bad YAML, ParseLimit over a limit.
    """
    import yaml  # heavy: imported only when a YAML file is parsed
    from yaml import events as ev

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    sizes: dict[str | None, int] = {}  # anchor → expanded node count, once its node is complete
    open_nodes: list[list[Any]] = []  # [anchor, nodes so far] per open collection
    expanded = 0
    for event in yaml.parse(text, Loader=loader_cls):
        if isinstance(event, (ev.SequenceStartEvent, ev.MappingStartEvent)):
            if len(open_nodes) >= max_depth:
                raise _too_deep(max_depth)
            open_nodes.append([event.anchor, 1])
            continue
        if isinstance(event, (ev.SequenceEndEvent, ev.MappingEndEvent)):
            anchor, n = open_nodes.pop()
        elif isinstance(event, ev.ScalarEvent):
            anchor, n = event.anchor, 1
        elif isinstance(event, ev.AliasEvent):
            if any(node[0] == event.anchor for node in open_nodes):
                raise ParseLimit(f"alias *{event.anchor} refers to a node that contains it (a recursive structure)")
            anchor, n = None, sizes.get(event.anchor, 1)  # an undefined alias: the loader below reports it
            expanded += n
            if expanded > max_alias_nodes:
                raise ParseLimit(f"aliases expand to more than {max_alias_nodes} nodes (an alias bomb?)")
        else:
            continue  # stream and document boundaries
        if anchor is not None:
            sizes[anchor] = n
        if open_nodes:
            open_nodes[-1][1] += n
    return yaml.load(text, Loader=loader_cls)  # noqa: S506 (a safe loader)
