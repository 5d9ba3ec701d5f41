"""Optimisation history of an adaptive search's studies (new): each completed trial's value and the best so far.

The data are Optuna's (`optuna/<study>.log`, read through `plots.data.search_studies` and `collect.studies`), the
drawing is plain matplotlib in pcsweep's style: Optuna's own `plot_optimization_history` calls
`plt.style.use("ggplot")` (it would restyle every later figure), draws into a figure of its own with tight layout
(no panels, no constrained layout) and is experimental. What it draws is reproduced: x = the trial's Optuna number,
points = completed trials' values, line = the best value so far in the study's direction.

Up to `FEW` studies share one axes (one colour each, one best-so-far line per study); more get one small panel
each, sharing the y axis. Diverged trials (told the worst value, user attr `status`) are drawn as grey crosses;
failed, running and waiting trials have no value and are not drawn (the caption counts the failed ones).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from collect.studies import JournalStudy
from contracts.paths import RunPaths
from plots import data, style
from plots.registry import SkipFigure

FEW = 4  # at most this many studies share one axes
NCOLS = 4  # panels per row when there are more
METRIC_LABELS = {"accuracy_best": "Best test accuracy", "accuracy": "Final test accuracy"}
DIVERGED_COLOR = "0.55"


def history(study: JournalStudy) -> pd.DataFrame:
    """The study's COMPLETE trials with a finite value, by Optuna number: number, value, diverged, best (so far)."""
    rows = [{"number": t.number, "value": float(t.value), "diverged": t.user_attrs.get("status") == "diverged"}
            for t in study.trials if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)]
    table = pd.DataFrame(rows, columns=["number", "value", "diverged"]).sort_values("number", kind="stable")
    values = table["value"].to_numpy(dtype=float)
    best = np.maximum.accumulate(values) if study.direction == "maximize" else np.minimum.accumulate(values)
    return table.assign(best=best).reset_index(drop=True)


def _draw(ax: Axes, table: pd.DataFrame, color: object, label: str | None) -> None:
    ok = table[~table["diverged"]]
    bad = table[table["diverged"]]
    ax.scatter(ok["number"], ok["value"], s=10, color=color, alpha=0.55, linewidths=0, zorder=2)
    if not bad.empty:
        ax.scatter(bad["number"], bad["value"], s=14, marker="x", color=DIVERGED_COLOR, linewidths=0.8, zorder=2)
    ax.plot(table["number"], table["best"], color=color, drawstyle="steps-post", label=label, zorder=3)


def history_figure(studies: Sequence[JournalStudy], metric: str | None = None) -> Figure:
    """The figure from loaded studies (`collect.studies.JournalStudy`); SkipFigure when none has a completed trial."""
    tables = [history(s) for s in studies]
    drawn = [(s, t) for s, t in zip(studies, tables) if not t.empty]
    if not drawn:
        raise SkipFigure(f"no completed trial in any of the {len(studies)} stud(ies) yet")
    ylabel = METRIC_LABELS.get(metric or "", "Objective value")
    colors = sns.color_palette("colorblind")
    if len(studies) <= FEW:
        fig, ax = plt.subplots(figsize=style.figsize("full", 0.42))
        for i, (study, table) in enumerate(drawn):
            _draw(ax, table, colors[i % len(colors)], study.name)
        ax.set_xlabel("Trial (Optuna number)")
        ax.set_ylabel(ylabel)
        ax.legend(title="Study (best so far)", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                  fontsize="x-small", title_fontsize="x-small", handlelength=1.2)
        ax.set_title("Optimisation History")
    else:
        nrows = math.ceil(len(drawn) / NCOLS)
        fig, axes = plt.subplots(nrows, NCOLS, figsize=(style.FULL_WIDTH_IN, 0.3 + 1.45 * nrows), sharey=True,
                                 squeeze=False)
        for ax, (study, table) in zip(axes.flat, drawn):
            _draw(ax, table, colors[0], study.name)
            ax.set_title(study.name, fontsize="x-small")
            ax.tick_params(labelsize="xx-small")
        for ax in axes.flat[len(drawn):]:
            ax.set_visible(False)
        fig.supxlabel("Trial (Optuna number)", fontsize="small")
        fig.supylabel(ylabel, fontsize="small")
        fig.suptitle("Optimisation History", fontsize="medium")
    n_complete = sum(len(table) for _, table in drawn)
    n_diverged = sum(int(table["diverged"].sum()) for _, table in drawn)
    n_failed = sum(t.state.name == "FAIL" for s in studies for t in s.trials)
    direction = "/".join(sorted({s.direction for s, _ in drawn}))
    text = (f"Points: {n_complete} completed trials in {len(drawn)} stud(ies); line: best so far ({direction}). "
            f"Diverged (told the worst value, crosses): {n_diverged}. Failed trials, not drawn: {n_failed}.")
    if missing := [s.name for s, t in zip(studies, tables) if t.empty]:
        text += f" No completed trial yet: {', '.join(missing)}."
    style.caption(fig, text)
    return fig


def draw(summary: pd.DataFrame, results: Path, dataset: str | None, run_paths: RunPaths | None = None) -> Figure:
    """Per grid: the history of every study in the run folder's Optuna journals (SkipFigure without any)."""
    found = data.search_studies(run_paths)
    return history_figure(found.studies, found.metric)
