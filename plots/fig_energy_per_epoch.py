"""The paper's "energy vs T" panel, labelled as what it is: energy per layer against the epoch.

As `energy_over_T_plot` (docs/paper-notes.md Q10): for the trials the paper picked (`data.paper_energy_trials`),
`energy[e, -1, T-1, k]` (last batch of each epoch, inference step t = T-1) for e = 1..E; mean and
95% CI over seeds, log y. The paper labelled this x axis "T (Inference Step)"; it is the epoch.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from plots import style
from plots.data import paper_energy_trials, read_arrays


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
    fig, ax = style.layer_energy_figure(table, "epoch", "Epoch", "Energy Norm per Epoch")
    ax.set_xticks(range(1, int(table["epoch"].max()) + 1))
    style.caption(fig, f"{style.condition_title(rows)}; last batch of each epoch, step t=T-1; "
                       f"n={len(rows)} seeds")
    return fig
