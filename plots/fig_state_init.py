"""Best test accuracy against the number of inference steps T, one line per state initialisation (Fig. 5 centre-left).

The paper's `pcn_initialization/analysis.ipynb` drew `sns.lineplot(x='T', y='accuracy', hue=init, marker='o')`
(viridis, legend Forward, Normal, Zero, ylim 0.8-0.9) from each Optuna trial's best-epoch test accuracy, keeping
the top 5 trials of each study (TOPK = 5). Here the value per trial is the summary's `accuracy_best` (best test
accuracy over epochs), from PC rows with `model.init_h` in forward, zero, normal, and a point is one cell
(init, T), aggregated one of two ways:

- replay: each cell holds one configuration run with several seeds; mean and 95% bootstrap CI over the seeds;
- search: each cell holds many configurations (a grid search standing in for the study's TPE searches); the top
  `TOPK` trials of the cell by `accuracy_best`, then their mean and 95% bootstrap CI.

`aggregate="auto"` takes search when any cell holds more than one configuration (`plots.data.condition_key`:
every config column but the seed), else replay. Trials that diverged or have no finite `accuracy_best` are left
out and counted in the caption. The y range is the paper's 0.8-0.9 unless the drawn means or bands leave it;
then it fits them with a margin, and the caption says so. `draw_grids` puts several grids side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from plots import style
from plots.data import condition_key, for_dataset
from plots.registry import SkipFigure

INIT_RULES = ("forward", "zero", "normal")
INIT_LABELS = {"forward": "Forward", "normal": "Normal", "zero": "Zero"}
HUE_ORDER = ("Forward", "Normal", "Zero")  # the notebook's legend order (seaborn sorted the hue values)
PALETTE = dict(zip(HUE_ORDER, sns.color_palette("viridis", len(HUE_ORDER))))
AGGREGATES = ("auto", "replay", "search")
TOPK = 5  # the notebook's TOPK
PAPER_YLIM = (0.8, 0.9)
VALUE = "accuracy_best"  # best test accuracy over epochs, as the notebook's per-trial value
CELL = ["model.init_h", "train.T"]
DATASET_LABELS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST", "two_moons": "two moons",
                  "two_circles": "two circles"}
_RULES = f"model.init_h in ({', '.join(INIT_RULES)})"


@dataclass(frozen=True)
class Study:
    """One grid's state-initialisation points and how they were chosen.

    `points` is tidy, one row per trial that enters a mean: trial_id, seed, model.init_h, init (the legend
    label), train.T, accuracy_best and rank (1 = the cell's best). `n_trials` and `n_configs` are per cell
    (index: init_h, T): the trials that did not diverge and have a finite accuracy_best (a search's N), and
    the configurations among them.
    """

    points: pd.DataFrame
    aggregate: str  # replay | search: what was drawn
    detected: str  # what "auto" picks for this grid
    topk: int
    n_trials: pd.Series
    n_configs: pd.Series
    left_out: int  # diverged, or no finite accuracy_best


def study_rows(summary: pd.DataFrame, dataset: str | None) -> pd.DataFrame:
    """PC rows of `dataset` with `model.init_h` among the rules; SkipFigure unless they span more than one T."""
    rows = for_dataset(summary, dataset)
    where = f" for {dataset}" if dataset else ""
    if "model.init_h" not in rows or "train.T" not in rows:
        raise SkipFigure(f"no rows with {_RULES} at more than one train.T{where} (no such column)")
    rows = rows[(rows["model.kind"] == "pc") & rows["model.init_h"].isin(INIT_RULES)]
    if rows.empty:
        raise SkipFigure(f"no rows with model.kind=pc and {_RULES}{where}")
    ts = sorted(int(t) for t in rows["train.T"].unique())
    if len(ts) < 2:
        raise SkipFigure(f"no rows with {_RULES} at more than one train.T{where} (only train.T={ts[0]})")
    return rows


def detect_aggregate(rows: pd.DataFrame) -> str:
    """"search" when some cell (init, T) holds more than one configuration (all config columns but the seed)."""
    configs = condition_key(rows).groupby([rows[c] for c in CELL]).nunique()
    return "search" if (configs > 1).any() else "replay"


def study(summary: pd.DataFrame, dataset: str | None = None, aggregate: str = "auto", topk: int = TOPK) -> Study:
    """The trials behind each point: every finite trial of a cell (replay) or its `topk` best (search)."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate: got {aggregate!r}; expected one of {', '.join(AGGREGATES)}")
    if topk < 1:
        raise ValueError(f"topk: got {topk}; expected at least 1")
    rows = study_rows(summary, dataset)
    detected = detect_aggregate(rows)
    chosen = detected if aggregate == "auto" else aggregate
    value = pd.to_numeric(rows[VALUE], errors="coerce")
    kept = rows[np.isfinite(value) & (rows["status"] != "diverged")].copy()
    if kept.empty:
        raise SkipFigure(f"no trial with {_RULES} has a finite {VALUE} and did not diverge "
                         f"({len(rows)} left out{f' for {dataset}' if dataset else ''})")
    kept[VALUE] = kept[VALUE].astype(float)
    kept = kept.sort_values([*CELL, VALUE, "trial_id"], ascending=[True, True, False, True], kind="stable")
    cells = kept.groupby(CELL, sort=True)
    n_trials, n_configs = cells.size(), condition_key(kept).groupby([kept[c] for c in CELL]).nunique()
    kept["rank"] = cells.cumcount() + 1
    if chosen == "search":
        kept = kept[kept["rank"] <= topk]
    points = pd.DataFrame({
        "trial_id": kept["trial_id"], "seed": kept.get("seed", np.nan),
        "model.init_h": kept["model.init_h"], "init": kept["model.init_h"].map(INIT_LABELS),
        "train.T": kept["train.T"].astype(int), VALUE: kept[VALUE], "rank": kept["rank"],
    }).reset_index(drop=True)
    return Study(points, chosen, detected, topk, n_trials, n_configs, int(len(rows) - n_trials.sum()))


def points(summary: pd.DataFrame, dataset: str | None = None, aggregate: str = "auto", topk: int = TOPK
           ) -> pd.DataFrame:
    """`study(...).points`: the tidy table of the trials behind each point (see `Study`)."""
    return study(summary, dataset, aggregate, topk).points


def _span(counts: Sequence[int] | pd.Series) -> str:
    """"5" when every cell has 5, "3–5" when they differ."""
    values = [int(c) for c in counts]
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def describe(st: Study) -> str:
    """The caption's line naming the aggregation, e.g. "Replay: mean and 95% CI over 5 seeds per point"."""
    per_cell = st.points.groupby(CELL).size()
    forced = "" if st.aggregate == st.detected else f" (forced; this grid reads as a {st.detected})"
    if st.aggregate == "search":
        text = (f"Search{forced}: mean and 95% CI of the top {st.topk} of {_span(st.n_trials)} trials per study "
                f"(init, T), ranked by best test accuracy over epochs")
        if per_cell.min() < st.topk:
            text += f"; cells with fewer trials use all ({_span(per_cell)})"
    elif int(st.n_configs.max()) > 1:
        text = (f"Replay{forced}: mean and 95% CI over all {_span(per_cell)} trials per point, pooling "
                f"{_span(st.n_configs)} configurations per cell")
    else:
        text = f"Replay{forced}: mean and 95% CI over {_span(per_cell)} seeds per point (one configuration per cell)"
    if st.left_out:
        text += f". Left out: {st.left_out} trials (diverged or no finite best accuracy)"
    return text + "."


def drawn_values(axes: Sequence[Axes]) -> np.ndarray:
    """Every finite y value drawn on `axes`: the mean lines and the CI bands' outlines."""
    values = [np.asarray(ln.get_ydata(), dtype=float) for ax in axes for ln in ax.get_lines()]
    values += [p.vertices[:, 1] for ax in axes for c in ax.collections if isinstance(c, PolyCollection)
               for p in c.get_paths()]
    flat = np.concatenate(values) if values else np.zeros(0)
    return flat[np.isfinite(flat)]


def y_limits(values: np.ndarray, paper: tuple[float, float] = PAPER_YLIM) -> tuple[float, float]:
    """The paper's range when every value lies in it; else the values' range with a 5% margin."""
    if values.size == 0 or (values.min() >= paper[0] and values.max() <= paper[1]):
        return paper
    lo, hi = float(values.min()), float(values.max())
    margin = 0.05 * max(hi - lo, 0.02)
    return lo - margin, hi + margin


def _lines(ax: Axes, st: Study) -> None:
    """One line per init rule: mean and 95% bootstrap CI (seaborn, fixed seed) of the points per T."""
    present = [h for h in HUE_ORDER if h in set(st.points["init"])]
    sns.lineplot(st.points, x="train.T", y=VALUE, hue="init", hue_order=present, palette=PALETTE,
                 errorbar=("ci", 95), seed=0, marker="o", legend=False, ax=ax)
    ax.set_xticks(sorted(st.points["train.T"].unique()))
    ax.set_xlabel("T (inference steps)")
    ax.set_ylabel("Best test accuracy")


def _legend(fig: Figure, inits: set[str], above: bool = True) -> None:
    """One legend for the figure: a row above the axes, or a column right of them (side by side)."""
    labels = [h for h in HUE_ORDER if h in inits]
    handles = [Line2D([], [], color=PALETTE[h], marker="o") for h in labels]
    fig.legend(handles, labels, loc="outside upper center" if above else "outside right center",
               ncols=len(labels) if above else 1, frameon=False, fontsize="x-small", handlelength=1.5,
               columnspacing=1.2, title=None if above else "Init", title_fontsize="x-small")


def _ylim_note(limits: tuple[float, float]) -> str:
    if limits == PAPER_YLIM:
        return ""
    return (f"\ny from {limits[0]:.3f} to {limits[1]:.3f}: the paper's {PAPER_YLIM[0]}–{PAPER_YLIM[1]} "
            "would cut means or bands.")


def _dataset_label(dataset: str | None) -> str:
    return DATASET_LABELS.get(dataset, dataset) if dataset else "all datasets"


def draw(summary: pd.DataFrame, results: Path, dataset: str | None, aggregate: str = "auto",
         topk: int = TOPK) -> Figure:
    """Best test accuracy vs T per state initialisation, one grid (`aggregate`: auto, replay or search)."""
    st = study(summary, dataset, aggregate, topk)
    fig, ax = plt.subplots(figsize=style.figsize("half", 1.05))
    _lines(ax, st)
    limits = y_limits(drawn_values([ax]))
    ax.set_ylim(*limits)
    ax.set_title(f"State init, {_dataset_label(dataset)}")
    _legend(fig, set(st.points["init"]))
    style.caption(fig, describe(st) + _ylim_note(limits))
    return fig


def draw_grids(grids: Sequence[tuple[str, pd.DataFrame]], dataset: str | None, aggregate: str = "auto",
               topk: int = TOPK) -> Figure | None:
    """Several grids side by side, one panel each (in the order given), sharing the y axis.

    Grids without state-init rows are left out. Returns None when none has them (each grid's own figure
    already said why); SkipFigure when only one has them (a side-by-side needs two).
    """
    studies, absent = [], []
    for name, summary in grids:
        try:
            studies.append((name, study(summary, dataset, aggregate, topk)))
        except SkipFigure:
            absent.append(name)
    if not studies:
        return None
    where = f" for {dataset}" if dataset else ""
    if len(studies) < 2:
        raise SkipFigure(f"only grid {studies[0][0]} has rows with {_RULES} at more than one train.T{where} "
                         f"({', '.join(absent)} has none); a side-by-side needs two")
    fig, axes = plt.subplots(1, len(studies), sharey=True, squeeze=False,
                             figsize=(style.FULL_WIDTH_IN, 2.9))
    axes = list(axes[0])
    for ax, (name, st) in zip(axes, studies):
        _lines(ax, st)
        ax.set_title(f"{name}\n({st.aggregate})", fontsize="small")
    for ax in axes[1:]:
        ax.set_ylabel("")
    limits = y_limits(drawn_values(axes))
    axes[0].set_ylim(*limits)
    _legend(fig, set().union(*(set(st.points["init"]) for _, st in studies)), above=False)
    fig.suptitle(f"State init, {_dataset_label(dataset)}", fontsize="medium")
    lines = [f"{name}: {describe(st)}" for name, st in studies]
    if absent:
        lines.append(f"Not drawn (no state-init rows): {', '.join(absent)}.")
    style.caption(fig, "\n".join(lines) + _ylim_note(limits))
    return fig
