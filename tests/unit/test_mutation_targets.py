"""CI's mutation step (tests/mutation/changed.py, run.py --target): which targets a change touches, and that every
target of tests/mutation/targets.toml names modules mutmut mutates and test files that exist."""

from __future__ import annotations

import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "mutation"))
import changed  # noqa: E402
import run  # noqa: E402


def test_the_series_base_is_the_commit_before_the_first_long_gap():
    hour = 3600
    history = [("h", 10 * hour), ("g", 10 * hour - 600), ("f", 9 * hour), ("e", 8 * hour + 1800)]
    # 10 min, then 50 min (over 45): f is the previous main; e is older and stays out
    assert changed.series_base(history) == "f"
    assert changed.series_base(history, gap_min=60) is None  # one series: the whole history counts
    assert changed.series_base([("only", 0)]) is None
    # exactly the threshold is still the same sitting
    assert changed.series_base([("b", 45 * 60), ("a", 0)]) is None


@pytest.mark.parametrize(("entry", "files"), [
    ("grids.sweep", ["grids/sweep.py"]),
    ("contracts.shard", ["contracts/shard/"]),
    ("plots.fig_lr_scaling.x_panel_rows*", ["plots/fig_lr_scaling.py"]),
    ("contracts.lock.x\u01c1RunLock\u01c1_stale*", ["contracts/lock.py"]),
    ("plots.fig_*", ["plots/fig_*.py"]),
])
def test_module_entries_map_to_the_files_they_mutate(entry, files):
    assert changed.module_files(entry) == files


def test_a_target_is_touched_by_its_module_files_and_its_tests_only():
    target = {"modules": ["contracts.shard", "grids.sweep"], "tests": ["tests/grids/test_grid.py"]}
    assert changed.touched(target, ["contracts/shard/reader.py"])
    assert changed.touched(target, ["README.md", "grids/sweep.py"])
    assert changed.touched(target, ["tests/grids/test_grid.py"])
    assert not changed.touched(target, ["grids/grid.py", "contracts/shardx.py", "tests/grids/test_grid_x.py"])
    assert not changed.touched(target, [])


def test_every_target_mutates_listed_modules_with_existing_fast_tests():
    only_mutate = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]
    targets = run.read_targets()
    assert "fixed" in targets
    for name, target in targets.items():
        for test in target["tests"]:
            assert (REPO / test).is_file(), f"[{name}] {test}"
            assert "slurm" not in test, f"[{name}] {test}: CI scores with fast tests only"
        for entry in target["modules"]:
            files = changed.module_files(entry)
            for f in files:
                assert list(REPO.glob(f.rstrip("/"))), f"[{name}] {entry}: no file {f}"
                probe = f + "x.py" if f.endswith("/") else f  # a file inside a package's folder
                assert any(fnmatch(probe, m) for m in only_mutate), f"[{name}] {entry}: {f} is not in only_mutate"


def test_an_unknown_target_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit, match="2"):
        run.main(["--target", "no-such-target", "--report-only"])
    assert "--target no-such-target: not in targets.toml" in capsys.readouterr().err
