"""Adjacent-layer energy ratios against γ for PC with AdamW (the paper's Fig. 5 right).

As `plot_single_energy_ratio`: PC AdamW rows with accuracy > 0.5 (the paper's threshold, also used
for FashionMNIST where chance is 0.1; `--ratio-min-accuracy` changes it) and both ratios < 1e8;
the two ratios melted (ε1²/ε2², ε2²/ε3²), boxplot against γ, log y, reference lines at 1 (dashed),
0.01 and 100 (dotted). Ratios are the summary's `energy_ratio_{k-1}/{k}` (last batch, t = T-1).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from plots import style
from plots.data import for_dataset, require

RATIOS = {"energy_ratio_0/1": r"$\epsilon_1^2/\epsilon_2^2$", "energy_ratio_1/2": r"$\epsilon_2^2/\epsilon_3^2$"}
MAX_RATIO = 1e8


def ratio_table(summary: pd.DataFrame, dataset: str | None, min_accuracy: float = 0.5) -> pd.DataFrame:
    """Long table (train.h_lr, Ratio, value) of the rows the paper kept."""
    rows = for_dataset(summary, dataset)
    rows = require(rows[(rows["model.kind"] == "pc") & (rows["train.w_optimizer"] == "adamw")],
                   f"model.kind=pc, w_optimizer=adamw for {dataset}")
    keep = rows["accuracy"] > min_accuracy
    for col in RATIOS:
        keep &= rows[col] < MAX_RATIO
    rows = require(rows[keep], f"accuracy > {min_accuracy:g} and ratios < 1e8 (PC AdamW, {dataset})")
    long = rows.melt(id_vars=["train.h_lr"], value_vars=list(RATIOS), var_name="Ratio", value_name="value")
    return long.assign(Ratio=long["Ratio"].map(RATIOS))


def draw(summary: pd.DataFrame, results: Path, dataset: str | None, min_accuracy: float = 0.5) -> Figure:
    """Boxplot of the two adjacent-layer energy ratios per γ (log y), PC AdamW above `min_accuracy`."""
    table = ratio_table(summary, dataset, min_accuracy)
    gammas = sorted(table["train.h_lr"].unique())
    fig, ax = plt.subplots(figsize=style.figsize("half", 1.4 * style.GOLDEN))
    sns.boxplot(table, x="train.h_lr", y="value", hue="Ratio", order=gammas, hue_order=list(RATIOS.values()),
                palette=[style.LAYER_COLORS[2], style.LAYER_COLORS[3]], log_scale=True,
                fliersize=1.5, linewidth=0.6, ax=ax)
    ax.axhline(1, color="0.2", linestyle="--", linewidth=0.8, zorder=0)
    for y in (0.01, 100):
        ax.axhline(y, color="0.4", linestyle=":", linewidth=0.8, zorder=0)
    style.gamma_ticklabels(ax, gammas)
    if len(gammas) > 4:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel(r"State learning rate $\gamma$")
    ax.set_ylabel("Energy ratio")
    ax.set_title("Energy Layer Ratio")
    style.legend_above(ax)
    style.caption(fig, f"PC AdamW trials with accuracy > {min_accuracy:g} (n={len(table) // 2})")
    return fig
