"""PC accuracy against γ, SGD (momentum 0.9) against AdamW (the paper's Fig. 5 centre-right).

As `single_accuracy_plot`: rows with width 1024 and hard_tanh, boxplot x = γ (categorical), hue =
optimiser, pooling all w_lr and seeds, ylim (0, 1). Fixes docs/paper-notes.md Q19 by keeping PC rows only. When
width 1024 or hard_tanh is absent (small grids), the widest width and the first activation present at that
width are used instead, and the title says so.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from plots import style
from plots.data import for_dataset, require

PAPER_WIDTH, PAPER_ACTIVATION = 1024, "hard_tanh"
OPTIMS = ("sgd-0.9", "adamw-0.9")


def choose_rows(summary: pd.DataFrame, dataset: str | None) -> tuple[pd.DataFrame, str]:
    """(PC rows of SGD-0.9 and AdamW at the paper's width/activation or the fallback, title suffix)."""
    rows = for_dataset(summary, dataset)
    rows = require(rows[(rows["model.kind"] == "pc") & rows["optim"].isin(OPTIMS)],
                   f"model.kind=pc and optim in {OPTIMS} for {dataset}")
    widths = set(rows["model.width"])
    width = PAPER_WIDTH if PAPER_WIDTH in widths else max(widths)
    # the activations run at that width (a grid need not cross every width with every activation)
    acts = sorted(set(rows.loc[rows["model.width"] == width, "model.activation"]))
    act = PAPER_ACTIVATION if PAPER_ACTIVATION in acts else acts[0]
    rows = require(rows[(rows["model.width"] == width) & (rows["model.activation"] == act)
                        & rows["accuracy"].notna()], f"a finite accuracy at width {width}, {act} for {dataset}")
    label = f"h={width}, {style.ACTIVATION_LABELS.get(act, act)}"
    if (width, act) != (PAPER_WIDTH, PAPER_ACTIVATION):
        label += f" (paper: h={PAPER_WIDTH}, HardTanh; absent here)"
    return rows, label


def draw(summary: pd.DataFrame, results: Path, dataset: str | None) -> Figure:
    """Boxplot of PC accuracy per γ, SGD(0.9) vs AdamW, at width 1024 / HardTanh or the fallback."""
    rows, label = choose_rows(summary, dataset)
    rows = rows.assign(Optimizer=rows["optim"].map(style.OPTIMIZER_LABELS))
    gammas = sorted(rows["train.h_lr"].unique())
    hue_order = [style.OPTIMIZER_LABELS[o] for o in OPTIMS if o in set(rows["optim"])]
    fig, ax = plt.subplots(figsize=style.figsize("half", 1.4 * style.GOLDEN))
    sns.boxplot(rows, x="train.h_lr", y="accuracy", hue="Optimizer", order=gammas, hue_order=hue_order,
                palette=style.OPTIMIZER_COLORS, fliersize=1.5, linewidth=0.6, ax=ax)
    style.gamma_ticklabels(ax, gammas)
    if len(gammas) > 4:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylim(0, 1)
    ax.set_xlabel(r"State learning rate $\gamma$")
    ax.set_ylabel("Accuracy")
    ax.set_title("PC Accuracy")
    style.caption(fig, f"{label}; all w_lr and seeds pooled (n={len(rows)})")
    style.legend_above(ax)
    return fig
