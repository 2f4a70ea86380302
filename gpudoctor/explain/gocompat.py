"""Small re-implementations of the Go standard-library behaviour the docker CLI's `--gpus`
parser relies on, so that we parse and fail exactly as `docker` does:

* `encoding/csv` `Reader.Read` with the defaults docker/cli uses (comma `,`, no LazyQuotes, no
  TrimLeadingSpace): one record, empty lines skipped, RFC 4180 quoting, and its `ParseError`
  texts with 1-based byte columns (go/src/encoding/csv/reader.go `readRecord`);
* `strconv.Atoi` (sign + ASCII digits, 64-bit range) and its error texts;
* `strconv.Quote` (`%q`), which pflag uses in `invalid argument %q for %q flag: %v`.

Verified against docker CLI 28.2.2 and Debian's 20.10.24 (tests/test_explain_docker.py).
"""

from __future__ import annotations

# fmt's %v of []string / [][]string lives with the refusal texts that quote it.
from ..gpu_requests.texts import go_slice_repr  # noqa: F401  (re-exported for explain)

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

ERR_BARE_QUOTE = 'bare " in non-quoted-field'
ERR_QUOTE = 'extraneous or missing " in quoted-field'


class GoCsvError(Exception):
    """csv.ParseError or io.EOF, with Go's exact Error() text."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _parse_error(start_line: int, line: int, column: int, err: str) -> GoCsvError:
    if start_line != line:
        return GoCsvError(f"record on line {start_line}; parse error on line {line}, column {column}: {err}")
    return GoCsvError(f"parse error on line {line}, column {column}: {err}")


class _LineReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.num_line = 0

    def read_line(self) -> tuple[bytes, bool]:
        """(line, eof) like Go's readLine: EOF only when nothing at all was read."""
        if self.pos >= len(self.data):
            self.num_line += 1
            return b"", True
        i = self.data.find(b"\n", self.pos)
        if i < 0:
            line = self.data[self.pos :]
            self.pos = len(self.data)
            if line.endswith(b"\r"):  # "drop trailing \r before EOF"
                line = line[:-1]
        else:
            line = self.data[self.pos : i + 1]
            self.pos = i + 1
        self.num_line += 1
        if len(line) >= 2 and line[-2:] == b"\r\n":
            line = line[:-2] + b"\n"
        return line, False


def _length_nl(b: bytes) -> int:
    return 1 if b.endswith(b"\n") else 0


def csv_read_record(value: str) -> list[str]:
    """The first CSV record of `value`, as Go's csv.NewReader(strings.NewReader(value)).Read()."""
    r = _LineReader(value.encode("utf-8", "surrogateescape"))
    line = b""
    eof = False
    while True:
        line, eof = r.read_line()
        if not eof and len(line) == _length_nl(line):
            continue  # skip empty lines
        break
    if eof:
        raise GoCsvError("EOF")

    rec_line = r.num_line
    buf = bytearray()
    fields: list[bytes] = []
    col = 1
    pos_line = r.num_line
    while True:
        if len(line) == 0 or line[0:1] != b'"':
            i = line.find(b",")
            field = line[:i] if i >= 0 else line[: len(line) - _length_nl(line)]
            j = field.find(b'"')
            if j >= 0:
                raise _parse_error(rec_line, r.num_line, col + j, ERR_BARE_QUOTE)
            fields.append(bytes(field))
            if i >= 0:
                line = line[i + 1 :]
                col += i + 1
                continue
            break
        # Quoted field.
        line = line[1:]
        col += 1
        buf.clear()
        done_record = False
        while True:
            i = line.find(b'"')
            if i >= 0:
                buf += line[:i]
                line = line[i + 1 :]
                col += i + 1
                nxt = line[0:1]
                if nxt == b'"':
                    buf += b'"'
                    line = line[1:]
                    col += 1
                elif nxt == b",":
                    line = line[1:]
                    col += 1
                    fields.append(bytes(buf))
                    break
                elif _length_nl(line) == len(line):
                    fields.append(bytes(buf))
                    done_record = True
                    break
                else:
                    raise _parse_error(rec_line, r.num_line, col - 1, ERR_QUOTE)
            elif len(line) > 0:
                buf += line
                col += len(line)
                line, eof = r.read_line()
                if len(line) > 0:
                    pos_line += 1
                    col = 1
                eof = False  # Go resets io.EOF here and reports the quote error below
            else:
                raise _parse_error(rec_line, pos_line, col, ERR_QUOTE)
        if done_record:
            break
    return [f.decode("utf-8", "surrogateescape") for f in fields]


def atoi_error(s: str, legacy: bool = False) -> str | None:
    """None if strconv.Atoi(s) succeeds, else its error as docker/cli's parseCount words it.

    Modern (docker/cli >= 28.0.2, commit 4c882e0f6c):
        invalid count (foo): value must be either "all" or an integer: invalid syntax
    Legacy (before): count must be an integer: strconv.Atoi: parsing "foo": invalid syntax
    """
    reason = None
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or not all("0" <= c <= "9" for c in body):
        reason = "invalid syntax"
    elif not INT64_MIN <= int(s) <= INT64_MAX:
        reason = "value out of range"
    if reason is None:
        return None
    if legacy:
        return f"count must be an integer: strconv.Atoi: parsing {go_quote(s)}: {reason}"
    return f'invalid count ({s}): value must be either "all" or an integer: {reason}'


def atoi(s: str) -> int:
    if atoi_error(s) is not None:
        raise ValueError(s)
    return int(s)


_NAMED_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """strconv.Quote: a double-quoted Go string literal (printable runes kept as they are)."""
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # an invalid UTF-8 byte (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


