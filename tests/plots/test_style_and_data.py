"""Unit tests of the γ labels, the summary normalisation and the paper's condition choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from grids import GRIDS_DIR, resolve
from plots import data, style


@pytest.mark.parametrize("value, label", [
    (1e-3, "1e-3"), (3e-3, "3e-3"), (0.01, "1e-2"), (3.0000000000000004e-05, "3e-5"), (1e-5, "1e-5"),
    (0.1, "0.1"), (0.30000000000000004, "0.3"), (1.0, "1"), (9.9996e-4, "1e-3"),
])
def test_gamma_labels_are_short_and_round_float_noise(value: float, label: str) -> None:
    assert style.gamma_label(value) == label


def test_normalize_derives_optim_and_condition_and_rounds_gamma() -> None:
    df = pd.DataFrame({"trial_id": ["a", "b"], "model.kind": ["pc", "bp"], "train.w_optimizer": ["sgd", "adamw"],
                       "train.w_momentum": [0.0, 0.9], "train.h_lr": [0.30000000000000004, 1.0],
                       "model.constant_width": ["False", "True"]})
    out = data.normalize_summary(df)
    assert list(out["optim"]) == ["sgd-0.0", "adamw-0.9"]
    assert list(out["condition"]) == ["pc-sgd-0.0", "bp-adamw-0.9"]
    assert list(out["train.h_lr"]) == [0.3, 1.0]
    assert list(out["model.constant_width"]) == [False, True]
    assert list(out["status"]) == ["ok", "ok"]


def test_paper_energy_trials_takes_every_seed_of_the_best_adamw_condition(summary: pd.DataFrame) -> None:
    for ds in ("two_moons", "fashion_mnist"):
        rows = data.paper_energy_trials(summary, ds)
        pool = summary[(summary["data.dataset"] == ds) & (summary["condition"] == "pc-adamw-0.9")]
        best = pool.loc[pool["accuracy"].idxmax()]
        assert len(rows) == 2 and sorted(rows["seed"]) == [0, 1]
        assert best["trial_id"] in set(rows["trial_id"])
        for col in data.config_columns(summary):
            assert rows[col].nunique(dropna=False) == 1, col


def test_paper_energy_trials_skips_without_adamw_rows(summary: pd.DataFrame) -> None:
    with pytest.raises(data.SkipFigure, match="adamw"):
        data.paper_energy_trials(summary[summary["optim"] != "adamw-0.9"], "two_moons")


def test_expected_trials_without_grid_file_is_none() -> None:
    expected, note = data.expected_trials(None)
    assert expected is None and "no grid.yaml" in note


def test_expected_trials_expands_the_demo_grid() -> None:
    demo = GRIDS_DIR / "demo.yaml"
    expected, note = data.expected_trials(demo)
    assert expected is not None, note
    assert len(expected) == 32 and expected["trial_id"].is_unique
    assert expected.groupby("model.kind").size().to_dict() == {"bp": 8, "pc": 24}


def test_read_arrays_returns_the_stored_energy(mini_run, summary: pd.DataFrame) -> None:
    row = summary.iloc[0]
    arr = data.read_arrays(mini_run.results, [row["trial_id"]], "energy")[row["trial_id"]]
    T = int(row["train.T"])
    assert arr.shape[2] == T + 1
    assert np.isclose(arr[-1, -1, T - 1, 0], row["energy_0"], rtol=1e-6)


def test_read_arrays_of_an_unknown_trial_is_a_skip(mini_run) -> None:
    with pytest.raises(data.SkipFigure, match="cannot read"):
        data.read_arrays(mini_run.results, ["0000000000000000"], "energy")


def _name_and_yaml(grid: str, root):
    ref = resolve(grid, root)
    return ref.name, data.coverage_yaml(ref)


def test_grid_argument_may_be_a_name_or_a_yaml_path(tmp_path) -> None:
    """GRID goes through `grids.resolve`; coverage prefers the grid as launched over the grid file."""
    grid_file = tmp_path / "some_file.yaml"
    grid_file.write_text("name: mystudy\nsweep: []\n")
    assert _name_and_yaml(str(grid_file), tmp_path) == ("mystudy", grid_file)
    # a bare name with no grids/mystudy.yaml and no runs/mystudy/grid.yaml has no grid file
    assert _name_and_yaml("mystudy", tmp_path) == ("mystudy", None)
    launched = tmp_path / "mystudy" / "grid.yaml"
    launched.parent.mkdir()
    launched.write_text("name: mystudy\n")
    assert _name_and_yaml("mystudy", tmp_path) == ("mystudy", launched)
    assert _name_and_yaml(str(grid_file), tmp_path) == ("mystudy", launched)  # as launched wins
    # a bare name of a grid shipped in grids/ finds its file there
    assert _name_and_yaml("stability", tmp_path) == ("stability", GRIDS_DIR / "stability.yaml")
