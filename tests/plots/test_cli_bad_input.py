"""Bad input to `python -m plots`, table-driven: exit code, one line on stderr naming the file or option
and the fix, no traceback, nothing written. Each case runs the real CLI in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from contracts.paths import RunPaths

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """One bad invocation: `args(root, tmp)` builds the arguments (and any file they name)."""

    id: str
    args: Callable[[Path, Path], list[str]]
    code: int
    says: tuple[str, ...]  # every one of these appears in the stderr line ("{tmp}" is replaced)


def _grid_file(tmp: Path, body: bytes, name: str = "bad.yaml") -> str:
    path = tmp / name
    path.write_bytes(body)
    return str(path)


def _summary(root: Path, grid: str, text: str) -> str:
    paths = RunPaths.of(grid, root)
    paths.folder.mkdir(parents=True, exist_ok=True)
    paths.summary.write_text(text)
    return grid


def _bp_only(root: Path, tmp: Path) -> str:
    """A collected run whose summary holds BP rows only: every PC figure is skipped."""
    src = RunPaths.of("mini", root)
    dst = RunPaths.of("bponly", root)
    dst.folder.mkdir(exist_ok=True)
    shutil.copyfile(src.results, dst.results)
    table = pd.read_csv(src.summary, dtype={"trial_id": str})
    table[table["model.kind"] == "bp"].to_csv(dst.summary, index=False)
    return "bponly"


def _cut_summary(root: Path, tmp: Path, at_line_end: bool) -> str:
    """The collected mini run with summary.csv cut short: mid-line, or after a whole line (then only the size
    collect recorded in .collect_state.json can tell)."""
    paths = RunPaths.of("mini", root)
    text = paths.summary.read_bytes()
    cut = text.rfind(b"\n", 0, len(text) // 2) + 1 if at_line_end else len(text) // 2
    paths.summary.write_bytes(text[:cut])
    return "mini"


CASES = [
    Case("summary-cut-mid-line", lambda r, t: [_cut_summary(r, t, False), "--root", str(r)], 2,
         ("mini/summary.csv", "ends mid-line", "--rebuild")),
    Case("no-grid", lambda r, t: [], 2, ("give at least one GRID",)),
    Case("unknown-figure", lambda r, t: ["mini", "--root", str(r), "--only", "nope"], 2,
         ("--only nope", "available: energy_per_t")),
    Case("unknown-format", lambda r, t: ["mini", "--root", str(r), "--format", "svg"], 2,
         ("--format", "pdf, png")),
    Case("empty-format", lambda r, t: ["mini", "--root", str(r), "--format", ","], 2, ("--format",)),
    Case("ratio-not-a-number", lambda r, t: ["mini", "--root", str(r), "--ratio-min-accuracy", "high"], 2,
         ("--ratio-min-accuracy", "--help")),
    Case("unknown-option", lambda r, t: ["mini", "--root", str(r), "--bogus"], 2, ("--bogus", "--help")),
    Case("grid-name-absolute", lambda r, t: [_grid_file(t, b"name: /abs\nsweep: []\n"), "--root", str(r)], 2,
         ("{tmp}/bad.yaml", "name", "/abs", "folder name")),
    Case("grid-name-parent", lambda r, t: [_grid_file(t, b"name: ../x\nsweep: []\n"), "--root", str(r)], 2,
         ("{tmp}/bad.yaml", "name", "../x", "folder name")),
    Case("grid-file-binary", lambda r, t: [_grid_file(t, b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"), "--root", str(r)],
         2, ("{tmp}/bad.yaml", "binary", "grids/*.yaml")),
    Case("grid-file-latin1", lambda r, t: [_grid_file(t, "name: caf\xe9\n".encode("latin-1")), "--root", str(r)],
         2, ("{tmp}/bad.yaml", "UTF-8")),
    Case("grid-file-nul-bytes", lambda r, t: [_grid_file(t, b"name: x\x00\x00\n"), "--root", str(r)], 2,
         ("{tmp}/bad.yaml", "binary")),
    Case("grid-file-not-yaml", lambda r, t: [_grid_file(t, b"name: [unclosed\n"), "--root", str(r)], 2,
         ("{tmp}/bad.yaml", "not valid YAML")),
    Case("grid-file-without-name", lambda r, t: [_grid_file(t, b"sweep: []\n"), "--root", str(r)], 2,
         ("{tmp}/bad.yaml", "name: missing")),
    Case("grid-file-absent", lambda r, t: [str(t / "absent.yaml"), "--root", str(r)], 2,
         ("absent.yaml", "no such grid file")),
    Case("grid-name-with-dots", lambda r, t: ["../mini", "--root", str(r)], 2, ("../mini", "grid name")),
    Case("out-is-a-file", lambda r, t: ["mini", "--root", str(r), "--out", _grid_file(t, b"x", "file.txt")], 2,
         ("--out", "{tmp}/file.txt", "is a file")),
    Case("summary-empty", lambda r, t: [_summary(r, "empty", ""), "--root", str(r)], 2,
         ("empty/summary.csv", "python -m collect empty")),
    Case("summary-foreign", lambda r, t: [_summary(r, "foreign", "a,b\n1,2\n"), "--root", str(r)], 2,
         ("foreign/summary.csv", "trial_id", "python -m collect foreign")),
    Case("summary-partial", lambda r, t: [_summary(r, "partial", "trial_id,accuracy\nab,0.5\n"), "--root", str(r)],
         2, ("partial/summary.csv", "data.dataset", "python -m collect partial")),
    Case("not-collected", lambda r, t: ["nogrid", "--root", str(r)], 1,
         ("nogrid/summary.csv", "python -m collect nogrid")),
    Case("every-figure-skipped", lambda r, t: [_bp_only(r, t), "--root", str(r), "--only", "energy_per_t",
                                               "accuracy_optimizers"], 1,
         ("every requested figure was skipped", "bponly", "nothing written")),
]


def _files(*folders: Path) -> set[Path]:
    return {p for folder in folders for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def private_root(mini_run: RunPaths, tmp_path: Path) -> Path:
    """A copy of the collected mini run under its own root, so a case cannot touch the shared one."""
    root = tmp_path / "runs"
    shutil.copytree(mini_run.folder, root / "mini", ignore=shutil.ignore_patterns("figures"))
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_with_the_fix_and_writes_nothing(case: Case, private_root: Path,
                                                                tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = case.args(private_root, inputs)
    before = _files(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "plots", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == case.code, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m plots: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for text in case.says:
        assert text.replace("{tmp}", str(inputs)) in lines[0], (text, lines[0])
    assert _files(tmp_path) == before  # no figure, no folder content, no tmp file
    assert not any(p.name == "figures" for p in tmp_path.rglob("*"))


def test_a_summary_cut_at_a_line_end_draws_with_a_warning_naming_the_sizes(private_root: Path, tmp_path: Path):
    """Cut after a whole line, the table parses; only the size collect recorded tells it from the whole file (or
    from an edit, which cannot be told apart): the figures are drawn and stderr says so, with the fix."""
    _cut_summary(private_root, tmp_path, True)
    proc = subprocess.run([sys.executable, "-m", "plots", "mini", "--root", str(private_root), "--only",
                           "coverage"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("plots: warning: ")]
    assert len(warning) == 1 and "mini/summary.csv" in warning[0] and "but the last collect wrote" in warning[0]
    assert "--rebuild" in warning[0]
