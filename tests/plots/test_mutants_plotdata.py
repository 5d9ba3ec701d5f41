"""plots.data where the mutation run found survivors (fast tier; tests/README.md "Mutation testing").

The summaries are the one the real `collect` wrote for the mini grid (tests/plots/conftest.py: real shards,
real collect), or files derived from it with pandas; results.h5 is collect's. Selections are checked against
an independent pandas computation on the same table.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collect
from collect.merge_state import updating_marker
from contracts.paths import RunPaths
from grids import GridError, load_grid
from plots import data
from plots.registry import SkipFigure


def _copy_run(mini_run: RunPaths, root: Path, name: str = "mini") -> RunPaths:
    """A private copy of the collected mini run folder under `root` (the shared one stays untouched)."""
    shutil.copytree(mini_run.folder, root / name, ignore=shutil.ignore_patterns("figures"))
    return RunPaths.of(name, root)


# ------------------------------------------------------------------ normalize_summary

def test_normalize_rounds_gamma_lr_and_momentum_given_as_text_or_ints() -> None:
    raw = pd.DataFrame({"trial_id": [12, 7], "train.h_lr": ["0.30000000000000004", "1e-3"],
                        "train.w_lr": [0.010000000000000002, 2], "train.w_momentum": [0, 1],
                        "train.w_optimizer": ["sgd", "adamw"], "model.kind": ["pc", "bp"]})
    before = raw.copy()
    out = data.normalize_summary(raw)
    pd.testing.assert_frame_equal(raw, before)  # the caller's table is not changed
    assert list(out["train.h_lr"]) == [0.3, 0.001] and out["train.h_lr"].dtype == np.float64
    assert list(out["train.w_lr"]) == [0.01, 2.0] and out["train.w_lr"].dtype == np.float64
    assert list(out["train.w_momentum"]) == [0.0, 1.0] and out["train.w_momentum"].dtype == np.float64
    assert list(out["optim"]) == ["sgd-0.0", "adamw-1.0"] and list(out["condition"]) == ["pc-sgd-0.0", "bp-adamw-1.0"]
    assert list(out["trial_id"]) == ["12", "7"] and list(out["status"]) == ["ok", "ok"]


def test_normalize_reads_constant_width_as_collect_and_pandas_write_it() -> None:
    values = ["True", " true ", "TRUE", "1", "1.0", 1, 1.0, True, "False", "false", "0", "0.0", 0, False, "yes",
              np.nan, None]
    raw = pd.DataFrame({"trial_id": [str(i) for i in range(len(values))],
                        "model.constant_width": pd.Series(values, dtype=object)})
    out = data.normalize_summary(raw)
    assert list(out["model.constant_width"]) == [True] * 8 + [False] * 9


def test_normalize_keeps_collects_labels_and_status() -> None:
    raw = pd.DataFrame({"trial_id": ["a", "b"], "model.kind": ["pc", "bp"], "train.w_optimizer": ["sgd", "sgd"],
                        "train.w_momentum": [0.9, 0.9], "optim": ["mine-1", "mine-2"],
                        "condition": ["c1", "c2"], "status": ["diverged", "ok"]})
    out = data.normalize_summary(raw)
    assert list(out["optim"]) == ["mine-1", "mine-2"] and list(out["condition"]) == ["c1", "c2"]
    assert list(out["status"]) == ["diverged", "ok"]
    # optim present, condition absent: the condition is derived from the table's own optim
    out = data.normalize_summary(raw.drop(columns=["condition"]))
    assert list(out["condition"]) == ["pc-mine-1", "bp-mine-2"]


def test_normalize_derives_nothing_it_lacks_the_columns_for() -> None:
    out = data.normalize_summary(pd.DataFrame({"trial_id": ["a"], "train.w_optimizer": ["sgd"], "model.kind": ["pc"]}))
    assert "optim" not in out and "condition" not in out and list(out.columns) == [
        "trial_id", "train.w_optimizer", "model.kind", "status"]
    out = data.normalize_summary(pd.DataFrame({"trial_id": ["a"], "train.w_momentum": [0.9]}))
    assert "optim" not in out and "condition" not in out
    out = data.normalize_summary(pd.DataFrame({"trial_id": ["a"], "train.w_optimizer": ["sgd"],
                                               "train.w_momentum": [0.9]}))
    assert list(out["optim"]) == ["sgd-0.9"] and "condition" not in out


def test_the_collected_summary_is_already_normal(mini_run: RunPaths) -> None:
    raw = collect.load_summary(mini_run.grid, mini_run.root)
    out = data.normalize_summary(raw)
    for col in ("optim", "condition", "status", "trial_id", "train.h_lr", "train.w_momentum", "accuracy"):
        pd.testing.assert_series_equal(out[col], raw[col])
    assert out["model.constant_width"].dtype == bool and not out["model.constant_width"].any()


# ------------------------------------------------------------------ condition keys and row selection

def test_config_columns_are_the_data_model_and_train_keys_in_table_order(summary: pd.DataFrame) -> None:
    cols = data.config_columns(summary)
    assert cols == [c for c in summary.columns if c.split(".")[0] in ("data", "model", "train")]
    assert "seed" not in cols and "optim" not in cols and "trial_id" not in cols and "model.kind" in cols
    odd = pd.DataFrame(columns=["training.x", "datax.y", "train.T", "modelx", "data.dataset", "model.w", "seed"])
    assert data.config_columns(odd) == ["train.T", "data.dataset", "model.w"]


def test_condition_key_joins_every_config_value_but_the_seed(summary: pd.DataFrame) -> None:
    rows = summary.iloc[[5, 0, 9]].copy()
    rows.index = [30, 10, 20]
    keys = data.condition_key(rows)
    cols = data.config_columns(summary)
    assert list(keys.index) == [30, 10, 20] and keys.dtype == object
    assert list(keys) == ["|".join(str(rows.loc[i, c]) for c in cols) for i in rows.index]
    # the seeds of one condition share a key; each condition has its own
    all_keys = data.condition_key(summary)
    groups = summary.groupby(cols, dropna=False).ngroup()
    assert all_keys.nunique() == groups.nunique() > 1
    assert (pd.crosstab(all_keys, groups) > 0).sum(axis=1).eq(1).all()
    assert (summary.assign(k=all_keys).groupby("k")["seed"].nunique() == 2).sum() >= all_keys.nunique() - 3


def test_for_dataset_and_require(summary: pd.DataFrame) -> None:
    assert data.for_dataset(summary, None) is summary
    moons = data.for_dataset(summary, "two_moons")
    assert len(moons) == (summary["data.dataset"] == "two_moons").sum() > 0
    assert set(moons["data.dataset"]) == {"two_moons"}
    assert data.require(moons, "x") is moons
    with pytest.raises(SkipFigure, match=r"^no rows with what I asked for$"):
        data.require(moons.iloc[:0], "what I asked for")


def _paper_oracle(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The paper's choice, computed here: best final accuracy per γ among PC AdamW rows, the top of those,
    and every seed of its condition."""
    pool = summary[(summary["data.dataset"] == dataset) & (summary["model.kind"] == "pc")
                   & (summary["optim"] == "adamw-0.9")].dropna(subset=["accuracy"])
    best = pool.sort_values("accuracy", ascending=False, kind="stable").groupby("train.h_lr").head(1)
    top = best.sort_values("accuracy", ascending=False, kind="stable").iloc[0]
    cols = data.config_columns(summary)
    same = ((pool[cols] == top[cols]) | (pool[cols].isna() & top[cols].isna())).all(axis=1)
    return pool[same]


def test_paper_energy_trials_equal_an_independent_choice(summary: pd.DataFrame) -> None:
    for dataset in ("two_moons", "fashion_mnist"):
        got = data.paper_energy_trials(summary, dataset)
        pd.testing.assert_frame_equal(got, _paper_oracle(summary, dataset))
    # every dataset at once: the same rule over both
    both = data.paper_energy_trials(summary, None)
    pool = summary[(summary["model.kind"] == "pc") & (summary["optim"] == "adamw-0.9")]
    assert pool.loc[pool["accuracy"].idxmax(), "trial_id"] in set(both["trial_id"]) and len(both) == 2


def test_paper_energy_trials_take_the_best_of_what_is_finite(summary: pd.DataFrame) -> None:
    """The best condition diverged (NaN accuracy) in one seed, and a whole γ diverged: the rest decides."""
    table = summary.copy()
    moons = (table["data.dataset"] == "two_moons") & (table["condition"] == "pc-adamw-0.9")
    first = data.paper_energy_trials(table, "two_moons")
    table.loc[moons & (table["train.h_lr"] == first["train.h_lr"].iloc[0]), "accuracy"] = np.nan
    got = data.paper_energy_trials(table, "two_moons")
    pd.testing.assert_frame_equal(got, _paper_oracle(table, "two_moons"))
    assert got["train.h_lr"].iloc[0] != first["train.h_lr"].iloc[0] and len(got) == 2
    # the worst condition made the best: it wins, so ordering by accuracy (not by row or γ) decides
    table = summary.copy()
    pool = table[moons]
    worst = pool["accuracy"].idxmin()
    same = data.condition_key(table) == data.condition_key(table).loc[worst]
    table.loc[same, "accuracy"] = 0.999
    got = data.paper_energy_trials(table, "two_moons")
    assert set(got.index) == set(table.index[same]) and len(got) == 2


def test_paper_energy_trials_skip_with_the_reason(summary: pd.DataFrame) -> None:
    with pytest.raises(SkipFigure, match=r"^no rows with model.kind=pc, optim=adamw-0.9 for two_moons$"):
        data.paper_energy_trials(summary[summary["model.kind"] == "bp"], "two_moons")
    with pytest.raises(SkipFigure, match=r"^no rows with model.kind=pc, optim=adamw-0.9 for mnist$"):
        data.paper_energy_trials(summary, "mnist")
    diverged = summary.assign(accuracy=np.nan)
    with pytest.raises(SkipFigure, match=r"^no rows with a finite accuracy \(all diverged\)$"):
        data.paper_energy_trials(diverged, "fashion_mnist")


# ------------------------------------------------------------------ arrays from results.h5

def test_read_arrays_returns_float64_copies_of_the_stored_arrays(mini_run: RunPaths, summary: pd.DataFrame) -> None:
    ids = summary["trial_id"].iloc[[3, 1]]
    got = data.read_arrays(mini_run.results, ids, "w_norm")
    stored = collect.load_arrays(mini_run.grid, "w_norm", list(ids), mini_run.root)
    assert list(got) == list(ids)
    for tid in ids:
        assert got[tid].dtype == np.float64
        np.testing.assert_array_equal(got[tid], stored[tid].astype(np.float64))


def test_read_arrays_in_a_run_folder_refuses_an_interrupted_update(mini_run: RunPaths, tmp_path: Path,
                                                                   summary: pd.DataFrame) -> None:
    paths = _copy_run(mini_run, tmp_path)
    tid = summary["trial_id"].iloc[0]
    assert data.read_arrays(paths.results, [tid], "energy")[tid].shape[0] == 3
    updating_marker(paths).write_text("killed")
    with pytest.raises(SkipFigure, match=rf"^cannot read energy from {paths.results}: .*interrupted"):
        data.read_arrays(paths.results, [tid], "energy")


def test_read_arrays_of_a_file_outside_a_run_folder(mini_run: RunPaths, tmp_path: Path,
                                                   summary: pd.DataFrame) -> None:
    """A results file under another name, or in a folder that is no grid name: read as it is (no marker check)."""
    tid = summary["trial_id"].iloc[2]
    want = collect.load_arrays(mini_run.grid, "energy", [tid], mini_run.root)[tid]
    renamed = tmp_path / "mini" / "copy.h5"
    renamed.parent.mkdir()
    shutil.copyfile(mini_run.results, renamed)
    (tmp_path / "mini" / "results.h5.updating").write_text("not about copy.h5")
    (tmp_path / "mini" / "copy.h5.updating").write_text("not checked outside a run folder")
    np.testing.assert_array_equal(data.read_arrays(renamed, [tid], "energy")[tid], want)
    odd = tmp_path / "not a grid!" / "results.h5"
    odd.parent.mkdir()
    shutil.copyfile(mini_run.results, odd)
    (odd.parent / "results.h5.updating").write_text("not checked outside a run folder")
    np.testing.assert_array_equal(data.read_arrays(odd, [tid], "energy")[tid], want)


def test_read_arrays_errors_skip_the_figure(mini_run: RunPaths, tmp_path: Path, summary: pd.DataFrame) -> None:
    tid = summary["trial_id"].iloc[0]
    with pytest.raises(SkipFigure, match=r"^cannot read energies from .*expected one of"):
        data.read_arrays(mini_run.results, [tid], "energies")
    with pytest.raises(SkipFigure, match=rf"^cannot read energy from {tmp_path / 'absent.h5'}: "):
        data.read_arrays(tmp_path / "absent.h5", [tid], "energy")


# ------------------------------------------------------------------ the grid: expected trials

def test_expected_trials_are_the_grid_trials_labelled_as_collect_labels_them(mini_run: RunPaths,
                                                                             summary: pd.DataFrame) -> None:
    expected, note = data.expected_trials(mini_run.grid_yaml)
    assert note == "expected from grid.yaml"
    grid = load_grid(mini_run.grid_yaml)
    assert list(expected.columns) == ["trial_id", "data.dataset", "model.kind", "optim", "model.constant_width"]
    assert list(expected["trial_id"]) == list(grid.trial_ids)
    assert expected["model.constant_width"].dtype == bool
    # every collected trial has the same labels in the summary as in the expected table
    merged = summary.merge(expected, on="trial_id", suffixes=("", "_expected"))
    assert len(merged) == len(summary)
    for col in ("data.dataset", "model.kind", "optim", "model.constant_width"):
        assert (merged[col] == merged[f"{col}_expected"]).all(), col


def test_expected_trials_of_the_constant_width_ablation_are_true(const_run: RunPaths) -> None:
    expected, _ = data.expected_trials(const_run.grid_yaml)
    assert expected["model.constant_width"].tolist() == [True] * len(expected) and len(expected) > 0
    assert expected["model.constant_width"].map(type).eq(bool).all()


def test_expected_trials_of_a_grid_that_no_longer_expands(tmp_path: Path) -> None:
    bad = tmp_path / "grid.yaml"
    bad.write_text("name: g\nsweep: 3\n")
    expected, note = data.expected_trials(bad)
    assert expected is None and note.startswith(f"could not expand {bad} (GridError: ")
    folder = tmp_path / "adir"
    folder.mkdir()
    expected, note = data.expected_trials(folder)
    assert expected is None and note.startswith(f"could not expand {folder} (")
    with pytest.raises(GridError, match=r"sweep: got 3; expected a non-empty list of blocks"):
        load_grid(bad)


# ------------------------------------------------------------------ reading a run folder

def test_inputs_load_the_collected_run(mini_run: RunPaths, summary: pd.DataFrame) -> None:
    inputs = data.Inputs.load(mini_run.grid, mini_run.root)
    assert (inputs.grid, inputs.results, inputs.grid_yaml) == ("mini", mini_run.results, mini_run.grid_yaml)
    pd.testing.assert_frame_equal(inputs.summary, data.normalize_summary(collect.load_summary("mini", mini_run.root)))
    assert inputs.datasets == ["fashion_mnist", "two_moons"]


def test_datasets_are_sorted_unique_and_skip_empty_cells(mini_run: RunPaths, tmp_path: Path) -> None:
    paths = _copy_run(mini_run, tmp_path)
    table = pd.read_csv(paths.summary, dtype={"trial_id": str})
    table.loc[table.index[:3], "data.dataset"] = np.nan
    table.loc[table.index[3:6], "data.dataset"] = "a_first"
    table.to_csv(paths.summary, index=False)
    assert data.Inputs.load("mini", tmp_path).datasets == ["a_first", "fashion_mnist", "two_moons"]


def test_a_grid_file_argument_reads_the_run_it_names(mini_run: RunPaths, tmp_path: Path) -> None:
    paths = _copy_run(mini_run, tmp_path / "runs")
    paths.grid_yaml.unlink()  # no grid as launched: the file given is the grid file
    grid_file = tmp_path / "mygrid.yaml"
    shutil.copyfile(mini_run.grid_yaml, grid_file)
    inputs = data.Inputs.load(str(grid_file), tmp_path / "runs")
    assert inputs.grid == "mini" and inputs.grid_yaml == grid_file and len(inputs.summary) > 0


def test_no_summary_names_the_collect_call(tmp_path: Path) -> None:
    (tmp_path / "fresh").mkdir()
    with pytest.raises(FileNotFoundError, match=r"summary.csv: no summary table for grid 'fresh'; run "
                       r"`python -m collect fresh --root .*` first$") as e:
        data.Inputs.load("fresh", tmp_path)
    assert str(tmp_path / "fresh" / "summary.csv") in str(e.value) and f"--root {tmp_path}`" in str(e.value)


@pytest.mark.parametrize("text, says", [
    ("", r"empty \(truncated: a full disk or a copy cut short\?\); rerun "),
    ("trial_id,accuracy\nab,0.5", r"ends mid-line \(truncated: a full disk or a copy cut short\?\); rerun "),
    ("a,b\n1,2\n", r"no column trial_id; not written by this pcsweep's collect: run "),
    ("trial_id,accuracy\nab,0.5\n", r"no column data.dataset, model.kind, model.width, model.activation, "
     r"train.h_lr, train.w_optimizer, train.w_momentum; not written by this pcsweep's collect: run "),
    ('trial_id,x\n"ab,1\n', r"not a summary table \(ParserError: "),
], ids=["empty", "cut-mid-line", "foreign", "partial", "unparseable"])
def test_a_summary_that_is_not_collects_is_named_with_the_fix(tmp_path: Path, text: str, says: str) -> None:
    paths = RunPaths.of("study", tmp_path)
    paths.folder.mkdir()
    paths.summary.write_text(text)
    tail = " --rebuild` to rewrite it" if "truncated" in says else "` again"
    with pytest.raises(data.SummaryError, match=rf"^{paths.summary}: {says}.*`python -m collect study --root "
                       rf"{tmp_path}{tail}$"):
        data.Inputs.load("study", tmp_path)


def test_a_summary_lacking_one_required_column_names_only_it(mini_run: RunPaths, tmp_path: Path) -> None:
    paths = _copy_run(mini_run, tmp_path)
    table = pd.read_csv(paths.summary, dtype={"trial_id": str})
    table.drop(columns=["train.w_momentum"]).to_csv(paths.summary, index=False)
    with pytest.raises(data.SummaryError, match=r": no column train.w_momentum; not written"):
        data.Inputs.load("mini", tmp_path)
    for col in data.REQUIRED_COLUMNS[1:]:
        table.drop(columns=[col]).to_csv(paths.summary, index=False)
        with pytest.raises(data.SummaryError, match=rf": no column {col}; "):
            data.Inputs.load("mini", tmp_path)


def test_expected_trials_without_a_grid_file_says_exactly_that() -> None:
    assert data.expected_trials(None) == (None, "no grid.yaml found")


def test_paper_energy_trials_break_ties_by_the_smaller_gamma(summary: pd.DataFrame) -> None:
    """Many γ whose best rows tie at the top accuracy: the smallest of those γ wins (a stable sort, in γ order)."""
    row = summary[(summary["data.dataset"] == "two_moons") & (summary["condition"] == "pc-adamw-0.9")].iloc[0]
    levels = [0.5, 0.5, 0.6, 0.5, 0.5, 0.5, 0.7, 0.5, 0.7, 0.6, 0.5, 0.7, 0.7, 0.7, 0.5, 0.7, 0.7, 0.7, 0.7, 0.6,
              0.6]  # 21 γ: more than numpy sorts by insertion, so only a stable sort keeps γ order among ties
    gammas = [round(0.01 * (i + 1), 2) for i in range(len(levels))]
    table = pd.DataFrame([row] * len(levels)).reset_index(drop=True)
    table["train.h_lr"] = gammas
    table["accuracy"] = levels
    table["trial_id"] = [f"{i:016x}" for i in range(len(levels))]
    got = data.paper_energy_trials(table, "two_moons")
    assert list(got["train.h_lr"]) == [gammas[levels.index(max(levels))]] == [0.07]
