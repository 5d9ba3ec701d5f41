"""PC accuracy against γ in every width × activation cell, SGD (0.9) against AdamW (appendix grid).

As `all_accuracies_plot`: `catplot(kind="box")`, x = γ, y = accuracy, columns = width, rows =
activation, hue = optimiser, height 2.5 in and aspect 1.2 per cell; pools all w_lr and seeds.
Fixes docs/paper-notes.md Q19 (PC rows only). Drawn for every dataset present, not only FashionMNIST.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from plots import style
from plots.data import for_dataset, require

OPTIMS = ("sgd-0.9", "adamw-0.9")


def _ordered(values: pd.Series, preferred) -> list[str]:
    """Distinct values in the preferred order (LeakyReLU before HardTanh, as the paper), others after."""
    present = set(values)
    return [v for v in preferred if v in present] + sorted(present - set(preferred))


def choose_rows(summary: pd.DataFrame, dataset: str | None) -> pd.DataFrame:
    """PC rows of SGD-0.9 and AdamW with a finite accuracy, labelled for the facets (Optimizer, Activation, Width).

    A pure function of the summary so that the rows behind the boxes (no BP row, no other optimiser, no diverged
    trial) are tested without drawing; SkipFigure when none is left.
    """
    rows = for_dataset(summary, dataset)
    rows = require(rows[(rows["model.kind"] == "pc") & rows["optim"].isin(OPTIMS) & rows["accuracy"].notna()],
                   f"model.kind=pc, optim in {OPTIMS} and a finite accuracy for {dataset}")
    return rows.assign(Optimizer=rows["optim"].map(style.OPTIMIZER_LABELS),
                       Activation=rows["model.activation"].map(lambda a: style.ACTIVATION_LABELS.get(a, a)),
                       Width=rows["model.width"].astype(int))


def draw(summary: pd.DataFrame, results: Path, dataset: str | None) -> Figure:
    """Box catplot of PC accuracy per γ: columns = width, rows = activation, hue = optimiser."""
    rows = choose_rows(summary, dataset)
    gammas = sorted(rows["train.h_lr"].unique())
    hue_order = [style.OPTIMIZER_LABELS[o] for o in OPTIMS if o in set(rows["optim"])]
    with plt.rc_context({"figure.constrained_layout.use": False}):  # FacetGrid lays out itself
        g = sns.catplot(rows, kind="box", x="train.h_lr", y="accuracy", col="Width", row="Activation",
                        hue="Optimizer", order=gammas, hue_order=hue_order, palette=style.OPTIMIZER_COLORS,
                        col_order=sorted(rows["Width"].unique()),
                        row_order=_ordered(rows["Activation"], style.ACTIVATION_LABELS.values()),
                        height=2.5, aspect=1.2, fliersize=1.5, linewidth=0.6, sharey=True)
    g.set_titles(row_template="{row_name}", col_template="h = {col_name}")
    g.set_axis_labels(r"$\gamma$", "Accuracy")
    for ax in g.axes.flat:
        style.gamma_ticklabels(ax, gammas)
        ax.tick_params(axis="x", labelrotation=45 if len(gammas) > 4 else 0)
        ax.set_ylim(0, 1)
    g.figure.suptitle(f"PC accuracy, {dataset}" if dataset else "PC accuracy", y=1.03)
    return g.figure
