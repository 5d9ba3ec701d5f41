"""KEY=VALUE overrides anywhere on the launch command line; `--only ID ...` never swallows one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grids.grid import load_grid
from launch.cli import launch_parser, main, split_overrides

CODE = Path(__file__).resolve().parents[2]
DEMO = str(CODE / "grids" / "demo.yaml")


def dry_run_json(argv: list[str], capsys) -> dict:
    assert main([*argv, "--dry-run", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("argv", [
    [DEMO, "train.epochs=1", "--executor", "local"],
    [DEMO, "--executor", "local", "train.epochs=1"],
    [DEMO, "--root", "ROOT", "--executor", "local", "train.epochs=1"],
    ["--executor", "local", DEMO, "train.epochs=1"],
])
def test_overrides_before_or_after_options(argv, tmp_path, capsys):
    argv = [str(tmp_path) if a == "ROOT" else a for a in argv]
    data = dry_run_json(argv + ([] if "--root" in argv else ["--root", str(tmp_path)]), capsys)
    want = load_grid(DEMO, ["train.epochs=1"])
    assert data["trials"] == 32 and data["sample"][0]["trial_id"] == want.trial_ids[0]
    assert want.trial_ids[0] != load_grid(DEMO).trial_ids[0]


def test_only_stops_at_an_override(tmp_path, capsys):
    grid = load_grid(DEMO, ["train.epochs=1"])
    picked = list(grid.trial_ids[:2])
    data = dry_run_json([DEMO, "--executor", "local", "--only", *picked, "train.epochs=1", "--root", str(tmp_path)],
                        capsys)
    assert data["trials"] == 2 and {s["trial_id"] for s in data["sample"]} == set(picked)


def test_an_option_value_that_looks_like_an_override_stays_the_option_value():
    rest, overrides = split_overrides(
        [DEMO, "--sbatch", "mail-type=END", "--sbatch=exclude=n1", "seed.x=1", "--partition", "a=b", "model.width=8"],
        launch_parser())
    assert overrides == ["seed.x=1", "model.width=8"]
    assert rest == [DEMO, "--sbatch", "mail-type=END", "--sbatch=exclude=n1", "--partition", "a=b"]
    assert split_overrides(["runs/a=b/grid.yaml", "--", "x=1"], launch_parser()) == (
        ["runs/a=b/grid.yaml", "--", "x=1"], [])
