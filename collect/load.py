"""Notebook and plots API: read what collect wrote (summary.csv and results.h5), never the shards."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import h5py
import numpy as np

from pc.paths import RunPaths
from pc.shard import ARRAY_NAMES, TrialResult

from collect.merge import updating_marker
from collect.summary import read_table

if TYPE_CHECKING:
    import pandas as pd


def _need(path: os.PathLike, grid: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found; run `python -m collect {grid}` first")


def _results(paths: RunPaths) -> h5py.File:
    """Open results.h5 for reading, refusing one that an interrupted in-place update may have left."""
    _need(paths.results, paths.grid)
    marker = updating_marker(paths)
    if marker.exists():
        raise RuntimeError(f"{marker} exists: collect is updating {paths.results} or was interrupted while doing "
                           f"so; wait for it, or run `python -m collect {paths.grid}` again (it rebuilds the file)")
    return h5py.File(paths.results, "r")


def load_summary(grid: str, root: str | os.PathLike | None = None) -> "pd.DataFrame":
    """The summary table (one row per trial; columns in docs/collect.md) as a DataFrame."""
    paths = RunPaths.of(grid, root)
    _need(paths.summary, grid)
    return read_table(paths.summary)


def load_trial(grid: str, trial_id: str, root: str | os.PathLike | None = None) -> TrialResult:
    """One trial from results.h5 with all its arrays (`energy: [E, B, T+1, L]`, ...)."""
    paths = RunPaths.of(grid, root)
    with _results(paths) as f:
        if trial_id not in f["trials"]:
            raise KeyError(f"{paths.results}: no trial {trial_id}; see load_summary(...)['trial_id'] for those present")
        g = f["trials"][trial_id]
        return TrialResult(trial_id=trial_id, config=json.loads(g.attrs["config"]), status=str(g.attrs["status"]),
                           wall_s=float(g.attrs["wall_s"]), arrays={n: g[n][()] for n in ARRAY_NAMES})


def load_arrays(grid: str, name: str, trial_ids: Iterable[str], root: str | os.PathLike | None = None
                ) -> dict[str, np.ndarray]:
    """trial id -> one array (e.g. name="energy": [E, B, T+1, L]) for many trials, one file open.

    Raises:
        KeyError: an unknown array name or a trial not in results.h5.
    """
    if name not in ARRAY_NAMES:
        raise KeyError(f"array {name!r}: expected one of {', '.join(ARRAY_NAMES)}")
    paths = RunPaths.of(grid, root)
    out: dict[str, np.ndarray] = {}
    with _results(paths) as f:
        trials = f["trials"]
        for tid in trial_ids:
            if tid not in trials:
                raise KeyError(f"{paths.results}: no trial {tid}")
            out[tid] = trials[tid][name][()]
    return out
