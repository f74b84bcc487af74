"""The architecture as tests: no import cycles, no module over 500 lines, providers that decide
nothing (the layers themselves are `.importlinter`'s contract, run by `make test`)."""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "safedeploy"
# What only the core decides: codes, severities, exit codes (DEVELOPERS' "providers only report").
DECIDING = re.compile(r"\bExitCode\b|\bexit_code\b|\bSeverity\b|\bFinding\b|\bSD\d{3}\b")


def test_no_module_imports_itself_back_through_others() -> None:
    graph = grimp.build_graph("safedeploy")
    sorter = TopologicalSorter(
        {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    )
    try:
        sorter.prepare()
    except CycleError as cycle:
        pytest.fail(f"an import cycle: {' -> '.join(cycle.args[1])}")


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_is_over_500_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 500


@pytest.mark.parametrize(
    "path",
    sorted((PACKAGE / "providers").rglob("*.py")),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_providers_decide_nothing(path: Path) -> None:
    found = sorted(set(DECIDING.findall(path.read_text())))
    assert not found, f"{path.name} mentions what only the core decides: {found}"


def test_every_module_has_its_place_in_the_layers() -> None:
    """A module missing from `.importlinter` would escape the layers contract unseen."""
    contract = (PACKAGE.parent / ".importlinter").read_text()
    layered = set(re.findall(r"safedeploy\.(\w+)", contract))
    modules = {
        path.stem if path.suffix else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert modules - layered == set()
