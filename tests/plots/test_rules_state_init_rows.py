"""The state-initialisation figure's row choice (`plots.fig_state_init`), on small hand-built summaries (fast tier).

Which rows are the study's, how a grid reads (replay or search), which trials enter each point and in which rank,
and the y range: each test names the trial ids kept, so one row too many or too few fails. No figure is drawn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from plots import fig_state_init
from plots.registry import SkipFigure

DEFAULTS = {"data.dataset": "fashion_mnist", "model.kind": "pc", "model.init_h": "forward", "train.T": 3,
            "train.h_lr": 0.1, "train.w_lr": 1e-4, "seed": 0, "status": "ok", "accuracy_best": 0.85}
RULES = r"model.init_h in \(forward, zero, normal\)"


def table(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{**DEFAULTS, **row} for row in rows])


def search_summary() -> pd.DataFrame:
    """Three cells: (forward, 3) a search of 3 configurations (a tie at the top), (zero, 5) one configuration with
    two seeds, (normal, 3) one trial; plus rows every filter must leave out."""
    return table(
        {"trial_id": "f3-b", "accuracy_best": 0.87},
        {"trial_id": "f3-a", "train.h_lr": 0.01, "accuracy_best": 0.87},  # ties f3-b: the smaller id ranks first
        {"trial_id": "f3-c", "train.h_lr": 0.3, "accuracy_best": 0.80},
        {"trial_id": "f3-diverged", "train.h_lr": 0.03, "accuracy_best": 0.99, "status": "diverged"},
        {"trial_id": "f3-nan", "train.h_lr": 0.04, "accuracy_best": np.nan},
        {"trial_id": "f3-inf", "train.h_lr": 0.05, "accuracy_best": np.inf},
        {"trial_id": "z5-s0", "model.init_h": "zero", "train.T": 5.0, "accuracy_best": 0.82},
        {"trial_id": "z5-s1", "model.init_h": "zero", "train.T": 5.0, "accuracy_best": 0.84, "seed": 1},
        {"trial_id": "n3", "model.init_h": "normal", "accuracy_best": 0.81},
        {"trial_id": "bp", "model.kind": "bp", "accuracy_best": 0.95},
        {"trial_id": "randn", "model.init_h": "randn", "accuracy_best": 0.95},
        {"trial_id": "mnist", "data.dataset": "mnist", "accuracy_best": 0.95},
    )


def replay_summary() -> pd.DataFrame:
    """One configuration per cell, two seeds each."""
    return table({"trial_id": "f3-s0", "accuracy_best": 0.83}, {"trial_id": "f3-s1", "seed": 1, "accuracy_best": 0.86},
                 {"trial_id": "f5-s0", "train.T": 5}, {"trial_id": "f5-s1", "train.T": 5, "seed": 1},
                 {"trial_id": "z5", "model.init_h": "zero", "train.T": 5, "train.h_lr": 0.3})


# ---------------------------------------------------------------- study_rows


def test_study_rows_are_the_pc_rows_of_the_three_rules_in_the_dataset() -> None:
    rows = fig_state_init.study_rows(search_summary(), "fashion_mnist")
    assert list(rows["trial_id"]) == ["f3-b", "f3-a", "f3-c", "f3-diverged", "f3-nan", "f3-inf", "z5-s0", "z5-s1",
                                      "n3"]
    assert list(fig_state_init.study_rows(search_summary(), None)["trial_id"])[-1] == "mnist"


def test_study_rows_skip_with_what_was_missing() -> None:
    summary = search_summary()
    for col in ("model.init_h", "train.T"):
        with pytest.raises(SkipFigure, match=rf"^no rows with {RULES} at more than one train.T for fashion_mnist "
                                             r"\(no such column\)$"):
            fig_state_init.study_rows(summary.drop(columns=[col]), "fashion_mnist")
    with pytest.raises(SkipFigure, match=rf"^no rows with {RULES} at more than one train.T \(no such column\)$"):
        fig_state_init.study_rows(summary.drop(columns=["train.T"]), None)
    with pytest.raises(SkipFigure, match=rf"^no rows with model.kind=pc and {RULES} for mnist$"):
        fig_state_init.study_rows(summary[summary["trial_id"] != "mnist"], "mnist")
    with pytest.raises(SkipFigure, match=rf"^no rows with model.kind=pc and {RULES}$"):
        fig_state_init.study_rows(summary[summary["trial_id"].isin(["bp", "randn"])], None)
    with pytest.raises(SkipFigure, match=rf"^no rows with {RULES} at more than one train.T for mnist "
                                         r"\(only train.T=3\)$"):
        fig_state_init.study_rows(summary, "mnist")
    one_t = summary[summary["train.T"] == 5].assign(**{"train.T": 5.0})
    with pytest.raises(SkipFigure, match=rf"^no rows with {RULES} at more than one train.T \(only train.T=5\)$"):
        fig_state_init.study_rows(pd.concat([one_t, summary[summary["model.kind"] == "bp"]]), None)


# ---------------------------------------------------------------- detect_aggregate


def test_a_cell_with_several_configurations_reads_as_a_search() -> None:
    assert fig_state_init.detect_aggregate(fig_state_init.study_rows(search_summary(), "fashion_mnist")) == "search"
    assert fig_state_init.detect_aggregate(replay_summary()) == "replay"  # cells differ, not trials within one
    # one differing config column in one cell is enough; a differing seed or status is not
    assert fig_state_init.detect_aggregate(replay_summary().assign(seed=7, status="diverged")) == "replay"
    w_lr = replay_summary()
    w_lr.loc[1, "train.w_lr"] = 3e-4
    assert fig_state_init.detect_aggregate(w_lr) == "search"


# ---------------------------------------------------------------- study / points


def test_search_keeps_the_top_k_finite_trials_of_each_cell_in_rank_order() -> None:
    st = fig_state_init.study(search_summary(), "fashion_mnist", topk=2)
    assert (st.aggregate, st.detected, st.topk) == ("search", "search", 2)
    want = pd.DataFrame({
        "trial_id": ["f3-a", "f3-b", "n3", "z5-s1", "z5-s0"], "seed": [0, 0, 0, 1, 0],
        "model.init_h": ["forward", "forward", "normal", "zero", "zero"],
        "init": ["Forward", "Forward", "Normal", "Zero", "Zero"], "train.T": [3, 3, 3, 5, 5],
        "accuracy_best": [0.87, 0.87, 0.81, 0.84, 0.82], "rank": [1, 2, 1, 1, 2]})
    pd.testing.assert_frame_equal(st.points, want)
    cells = pd.MultiIndex.from_tuples([("forward", 3), ("normal", 3), ("zero", 5)])
    assert st.n_trials.to_dict() == dict(zip(cells, [3, 1, 2]))
    assert st.n_configs.to_dict() == dict(zip(cells, [3, 1, 1]))
    assert st.left_out == 3  # diverged, NaN and inf
    pd.testing.assert_frame_equal(fig_state_init.points(search_summary(), "fashion_mnist", topk=2), want)
    top1 = fig_state_init.points(search_summary(), "fashion_mnist", topk=1)
    assert list(top1["trial_id"]) == ["f3-a", "n3", "z5-s1"] and set(top1["rank"]) == {1}
    assert len(fig_state_init.points(search_summary(), "fashion_mnist")) == 6  # TOPK = 5: every finite trial


def test_replay_keeps_every_finite_trial_and_the_aggregation_can_be_forced() -> None:
    st = fig_state_init.study(search_summary(), "fashion_mnist", aggregate="replay", topk=1)
    assert (st.aggregate, st.detected) == ("replay", "search")
    assert list(st.points["trial_id"]) == ["f3-a", "f3-b", "f3-c", "n3", "z5-s1", "z5-s0"]
    assert list(st.points["rank"]) == [1, 2, 3, 1, 1, 2]
    auto = fig_state_init.study(replay_summary(), None, topk=1)
    assert (auto.aggregate, auto.detected) == ("replay", "replay")
    assert list(auto.points["trial_id"]) == ["f3-s1", "f3-s0", "f5-s0", "f5-s1", "z5"]
    forced = fig_state_init.study(replay_summary(), None, aggregate="search", topk=1)
    assert (forced.aggregate, forced.detected) == ("search", "replay")
    assert list(forced.points["trial_id"]) == ["f3-s1", "f5-s0", "z5"]


def test_values_written_as_text_are_read_and_a_table_without_seeds_has_nan_seeds() -> None:
    summary = replay_summary().drop(columns=["seed"]).astype({"accuracy_best": object})
    summary.loc[0, "accuracy_best"] = "0.9"
    summary.loc[2, "accuracy_best"] = "n/a"
    st = fig_state_init.study(summary)
    assert list(st.points["trial_id"]) == ["f3-s0", "f3-s1", "f5-s1", "z5"]
    assert list(st.points["accuracy_best"]) == [0.9, 0.86, 0.85, 0.85] and st.points["accuracy_best"].dtype == float
    assert st.points["seed"].isna().all() and st.points["seed"].dtype == float and st.left_out == 1


def test_study_refuses_bad_arguments_and_skips_when_nothing_is_finite() -> None:
    with pytest.raises(ValueError, match=r"^aggregate: got 'median'; expected one of auto, replay, search$"):
        fig_state_init.study(replay_summary(), aggregate="median")
    with pytest.raises(ValueError, match=r"^topk: got 0; expected at least 1$"):
        fig_state_init.study(replay_summary(), topk=0)
    diverged = replay_summary().assign(status="diverged")
    with pytest.raises(SkipFigure, match=rf"^no trial with {RULES} has a finite accuracy_best and did not diverge "
                                         r"\(5 left out for fashion_mnist\)$"):
        fig_state_init.study(diverged, "fashion_mnist")
    with pytest.raises(SkipFigure, match=r"did not diverge \(5 left out\)$"):
        fig_state_init.study(replay_summary().assign(accuracy_best=np.nan))


# ---------------------------------------------------------------- _span and y_limits


def test_span_is_one_number_or_a_range() -> None:
    assert fig_state_init._span([5, 5, 5]) == "5"
    assert fig_state_init._span(pd.Series([4, 3, 5])) == "3–5"
    assert fig_state_init._span([2.0]) == "2"


def test_y_limits_keep_the_papers_range_or_fit_the_values_with_a_margin() -> None:
    assert fig_state_init.y_limits(np.zeros(0)) == (0.8, 0.9)
    assert fig_state_init.y_limits(np.array([0.8, 0.85, 0.9])) == (0.8, 0.9)
    assert fig_state_init.y_limits(np.array([0.5, 0.9])) == pytest.approx((0.48, 0.92))  # 5% of the range
    assert fig_state_init.y_limits(np.array([0.95, 0.951])) == pytest.approx((0.949, 0.952))  # 5% of at least 0.02
    assert fig_state_init.y_limits(np.array([0.79, 0.85])) == pytest.approx((0.787, 0.853))
    assert fig_state_init.y_limits(np.array([0.2, 0.4]), paper=(0.0, 1.0)) == (0.0, 1.0)
    lo, hi = fig_state_init.y_limits(np.array([0.85, 0.91]))
    assert (type(lo), type(hi)) == (float, float)
