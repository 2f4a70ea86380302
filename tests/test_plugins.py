"""Plugin discovery (gpudoctor/plugins.py) finds what importlib.metadata finds, without reading every METADATA."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from gpudoctor.plugins import entry_points


def _as_set(eps: object) -> set[tuple[str, str, str]]:
    return {(ep.name, ep.value, ep.group) for ep in eps}  # type: ignore[attr-defined]


def test_same_entry_points_as_importlib_metadata_in_this_environment():
    for group in ("console_scripts", "pytest11", "gpudoctor.checks"):
        assert _as_set(entry_points(group)) == _as_set(metadata.entry_points(group=group)), group
    assert any(ep.name == "gpudoctor" for ep in entry_points("console_scripts"))


def test_a_plugin_distribution_on_the_path_is_found_and_the_first_of_a_name_wins(tmp_path: Path):
    def dist(where: Path, dirname: str, body: str) -> None:
        (where / dirname).mkdir(parents=True)
        (where / dirname / "entry_points.txt").write_text(body)

    first, second = tmp_path / "a", tmp_path / "b"
    dist(first, "Acme_GPU_Checks-1.0.dist-info", "[gpudoctor.checks]\nAcme = acme_checks:CHECKS\n\n[console_scripts]\nx = y:z\n")
    dist(second, "acme.gpu.checks-2.0.dist-info", "[gpudoctor.checks]\nold = acme_old:CHECKS\n")  # same project
    dist(second, "other-0.1.dist-info", "[gpudoctor.checks]\nother = other:CHECKS\n")
    dist(second, "broken-0.1.dist-info", "[gpudoctor.checks\nnot = ini\n")
    (second / "plain.egg-info").write_text("an egg-info file, not a directory")
    got = entry_points("gpudoctor.checks", [str(first), str(second), str(tmp_path / "missing")])
    assert [(ep.name, ep.value) for ep in got] == [("Acme", "acme_checks:CHECKS"), ("other", "other:CHECKS")]
