"""Table-driven bad inputs for `python -m collect` (real subprocesses, real files).

Each case damages one input, runs the command from a scratch working directory and checks the exit
code, a one-line message naming the file and the fix, that no traceback is printed, and that nothing
outside the run folder was written (nothing at all when the command refuses with exit 2).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import pytest
from collect_cases import GRID, synthetic_trial

import collect
from contracts.shard import TrialResult, write_shard

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """setup(run, tmp) -> extra CLI args (GRID first); `names` and `phrases` must share one output line."""

    id: str
    setup: Callable
    rc: int
    names: tuple[str, ...]
    phrases: tuple[str, ...]


def _good(run) -> TrialResult:
    t = synthetic_trial(1)
    run.shard("good", [t])
    return t


def _shard(run, name: str, **attrs) -> Path:
    path = write_shard(run.paths.shard(name), [synthetic_trial(7)], grid=GRID, task_key=name)
    with h5py.File(path, "a") as f:
        for k, v in attrs.items():
            if v is None:
                del f.attrs[k]
            else:
                f.attrs[k] = v
    return path


def _configs(run, name: str, text: str) -> None:
    path = _shard(run, name)
    with h5py.File(path, "a") as f:
        del f["blocks/0/config"]
        f["blocks/0"].create_dataset("config", data=[text], dtype=h5py.string_dtype("utf-8"))


def _truncated(run, tmp):
    _good(run)
    path = _shard(run, "trunc")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return [GRID]


def _text_file(run, tmp):
    _good(run)
    run.paths.shard("notes").write_text("these are my notes, not a shard\n")
    return [GRID]


def _empty_file(run, tmp):
    _good(run)
    run.paths.shard("empty").write_bytes(b"")
    return [GRID]


def _results_garbage(run, tmp):
    _good(run)
    _collect(run)
    run.paths.results.write_bytes(b"\x00garbage" * 100)
    return [GRID]


def _results_garbage_first(run, tmp):
    _good(run)
    run.paths.results.write_bytes(os.urandom(4096))
    return [GRID]


def _grid_file(content: bytes, name: str = "bad.yaml"):
    def setup(run, tmp):
        _good(run)
        path = tmp / name
        path.write_bytes(content)
        return [str(path)]
    return setup


def _collect(run) -> None:
    collect.collect(GRID, run.root, progress=False)


CASES = [
    Case("truncated shard", _truncated, 0, ("trunc.h5",), ("truncated", "rerun its task")),
    Case("text file as shard", _text_file, 0, ("notes.h5",), ("not a readable HDF5", "rerun its task")),
    Case("empty shard", _empty_file, 0, ("empty.h5",), ("not a readable HDF5", "rerun its task")),
    Case("partial shard", lambda run, tmp: (_good(run), _shard(run, "part", complete=None), [GRID])[-1], 0,
         ("part.h5",), ("partial", "rerun its task")),
    Case("other schema", lambda run, tmp: (_good(run), _shard(run, "alien", schema="other"), [GRID])[-1], 0,
         ("alien.h5",), ("schema is 'other'", "remove it")),
    Case("schema version 1", lambda run, tmp: (_good(run), _shard(run, "v1", schema_version=1), [GRID])[-1], 0,
         ("v1.h5",), ("schema_version is 1", "rerun its task")),
    Case("schema version 3", lambda run, tmp: (_good(run), _shard(run, "v3", schema_version=3), [GRID])[-1], 0,
         ("v3.h5",), ("schema_version is 3", "rerun its task")),
    Case("foreign shard", lambda run, tmp: (_good(run), _shard(run, "far", grid="other"), [GRID])[-1], 0,
         ("far.h5",), ("foreign", "move it to that grid's shards/")),
    Case("config not JSON", lambda run, tmp: (_good(run), _configs(run, "cfg", "{not json"), [GRID])[-1], 0,
         ("cfg.h5",), ("not valid JSON", "rerun its task")),
    Case("config not an object", lambda run, tmp: (_good(run), _configs(run, "arr", "[1, 2]"), [GRID])[-1], 0,
         ("arr.h5",), ("not an object", "rerun its task")),
    Case("garbage results.h5", _results_garbage, 0, ("results.h5",), ("changed since the last collect", "rebuilding")),
    Case("garbage results.h5, first collect", _results_garbage_first, 0, ("results.h5",),
         ("rewritten from the shards",)),
    Case("binary grid file", _grid_file(b"\x89HDF\r\n\x1a\n\x00\x00\xff"), 2, ("bad.yaml",), ("binary",)),
    Case("grid file not UTF-8", _grid_file(b"name: caf\xe9\n"), 2, ("bad.yaml",), ("not UTF-8", "save the grid")),
    Case("grid name is an absolute path", _grid_file(b"name: /some/dir\n"), 2, ("bad.yaml",),
         ("'/some/dir'", "expected a folder name")),
    Case("grid name climbs out", _grid_file(b"name: ../other\n"), 2, ("bad.yaml",),
         ("'../other'", "expected a folder name")),
    Case("grid file without a name", _grid_file(b"defaults: {}\n"), 2, ("bad.yaml",), ("name: missing",)),
    Case("GRID climbs out", lambda run, tmp: ["../g"], 2, ("../g",), ("no such grid file", "grid name")),
    Case("GRID with a space", lambda run, tmp: ["a b"], 2, ("'a b'",), ("expected a folder name",)),
    Case("no run folder", lambda run, tmp: ["nosuch"], 2, ("nosuch",), ("no such run folder", "--root")),
    Case("negative --wait", lambda run, tmp: [GRID, "--wait", "-1"], 2, ("--wait",), ("seconds >= 0", "--help")),
    Case("--wait not a number", lambda run, tmp: [GRID, "--wait", "soon"], 2, ("--wait",),
         ("expected seconds", "--help")),
    Case("unknown option", lambda run, tmp: [GRID, "--frobnicate"], 2, ("--frobnicate",), ("unrecognized", "--help")),
]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, run, tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    args = case.setup(run, tmp_path)
    before = _tree(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PCSWEEP_ROOT": str(tmp_path / "elsewhere")}
    p = subprocess.run([sys.executable, "-m", "collect", *args, "--root", str(run.root), "--no-progress"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert p.returncode == case.rc, out
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if all(n in ln for n in case.names) and all(f in ln for f in case.phrases)]
    assert lines, f"no line names {case.names} with {case.phrases}:\n{out}"
    after = _tree(tmp_path)
    if case.rc == 2:
        assert len(p.stderr.strip().splitlines()) == 1 and not p.stdout, out
        assert after == before, "a refused command wrote files"
    else:
        inside = str(run.paths.folder.relative_to(tmp_path))
        outside = {k: v for k, v in after.items() if not k.startswith(inside + os.sep)}
        assert outside == {k: v for k, v in before.items() if not k.startswith(inside + os.sep)}
        assert (run.paths.shards_dir / "good.h5").is_file()  # the good shard still produced results
        assert "complete   1" in p.stdout, out
