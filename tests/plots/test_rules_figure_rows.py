"""The row filters of the Section 5.1 figures and the coverage figure, on small hand-built summaries (fast tier).

Each table has the columns of collect's summary (`plots.data.normalize_summary`'s output: `optim`, `condition`,
`status`, boolean `model.constant_width`) and one row per case a filter must keep or drop; the tests name the
trial ids each filter keeps, so a filter that keeps one row too many or too few fails. No figure is drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plots import (
    fig_accuracy_optimizers,
    fig_all_accuracies,
    fig_coverage,
    fig_energy_per_epoch,
    fig_energy_per_t,
    fig_energy_ratios,
    fig_lr_scaling,
    style,
)
from plots.registry import SkipFigure

DEFAULTS = {"data.dataset": "two_moons", "model.kind": "pc", "model.width": 64, "model.activation": "hard_tanh",
            "model.constant_width": False, "train.h_lr": 0.1, "train.w_lr": 1e-3, "train.w_optimizer": "sgd",
            "train.w_momentum": 0.9, "seed": 0, "status": "ok", "accuracy": 0.7, "accuracy_best": 0.8}
OPTIMS = {"sgd-0.9": ("sgd", 0.9), "adamw-0.9": ("adamw", 0.9), "sgd-0.0": ("sgd", 0.0)}


def table(*rows: dict) -> pd.DataFrame:
    """A summary of `rows` (each: trial_id and what differs from DEFAULTS; `optim` sets the optimiser columns),
    with collect's derived `optim` and `condition` columns."""
    out = []
    for row in rows:
        row = {**DEFAULTS, **row}
        if "optim" in row:
            row["train.w_optimizer"], row["train.w_momentum"] = OPTIMS[row["optim"]]
        row["optim"] = f"{row['train.w_optimizer']}-{row['train.w_momentum']}"
        row["condition"] = f"{row['model.kind']}-{row['optim']}"
        out.append(row)
    return pd.DataFrame(out)


def ids(rows: pd.DataFrame) -> list[str]:
    return list(rows["trial_id"])


# ---------------------------------------------------------------- fig_lr_scaling.panel_rows


def lr_summary() -> pd.DataFrame:
    return table(
        {"trial_id": "sgd-w196", "model.width": 196, "accuracy": 0.85},
        {"trial_id": "sgd-w196-s1", "model.width": 196, "accuracy": 0.85, "seed": 1},
        {"trial_id": "const-w196", "model.width": 196, "accuracy": 0.21, "model.constant_width": True},
        {"trial_id": "const-adam", "optim": "adamw-0.9", "train.h_lr": 0.01, "model.constant_width": True},
        {"trial_id": "adam", "optim": "adamw-0.9", "train.h_lr": 0.01},
        {"trial_id": "gamma-0.29", "train.h_lr": 0.29},
        {"trial_id": "gamma-0.3", "train.h_lr": 0.3},  # the paper's `h_lr < 0.3`: out
        {"trial_id": "bp", "model.kind": "bp", "train.h_lr": 1.0},  # BP keeps its γ = 1
        {"trial_id": "bp-adam", "model.kind": "bp", "optim": "adamw-0.9", "train.h_lr": 1.0},  # no panel
        {"trial_id": "sgd-no-momentum", "optim": "sgd-0.0"},  # no panel
        {"trial_id": "diverged", "accuracy": np.nan, "status": "diverged"},  # kept: counted in the title
        {"trial_id": "mnist", "data.dataset": "mnist"},
    )


def test_lr_scaling_main_figure_never_pools_the_constant_width_ablation() -> None:
    """The bug of issue 22: ablation rows in the main figure moved its mean at width 196 from 0.85 to 0.53."""
    rows = fig_lr_scaling.panel_rows(lr_summary(), "two_moons", constant_width=False)
    assert ids(rows) == ["sgd-w196", "sgd-w196-s1", "adam", "gamma-0.29", "bp", "diverged"]
    assert not rows["model.constant_width"].any()
    w196 = rows[(rows["model.width"] == 196) & (rows["condition"] == "pc-sgd-0.9")]
    assert w196["accuracy"].mean() == pytest.approx(0.85)


def test_lr_scaling_ablation_figure_takes_only_the_ablation_rows() -> None:
    rows = fig_lr_scaling.panel_rows(lr_summary(), "two_moons", constant_width=True)
    assert ids(rows) == ["const-w196", "const-adam"]


def test_lr_scaling_of_every_dataset_and_of_a_summary_without_the_ablation_column() -> None:
    summary = lr_summary()
    assert ids(fig_lr_scaling.panel_rows(summary, None, False))[-1] == "mnist"
    plain = summary.drop(columns=["model.constant_width"])
    assert ids(fig_lr_scaling.panel_rows(plain, "two_moons", False)) == [
        "sgd-w196", "sgd-w196-s1", "const-w196", "const-adam", "adam", "gamma-0.29", "bp", "diverged"]


def test_lr_scaling_without_rows_skips_naming_what_it_looked_for() -> None:
    with pytest.raises(SkipFigure, match=r"^no rows with conditions \['pc-sgd-0.9', 'pc-adamw-0.9', 'bp-sgd-0.9'\] "
                                         r"with model.constant_width=True for mnist$"):
        fig_lr_scaling.panel_rows(lr_summary(), "mnist", True)


def test_lr_scaling_panel_points_drop_diverged_and_draw_bp_as_a_segment() -> None:
    rows = table({"trial_id": "a", "train.h_lr": 0.01, "accuracy": 0.6},
                 {"trial_id": "nan", "accuracy": np.nan}, {"trial_id": "inf", "accuracy": np.inf},
                 {"trial_id": "b", "train.h_lr": 1.0, "accuracy": 0.8})
    pc = fig_lr_scaling.panel_points(rows, bp=False)
    assert ids(pc) == ["a", "b"] and list(pc["train.h_lr"]) == [0.01, 1.0]
    bp = fig_lr_scaling.panel_points(rows, bp=True)
    assert ids(bp) == ["a", "b", "a", "b"]
    assert list(bp["train.h_lr"]) == pytest.approx([0.01, 1.0, 0.11, 1.1])
    assert list(bp["accuracy"]) == [0.6, 0.8, 0.6, 0.8]
    assert list(rows["train.h_lr"]) == [0.01, 0.1, 0.1, 1.0]  # the caller's rows are not shifted


# ---------------------------------------------------------------- fig_accuracy_optimizers.choose_rows


def test_accuracy_optimizers_keeps_pc_sgd_and_adamw_at_the_papers_cell() -> None:
    summary = table(
        {"trial_id": "paper-sgd", "model.width": 1024},
        {"trial_id": "paper-adam", "model.width": 1024, "optim": "adamw-0.9", "train.h_lr": 0.3},
        {"trial_id": "paper-nan", "model.width": 1024, "accuracy": np.nan},
        {"trial_id": "paper-leaky", "model.width": 1024, "model.activation": "leaky_relu"},
        {"trial_id": "paper-elu", "model.width": 1024, "model.activation": "elu"},  # sorts before hard_tanh
        {"trial_id": "wider", "model.width": 2048},
        {"trial_id": "paper-bp", "model.width": 1024, "model.kind": "bp"},
        {"trial_id": "paper-nomom", "model.width": 1024, "optim": "sgd-0.0"},
        {"trial_id": "paper-mnist", "model.width": 1024, "data.dataset": "mnist"},
    )
    rows, label = fig_accuracy_optimizers.choose_rows(summary, "two_moons")
    assert ids(rows) == ["paper-sgd", "paper-adam"] and label == "h=1024, HardTanh"
    rows, _ = fig_accuracy_optimizers.choose_rows(summary, None)
    assert ids(rows) == ["paper-sgd", "paper-adam", "paper-mnist"]


def test_accuracy_optimizers_falls_back_to_the_widest_width_and_first_activation() -> None:
    summary = table(
        {"trial_id": "w64", "model.width": 64, "model.activation": "leaky_relu"},
        {"trial_id": "w128-tanh", "model.width": 128, "model.activation": "tanh"},
        {"trial_id": "w128-leaky", "model.width": 128, "model.activation": "leaky_relu", "optim": "adamw-0.9"},
        {"trial_id": "bp-wide", "model.width": 4096, "model.kind": "bp", "model.activation": "hard_tanh"},
    )
    rows, label = fig_accuracy_optimizers.choose_rows(summary, "two_moons")
    assert ids(rows) == ["w128-leaky"]
    assert label == "h=128, LeakyReLU (paper: h=1024, HardTanh; absent here)"
    # the paper's width without its activation (and an activation without a label) is still a fallback
    odd = table({"trial_id": "w1024", "model.width": 1024, "model.activation": "swish"},
                {"trial_id": "w64", "model.activation": "hard_tanh"})
    rows, label = fig_accuracy_optimizers.choose_rows(odd, "two_moons")
    assert ids(rows) == ["w1024"] and label == "h=1024, swish (paper: h=1024, HardTanh; absent here)"


def test_accuracy_optimizers_skips_with_the_reason() -> None:
    with pytest.raises(SkipFigure, match=r"^no rows with model.kind=pc and optim in \('sgd-0.9', 'adamw-0.9'\) "
                                         r"for two_moons$"):
        fig_accuracy_optimizers.choose_rows(table({"trial_id": "bp", "model.kind": "bp"},
                                                  {"trial_id": "pc", "optim": "sgd-0.0"}), "two_moons")
    diverged = table({"trial_id": "w256", "model.width": 256, "accuracy": np.nan}, {"trial_id": "w64"})
    with pytest.raises(SkipFigure, match=r"^no rows with a finite accuracy at width 256, hard_tanh for two_moons$"):
        fig_accuracy_optimizers.choose_rows(diverged, "two_moons")


# ---------------------------------------------------------------- fig_all_accuracies


def test_all_accuracies_orders_the_papers_activations_first_and_the_rest_sorted() -> None:
    values = pd.Series(["Zed", "HardTanh", "Tanh", "LeakyReLU", "Abc", "HardTanh"])
    assert fig_all_accuracies._ordered(values, style.ACTIVATION_LABELS.values()) == [
        "LeakyReLU", "HardTanh", "Tanh", "Abc", "Zed"]
    assert fig_all_accuracies._ordered(pd.Series(["b", "a"]), ["b"]) == ["b", "a"]
    assert fig_all_accuracies._ordered(pd.Series(["b", "a", "c"]), []) == ["a", "b", "c"]


def test_all_accuracies_rows_are_finite_pc_sgd_and_adamw_labelled_for_the_facets() -> None:
    summary = table(
        {"trial_id": "sgd", "model.width": 64.0},
        {"trial_id": "adam", "optim": "adamw-0.9", "model.width": 128, "model.activation": "leaky_relu"},
        {"trial_id": "swish", "model.activation": "swish"},
        {"trial_id": "nan", "accuracy": np.nan},
        {"trial_id": "bp", "model.kind": "bp"},
        {"trial_id": "nomom", "optim": "sgd-0.0"},
        {"trial_id": "mnist", "data.dataset": "mnist"},
    )
    rows = fig_all_accuracies.choose_rows(summary, "two_moons")
    assert ids(rows) == ["sgd", "adam", "swish"]
    assert list(rows["Optimizer"]) == ["SGD", "AdamW", "SGD"]
    assert list(rows["Activation"]) == ["HardTanh", "LeakyReLU", "swish"]
    assert list(rows["Width"]) == [64, 128, 64] and rows["Width"].dtype.kind == "i"
    assert ids(fig_all_accuracies.choose_rows(summary, None)) == ["sgd", "adam", "swish", "mnist"]
    with pytest.raises(SkipFigure, match=r"^no rows with model.kind=pc, optim in \('sgd-0.9', 'adamw-0.9'\) and a "
                                         r"finite accuracy for mnist$"):
        fig_all_accuracies.choose_rows(summary[summary["trial_id"] != "mnist"], "mnist")


# ---------------------------------------------------------------- fig_coverage


def test_coverage_counts_present_trials_when_nothing_is_expected() -> None:
    summary = table(
        {"trial_id": "a"}, {"trial_id": "b", "status": "diverged"}, {"trial_id": "c", "status": "early_stopped"},
        {"trial_id": "d", "model.kind": "bp"}, {"trial_id": "e", "optim": "adamw-0.9", "data.dataset": "mnist"})
    got = fig_coverage.counts(summary, None)
    want = pd.DataFrame({"done": [1, 1, 2], "diverged": [0, 0, 1], "missing": [0, 0, 0], "expected": [1, 1, 3]},
                        index=["mnist · PC · adamw-0.9", "two_moons · BP · sgd-0.9", "two_moons · PC · sgd-0.9"])
    pd.testing.assert_frame_equal(got, want, check_names=False)


def test_coverage_counts_missing_trials_of_the_expected_table() -> None:
    summary = table({"trial_id": "a"}, {"trial_id": "b", "status": "diverged"},
                    {"trial_id": "stray"})  # present, not in the grid: counted as expected
    expected = pd.DataFrame({"trial_id": ["a", "b", "m1", "m2", "bp1"], "data.dataset": "two_moons",
                             "model.kind": ["pc", "pc", "pc", "pc", "bp"], "optim": "sgd-0.9",
                             "model.constant_width": False})
    got = fig_coverage.counts(summary, expected)
    want = pd.DataFrame({"done": [0, 2], "diverged": [0, 1], "missing": [1, 2], "expected": [1, 5]},
                        index=["two_moons · BP · sgd-0.9", "two_moons · PC · sgd-0.9"])
    pd.testing.assert_frame_equal(got, want, check_names=False)


def test_coverage_splits_conditions_by_constant_width_only_where_it_varies() -> None:
    summary = table({"trial_id": "a"}, {"trial_id": "c", "model.constant_width": True})
    got = fig_coverage.counts(summary, None)
    assert list(got.index) == ["two_moons · PC · sgd-0.9", "two_moons · PC · sgd-0.9 · const. width"]
    assert list(got["done"]) == [1, 1]
    # only the expected (launched) table holds the ablation: still a condition of its own
    expected = pd.DataFrame({"trial_id": ["a", "m"], "data.dataset": "two_moons", "model.kind": "pc",
                             "optim": "sgd-0.9", "model.constant_width": [False, True]})
    got = fig_coverage.counts(summary.iloc[:1], expected)
    assert list(got.index) == ["two_moons · PC · sgd-0.9", "two_moons · PC · sgd-0.9 · const. width"]
    assert list(got["missing"]) == [0, 1] and list(got["done"]) == [1, 0]
    # all trials of the ablation: one condition, labelled by its kind, not split
    only = fig_coverage.counts(summary.iloc[1:], None)
    assert list(only.index) == ["two_moons · PC · sgd-0.9"]


def test_coverage_varies_over_the_summary_and_the_expected_table_together() -> None:
    col = "model.constant_width"
    one, two = pd.DataFrame({col: [False, False]}), pd.DataFrame({col: [False, True]})
    other = pd.DataFrame({col: [True]})
    assert not fig_coverage._varies(one, None, col) and fig_coverage._varies(two, None, col)
    assert not fig_coverage._varies(one, one, col) and fig_coverage._varies(one, other, col)
    assert fig_coverage._varies(two, one, col) and fig_coverage._varies(pd.DataFrame(), two, col)
    assert not fig_coverage._varies(pd.DataFrame(), pd.DataFrame(), col)
    assert not fig_coverage._varies(pd.DataFrame(), None, col)


def test_coverage_labels() -> None:
    key = {"data.dataset": "mnist", "model.kind": "bp", "optim": "adamw-0.9"}
    assert fig_coverage._label(key) == "mnist · BP · adamw-0.9"
    assert fig_coverage._label({**key, "model.constant_width": False}) == "mnist · BP · adamw-0.9"
    assert fig_coverage._label({**key, "model.constant_width": True}) == "mnist · BP · adamw-0.9 · const. width"


# ---------------------------------------------------------------- energies: long tables of the stored arrays


def energy_summary() -> pd.DataFrame:
    """Two seeds of the best two_moons PC AdamW condition (the trials the paper's energy figure shows), one
    other two_moons condition, and a better mnist one (the best over every dataset)."""
    return table({"trial_id": "s0", "optim": "adamw-0.9", "accuracy": 0.9},
                 {"trial_id": "s1", "optim": "adamw-0.9", "accuracy": 0.8, "seed": 1},
                 {"trial_id": "other", "optim": "adamw-0.9", "accuracy": 0.5, "train.h_lr": 0.3},
                 {"trial_id": "mnist", "optim": "adamw-0.9", "accuracy": 0.95, "data.dataset": "mnist"})


def fake_arrays(monkeypatch: pytest.MonkeyPatch, module, results: Path) -> list:
    """Serve energy [E=3, B=4, T+1=3, L=2] = arange (s1: + 100) in place of results.h5; record each call."""
    calls = []

    def read_arrays(path: Path, trial_ids, name: str) -> dict[str, np.ndarray]:
        calls.append((path, list(trial_ids), name))
        base = np.arange(72, dtype=float).reshape(3, 4, 3, 2)
        return {tid: base + (100 if tid == "s1" else 0) for tid in trial_ids}

    monkeypatch.setattr(module, "read_arrays", read_arrays)
    return calls


def test_energy_per_epoch_takes_the_last_batch_at_t_equal_T_minus_1(monkeypatch, tmp_path) -> None:
    calls = fake_arrays(monkeypatch, fig_energy_per_epoch, tmp_path / "results.h5")
    rows, long = fig_energy_per_epoch.long_table(energy_summary(), tmp_path / "results.h5", "two_moons")
    assert ids(rows) == ["s0", "s1"] and calls == [(tmp_path / "results.h5", ["s0", "s1"], "energy")]
    # energy[e, b=3, t=1, k] of arange: ((4e + 3) * 3 + 1) * 2 + k
    want = pd.DataFrame({"trial_id": ["s0"] * 6 + ["s1"] * 6, "epoch": [1, 1, 2, 2, 3, 3] * 2,
                         "layer": ["1", "2"] * 6,
                         "energy": [20.0, 21, 44, 45, 68, 69, 120, 121, 144, 145, 168, 169]})
    pd.testing.assert_frame_equal(long, want)
    rows, long = fig_energy_per_epoch.long_table(energy_summary(), tmp_path / "results.h5", None)
    assert ids(rows) == ["mnist"] and list(long["trial_id"].unique()) == ["mnist"]


def test_energy_per_t_takes_every_step_of_the_last_batch_of_the_last_epoch(monkeypatch, tmp_path) -> None:
    calls = fake_arrays(monkeypatch, fig_energy_per_t, tmp_path / "r.h5")
    rows, long = fig_energy_per_t.long_table(energy_summary(), tmp_path / "r.h5", "two_moons")
    assert ids(rows) == ["s0", "s1"] and calls == [(tmp_path / "r.h5", ["s0", "s1"], "energy")]
    # energy[e=2, b=3, t, k] of arange: (33 + t) * 2 + k
    want = pd.DataFrame({"trial_id": ["s0"] * 6 + ["s1"] * 6, "t": [0, 0, 1, 1, 2, 2] * 2,
                         "layer": ["1", "2"] * 6,
                         "energy": [66.0, 67, 68, 69, 70, 71, 166, 167, 168, 169, 170, 171]})
    pd.testing.assert_frame_equal(long, want)
    rows, _ = fig_energy_per_t.long_table(energy_summary(), tmp_path / "r.h5", None)
    assert ids(rows) == ["mnist"]


def test_energy_zero_steps_are_the_steps_zero_in_every_trial_by_layer_number() -> None:
    long = pd.DataFrame({"trial_id": ["a"] * 6 + ["b"] * 6, "t": [0, 1, 2] * 4,
                         "layer": (["2"] * 3 + ["10"] * 3) * 2,
                         "energy": [0.0, 0.0, 1.0, 0.0, 2.0, 3.0,  # a: layer 2 zero at t = 0, 1; layer 10 at t = 0
                                    0.0, 0.0, 1.0, 0.0, 0.0, 3.0]})  # b: layer 10 also at t = 1 (not in a)
    assert fig_energy_per_t.zero_steps(long) == {"2": [0, 1], "10": [0]}
    assert list(fig_energy_per_t.zero_steps(long)) == ["2", "10"]  # in layer order, not text order
    assert fig_energy_per_t.zero_steps(long.assign(energy=long["energy"] + 0.5)) == {}
    one = long[long["layer"] == "10"]
    assert fig_energy_per_t.zero_steps(one.assign(energy=[1.0, 0, 1, 1, 0, 1])) == {"10": [1]}


# ---------------------------------------------------------------- fig_energy_ratios.ratio_table


def ratio_summary() -> pd.DataFrame:
    adam = {"optim": "adamw-0.9", "energy_ratio_0/1": 2.0, "energy_ratio_1/2": 3.0}
    return table(
        {"trial_id": "keep", **adam, "accuracy": 0.6, "train.h_lr": 0.01},
        {"trial_id": "keep-momentum", **adam, "train.w_momentum": 0.0, "accuracy": 0.7,
         "energy_ratio_0/1": 5.0, "energy_ratio_1/2": 99999999.0},
        {"trial_id": "at-threshold", **adam, "accuracy": 0.5},
        {"trial_id": "ratio-1e8", **adam, "energy_ratio_0/1": 1e8},
        {"trial_id": "ratio2-1e8", **adam, "energy_ratio_1/2": 1e8},
        {"trial_id": "nan", **adam, "accuracy": np.nan},
        {"trial_id": "bp", **adam, "model.kind": "bp"},
        {"trial_id": "sgd", **adam, "optim": "sgd-0.9"},
        {"trial_id": "mnist", **adam, "data.dataset": "mnist"},
    )


def test_energy_ratios_keep_pc_adamw_above_the_accuracy_and_below_1e8() -> None:
    got = fig_energy_ratios.ratio_table(ratio_summary(), "two_moons")
    e12, e23 = r"$\epsilon_1^2/\epsilon_2^2$", r"$\epsilon_2^2/\epsilon_3^2$"
    want = pd.DataFrame({"train.h_lr": [0.01, 0.1, 0.01, 0.1], "Ratio": [e12, e12, e23, e23],
                         "value": [2.0, 5.0, 3.0, 99999999.0]})
    pd.testing.assert_frame_equal(got, want)
    strict = fig_energy_ratios.ratio_table(ratio_summary(), None, min_accuracy=0.65)
    assert list(strict["train.h_lr"]) == [0.1, 0.1, 0.1, 0.1]
    assert list(strict["value"]) == [5.0, 2.0, 99999999.0, 3.0]  # keep-momentum and mnist (0.7 each)
    loose = fig_energy_ratios.ratio_table(ratio_summary(), "two_moons", min_accuracy=0.4)
    assert len(loose) == 2 * 3  # the row at 0.5 is in, the rows at 1e8 are still out


def test_energy_ratios_skip_with_the_reason() -> None:
    with pytest.raises(SkipFigure, match=r"^no rows with model.kind=pc, w_optimizer=adamw for two_moons$"):
        fig_energy_ratios.ratio_table(ratio_summary().query("trial_id in ('sgd', 'bp')"), "two_moons")
    with pytest.raises(SkipFigure, match=r"^no rows with accuracy > 0.75 and ratios < 1e8 \(PC AdamW, two_moons\)$"):
        fig_energy_ratios.ratio_table(ratio_summary(), "two_moons", min_accuracy=0.75)
