"""The paper's "energy vs T" panel, labelled as what it is: energy per layer against the epoch.

As `energy_over_T_plot` (quirk Q10): for the trials the paper picked (`data.paper_energy_trials`),
`energy[e, -1, T-1, k]` (last batch of each epoch, inference step t = T-1) for e = 1..E; mean and
95% CI over seeds, log y. The paper labelled this x axis "T (Inference Step)"; it is the epoch.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from plots import style
from plots.data import SkipFigure, paper_energy_trials, read_arrays


def long_table(summary: pd.DataFrame, results: Path, dataset: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of the chosen trials, long table epoch / layer / energy / trial_id at t = T-1)."""
    rows = paper_energy_trials(summary, dataset)
    energy = read_arrays(results, rows["trial_id"], "energy")
    records = []
    for tid, arr in energy.items():  # arr: [E, B, T+1, L]; t = T-1 is index -2
        for e in range(arr.shape[0]):
            for k in range(arr.shape[3]):
                records.append({"trial_id": tid, "epoch": e + 1, "layer": str(k + 1), "energy": arr[e, -1, -2, k]})
    return rows, pd.DataFrame(records)


def draw(summary: pd.DataFrame, results: Path, dataset: str | None) -> Figure:
    """Energy per layer at t = T-1 vs epoch (log y), the paper's 'energy vs T' panel."""
    rows, table = long_table(summary, results, dataset)
    shown = table[np.isfinite(table["energy"]) & (table["energy"] > 0)]
    if shown.empty:
        raise SkipFigure("every energy of the chosen trials is zero or not finite")
    fig, ax = plt.subplots(figsize=style.figsize("half", 1.4 * style.GOLDEN))
    layers = sorted(shown["layer"].unique(), key=int)
    sns.lineplot(shown, x="epoch", y="energy", hue="layer", hue_order=layers, marker="o",
                 palette=style.LAYER_COLORS[: len(layers)], errorbar=("ci", 95), seed=0, ax=ax)
    ax.set_yscale("log")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Energy norm")
    ax.set_title("Energy Norm per Epoch")
    ax.set_xticks(range(1, int(table["epoch"].max()) + 1))
    ax.legend(title="Layer", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
              fontsize="x-small", title_fontsize="x-small", handlelength=1.2)
    style.caption(fig, f"{style.condition_title(rows)}; last batch of each epoch, step t=T-1; "
                       f"n={len(rows)} seeds")
    return fig
