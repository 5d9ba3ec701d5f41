"""The state-initialisation figure (Fig. 5 centre-left): best test accuracy vs T per init rule.

The runs are collected by the real `collect` from real shards (tests/plots/conftest.py `state_init_root`): a
replay grid `sinit` (one configuration per cell, 5 seeds) and a search grid `sinit_search` (9 configurations per
cell, one seed), each with diverged trials (one that reached 0.97 before diverging, so its accuracy_best is finite
and would top its cell) and, in the replay, one never finite and two early-stopped ones (status ok, final accuracy
NaN). The oracle is a pandas groupby of collect's summary, computed here; the figure is read back through
matplotlib objects.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from PIL import Image

from plots import data, fig_state_init, registry, style
from plots.data import Inputs

REPO = Path(__file__).resolve().parents[2]
TS = (3, 5, 7, 9, 11, 15, 20)  # restated from conftest: this file imports no conftest
INITS = ("forward", "zero", "normal")
SIDE = "state-init-side-by-side-fashion_mnist"
OWN = "state-init-accuracy-T-fashion_mnist"
CELL = ["model.init_h", "train.T"]


@pytest.fixture(autouse=True)
def _theme() -> None:
    style.apply()


@pytest.fixture(scope="module")
def replay(state_init_root) -> Inputs:
    return Inputs.load("sinit", state_init_root)


@pytest.fixture(scope="module")
def search(state_init_root) -> Inputs:
    return Inputs.load("sinit_search", state_init_root)


def usable(summary: pd.DataFrame) -> pd.DataFrame:
    """The oracle's filter: PC rows with a state-init rule, not diverged, with a finite accuracy_best."""
    rows = summary[(summary["model.kind"] == "pc") & summary["model.init_h"].isin(INITS)]
    return rows[(rows["status"] != "diverged") & np.isfinite(rows["accuracy_best"])]


def top(summary: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The oracle's top k per cell by accuracy_best."""
    return usable(summary).sort_values("accuracy_best", ascending=False).groupby(CELL).head(k)


def lines_by_init(fig: Figure, ax_index: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{init rule: (x, y)} of the mean lines, told apart by their viridis colour."""
    by_colour = {tuple(np.round(to_rgb(c), 6)): label for label, c in fig_state_init.PALETTE.items()}
    label_to_init = {v: k for k, v in fig_state_init.INIT_LABELS.items()}
    out = {}
    for ln in fig.axes[ax_index].get_lines():
        if len(ln.get_xdata()) > 1:
            label = by_colour[tuple(np.round(to_rgb(ln.get_color()), 6))]
            out[label_to_init[label]] = (np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata()))
    return out


def assert_lines_are_cell_means(fig: Figure, cell_means: pd.Series, ax_index: int = 0) -> None:
    lines = lines_by_init(fig, ax_index)
    assert set(lines) == set(INITS)
    for init, (x, y) in lines.items():
        want = cell_means.loc[init]
        np.testing.assert_array_equal(x, want.index.to_numpy())
        np.testing.assert_allclose(y, want.to_numpy(), rtol=1e-9)


def caption(fig: Figure) -> str:
    return " ".join(t.get_text() for t in fig.texts).replace("\n", " ")


def legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


# ---------------------------------------------------------------- the collected runs are what the tests assume


def test_the_state_init_runs_have_the_shape_these_tests_assume(replay, search) -> None:
    for inputs, configs, per_cell in ((replay, 1, 5), (search, 9, 9)):
        s = inputs.summary
        assert tuple(sorted(s["train.T"].unique())) == TS and set(s["model.init_h"]) == set(INITS)
        keys = data.condition_key(s)
        assert (keys.groupby([s[c] for c in CELL]).nunique() == configs).all()
        assert (s.groupby(CELL).size() == per_cell).all()
    # the exclusion matters: a diverged trial's accuracy_best (0.97 at epoch 1) would top every cell it is in
    for s in (replay.summary, search.summary):
        diverged = s[s["status"] == "diverged"]
        assert len(diverged) == 2 and (diverged["accuracy_best"].fillna(1) > s["accuracy_best"].quantile(0.99)).all()
    assert replay.summary["accuracy_best"].isna().sum() == 1
    # early-stopped trials: status ok, no final accuracy, a best one
    stopped = replay.summary[(replay.summary["status"] == "ok") & replay.summary["accuracy"].isna()]
    assert len(stopped) == 2 and stopped["accuracy_best"].notna().all()
    ok = usable(search.summary).dropna(subset=["accuracy"])
    assert (ok["accuracy_best"] > ok["accuracy"] + 0.02).all()


def test_the_search_top_5_is_neither_the_first_5_nor_the_top_5_by_final_accuracy(search) -> None:
    """What makes a figure that takes the first 5 rows, or ranks by `accuracy`, fail the tests below."""
    rows = usable(search.summary)
    best = top(search.summary).groupby(CELL)["trial_id"].apply(frozenset)
    first = rows.groupby(CELL).head(5).groupby(CELL)["trial_id"].apply(frozenset)
    by_final = rows.sort_values("accuracy", ascending=False).groupby(CELL).head(5)
    by_final = by_final.groupby(CELL)["trial_id"].apply(frozenset)
    assert (best != first).sum() >= 15 and (best != by_final).sum() >= 15


# ---------------------------------------------------------------- the aggregation helpers


def test_auto_reads_the_replay_grid_as_replay_and_uses_every_usable_seed(replay) -> None:
    st = fig_state_init.study(replay.summary, "fashion_mnist")
    assert st.aggregate == st.detected == "replay"
    pts = fig_state_init.points(replay.summary, "fashion_mnist")
    want = usable(replay.summary)
    assert sorted(pts["trial_id"]) == sorted(want["trial_id"])  # every seed, the early-stopped ones included
    counts = pts.groupby(CELL).size()
    assert counts.loc[("forward", 5)] == 4 and counts.loc[("zero", 9)] == 4 and counts.sum() == 105 - 2
    assert counts.drop([("forward", 5), ("zero", 9)]).eq(5).all()
    np.testing.assert_allclose(pts.groupby(CELL)["accuracy_best"].mean(),
                               want.groupby(CELL)["accuracy_best"].mean(), rtol=1e-12)
    assert st.left_out == 2
    assert set(pts.columns) >= {"trial_id", "seed", "model.init_h", "init", "train.T", "accuracy_best", "rank"}


def test_auto_reads_the_search_grid_as_search_and_keeps_the_best_5_per_cell(search) -> None:
    st = fig_state_init.study(search.summary, "fashion_mnist")
    assert st.aggregate == st.detected == "search" and st.topk == 5
    pts = st.points
    assert (pts.groupby(CELL).size() == 5).all()
    assert sorted(pts["trial_id"]) == sorted(top(search.summary)["trial_id"])
    assert set(pts["rank"]) == {1, 2, 3, 4, 5}
    assert not set(pts["trial_id"]) & set(search.summary.loc[search.summary["status"] == "diverged", "trial_id"])
    assert st.n_trials.loc[("normal", 7)] == 8 and st.n_trials.loc[("forward", 5)] == 8
    assert st.left_out == 2


def test_the_aggregation_can_be_forced(replay, search) -> None:
    forced = fig_state_init.study(replay.summary, "fashion_mnist", aggregate="search", topk=3)
    assert forced.aggregate == "search" and forced.detected == "replay"
    assert sorted(forced.points["trial_id"]) == sorted(top(replay.summary, 3)["trial_id"])
    pooled = fig_state_init.study(search.summary, "fashion_mnist", aggregate="replay")
    assert pooled.aggregate == "replay"
    assert sorted(pooled.points["trial_id"]) == sorted(usable(search.summary)["trial_id"])
    text = fig_state_init.describe(pooled)
    assert "Replay (forced; this grid reads as a search)" in text and "pooling 8–9 configurations per cell" in text
    with pytest.raises(ValueError, match="aggregate"):
        fig_state_init.study(replay.summary, "fashion_mnist", aggregate="median")


def test_y_limits_are_the_papers_unless_the_values_leave_them() -> None:
    assert fig_state_init.y_limits(np.array([0.81, 0.89])) == (0.8, 0.9)
    assert fig_state_init.y_limits(np.array([0.8, 0.9])) == (0.8, 0.9)
    lo, hi = fig_state_init.y_limits(np.array([0.7, 0.85]))
    assert lo == pytest.approx(0.7 - 0.0075) and hi == pytest.approx(0.85 + 0.0075)
    lo, hi = fig_state_init.y_limits(np.array([0.85, 0.905]))
    assert lo < 0.85 and 0.905 < hi < 0.91


# ---------------------------------------------------------------- the figure


def test_replay_figure_plots_the_mean_best_accuracy_over_seeds(replay) -> None:
    fig = fig_state_init.draw(replay.summary, replay.results, "fashion_mnist")
    ax = fig.axes[0]
    means = usable(replay.summary).groupby(CELL)["accuracy_best"].mean()
    assert_lines_are_cell_means(fig, means)
    # not the final accuracy: its means differ everywhere (and it is NaN for the early-stopped trials)
    final = usable(replay.summary).groupby(CELL)["accuracy"].mean()
    assert (abs(final - means) > 0.02).all()
    assert list(ax.get_xticks()) == list(TS) and ax.get_xlabel().startswith("T")
    assert ax.get_ylim() == (0.8, 0.9)  # every mean and band lies inside: the paper's range
    assert legend_texts(fig) == ["Forward", "Normal", "Zero"]
    assert "FashionMNIST" in ax.get_title()
    text = caption(fig)
    assert "Replay: mean and 95% CI over 4–5 seeds per point" in text
    assert "Left out: 2 trials (diverged or no finite best accuracy)" in text


def test_search_figure_plots_the_mean_of_the_top_5_per_cell(search) -> None:
    fig = fig_state_init.draw(search.summary, search.results, "fashion_mnist")
    assert_lines_are_cell_means(fig, top(search.summary).groupby(CELL)["accuracy_best"].mean())
    text = caption(fig)
    assert "Search: mean and 95% CI of the top 5 of 8–9 trials per study" in text and "Left out: 2 trials" in text
    forced = fig_state_init.draw(search.summary, search.results, "fashion_mnist", aggregate="replay")
    assert_lines_are_cell_means(forced, usable(search.summary).groupby(CELL)["accuracy_best"].mean())
    assert "Replay (forced" in caption(forced)


def test_the_lines_use_viridis_in_the_papers_legend_order(replay) -> None:
    fig = fig_state_init.draw(replay.summary, replay.results, "fashion_mnist")
    import seaborn as sns
    viridis = sns.color_palette("viridis", 3)
    assert [fig_state_init.PALETTE[h] for h in ("Forward", "Normal", "Zero")] == list(viridis)
    handles = fig.legends[0].legend_handles
    assert [tuple(to_rgb(h.get_color())) for h in handles] == [tuple(c) for c in viridis]


def test_y_range_is_fitted_when_the_data_leave_the_papers(replay) -> None:
    low = replay.summary.assign(accuracy_best=replay.summary["accuracy_best"] - 0.2)
    fig = fig_state_init.draw(low, replay.results, "fashion_mnist")
    lo, hi = fig.axes[0].get_ylim()
    drawn = fig_state_init.drawn_values(fig.axes)
    means = usable(low).groupby(CELL)["accuracy_best"].mean()
    assert drawn.max() < 0.8 and lo < drawn.min() <= means.min() and means.max() <= drawn.max() < hi
    assert hi - lo < 0.1  # fitted to the data, not widened to include 0.8-0.9
    assert "the paper's 0.8–0.9 would cut" in caption(fig)
    assert "would cut" not in caption(fig_state_init.draw(replay.summary, replay.results, "fashion_mnist"))


# ---------------------------------------------------------------- skips


def test_a_grid_without_state_init_rows_skips_with_what_was_missing(summary, mini_run, replay) -> None:
    with pytest.raises(data.SkipFigure, match=r"model.init_h in \(forward, zero, normal\) at more than one "
                                              r"train.T for two_moons \(only train.T=4\)"):
        fig_state_init.draw(summary, mini_run.results, "two_moons")  # PC forward at T=4 only (BP's T=1 is not PC)
    no_rules = replay.summary.assign(**{"model.init_h": "randn"})
    with pytest.raises(data.SkipFigure, match=r"no rows with model.kind=pc and model.init_h in \(forward, zero, "
                                              r"normal\) for fashion_mnist"):
        fig_state_init.draw(no_rules, replay.results, "fashion_mnist")
    with pytest.raises(data.SkipFigure, match="model.init_h"):
        fig_state_init.draw(replay.summary, replay.results, "two_moons")
    diverged = replay.summary.assign(status="diverged")
    with pytest.raises(data.SkipFigure, match="finite accuracy_best"):
        fig_state_init.draw(diverged, replay.results, "fashion_mnist")


# ---------------------------------------------------------------- several grids side by side


def test_side_by_side_has_one_panel_per_grid_with_a_shared_y_axis(replay, search) -> None:
    fig = fig_state_init.draw_grids([("sinit", replay.summary), ("sinit_search", search.summary)], "fashion_mnist")
    axes = fig.axes
    assert len(axes) == 2 and axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    assert axes[0].get_ylim() == axes[1].get_ylim() == (0.8, 0.9)
    assert [ax.get_title() for ax in axes] == ["sinit\n(replay)", "sinit_search\n(search)"]
    assert_lines_are_cell_means(fig, usable(replay.summary).groupby(CELL)["accuracy_best"].mean(), 0)
    assert_lines_are_cell_means(fig, top(search.summary).groupby(CELL)["accuracy_best"].mean(), 1)
    text = caption(fig)
    assert "sinit: Replay: mean and 95% CI over 4–5 seeds" in text and "sinit_search: Search: mean and 95% CI of " \
        "the top 5" in text
    assert legend_texts(fig) == ["Forward", "Normal", "Zero"]
    # the shared range fits both grids when one leaves the paper's
    low = search.summary.assign(accuracy_best=search.summary["accuracy_best"] - 0.1)
    fig = fig_state_init.draw_grids([("sinit", replay.summary), ("low", low)], "fashion_mnist")
    lo, hi = fig.axes[0].get_ylim()
    assert lo < top(low).groupby(CELL)["accuracy_best"].mean().min() < 0.8 and hi > 0.88
    assert lo < fig_state_init.drawn_values(fig.axes).min() and fig.axes[1].get_ylim() == (lo, hi)


def test_side_by_side_needs_two_grids_with_state_init_rows(replay, summary) -> None:
    assert fig_state_init.draw_grids([("mini", summary), ("mini2", summary)], "fashion_mnist") is None
    with pytest.raises(data.SkipFigure, match="only grid sinit has rows with model.init_h.*mini has none"):
        fig_state_init.draw_grids([("mini", summary), ("sinit", replay.summary)], "fashion_mnist")


def test_make_combined_writes_nothing_for_one_grid_and_one_file_for_two(replay, search, tmp_path) -> None:
    specs = registry.select(["state_init"])
    assert registry.make_combined([replay], tmp_path, ["png"], specs) == []
    outcomes = registry.make_combined([replay, search], tmp_path, ["png"], specs, {"aggregate": "auto"})
    assert [o.written for o in outcomes] == [[tmp_path / f"{SIDE}.png"]]
    assert registry.make_combined([replay, search], tmp_path, ["png"], registry.select(["coverage"])) == []


# ---------------------------------------------------------------- the command line


def run_plots(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plots", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})


def _copy_runs(root: Path, dst: Path, *grids: str) -> Path:
    for grid in grids:
        shutil.copytree(root / grid, dst / grid, ignore=shutil.ignore_patterns("figures"))
    return dst


def _valid_png(path: Path) -> None:
    with Image.open(path) as im:
        im.verify()


def test_cli_draws_each_grid_and_both_side_by_side_into_out(state_init_root, tmp_path) -> None:
    out = tmp_path / "figs"
    proc = run_plots("sinit", "sinit_search", "--root", str(state_init_root), "--out", str(out),
                     "--only", "state_init")
    assert proc.returncode == 0, proc.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.*"))
    assert files == sorted([f"sinit/{OWN}.pdf", f"sinit/{OWN}.png", f"sinit_search/{OWN}.pdf",
                            f"sinit_search/{OWN}.png", f"{SIDE}.pdf", f"{SIDE}.png"])
    assert (out / f"{SIDE}.pdf").read_bytes()[:5] == b"%PDF-"
    _valid_png(out / f"{SIDE}.png")
    assert str(out / f"{SIDE}.png") in proc.stdout and "\nskipped " not in proc.stdout


def test_cli_without_out_writes_the_side_by_side_into_the_first_grids_folder(state_init_root, tmp_path) -> None:
    root = _copy_runs(state_init_root, tmp_path, "sinit", "sinit_search")
    proc = run_plots("sinit_search", "sinit", "--root", str(root), "--only", "state_init", "--format", "png",
                     "--state-init-aggregate", "replay")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (root / "sinit_search" / "figures").iterdir()) == [f"{OWN}.png", f"{SIDE}.png"]
    assert sorted(p.name for p in (root / "sinit" / "figures").iterdir()) == [f"{OWN}.png"]


def test_cli_a_grid_without_state_init_rows_skips_only_this_figure(state_init_root, mini_run, tmp_path) -> None:
    root = _copy_runs(state_init_root, tmp_path, "sinit")
    _copy_runs(Path(mini_run.root), root, "mini")
    out = tmp_path / "figs"
    proc = run_plots("mini", "sinit", "--root", str(root), "--out", str(out), "--only", "state_init", "coverage",
                     "--format", "png")
    assert proc.returncode == 0, proc.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == sorted([
        "mini/coverage.png", f"sinit/{OWN}.png", "sinit/coverage.png"])
    skipped = [ln for ln in proc.stdout.splitlines() if ln.startswith("skipped ")]
    assert len(skipped) == 3, skipped
    for ds in ("two_moons", "fashion_mnist"):
        assert any(ln.startswith(f"skipped state-init-accuracy-T-{ds} (mini): no rows with model.init_h")
                   for ln in skipped)
    assert any(ln.startswith(f"skipped {SIDE} (mini, sinit): only grid sinit") for ln in skipped)
    assert "Traceback" not in proc.stderr


def test_cli_help_list_and_a_bad_aggregate(mini_run) -> None:
    text = " ".join(run_plots("--help").stdout.split())
    assert "--state-init-aggregate {auto,replay,search}" in text and "state-init-side-by-side" in text
    assert "state_init:" in text
    listing = run_plots("--list").stdout
    assert "state_init" in listing and "state-init-accuracy-T-{ds}" in listing
    bad = run_plots("mini", "--root", str(mini_run.root), "--state-init-aggregate", "median")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--state-init-aggregate" in bad.stderr
