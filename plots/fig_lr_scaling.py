"""Accuracy against γ per width for PC-SGD, PC-AdamW and BP (the training-stability figure).

As `plot_lineplots`: every BP row and the PC rows with γ < 0.3; three panels (width ratios 5:5:1)
"PC - SGD" (sgd-0.9), "PC - Adam" (adamw-0.9), "BP" (sgd-0.9); mean and 95% bootstrap CI over seeds,
hue = width (viridis), log x for PC; BP rows are duplicated at γ + 0.1 so each width draws a flat
segment; ylim (0, 1); legend only in the first panel. `constant_width` picks the main grid (False)
or the constant-layer-size ablation (True). Diverged trials (no finite accuracy) are left out of
the means and counted in the panel's title.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from plots import style
from plots.data import for_dataset, require

PANELS = (("pc-sgd-0.9", "PC - SGD"), ("pc-adamw-0.9", "PC - Adam"), ("bp-sgd-0.9", "BP"))
GAMMA_MAX = 0.3  # the notebook's `h_lr < 0.3` (it drops 0.3, see docs/paper-notes.md Q7)
BP_SEGMENT = 0.1


def panel_rows(summary: pd.DataFrame, dataset: str | None, constant_width: bool) -> pd.DataFrame:
    """Rows of the three panels (before BP's duplication), with finite or NaN accuracy."""
    rows = for_dataset(summary, dataset)
    if "model.constant_width" in rows:
        rows = rows[rows["model.constant_width"] == constant_width]
    rows = rows[rows["condition"].isin([c for c, _ in PANELS])]
    rows = rows[(rows["model.kind"] == "bp") | (rows["train.h_lr"] < GAMMA_MAX)]
    return require(rows, f"conditions {[c for c, _ in PANELS]} with model.constant_width={constant_width} "
                         f"for {dataset}")


def panel_points(rows: pd.DataFrame, bp: bool) -> pd.DataFrame:
    """The points one panel averages: its rows with a finite accuracy; for BP each row twice, at γ and γ + 0.1
    (the paper's trick: a flat segment per width). Pure, so what enters the means is tested without drawing."""
    finite = rows[np.isfinite(rows["accuracy"])]
    if bp:
        finite = pd.concat([finite, finite.assign(**{"train.h_lr": finite["train.h_lr"] + BP_SEGMENT})])
    return finite


def _panel(ax: Axes, rows: pd.DataFrame, widths: list[int], palette: list, bp: bool) -> None:
    """One condition's lines on `ax` (trials without a finite accuracy are left out)."""
    finite = panel_points(rows, bp)
    if finite.empty:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    else:
        sns.lineplot(finite, x="train.h_lr", y="accuracy", hue="model.width", hue_order=widths,
                     palette=palette, errorbar=("ci", 95), seed=0, marker=None if bp else "o", ax=ax)
    if bp:
        ax.set_xticks([])
    elif not finite.empty:
        style.log_gamma_axis(ax, finite["train.h_lr"])
    ax.set_ylim(0, 1)
    ax.set_xlabel("" if bp else r"$\gamma$")


def draw(summary: pd.DataFrame, results: Path, dataset: str | None, constant_width: bool = False) -> Figure:
    """Three panels of mean accuracy vs γ per width (PC-SGD, PC-Adam, BP); ablation rows if `constant_width`."""
    rows = panel_rows(summary, dataset, constant_width)
    widths = sorted(int(w) for w in rows["model.width"].unique())
    palette = sns.color_palette("viridis", len(widths))
    fig, axes = plt.subplots(1, 3, figsize=(style.FULL_WIDTH_IN, 2.8), sharey=True,
                             gridspec_kw={"width_ratios": [5, 5, 1]})
    for ax, (condition, title) in zip(axes, PANELS):
        _panel(ax, rows[rows["condition"] == condition], widths, palette, bp=condition.startswith("bp"))
        panel = rows[rows["condition"] == condition]
        n_diverged = int((~np.isfinite(panel["accuracy"])).sum())
        ax.set_title(f"{title} ({n_diverged} diverged)" if n_diverged else title)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    axes[0].set_ylabel("Accuracy")
    handles = [plt.Line2D([], [], color=c, marker="o") for c in palette]
    axes[0].legend(handles, [str(w) for w in widths], title="Width", ncols=2, loc="lower left",
                   fontsize="x-small", title_fontsize="x-small")
    if constant_width:
        fig.suptitle(f"{dataset}, constant layer size", fontsize="small")
    return fig
