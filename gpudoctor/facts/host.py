"""The one interface through which gpudoctor reads the machine.

Every fact reads files, runs commands, asks NVML or the Docker daemon *through a Host*. Three
implementations share one code path (docs/design.md "The host interface"):

* `LiveHost`      reads the real machine (every path under a root, `/` or e.g. `/host`);
* `RecordingHost` does the same and keeps every answer, for `gpudoctor facts --record`;
* `ReplayHost`    answers only from a recorded bundle and raises `NotRecorded` for anything else,
                  so `gpudoctor check --replay` reproduces the exact report on another machine.

Every operation funnels through `Host._answer(op, args, produce)`; answers are JSON values, and
the errors a fact is expected to handle (`OSError`, `HostCallError`) are recorded as data too.
"""

from __future__ import annotations

import json
import os
import shutil
import stat as stat_mod
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

from .bounded import load_json, read_regular, resolve_in_root

BUNDLE_FORMAT = "gpudoctor.bundle/v1"

# Files under /proc and /sys are small; a "file" bigger than this is not what we expect to read,
# and reading it whole could hang on a character device or blow up memory.
DEFAULT_READ_LIMIT = 1 << 20
# A bundle holds every answer of one run, probe outputs included: a few MiB.
BUNDLE_READ_LIMIT = 256 << 20


class HostCallError(Exception):
    """An expected failure of a host call (daemon unreachable, NVML worker died, ...).

    `kind` is a short machine word (e.g. "permission-denied"), `message` the raw text.
    """

    def __init__(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.data = dict(data or {})


class NotRecorded(Exception):
    """A replay asked for something the bundle does not hold."""

    def __init__(self, op: str, args: Sequence[Any]) -> None:
        super().__init__(f"the bundle has no answer for {op} {json.dumps(list(args))}")
        self.op = op
        self.args_ = list(args)


class BundleError(Exception):
    """A replay bundle that cannot be used (unreadable, not JSON, wrong format)."""


@dataclass(frozen=True)
class FileStat:
    kind: str  # file | dir | char | block | link | fifo | socket | other
    mode: int  # permission bits only (0o666)
    uid: int
    gid: int
    rdev_major: int
    rdev_minor: int
    size: int
    mtime: float


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    # Set when the command did not run to completion: "not-found", "timeout", "permission-denied", "oserror",
    # "not-run" (a program in the --root tree: gpudoctor never executes those).
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.rc == 0 and self.failure is None


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat_mod.S_ISLNK, "link"),
        (stat_mod.S_ISDIR, "dir"),
        (stat_mod.S_ISREG, "file"),
        (stat_mod.S_ISCHR, "char"),
        (stat_mod.S_ISBLK, "block"),
        (stat_mod.S_ISFIFO, "fifo"),
        (stat_mod.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "other"


class Host:
    """Base class: typed operations built on one `_answer` primitive. Subclasses decide where answers come from."""

    root: str = "/"
    kind: str = "abstract"

    # -- the primitive ------------------------------------------------------------------------
    def _answer(self, op: str, args: Sequence[Any], produce: Callable[[], Any]) -> Any:
        raise NotImplementedError

    # -- files --------------------------------------------------------------------------------
    def path(self, path: str, follow: bool = True) -> str:
        """The real path of a host path under this host's root, its symlinks resolved inside the
        root (an absolute link in the tree names a host path, never one of this machine's)."""
        return resolve_in_root(self.root, path, follow_last=follow) if self.root != "/" else path

    def read_text(self, path: str, limit: int = DEFAULT_READ_LIMIT) -> str:
        """The file's text (undecodable bytes replaced); raises OSError like open() would."""

        def produce() -> str:
            # Regular files only, never blocking on a FIFO (gpudoctor/facts/bounded.py).
            return read_regular(self.path(path), limit).decode("utf-8", errors="replace")

        return self._answer("read", [path], produce)

    def list_dir(self, path: str) -> tuple[str, ...]:
        return tuple(self._answer("listdir", [path], lambda: sorted(os.listdir(self.path(path)))))

    def stat(self, path: str, follow: bool = True) -> FileStat:
        def produce() -> dict[str, Any]:
            st = os.stat(self.path(path, follow), follow_symlinks=follow)
            is_dev = stat_mod.S_ISCHR(st.st_mode) or stat_mod.S_ISBLK(st.st_mode)
            return asdict(
                FileStat(
                    kind=_kind_of(st.st_mode),
                    mode=stat_mod.S_IMODE(st.st_mode),
                    uid=st.st_uid,
                    gid=st.st_gid,
                    rdev_major=os.major(st.st_rdev) if is_dev else -1,
                    rdev_minor=os.minor(st.st_rdev) if is_dev else -1,
                    size=st.st_size,
                    mtime=st.st_mtime,
                )
            )

        return FileStat(**self._answer("stat" if follow else "lstat", [path], produce))

    def exists(self, path: str) -> bool:
        try:
            self.stat(path, follow=False)
            return True
        except OSError:
            return False

    def readlink(self, path: str) -> str:
        return self._answer("readlink", [path], lambda: os.readlink(self.path(path, follow=False)))

    # -- processes and environment ------------------------------------------------------------
    def getenv(self, name: str) -> str | None:
        return self._answer("env", [name], lambda: os.environ.get(name))

    def which(self, name: str, path: str | None = None) -> str | None:
        """Where `name` is on `path` (default: this process's PATH), as a host path."""

        def produce() -> str | None:
            search = path if path is not None else os.environ.get("PATH", os.defpath)
            for d in search.split(os.pathsep):
                if not d:
                    continue
                candidate = os.path.join(d, name)
                try:
                    real = self.path(candidate)
                except OSError:  # a symlink loop in the tree
                    continue
                if os.path.isfile(real) and os.access(real, os.X_OK):
                    return candidate
            return None

        return self._answer("which", [name, path], produce)

    def run(self, argv: Sequence[str], timeout: float = 10.0) -> CommandResult:
        """Run a command; never raises. Binaries are resolved under the root."""

        def produce() -> dict[str, Any]:
            exe = argv[0]
            if self.root != "/" and exe.startswith("/"):
                # A program in the --root tree is the tree's, not ours to run (issue 14 item 8).
                return _cmd(argv, 126, "", f"not run: {exe} is in the --root tree {self.root}", "not-run")
            elif self.root == "/" and not exe.startswith("/"):
                exe = shutil.which(exe) or exe
            try:
                proc = subprocess.run(
                    [exe, *argv[1:]],
                    capture_output=True,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                    check=False,
                )
            except FileNotFoundError as e:
                return _cmd(argv, 127, "", str(e), "not-found")
            except PermissionError as e:
                return _cmd(argv, 126, "", str(e), "permission-denied")
            except subprocess.TimeoutExpired as e:
                out = (e.stdout or b"").decode("utf-8", "replace")
                return _cmd(argv, 124, out, f"timed out after {timeout}s", "timeout")
            except OSError as e:
                return _cmd(argv, 126, "", str(e), "oserror")
            return _cmd(
                argv,
                proc.returncode,
                proc.stdout.decode("utf-8", "replace")[:DEFAULT_READ_LIMIT],
                proc.stderr.decode("utf-8", "replace")[:DEFAULT_READ_LIMIT],
                None,
            )

        return CommandResult(**{**self._answer("run", [list(argv)], produce), "argv": tuple(argv)})

    def now(self) -> float:
        """Wall-clock time of the run, recorded so that age-based rules replay identically."""
        return float(self._answer("now", [], time.time))

    # -- generic calls (NVML worker, Docker API, probe containers) -------------------------------
    def call(self, op: str, args: Sequence[Any], produce: Callable[[], Any]) -> Any:
        """A JSON-valued call; `produce` may raise HostCallError, which is recorded and replayed."""
        return self._answer(op, list(args), produce)


def _cmd(argv: Sequence[str], rc: int, out: str, err: str, failure: str | None) -> dict[str, Any]:
    return {"argv": list(argv), "rc": rc, "stdout": out, "stderr": err, "failure": failure}


class LiveHost(Host):
    kind = "live"

    def __init__(self, root: str = "/") -> None:
        self.root = os.path.abspath(root)

    def _answer(self, op: str, args: Sequence[Any], produce: Callable[[], Any]) -> Any:
        return produce()


def _encode_outcome(produce: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"value": produce()}
    except OSError as e:
        return {"oserror": [e.errno, e.strerror or str(e)]}
    except HostCallError as e:
        return {"callerror": [e.kind, e.message, e.data]}


def _decode_outcome(op: str, args: Sequence[Any], answer: Mapping[str, Any]) -> Any:
    if "value" in answer:
        return answer["value"]
    if "oserror" in answer:
        code, text = answer["oserror"]
        raise OSError(code, text, str(args[0]) if args else op)
    if "callerror" in answer:
        kind, message, data = answer["callerror"]
        raise HostCallError(kind, message, data)
    raise BundleError(f"answer to {op} {args!r} has none of value/oserror/callerror")


def _key(op: str, args: Sequence[Any]) -> str:
    return json.dumps([op, list(args)], sort_keys=True)


class RecordingHost(LiveHost):
    """A live host that keeps every answer, for a support bundle."""

    kind = "recording"

    def __init__(self, root: str = "/") -> None:
        super().__init__(root)
        self._answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _answer(self, op: str, args: Sequence[Any], produce: Callable[[], Any]) -> Any:
        outcome = _encode_outcome(produce)
        with self._lock:
            self._answers[_key(op, args)] = {"op": op, "args": list(args), "answer": outcome}
        return _decode_outcome(op, args, outcome)

    def bundle(self, tool_version: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            entries = [self._answers[k] for k in sorted(self._answers)]
        return {
            "format": BUNDLE_FORMAT,
            "tool_version": tool_version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "root": self.root,
            "meta": dict(meta or {}),
            "answers": entries,
        }


class ReplayHost(Host):
    """Answers only from a bundle; anything not recorded raises NotRecorded."""

    kind = "replay"

    def __init__(self, bundle: Mapping[str, Any], source: str = "<bundle>") -> None:
        if not isinstance(bundle, Mapping) or bundle.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{source}: not a gpudoctor bundle (expected format {BUNDLE_FORMAT!r})")
        answers = bundle.get("answers")
        if not isinstance(answers, list):
            raise BundleError(f"{source}: 'answers' must be a list")
        self.source = source
        self.root = str(bundle.get("root", "/"))
        self.meta = dict(bundle.get("meta") or {})
        self.tool_version = str(bundle.get("tool_version", "?"))
        self._answers: dict[str, Mapping[str, Any]] = {}
        for i, entry in enumerate(answers):
            try:
                self._answers[_key(entry["op"], entry["args"])] = entry["answer"]
            except (KeyError, TypeError) as e:
                raise BundleError(f"{source}: answer #{i} is malformed ({e})") from None

    @classmethod
    def load(cls, path: str) -> "ReplayHost":
        try:
            data = load_json(read_regular(path, BUNDLE_READ_LIMIT).decode("utf-8"))
        except OSError as e:
            raise BundleError(f"cannot read bundle {path}: {e.strerror or e}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise BundleError(f"{path} is not valid JSON: {e}") from None
        return cls(data, source=path)

    def path(self, path: str) -> str:
        return path

    def _answer(self, op: str, args: Sequence[Any], produce: Callable[[], Any]) -> Any:
        answer = self._answers.get(_key(op, args))
        if answer is None:
            raise NotRecorded(op, args)
        if not isinstance(answer, Mapping):
            raise BundleError(f"{self.source}: answer to {op} {list(args)!r} is not an object")
        return _decode_outcome(op, args, answer)
