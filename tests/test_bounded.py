"""gpudoctor/facts/bounded.py: regular-file reads that never block, symlinks resolved inside a root, and
JSON/TOML/YAML parses bounded in depth and alias expansion (issue 14 items 2 and 8)."""

from __future__ import annotations

import ast
import errno
import os
import socket
import time
from pathlib import Path

import pytest
import yaml

from gpudoctor.facts.bounded import (
    MAX_DEPTH,
    ParseLimit,
    load_json,
    load_toml,
    load_yaml,
    read_regular,
    resolve_in_root,
)


# -- read_regular -------------------------------------------------------------------------------------
def test_reads_a_regular_file_and_caps_its_size(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    assert read_regular(str(f), 100) == b"x" * 100
    with pytest.raises(OSError) as e:
        read_regular(str(f), 99)
    assert e.value.errno == errno.EFBIG and e.value.filename == str(f)


def test_proc_files_report_size_zero_but_are_read(tmp_path):
    assert read_regular("/proc/self/status", 1 << 20).startswith(b"Name:")


def test_a_fifo_is_refused_at_once_without_a_writer(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(OSError) as e:
        read_regular(str(fifo), 1 << 20)
    assert time.monotonic() - started < 1
    assert e.value.errno == errno.EINVAL and e.value.strerror == "is a named pipe (FIFO), not a regular file"


@pytest.mark.parametrize(
    "make, code, words",
    [
        (lambda p: p.mkdir(), errno.EISDIR, "is a directory, not a regular file"),
        (lambda p: socket.socket(socket.AF_UNIX).bind(str(p)), errno.EINVAL, "is a socket, not a regular file"),
        (lambda p: p.symlink_to("/dev/null"), errno.EINVAL, "is a character device, not a regular file"),
        (lambda p: p.symlink_to(p.name), errno.ELOOP, "Too many levels of symbolic links"),
    ],
)
def test_what_is_not_a_regular_file_is_named(tmp_path, make, code, words):
    p = tmp_path / "thing"
    make(p)
    with pytest.raises(OSError) as e:
        read_regular(str(p), 1 << 20)
    assert e.value.errno == code and e.value.strerror == words


# -- resolve_in_root ----------------------------------------------------------------------------------
def test_absolute_links_restart_at_the_root_and_dotdot_stops_there(tmp_path):
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/libx.so.1").write_text("in the tree")
    (root / "lib").symlink_to("/usr/lib")  # merged /usr, as on Debian
    (root / "usr/lib/up").symlink_to("../../../../../../etc")
    assert resolve_in_root(str(root), "/lib/libx.so.1") == str(root / "usr/lib/libx.so.1")
    assert resolve_in_root(str(root), "/usr/lib/up/passwd") == str(root / "etc/passwd")
    assert resolve_in_root(str(root), "/../../etc/passwd") == str(root / "etc/passwd")
    # the last component unresolved, for lstat/readlink
    assert resolve_in_root(str(root), "/lib", follow_last=False) == str(root / "lib")
    # absent components are kept: the caller's open then fails with ENOENT
    assert resolve_in_root(str(root), "/no/such/file") == str(root / "no/such/file")


def test_a_link_to_this_machines_file_never_reaches_it(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    secret = tmp_path / "machine-secret"
    secret.write_text("the machine's own file")
    (root / "etc/hostname").symlink_to(secret)  # absolute: the host's <tmp>/machine-secret
    resolved = resolve_in_root(str(root), "/etc/hostname")
    assert resolved == str(root) + str(secret) and not os.path.exists(resolved)


def test_symlink_loops_raise_eloop(tmp_path):
    (tmp_path / "a").symlink_to("/b")
    (tmp_path / "b").symlink_to("/a")
    with pytest.raises(OSError) as e:
        resolve_in_root(str(tmp_path), "/a/x")
    assert e.value.errno == errno.ELOOP


# -- parsers ------------------------------------------------------------------------------------------
def test_json_depth_is_capped_without_recursion_errors():
    assert load_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    for depth in (MAX_DEPTH + 1, 5_000, 1_000_000):
        with pytest.raises(ParseLimit, match=f"nested deeper than {MAX_DEPTH} levels"):
            load_json('{"a": ' * depth + "1" + "}" * depth)
    with pytest.raises(ValueError):
        load_json("{,}")


def test_toml_depth_is_capped_without_recursion_errors():
    v = load_toml("a = " + "[" * 50 + "]" * 50)["a"]
    for _ in range(49):
        v = v[0]
    assert v == []
    for depth in (MAX_DEPTH + 1, 100_000):
        with pytest.raises(ParseLimit, match="nested deeper than"):
            load_toml("a = " + "[" * depth + "]" * depth)
    with pytest.raises(ParseLimit):
        load_toml("a = " + "{b = " * 200 + "1" + "}" * 200)


def test_yaml_anchors_within_the_budget_load_like_safe_load():
    text = "base: &b {driver: nvidia, count: all}\napp:\n  <<: *b\n  image: x\nworker: *b\n"
    assert load_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize("levels, refused", [(3, False), (9, True)])
def test_yaml_alias_bomb_is_refused_in_time_and_memory(levels, refused):
    rows = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    rows += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    text = "\n".join(rows) + "\n"
    started = time.monotonic()
    if refused:
        with pytest.raises(ParseLimit, match="aliases expand to more than 10000 nodes"):
            load_yaml(text)
    else:
        assert len(load_yaml(text)) == levels
    assert time.monotonic() - started < 2


def test_yaml_recursion_and_depth_are_refused():
    with pytest.raises(ParseLimit, match="recursive"):
        load_yaml("a: &x [1, *x]\n")
    with pytest.raises(ParseLimit, match="nested deeper than 100 levels"):
        load_yaml("".join(f"{'  ' * i}k:\n" for i in range(120)) + "  " * 120 + "v\n")
    with pytest.raises(yaml.YAMLError):
        load_yaml("a: *undefined\n")
    with pytest.raises(yaml.YAMLError):  # PyYAML's safe loader still refuses Python tags
        load_yaml("!!python/object/apply:os.system ['true']\n")


def test_bounded_module_is_a_leaf():
    """host.py imports it, so it must import nothing of gpudoctor (no import circle)."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / "gpudoctor/facts/bounded.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"__future__", "errno", "os", "stat", "sys", "typing", "json", "tomllib", "tomli", "yaml"}
