"""The package layers import one way (issue 9): no circle between facts, probes, explain, checks and the request
model, counting imports inside functions too — a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("facts", "probes", "explain", "checks", "gpu_requests")


def _part_of(module: str) -> str | None:
    # The probe runner, its Docker API calls, its detached reaper and the probe image's builder touch the machine, as
    # facts do (they share the Docker client and facts.bounded): one layer with them.
    if module.startswith(("gpudoctor.probes.runner", "gpudoctor.probes.api", "gpudoctor.probes.reap",
                          "gpudoctor.probes.image")):
        return "facts"
    bits = module.split(".")
    return bits[1] if len(bits) > 1 and bits[0] == "gpudoctor" and bits[1] in PARTS else None


def _module_name(path: Path) -> str:
    if path.parts[len(ROOT.parts)] == "checks":
        return "gpudoctor.checks." + path.stem
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _edges() -> set[tuple[str, str]]:
    edges = set()
    files = [*ROOT.joinpath("gpudoctor").rglob("*.py"), *ROOT.joinpath("checks").glob("*.py")]
    for path in files:
        name = _module_name(path)
        src = _part_of(name)
        if src is None:
            continue
        package = name.rsplit(".", 1)[0] if path.name != "__init__.py" else name
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                else:
                    targets = [node.module or ""]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                dst = _part_of(t)
                if dst and dst != src:
                    edges.add((src, dst))
    return edges


def _cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)

    def walk(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                return path[path.index(nxt):] + [nxt]
            found = walk(nxt, path + [nxt])
            if found:
                return found
        return None

    for start in sorted(graph):
        found = walk(start, [start])
        if found:
            return found
    return None


def test_no_import_circle_between_the_layers():
    edges = _edges()
    assert ("probes", "gpu_requests") in edges and ("explain", "gpu_requests") in edges  # the graph was read
    assert _cycle(edges) is None, _cycle(edges)


def test_the_request_model_reads_no_layer_above_it():
    assert {b for a, b in _edges() if a == "gpu_requests"} == set()
