"""Which searched parameters mattered (new): Optuna's parameter importances for the study with most completed trials.

The importances are Optuna's own, `optuna.importance.get_param_importances` with its default evaluator (PED-ANOVA,
normalised to sum to 1; what `optuna.visualization.matplotlib.plot_param_importances` and optuna-dashboard show),
computed over the study's COMPLETE trials in an in-memory study. The bars are drawn in plain matplotlib: Optuna's
plot function restyles every later figure (`plt.style.use("ggplot")`) and draws into a figure of its own.

Skipped when the chosen study has fewer than `MIN_TRIALS` completed trials, or searches a single parameter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from collect.studies import JournalStudy
from contracts.paths import RunPaths
from plots import data, style
from plots.registry import SkipFigure

MIN_TRIALS = 8  # fewer completed trials say nothing about importance
EVALUATOR = "PED-ANOVA"  # optuna.importance's default evaluator (optuna 5)


def completed(study: JournalStudy) -> list:
    """The study's COMPLETE trials with a finite value."""
    return [t for t in study.trials
            if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value)]


def pick(studies: Sequence[JournalStudy]) -> JournalStudy:
    """The study with most completed trials (ties: the first, in the grid's study order)."""
    return max(studies, key=lambda s: len(completed(s)))  # max keeps the first of equal keys


def param_importances(study: JournalStudy) -> dict[str, float]:
    """Optuna's importances (default evaluator) of the study's completed trials, most important first."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        scratch = optuna.create_study(direction=study.direction)
        scratch.add_trials(completed(study))
        return {k: float(v) for k, v in optuna.importance.get_param_importances(scratch).items()}
    finally:
        optuna.logging.set_verbosity(verbosity)


def importance_figure(studies: Sequence[JournalStudy], metric: str | None = None,
                      min_trials: int = MIN_TRIALS) -> Figure:
    """The figure from loaded studies (`collect.studies.JournalStudy`); SkipFigure as the module says."""
    study = pick(studies)
    trials = completed(study)
    if len(trials) < min_trials:
        raise SkipFigure(f"study {study.name}, the one with most completed trials, has {len(trials)}; parameter "
                         f"importances need at least {min_trials}")
    params = sorted({p for t in trials for p in t.params})
    if len(params) < 2:
        raise SkipFigure(f"study {study.name} searches a single parameter ({', '.join(params) or 'none'}): there is "
                         "nothing to rank")
    try:
        importances = param_importances(study)
    except (ValueError, RuntimeError) as e:
        raise SkipFigure(f"Optuna could not compute the importances of study {study.name}: {e}") from e
    names = list(importances)[::-1]  # barh draws bottom up: the most important on top
    values = [importances[n] for n in names]
    fig, ax = plt.subplots(figsize=style.figsize("half", 0.25 + 0.14 * len(names)))
    ax.barh(names, values, color=sns.color_palette("colorblind")[0], height=0.6)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=style.CAPTION_PT)
    ax.set_xlim(0, max(max(values), 1e-9) * 1.25)
    ax.set_xlabel(f"Importance ({EVALUATOR})")
    ax.tick_params(axis="y", labelsize="x-small")
    ax.grid(axis="y", visible=False)
    ax.set_title("Parameter Importance")
    chosen = f" (most completed trials of {len(studies)} studies)" if len(studies) > 1 else ""
    style.caption(fig, f"Study {study.name}{chosen}: {len(trials)} completed trials of {metric or 'the objective'} "
                       f"({study.direction}); Optuna's default evaluator; importances sum to 1.")
    return fig


def draw(summary: pd.DataFrame, results: Path, dataset: str | None, run_paths: RunPaths | None = None) -> Figure:
    """Per grid: the importances of the study with most completed trials (SkipFigure without journals)."""
    found = data.search_studies(run_paths)
    return importance_figure(found.studies, found.metric)
