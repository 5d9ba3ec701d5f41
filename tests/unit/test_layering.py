"""The one-way dependency rule of docs/design.md section 1, checked on the source (every import, top-level or
inside a function): contracts <- grids <- {launch, pc, collect, plots}; collect and plots never import launch;
pc imports no other stage; only a launch task imports pc."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "grids", "launch", "pc", "collect", "plots")
ALLOWED = {
    "contracts": {"contracts"},
    "grids": {"contracts", "grids"},
    "pc": {"contracts", "pc"},
    "collect": {"contracts", "grids", "collect"},
    "plots": {"contracts", "grids", "collect", "plots"},
    "launch": {"contracts", "grids", "launch", "pc"},
}


def project_imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, top-level project package, inside a function?) of every import in one module."""
    out = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES:
                out.append((node.lineno, top, node.col_offset > 0))
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package):
    bad = [f"{path.relative_to(REPO)}:{line} imports {top}"
           for path in sorted((REPO / package).rglob("*.py"))
           for line, top, _ in project_imports(path) if top not in ALLOWED[package]]
    assert not bad, "; ".join(bad)


def test_launch_imports_pc_only_inside_the_task():
    where = [(path.relative_to(REPO), line, nested) for path in sorted((REPO / "launch").rglob("*.py"))
             for line, top, nested in project_imports(path) if top == "pc"]
    assert where, "launch never imports pc: then who trains?"
    assert all(str(path) == "launch/task.py" and nested for path, _, nested in where), where


def test_the_checker_sees_a_forbidden_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom launch.plan import pack_tasks\n\ndef f():\n    import pc.trials\n")
    assert project_imports(module) == [(2, "launch", False), (5, "pc", True)]


def test_test_module_basenames_are_unique():
    """pytest imports test files by basename (rootdir-relative, no packages): two files of one name in two
    folders break collection of the whole suite ("import file mismatch")."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path.name == "conftest.py" or "mutants" in path.parts:
            continue
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(REPO)} and {path.relative_to(REPO)}")
        seen.setdefault(path.name, path)
    assert not clashes, "; ".join(clashes)
