"""The rules of tests/README.md that keep a test from passing for the wrong reason, checked on the test sources.

- every `pytest.raises(...)` names the message it expects (`match=`): an exception of the right type with the
  wrong message (another key, another file) is a different failure;
- no `pytest.importorskip` of a project package: a broken import must fail, not skip.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
PROJECT = {"contracts", "grids", "launch", "pc", "collect", "plots"}


def _calls(attr: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "pytest"):
                found.append((path, node))
    return found


def test_every_pytest_raises_names_the_message():
    calls = _calls("raises")
    assert len(calls) > 100  # the check reads the real tests
    missing = [f"{path.relative_to(TESTS)}:{node.lineno}" for path, node in calls
               if not any(k.arg == "match" for k in node.keywords)]
    assert not missing, f"pytest.raises without match=: {missing}"


def test_no_project_module_is_imported_with_importorskip():
    skipped = []
    for path, node in _calls("importorskip"):
        name = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else "?"
        if str(name).split(".")[0] in PROJECT or name == "?":
            skipped.append(f"{path.relative_to(TESTS)}:{node.lineno} ({name})")
    assert not skipped, f"importorskip of a project module hides a broken import: {skipped}"
