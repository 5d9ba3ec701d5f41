"""Layer energy norms over the inference steps t = 0..T (new: the paper could not draw this).

Trials: all seeds of the PC AdamW condition the paper picked (`data.paper_energy_trials`). Values:
`energy[-1, -1, t, k]` (last epoch, last batch) for t = 0..T; mean and 95% CI over seeds. Under
forward init the hidden layers are exactly 0 at t = 0 (the first hidden layer of a 3-Vode network
also at t = 1, until the output error reaches it), which a log axis cannot show, so zero values are
left out of the curves and the caption lists them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from plots import style
from plots.data import paper_energy_trials, read_arrays


def long_table(summary: pd.DataFrame, results: Path, dataset: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of the chosen trials, long table t / layer / energy / trial_id at the last batch)."""
    rows = paper_energy_trials(summary, dataset)
    energy = read_arrays(results, rows["trial_id"], "energy")
    records = []
    for tid, arr in energy.items():  # arr: [E, B, T+1, L]
        last = arr[-1, -1]
        for t in range(last.shape[0]):
            for k in range(last.shape[1]):
                records.append({"trial_id": tid, "t": t, "layer": str(k + 1), "energy": last[t, k]})
    return rows, pd.DataFrame(records)


def zero_steps(table: pd.DataFrame) -> dict[str, list[int]]:
    """layer -> the steps t at which its energy is exactly 0 in every chosen trial.

    Under forward init, a hidden layer stays at 0 until the output error has propagated back to
    it: layer L-1 is 0 at t = 0 only, layer L-2 at t = 0 and 1, and so on.
    """
    zero = table.assign(z=table["energy"] == 0).groupby(["layer", "t"])["z"].all()
    return {layer: [int(t) for t in zero.loc[layer][zero.loc[layer]].index]
            for layer in sorted(table["layer"].unique(), key=int) if zero.loc[layer].any()}


def draw(summary: pd.DataFrame, results: Path, dataset: str | None) -> Figure:
    """Energy per layer vs inference step (log y) for the paper's chosen PC AdamW condition."""
    rows, table = long_table(summary, results, dataset)
    fig, ax = style.layer_energy_figure(table, "t", "Inference step $t$", "Energy Norm per Step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    note = f"{style.condition_title(rows)}; last batch, last epoch; n={len(rows)} seeds"
    if zeros := zero_steps(table):
        note += "\nExactly 0, not drawn on the log axis: " + "; ".join(
            f"layer {layer} at t={','.join(map(str, ts))}" for layer, ts in zeros.items())
    style.caption(fig, note)
    return fig

