"""Reading `collect`'s output (summary.csv, results.h5) and the grid, for the figures.

The only module of `plots` that opens files, so that it can switch to `collect.load_summary` /
`collect.load_trial` in one place. Imports pandas and numpy (results.h5 is read through `collect`; no jax).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.paths import RunPaths

CONFIG_PREFIXES = ("data.", "model.", "train.")


class SkipFigure(Exception):
    """A figure whose data are absent from the grid: the message says which rows were missing."""


def _round12(x: Any) -> Any:
    """Round a float to 12 significant digits, as the canonical trial config does (quirk Q7)."""
    if isinstance(x, float) and math.isfinite(x) and x != 0:
        return float(f"{x:.12g}")
    return x


def optim_label(w_optimizer: str, w_momentum: float) -> str:
    """`optim` as collect writes it, e.g. "sgd-0.9", "adamw-0.9", "sgd-0.0"."""
    return f"{w_optimizer}-{float(w_momentum)}"


def normalize_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Make a summary table safe to group: rounded γ, boolean constant_width, optim/condition present."""
    df = summary.copy()
    for col in ("train.h_lr", "train.w_lr", "train.w_momentum"):
        if col in df:
            df[col] = df[col].astype(float).map(_round12)
    if "model.constant_width" in df:
        df["model.constant_width"] = df["model.constant_width"].map(
            lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
    if "optim" not in df and {"train.w_optimizer", "train.w_momentum"} <= set(df.columns):
        df["optim"] = [optim_label(o, m) for o, m in zip(df["train.w_optimizer"], df["train.w_momentum"])]
    if "condition" not in df and {"model.kind", "optim"} <= set(df.columns):
        df["condition"] = df["model.kind"].astype(str) + "-" + df["optim"].astype(str)
    if "status" not in df:
        df["status"] = "ok"
    df["trial_id"] = df["trial_id"].astype(str)
    return df


def load_summary(path: Path) -> pd.DataFrame:
    """Read `summary.csv` (one row per trial) and normalise it."""
    return normalize_summary(pd.read_csv(path, dtype={"trial_id": str}))


def config_columns(summary: pd.DataFrame) -> list[str]:
    """Every flattened config column except the seed: what defines one experimental condition."""
    return [c for c in summary.columns if c.startswith(CONFIG_PREFIXES)]


def condition_key(summary: pd.DataFrame) -> pd.Series:
    """One string per row naming its condition (all config columns but `seed`): the paper's
    `all_experimental_vars`, made complete so that two conditions never share a key."""
    cols = config_columns(summary)
    return pd.Series(["|".join(map(str, values)) for values in summary[cols].itertuples(index=False)],
                     index=summary.index, dtype=object)


def for_dataset(summary: pd.DataFrame, dataset: str | None) -> pd.DataFrame:
    """Rows of one dataset (all rows when `dataset` is None)."""
    return summary if dataset is None else summary[summary["data.dataset"] == dataset]


def require(rows: pd.DataFrame, what: str) -> pd.DataFrame:
    """Return `rows`, or raise SkipFigure("no rows with <what>") when empty."""
    if rows.empty:
        raise SkipFigure(f"no rows with {what}")
    return rows


def paper_energy_trials(summary: pd.DataFrame, dataset: str | None) -> pd.DataFrame:
    """The trials the paper's energy figure shows: all seeds of one PC AdamW condition.

    As `energy_over_T_plot` did: among PC rows with optim adamw-0.9, take for each γ the row with
    the best accuracy, sort those rows by accuracy (descending), keep the top one's condition and
    return every seed of it.
    """
    rows = for_dataset(summary, dataset)
    rows = require(rows[(rows["model.kind"] == "pc") & (rows["optim"] == "adamw-0.9")],
                   f"model.kind=pc, optim=adamw-0.9 for {dataset}")
    rows = require(rows[rows["accuracy"].notna()], "a finite accuracy (all diverged)")
    best_per_gamma = rows.loc[rows.groupby("train.h_lr")["accuracy"].idxmax()]
    top = best_per_gamma.sort_values("accuracy", ascending=False, kind="stable").iloc[0]
    keys = condition_key(rows)
    return rows[keys == keys.loc[top.name]]


def read_arrays(results: Path, trial_ids: Iterable[str], name: str) -> dict[str, np.ndarray]:
    """Array `name` of each trial from results.h5 (e.g. name="energy": [E, B, T+1, L]), read by collect.

    Goes through `collect.load_arrays` (which refuses a results.h5 that collect is still updating)
    when `results` sits in a run folder (`<root>/<grid>/results.h5`), else `collect.load.read_results_arrays`.
    """
    trial_ids = [str(t) for t in trial_ids]
    try:
        run = RunPaths.of(results.parent.name, results.parent.parent)
        if run.results == results:
            from collect import load_arrays

            arrays = load_arrays(run.grid, name, trial_ids, run.root)
        else:
            from collect.load import read_results_arrays

            arrays = read_results_arrays(results, name, trial_ids)
    except (OSError, KeyError, RuntimeError) as e:
        raise SkipFigure(f"cannot read {name} from {results}: {e}") from e
    return {tid: np.asarray(a, dtype=np.float64) for tid, a in arrays.items()}


# --- the grid: which trials were expected --------------------------------------------------------

def _grid_file_name(path: Path) -> str:
    """The `name:` of a grid file (grid files may use keys plain YAML cannot load, e.g. joint axes)."""
    try:
        from grids.grid import read_grid_document

        name = read_grid_document(path).get("name")
    except Exception:  # noqa: BLE001 - launch absent or the file invalid: fall back to a plain look
        match = re.search(r"^name:\s*['\"]?([\w.-]+)", path.read_text(), flags=re.MULTILINE)
        name = match.group(1) if match else None
    return str(name or path.stem)


def grid_name_and_yaml(grid: str, root: Path | None) -> tuple[str, Path | None]:
    """GRID as given on the command line (a name or a grid yaml path) → (name, grid yaml or None).

    A yaml path names its grid by its `name:` key (else the file stem); for a bare name the run
    folder's `grid.yaml` (the grid as launched) is used when present.
    """
    path = Path(grid)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _grid_file_name(path), path
    name = path.stem if path.suffix in (".yaml", ".yml") else grid
    launched = RunPaths.of(name, root).grid_yaml
    return name, launched if launched.is_file() else None


def _condition_row(trial: Any) -> dict[str, Any]:
    """(dataset, kind, optim, constant_width) of a `contracts.config.TrialConfig` or a nested mapping."""
    if isinstance(trial, Mapping):
        d, m, t = trial["data"], trial["model"], trial["train"]
        get = dict.get
    else:
        d, m, t = trial.data, trial.model, trial.train
        get = getattr
    return {"data.dataset": get(d, "dataset"), "model.kind": get(m, "kind"),
            "optim": optim_label(get(t, "w_optimizer"), get(t, "w_momentum")),
            "model.constant_width": bool(get(m, "constant_width"))}


def expected_trials(grid_yaml: Path | None) -> tuple[pd.DataFrame | None, str]:
    """The grid's trials as rows (trial_id, data.dataset, model.kind, optim, model.constant_width).

    Returns (None, reason) when the grid cannot be expanded (no grid.yaml, or `grids.grid`
    unavailable): the coverage figure then counts only what is present, and says so.
    """
    if grid_yaml is None:
        return None, "no grid.yaml found"
    try:
        from grids.grid import load_grid  # lazily: launch is optional for plotting

        grid = load_grid(grid_yaml)
        ids = list(getattr(grid, "trial_ids", ()) or [t.trial_id for t in grid.trials])
        rows = [{"trial_id": str(tid), **_condition_row(trial)} for tid, trial in zip(ids, grid.trials)]
    except Exception as e:  # noqa: BLE001 - any failure only downgrades the coverage figure
        return None, f"could not expand {grid_yaml} ({type(e).__name__}: {e})"
    return pd.DataFrame(rows), f"expected from {grid_yaml.name}"


@dataclass(frozen=True)
class Inputs:
    """What the figures of one grid read: its summary, its results file and its grid file."""

    grid: str
    summary: pd.DataFrame
    results: Path
    grid_yaml: Path | None

    @classmethod
    def load(cls, grid: str, root: Path | None = None) -> Inputs:
        """Load GRID (a name or a yaml path) from its run folder; FileNotFoundError names the fix."""
        name, grid_yaml = grid_name_and_yaml(grid, root)
        paths = RunPaths.of(name, root)
        if not paths.summary.is_file():
            raise FileNotFoundError(
                f"{paths.summary}: no summary table for grid {name!r}; run `python -m collect {grid}"
                f"{'' if root is None else f' --root {root}'}` first")
        try:
            from collect import load_summary as collect_summary  # collect's dtypes; light import
        except ImportError:
            return cls(name, load_summary(paths.summary), paths.results, grid_yaml)
        return cls(name, normalize_summary(collect_summary(name, paths.root)), paths.results, grid_yaml)

    @property
    def datasets(self) -> list[str]:
        return sorted(self.summary["data.dataset"].dropna().astype(str).unique())
