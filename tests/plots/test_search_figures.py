"""The adaptive-search figures (search_history, search_importance) on a real search run folder (tests/search_run.py:
a real search worker, real journals, a real collect), read back through matplotlib objects and compared with the
journals as Optuna's own API reads them."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pytest
from matplotlib.colors import to_rgb
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from PIL import Image
from search_run import BUDGET, GRID, STUDIES, copy_run, journal_trials, make_search_run

from collect.studies import read_studies
from launch.search_worker import study_storage
from plots import fig_search_history, fig_search_importance, style
from plots.data import Inputs
from plots.registry import SkipFigure, make_figures, select

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    return make_search_run(tmp_path_factory.mktemp("search") / "runs")


@pytest.fixture(scope="module")
def inputs(search_run):
    return Inputs.load(GRID, search_run.root)


def completed(paths, study: str) -> list[optuna.trial.FrozenTrial]:
    return sorted((t for t in journal_trials(paths, study) if t.state == TrialState.COMPLETE), key=lambda t: t.number)


def test_history_draws_each_study_and_its_best_so_far(search_run, inputs):
    style.apply()
    fig = fig_search_history.draw(inputs.summary, inputs.results, None, run_paths=inputs.paths)
    (ax,) = fig.axes  # two studies: one axes
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == list(STUDIES)  # one best-so-far line per study, in study order
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(STUDIES)
    points = ax.collections
    assert len(points) == len(STUDIES)  # nothing diverged: one point cloud per study
    for line, cloud, study in zip(lines, points, STUDIES):
        trials = completed(search_run, study)
        assert len(trials) == BUDGET
        numbers = [t.number for t in trials]
        values = np.array([t.value for t in trials])
        np.testing.assert_array_equal(line.get_xdata(), numbers)
        np.testing.assert_array_equal(line.get_ydata(), np.maximum.accumulate(values))
        assert line.get_ydata()[-1] == values.max() and line.get_drawstyle() == "steps-post"
        np.testing.assert_array_equal(cloud.get_offsets(), np.column_stack([numbers, values]))
        np.testing.assert_allclose(to_rgb(line.get_color()), cloud.get_facecolor()[0][:3])
    assert to_rgb(lines[0].get_color()) != to_rgb(lines[1].get_color())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("Trial (Optuna number)", "Best test accuracy")
    caption = fig.texts[-1].get_text().replace("\n", " ")
    assert f"Points: {BUDGET * len(STUDIES)} completed trials in 2 stud(ies)" in caption
    assert "Failed trials, not drawn: 0" in caption
    assert plt.rcParams["font.size"] == style.rc_params()["font.size"]  # pcsweep's style is untouched


def test_history_with_many_studies_has_one_panel_each(search_run):
    style.apply()
    found = read_studies(search_run)
    many = [dataclasses.replace(s, name=f"{s.name}.copy{i}") for i in range(3) for s in found.studies][:5]
    fig = fig_search_history.history_figure(many, "accuracy_best")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(fig.axes) == 8 and [ax.get_title() for ax in shown] == [s.name for s in many]
    for ax, study in zip(shown, many):
        (line,) = ax.get_lines()
        assert line.get_ydata()[-1] == max(t.value for t in completed(search_run, study.name.split(".copy")[0]))
    assert shown[0].get_shared_y_axes().joined(shown[0], shown[-1])


def test_importance_bars_are_optunas_importances_of_the_study_with_most_trials(search_run, inputs):
    style.apply()
    fig = fig_search_importance.draw(inputs.summary, inputs.results, None, run_paths=inputs.paths)
    (ax,) = fig.axes
    names = [t.get_text() for t in ax.get_yticklabels()]
    widths = [p.get_width() for p in ax.patches]
    # both studies have 8 completed trials: the first in study order is chosen
    study = optuna.load_study(study_name=STUDIES[0], storage=study_storage(search_run, STUDIES[0]))
    want = optuna.importance.get_param_importances(study)
    assert sorted(names) == ["train.h_lr", "train.w_lr"]
    assert names[::-1] == list(want)  # the most important on top
    np.testing.assert_allclose(widths[::-1], list(want.values()), rtol=1e-12)
    assert sum(widths) == pytest.approx(1.0)
    caption = fig.texts[-1].get_text().replace("\n", " ")
    assert f"Study {STUDIES[0]}" in caption and f"{BUDGET} completed trials of accuracy_best" in caption
    assert plt.rcParams["font.size"] == style.rc_params()["font.size"]


def test_importance_skips_few_trials_and_a_single_parameter(search_run):
    found = read_studies(search_run)
    few = [dataclasses.replace(s, trials=s.trials[:7]) for s in found.studies]
    with pytest.raises(SkipFigure, match=r"study seed=0, the one with most completed trials, has 7; parameter "
                                         r"importances need at least 8"):
        fig_search_importance.importance_figure(few)
    dist = {"train.h_lr": FloatDistribution(0.01, 0.5, log=True)}
    single = [create_trial(value=0.5 + i / 100, params={"train.h_lr": 0.01 + i / 100}, distributions=dist)
              for i in range(10)]
    lone = dataclasses.replace(found.studies[0], name="lone", trials=tuple(single))
    with pytest.raises(SkipFigure, match=r"study lone searches a single parameter \(train.h_lr\)"):
        fig_search_importance.importance_figure([lone])


def test_a_grid_without_journals_skips_both_with_a_reason(search_run, tmp_path):
    paths = copy_run(search_run, tmp_path / "runs")
    shutil.rmtree(paths.folder / "optuna")
    lines: list[str] = []
    outcomes = make_figures(Inputs.load(GRID, paths.root), tmp_path / "figs", ["png"],
                            select(["search_history", "search_importance"]), log=lines.append)
    assert [o.written for o in outcomes] == [[], []]
    assert lines == [f"skipped {stem} ({GRID}): not an adaptive search: no Optuna journal in "
                     f"{paths.folder / 'optuna'} (optuna/*.log)" for stem in ("search-history", "search-importance")]
    hand_made = Inputs(GRID, Inputs.load(GRID, paths.root).summary, paths.results, None)  # no run folder known
    with pytest.raises(SkipFigure, match="no run folder given"):
        fig_search_history.draw(hand_made.summary, hand_made.results, None)


def test_cli_writes_both_figures(search_run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "plots", GRID, "--root", str(search_run.root), "--out", str(tmp_path),
                           "--only", "search_history", "search_importance", "--format", "png,pdf"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr
    assert not [ln for ln in proc.stdout.splitlines() if ln.startswith("skipped ")] and "Traceback" not in proc.stderr
    for stem in ("search-history", "search-importance"):
        assert (tmp_path / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        with Image.open(tmp_path / f"{stem}.png") as im:
            im.verify()
        assert str(tmp_path / f"{stem}.png") in proc.stdout


def test_history_of_a_minimised_study_keeps_the_lowest_value_so_far(search_run):
    study = dataclasses.replace(read_studies(search_run).studies[1], direction="minimize")
    table = fig_search_history.history(study)
    values = np.array([t.value for t in completed(search_run, STUDIES[1])])
    np.testing.assert_array_equal(table["value"], values)
    np.testing.assert_array_equal(table["best"], np.minimum.accumulate(values))
    assert table["best"].iloc[-1] == values.min() < values.max()
