"""How much of the grid is done, per condition: done / diverged / missing trials (new).

A condition is dataset × model kind × weight optimiser (× constant width where the grid varies it).
Each bar is the condition's share of done (status ok), diverged and missing, with the counts written
at its end. Done and diverged count the summary's rows; missing = expected − present, with the
expected trials expanded from the grid file (`grids.load_grid`: the grid as launched, `runs/<grid>/grid.yaml`,
else the grid file GRID named). Without a grid file that expands, expected is taken to be what is present,
and the caption says so.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from contracts.paths import RunPaths
from plots import data, style

KEYS = ["data.dataset", "model.kind", "optim"]
STATES = ("done", "diverged", "missing")


def counts(summary: pd.DataFrame, expected: pd.DataFrame | None) -> pd.DataFrame:
    """One row per condition (index: label), columns done / diverged / missing / expected."""
    present = summary.assign(state=summary["status"].map(lambda s: "diverged" if s == "diverged" else "done"))
    keys = KEYS + (["model.constant_width"] if _varies(summary, expected, "model.constant_width") else [])
    if expected is not None:
        absent = expected[~expected["trial_id"].isin(set(present["trial_id"]))].assign(state="missing")
        present = pd.concat([present[keys + ["state"]], absent[keys + ["state"]]])
    table = present.groupby(keys + ["state"]).size().unstack("state", fill_value=0)
    table = table.reindex(columns=list(STATES), fill_value=0)
    table["expected"] = table.sum(axis=1)
    table.index = [_label(dict(zip(keys, k))) for k in table.index]  # keys: 3 or 4 columns, so k is a tuple
    return table


def _varies(summary: pd.DataFrame, expected: pd.DataFrame | None, col: str) -> bool:
    """Whether `col` takes more than one value over the present and the expected trials (a table may lack it)."""
    values = set(summary[col]) if col in summary else set()
    if expected is not None and col in expected:
        values |= set(expected[col])
    return len(values) > 1


def _label(k: dict) -> str:
    parts = [k["data.dataset"], str(k["model.kind"]).upper(), k["optim"]]
    if k.get("model.constant_width"):
        parts.append("const. width")
    return " · ".join(parts)


def draw(summary: pd.DataFrame, results: Path, dataset: str | None, grid_yaml: Path | None = None,
         run_paths: RunPaths | None = None) -> Figure:
    """Stacked bars of done / diverged / missing trials per condition (expected: the trials launched into
    `run_paths`, else those of `grid_yaml`; `plots.data.expected_trials`).

    Each bar is one condition's share (conditions differ in size by orders of magnitude), and the
    counts are written at its end: (done + diverged) / expected.
    """
    expected, note = data.expected_trials(grid_yaml, run_paths)
    table = counts(summary, expected).iloc[::-1]  # first condition on top
    fig, ax = plt.subplots(figsize=(style.FULL_WIDTH_IN, 1.2 + 0.2 * len(table)))
    left = pd.Series(0.0, index=table.index)
    for state in STATES:
        share = table[state] / table["expected"]
        ax.barh(table.index, share, left=left, color=style.STATUS_COLORS[state], label=state,
                edgecolor="white", linewidth=0.4)
        left = left + share
    for y, (_, row) in enumerate(table.iterrows()):
        ax.text(1.01, y, f"{row['done'] + row['diverged']}/{row['expected']}", va="center", fontsize=style.CAPTION_PT)
    ax.set_xlim(0, 1.2)
    ax.set_ylim(-0.6, len(table) - 0.4)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("Share of the condition's trials")
    ax.tick_params(axis="y", labelsize="x-small")
    ax.grid(axis="y", visible=False)
    ax.legend()
    ax.set_title("Grid Coverage")
    style.legend_above(ax)
    total = table[list(STATES)].sum()
    what = note if expected is not None else f"expected = present: {note}"
    if expected is not None and (extra := int((~summary["trial_id"].isin(set(expected["trial_id"]))).sum())):
        what += f"; {extra} trials present are not in the grid and count as expected"
    style.caption(fig, f"{total['done']} done, {total['diverged']} diverged, {total['missing']} missing "
                       f"of {total.sum()} ({what})")
    return fig
