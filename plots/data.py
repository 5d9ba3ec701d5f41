"""Reading `collect`'s output (summary.csv, results.h5) and the grid, for the figures.

The only module of `plots` that opens files: the summary and the arrays through `collect.load_summary` /
`collect.load_arrays`, the grid through `grids.resolve` / `grids.load_grid`. Imports pandas, numpy and
(through collect.load) h5py, so `plots.cli` imports it only once its arguments are known good; no jax.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import collect
from collect.load import check_summary, read_results_arrays
from collect.studies import Studies, read_studies
from contracts.config import TrialConfig
from contracts.labels import condition_label, optim_label, round12
from contracts.paths import RunPaths
from contracts.trialset import read_trial_sets
from grids import GridError, GridRef, load_grid, resolve
from plots.registry import SkipFigure

__all__ = ["SkipFigure", "Inputs", "SummaryError", "condition_key", "config_columns", "expected_trials",
           "for_dataset", "normalize_summary", "paper_energy_trials", "read_arrays",
           "require", "search_studies"]

CONFIG_PREFIXES = ("data.", "model.", "train.")
# what every figure groups or filters by; a summary without them was not written by collect
REQUIRED_COLUMNS = ("trial_id", "accuracy", "data.dataset", "model.kind", "model.width", "model.activation",
                    "train.h_lr", "train.w_optimizer", "train.w_momentum")


class SummaryError(ValueError):
    """A summary table that cannot be read or lacks collect's columns: the message names the file and the fix."""


def normalize_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Make a summary table safe to group: γ rounded as trial ids are, boolean constant_width.

    `optim`, `condition` and `status` are collect's columns; they are derived here (with the same
    `contracts.labels` functions) only for a table that lacks them, e.g. one built in a notebook.
    """
    df = summary.copy()
    for col in ("train.h_lr", "train.w_lr", "train.w_momentum"):
        if col in df:
            df[col] = df[col].astype(float).map(round12)
    if "model.constant_width" in df:
        df["model.constant_width"] = df["model.constant_width"].map(
            lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
    if "optim" not in df and {"train.w_optimizer", "train.w_momentum"} <= set(df.columns):
        df["optim"] = [optim_label(o, m) for o, m in zip(df["train.w_optimizer"], df["train.w_momentum"])]
    if "condition" not in df and {"model.kind", "optim"} <= set(df.columns):
        df["condition"] = [condition_label(k, o) for k, o in zip(df["model.kind"], df["optim"])]
    if "status" not in df:
        df["status"] = "ok"
    df["trial_id"] = df["trial_id"].astype(str)
    return df


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
    the best (final) accuracy, sort those rows by accuracy (descending), keep the top one's condition
    and return every seed of it.
    """
    rows = for_dataset(summary, dataset)
    rows = require(rows[(rows["model.kind"] == "pc") & (rows["optim"] == "adamw-0.9")],
                   f"model.kind=pc, optim=adamw-0.9 for {dataset}")
    rows = require(rows[rows["accuracy"].notna()], "a finite accuracy (all diverged)")
    best_per_gamma = rows.loc[rows.groupby("train.h_lr")["accuracy"].idxmax()]
    top = best_per_gamma.sort_values("accuracy", ascending=False, kind="stable").iloc[0]
    keys = condition_key(rows)
    return rows[keys == keys.loc[top.name]]


def read_arrays(results: Path, trial_ids: pd.Series | list[str], name: str) -> dict[str, np.ndarray]:
    """Array `name` of each trial from results.h5 (e.g. name="energy": [E, B, T+1, L]), read by collect.

    Goes through `collect.load_arrays` (which refuses a results.h5 that collect is still updating)
    when `results` sits in a run folder (`<root>/<grid>/results.h5`), else `collect.load.read_results_arrays`.
    A file or trial that cannot be read skips the figure.
    """
    ids = [str(t) for t in trial_ids]
    folder = results.parent
    try:
        in_run = RunPaths.of(folder.name, folder.parent).results == results
    except ValueError:  # the folder's name is no grid name: a results file outside a run folder
        in_run = False
    try:
        if in_run:
            arrays = collect.load_arrays(folder.name, name, ids, folder.parent)
        else:
            arrays = read_results_arrays(results, name, ids)
    except (OSError, KeyError, RuntimeError) as e:
        raise SkipFigure(f"cannot read {name} from {results}: {e}") from e
    return {tid: np.asarray(a, dtype=np.float64) for tid, a in arrays.items()}


# --- the grid: which trials were expected --------------------------------------------------------

def coverage_yaml(ref: GridRef) -> Path | None:
    """The grid file the coverage figure expands: the grid as launched (`ROOT/NAME/grid.yaml`, with
    its overrides), else the grid file GRID named or `grids.resolve` found, else None."""
    return ref.launched_yaml or ref.path


def _condition_row(trial: TrialConfig) -> dict[str, object]:
    """(dataset, kind, optim, constant_width) of one expected trial, labelled as collect labels them."""
    return {"data.dataset": trial.data.dataset, "model.kind": trial.model.kind,
            "optim": optim_label(trial.train.w_optimizer, trial.train.w_momentum),
            "model.constant_width": bool(trial.model.constant_width)}


def expected_trials(grid_yaml: Path | None,
                    run_paths: RunPaths | None = None) -> tuple[pd.DataFrame | None, str]:
    """The grid's trials as rows (trial_id, data.dataset, model.kind, optim, model.constant_width).

    The trials launched into `run_paths` (its trial sets, `grids.launched`) when it has any; else the grid file
    (the grid.yaml of a run folder from before trial sets, or the file GRID named). Returns (None, reason) when
    there is neither or the file no longer expands (e.g. a grid.yaml written by an older pcsweep): the coverage
    figure then counts only what is present, and says so.
    """
    if run_paths is not None:
        launched = read_trial_sets(run_paths)
        if launched.known:
            rows = [{"trial_id": tid, **_condition_row(TrialConfig.from_mapping(cfg))}
                    for tid, cfg in launched.configs.items()]
            return pd.DataFrame(rows), f"expected: the {len(rows)} trials launched"
    if grid_yaml is None:
        return None, "no grid.yaml found"
    try:
        grid = load_grid(grid_yaml)
    except (GridError, ValueError, OSError) as e:  # ValueError: ConfigError, UnicodeDecodeError
        return None, f"could not expand {grid_yaml} ({type(e).__name__}: {e})"
    rows = [{"trial_id": tid, **_condition_row(trial)} for tid, trial in zip(grid.trial_ids, grid.trials)]
    return pd.DataFrame(rows), f"expected from {grid_yaml.name}"


def search_studies(run_paths: RunPaths | None) -> Studies:
    """The run folder's Optuna studies (`collect.studies.read_studies`: the journals `optuna/*.log`, read-only,
    with the grid's search spec); SkipFigure when there is none to draw."""
    if run_paths is None:
        raise SkipFigure("no run folder given, so no Optuna journals to read (an adaptive search's optuna/*.log)")
    found = read_studies(run_paths)
    where = run_paths.folder / "optuna"
    if not found.journals:
        raise SkipFigure(f"not an adaptive search: no Optuna journal in {where} (optuna/*.log)")
    if not found.studies:
        raise SkipFigure(f"no readable study in the {len(found.journals)} journal(s) of {where}: "
                         + "; ".join(found.notes))
    return found


def read_summary(paths: RunPaths, grid_arg: str) -> pd.DataFrame:
    """collect's summary table of one run folder, normalised; SummaryError names the file and the fix."""
    rerun = f"run `python -m collect {grid_arg} --root {paths.root}` again"
    try:
        note = check_summary(paths) if paths.summary.is_file() else None
        if note:
            print(f"plots: warning: {note}", file=sys.stderr)
        table = collect.load_summary(paths.grid, paths.root)
    except collect.SummaryChanged as e:
        raise SummaryError(str(e)) from e
    except KeyError as e:  # read_table sorts by trial_id
        raise SummaryError(f"{paths.summary}: no column {e.args[0]}; not written by this pcsweep's collect: "
                           f"{rerun}") from e
    except ValueError as e:  # pandas' EmptyDataError, ParserError and UnicodeDecodeError are ValueErrors
        first = str(e).splitlines()[0] if str(e) else ""
        raise SummaryError(f"{paths.summary}: not a summary table ({type(e).__name__}: {first}); {rerun}") from e
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise SummaryError(f"{paths.summary}: no column {', '.join(missing)}; not written by this pcsweep's "
                           f"collect: {rerun}")
    return normalize_summary(table)


@dataclass(frozen=True)
class Inputs:
    """What the figures of one grid read: its summary, its results file and its grid file."""

    grid: str
    summary: pd.DataFrame
    results: Path
    grid_yaml: Path | None
    paths: RunPaths | None = None  # the run folder (its trial sets say which trials were launched)

    @classmethod
    def load(cls, grid: str, root: str | os.PathLike | None = None) -> Inputs:
        """Load GRID (a name or a grid file, through `grids.resolve`) from its run folder.

        Raises:
            GridError: GRID names no safe grid (e.g. a file whose `name:` is `../x`).
            FileNotFoundError: no summary.csv; the message names the `python -m collect` call to run.
            SummaryError: a summary.csv that is not collect's table.
        """
        return cls.from_ref(resolve(grid, root), grid)

    @classmethod
    def from_ref(cls, ref: GridRef, grid_arg: str) -> Inputs:
        """`load` for an already resolved GRID argument (`grid_arg` is quoted in messages)."""
        paths = ref.paths
        if not paths.summary.is_file():
            raise FileNotFoundError(
                f"{paths.summary}: no summary table for grid {ref.name!r}; run `python -m collect {grid_arg} "
                f"--root {paths.root}` first")
        return cls(ref.name, read_summary(paths, grid_arg), paths.results, coverage_yaml(ref), paths)

    @property
    def datasets(self) -> list[str]:
        return sorted(self.summary["data.dataset"].dropna().astype(str).unique())
