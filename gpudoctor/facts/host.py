"""The one interface through which gpudoctor reads the machine.

Every fact reads files, runs commands, asks NVML or the Docker daemon *through a Host*. Three
implementations share one code path (docs/design.md "The host interface"):

* `LiveHost`      reads the real machine (every path under a root, `/` or e.g. `/host`);
* `RecordingHost` does the same and keeps every answer, for `gpudoctor facts --record`;
* `ReplayHost`    answers only from a recorded bundle and raises `NotRecorded` for anything else,
                  so `gpudoctor check --replay` reproduces the exact report on another machine.

Every operation funnels through `Host._answer(op, args, produce)`; answers are JSON values, and
the errors a fact is expected to handle (`OSError`, `HostCallError`) are recorded as data too.
What is recorded passes through `redact` (gpudoctor/facts/redact.py): a bundle is sent to others.
A replay checks the bundle's shape when it loads it (`ReplayHost.load`): a corrupt bundle is a
`BundleError` naming what is wrong, never a crash inside a fact.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat as stat_mod
import subprocess
import threading
import time
from dataclasses import asdict
from typing import Any, Callable, Mapping, Sequence

from ..frozen import frozen
from .bounded import load_json, read_regular, resolve_in_root
from .redact import redact

BUNDLE_FORMAT = "gpudoctor.bundle/v1"
# Bundles are tens to hundreds of KiB (probe output is capped); anything far bigger is not one.
MAX_BUNDLE_BYTES = 64 << 20

# Files under /proc and /sys are small; a "file" bigger than this is not what we expect to read,
# and reading it whole could hang on a character device or blow up memory.
DEFAULT_READ_LIMIT = 1 << 20
# A bundle holds every answer of one run, probe outputs included: a few MiB.


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


@frozen
class FileStat:
    kind: str  # file | dir | char | block | link | fifo | socket | other
    mode: int  # permission bits only (0o666)
    uid: int
    gid: int
    rdev_major: int
    rdev_minor: int
    size: int
    mtime: float


@frozen
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
    def call(
        self, op: str, args: Sequence[Any], produce: Callable[[], Any], expect: type | tuple[type, ...] | None = None
    ) -> Any:
        """A JSON-valued call; `produce` may raise HostCallError, which is recorded and replayed.
        `expect`: the type(s) the answer must have, so that a replayed answer of another type is
        a bundle error naming the call, not a crash further on."""
        return self._answer(op, list(args), produce)

    def explain_failure(self, exc: BaseException) -> str | None:
        """Why a fact failed, when the cause is this host's answers (a replay's bundle) rather than
        the fact; None for live hosts."""
        return None


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
    """The replay key of a question. Questions are keyed as recorded, i.e. redacted: a replay asks
    with values it read from redacted answers (an endpoint without its password), and `redact` is
    idempotent, so recording and replay agree, also on bundles recorded before redaction existed."""
    return json.dumps([op, redact(list(args))], sort_keys=True)


def _recorded_outcome(op: str, args: Sequence[Any], outcome: Mapping[str, Any]) -> dict[str, Any]:
    if "value" in outcome:
        # An environment variable's name is what says whether its value is a secret.
        name = str(args[0]) if op == "env" and args else None
        return {"value": redact(outcome["value"], name)}
    return redact(dict(outcome))


class RecordingHost(LiveHost):
    """A live host that keeps every answer, for a support bundle: redacted, as it leaves the machine."""

    kind = "recording"

    def __init__(self, root: str = "/") -> None:
        super().__init__(root)
        self._answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _answer(self, op: str, args: Sequence[Any], produce: Callable[[], Any]) -> Any:
        outcome = _encode_outcome(produce)
        entry = {"op": op, "args": redact(list(args)), "answer": _recorded_outcome(op, args, outcome)}
        with self._lock:
            self._answers[_key(op, args)] = entry
        return _decode_outcome(op, args, outcome)

    def bundle(self, tool_version: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            entries = [self._answers[k] for k in sorted(self._answers)]
        return {
            "format": BUNDLE_FORMAT,
            "tool_version": tool_version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "root": self.root,
            "meta": redact(dict(meta or {})),
            "answers": entries,
        }


class ReplayHost(Host):
    """Answers only from a bundle; anything not recorded raises NotRecorded.

    The bundle's shape is checked here, once, when it is loaded: the envelope (format, answers,
    meta) and every answer's encoding raise BundleError at once; an answer whose value has the
    wrong type for its operation raises BundleError when a fact asks for it, so that the error
    names the fact as well as the answer.
    """

    kind = "replay"

    def __init__(self, bundle: Any, source: str = "<bundle>") -> None:
        self.source = source
        if not isinstance(bundle, Mapping):
            raise BundleError(f"{source}: not a gpudoctor bundle (a JSON {_json_type(bundle)}, expected an object "
                              f"with format {BUNDLE_FORMAT!r})")
        if bundle.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{source}: not a gpudoctor bundle (expected format {BUNDLE_FORMAT!r})")
        answers = bundle.get("answers")
        if not isinstance(answers, list):
            raise BundleError(f"{source}: 'answers' must be a list, not a JSON {_json_type(answers)}")
        for name in ("root", "tool_version"):
            if name in bundle and not isinstance(bundle[name], str):
                raise BundleError(f"{source}: {name!r} must be a string, not a JSON {_json_type(bundle[name])}")
        meta = bundle.get("meta") or {}
        if not isinstance(meta, Mapping) or not isinstance(meta.get("options") or {}, Mapping):
            raise BundleError(f"{source}: 'meta' must be an object whose 'options' is an object")
        self.root = str(bundle.get("root", "/"))
        self.meta = dict(meta)
        self.tool_version = str(bundle.get("tool_version", "?"))
        self._answers: dict[str, tuple[Mapping[str, Any], str | None]] = {}
        self._last = threading.local()
        for i, entry in enumerate(answers):
            op, args, answer = _check_entry(source, i, entry)
            try:
                key = _key(op, args)
            except RecursionError:
                raise BundleError(f"{source}: answer #{i} ({op}) is nested too deeply") from None
            problem = _value_problem(op, answer)
            self._answers[key] = (answer, f"answer #{i}: {problem}" if problem else None)

    @classmethod
    def load(cls, path: str) -> "ReplayHost":
        return cls(_load_json(path), source=path)

    def path(self, path: str, follow: bool = True) -> str:
        return path

    def _answer(self, op: str, args: Sequence[Any], produce: Callable[[], Any]) -> Any:
        self._last.question = (op, list(args))
        found = self._answers.get(_key(op, args))
        if found is None:
            raise NotRecorded(op, args)
        answer, problem = found
        if problem:
            raise BundleError(f"the answer to {_question(op, args)} is malformed ({problem})")
        return _decode_outcome(op, args, answer)

    def call(
        self, op: str, args: Sequence[Any], produce: Callable[[], Any], expect: type | tuple[type, ...] | None = None
    ) -> Any:
        value = self._answer(op, list(args), produce)
        if expect is not None and not isinstance(value, expect):
            raise BundleError(f"the answer to {_question(op, args)} is a JSON {_json_type(value)}, "
                              f"not what gpudoctor records there")
        return value

    def explain_failure(self, exc: BaseException) -> str | None:
        if isinstance(exc, BundleError):
            return str(exc)
        question = getattr(self._last, "question", None)
        what = f"the answer to {_question(*question)}" if question else "its answers"
        return f"{what} is not what the fact expects ({type(exc).__name__}: {exc})"


def _question(op: str, args: Sequence[Any]) -> str:
    text = json.dumps(list(args))
    return f"{op} {text if len(text) <= 200 else text[:200] + '…'}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _load_json(path: str) -> Any:
    """The bundle file's JSON, read only if it is a regular file of bounded size (facts/bounded.read_regular: stat
    first, never an open that blocks): a FIFO, a device or a directory given as the bundle is an error, never a hang."""
    try:
        st = os.stat(path)
        if not stat_mod.S_ISREG(st.st_mode):
            what = {"dir": "a directory", "fifo": "a FIFO (named pipe)", "char": "a character device",
                    "block": "a block device", "socket": "a socket"}.get(_kind_of(st.st_mode), "not a regular file")
            raise BundleError(f"cannot read bundle {path}: it is {what}, not a bundle file")
        if st.st_size > MAX_BUNDLE_BYTES:
            raise BundleError(f"cannot read bundle {path}: {st.st_size} bytes, larger than a bundle can be "
                              f"({MAX_BUNDLE_BYTES >> 20} MiB)")
        data = read_regular(path, MAX_BUNDLE_BYTES)
    except OSError as e:
        if e.errno == errno.EFBIG:
            raise BundleError(f"cannot read bundle {path}: larger than a bundle can be ({MAX_BUNDLE_BYTES >> 20} MiB)") from None
        raise BundleError(f"cannot read bundle {path}: {e.strerror or e}") from None
    try:
        # Bounded nesting (facts/bounded.py): a deep bundle is "invalid", never a RecursionError.
        return load_json(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BundleError(f"{path} is not a bundle: not UTF-8 text (byte {e.start})") from None
    except ValueError as e:
        raise BundleError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise BundleError(f"{path} is not a bundle: its JSON is nested too deeply") from None


def _check_entry(source: str, i: int, entry: Any) -> tuple[str, list[Any], Mapping[str, Any]]:
    """(op, args, answer) of one recorded answer, or BundleError saying what is wrong with it."""
    where = f"{source}: answer #{i}"
    if not isinstance(entry, Mapping):
        raise BundleError(f"{where} is malformed: a JSON {_json_type(entry)}, expected an object with op, args, answer")
    op, args, answer = entry.get("op"), entry.get("args"), entry.get("answer")
    if not isinstance(op, str):
        raise BundleError(f"{where} is malformed: 'op' must be a string, not a JSON {_json_type(op)}")
    if not isinstance(args, list):
        raise BundleError(f"{where} ({op}) is malformed: 'args' must be an array, not a JSON {_json_type(args)}")
    where = f"{where} ({op} {json.dumps(args)[:200]})"
    if not isinstance(answer, Mapping):
        raise BundleError(f"{where} is malformed: 'answer' must be an object, not a JSON {_json_type(answer)}")
    kinds = [k for k in ("value", "oserror", "callerror") if k in answer]
    if len(kinds) != 1:
        raise BundleError(f"{where} is malformed: its answer must hold exactly one of value, oserror, callerror")
    if "oserror" in answer:
        err = answer["oserror"]
        if not (isinstance(err, list) and len(err) == 2 and (err[0] is None or _is_int(err[0]))
                and isinstance(err[1], str)):
            raise BundleError(f"{where} is malformed: 'oserror' must be [errno, message]")
    if "callerror" in answer:
        err = answer["callerror"]
        if not (isinstance(err, list) and len(err) == 3 and isinstance(err[0], str) and isinstance(err[1], str)
                and isinstance(err[2], Mapping)):
            raise BundleError(f"{where} is malformed: 'callerror' must be [kind, message, data]")
    return op, args, answer


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_STAT_INTS = ("mode", "uid", "gid", "rdev_major", "rdev_minor", "size")
_FILE_KINDS = ("file", "dir", "char", "block", "link", "fifo", "socket", "other")


def _value_problem(op: str, answer: Mapping[str, Any]) -> str | None:
    """What is wrong with the value of an answer to one of this module's own operations (their
    shapes are defined above), or None. Other calls declare theirs with `call(..., expect=)`."""
    if "value" not in answer:
        return None
    v = answer["value"]
    if op in ("read", "readlink") and not isinstance(v, str):
        return f"the value must be a string, not a JSON {_json_type(v)}"
    if op == "listdir" and not (isinstance(v, list) and all(isinstance(n, str) for n in v)):
        return "the value must be an array of names"
    if op in ("env", "which") and v is not None and not isinstance(v, str):
        return f"the value must be a string or null, not a JSON {_json_type(v)}"
    if op == "now" and not _is_number(v):
        return f"the value must be a number, not a JSON {_json_type(v)}"
    if op in ("stat", "lstat"):
        if not isinstance(v, Mapping):
            return f"the value must be an object, not a JSON {_json_type(v)}"
        bad = [k for k in _STAT_INTS if not _is_int(v.get(k))]
        if v.get("kind") not in _FILE_KINDS:
            bad.insert(0, "kind")
        if not _is_number(v.get("mtime")):
            bad.append("mtime")
        extra = sorted(set(v) - {"kind", "mtime", *_STAT_INTS})
        if bad or extra:
            return _fields_problem(bad, extra, "a stat field")
    if op == "run":
        if not isinstance(v, Mapping):
            return f"the value must be an object, not a JSON {_json_type(v)}"
        bad = [k for k in ("stdout", "stderr") if not isinstance(v.get(k), str)]
        if not _is_int(v.get("rc")):
            bad.insert(0, "rc")
        if v.get("failure") is not None and not isinstance(v.get("failure"), str):
            bad.append("failure")
        extra = sorted(set(v) - {"argv", "rc", "stdout", "stderr", "failure"})
        if bad or extra:
            return _fields_problem(bad, extra, "a command-result field")
    return None


def _fields_problem(bad: Sequence[str], extra: Sequence[str], what: str) -> str:
    parts = []
    if bad:
        parts.append(f"{', '.join(bad)} missing or of the wrong type")
    if extra:
        parts.append(f"{', '.join(extra)} not {what}")
    return "; ".join(parts)
