"""Notebook and plots API: read what collect wrote (summary.csv and results.h5), never the shards.

results.h5 holds blocks of stacked trials (docs/shard-format.md); the loaders open it once, index
trial id -> (block, row) from the `trial_id` columns, and read only the rows asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from collect.blockstore import PROVENANCE, RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION
from collect.merge_state import recorded_summary_size, updating_marker
from collect.summary import read_table
from contracts.paths import RunPaths
from contracts.shard import ARRAY_NAMES, BLOCKS, BlockInfo, ShardError, TrialResult, check_blocks, read_block

if TYPE_CHECKING:
    import pandas as pd  # annotations only: `read_table` imports pandas when a table is read


def _need(path: os.PathLike, grid: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found; run `python -m collect {grid}` first")


def _refuse_if_updating(paths: RunPaths) -> None:
    """Refuse a results.h5 that an interrupted in-place update may have left."""
    _need(paths.results, paths.grid)
    marker = updating_marker(paths)
    if marker.exists():
        raise RuntimeError(f"{marker} exists: collect is updating {paths.results} or was interrupted while doing "
                           f"so; wait for it, or run `python -m collect {paths.grid}` again (it rebuilds the file)")


class ResultsFile:
    """An open results.h5 with its trial index. Use as a context manager.

    Raises (on open):
        OSError: not a readable HDF5 file.
        RuntimeError: not version-2 results (written by an older collect: `python -m collect GRID --rebuild`),
            or malformed blocks.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.file = h5py.File(self.path, "r")
        try:
            attrs = self.file.attrs
            version = attrs.get("schema_version")
            if attrs.get("schema") != RESULTS_SCHEMA or version != RESULTS_SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: schema {attrs.get('schema')!r} version {version!r}; this pcsweep "
                                   f"reads {RESULTS_SCHEMA!r} version {RESULTS_SCHEMA_VERSION}: run "
                                   f"`python -m collect GRID --rebuild` to rewrite it")
            try:
                self.blocks: list[BlockInfo] = check_blocks(self.file, str(self.path), PROVENANCE, allow_deleted=True)
            except ShardError as e:
                raise RuntimeError(str(e)) from e
        except BaseException:
            self.file.close()
            raise
        self.index = {tid: (b, row) for b in self.blocks for row, tid in enumerate(b.trial_ids) if tid}

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def _where(self, trial_id: str) -> tuple[BlockInfo, int]:
        try:
            return self.index[trial_id]
        except KeyError:
            raise KeyError(f"{self.path}: no trial {trial_id}; see load_summary(...)['trial_id'] for those present"
                           ) from None

    def trial(self, trial_id: str) -> TrialResult:
        info, row = self._where(trial_id)
        return read_block(self.file[BLOCKS][info.name], info, [row], PROVENANCE).trial(0)

    def arrays(self, name: str, trial_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """trial id -> array `name` ([E, B, T+1, L] for energy), in the order asked; one read per block."""
        if name not in ARRAY_NAMES:
            raise KeyError(f"array {name!r}: expected one of {', '.join(ARRAY_NAMES)}")
        trial_ids = list(trial_ids)
        wanted: dict[str, list[tuple[int, str]]] = {}
        infos: dict[str, BlockInfo] = {}
        for tid in trial_ids:
            info, row = self._where(tid)
            wanted.setdefault(info.name, []).append((row, tid))
            infos[info.name] = info
        got: dict[str, np.ndarray] = {}
        for bname, pairs in wanted.items():
            d = self.file[BLOCKS][bname][name]
            rows = sorted({r for r, _ in pairs})
            if len(rows) * 4 >= len(infos[bname]):
                data, pos = d[()], {r: r for r in rows}
            else:
                data, pos = d[rows], {r: i for i, r in enumerate(rows)}
            for r, tid in pairs:
                got[tid] = np.array(data[pos[r]])
        return {tid: got[tid] for tid in trial_ids}


class SummaryChanged(ValueError):
    """summary.csv is not the file collect wrote: cut short (a full disk, an interrupted copy) or edited."""


def check_summary(paths: RunPaths) -> str | None:
    """Refuse a summary.csv that is empty or ends mid-line; a note when its size differs from what the last collect
    recorded (cut at a line end, or edited: the two cannot be told apart), else None.

    pandas reads a table cut at any byte without complaint (the rows before the cut, a last row padded with
    NaN), so a truncated file would draw figures from part of the trials.
    """
    fix = f"rerun `python -m collect {paths.grid} --root {paths.root} --rebuild` to rewrite it"
    with open(paths.summary, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(size - 1)
        if not size or f.read(1) != b"\n":
            raise SummaryChanged(f"{paths.summary}: {'empty' if not size else 'ends mid-line'} (truncated: a full "
                                 f"disk or a copy cut short?); {fix}")
    recorded = recorded_summary_size(paths)  # None without a state (a summary copied alone): no size to compare
    if recorded is not None and recorded != size:
        return (f"{paths.summary}: {size} bytes, but the last collect wrote {recorded}: cut short or edited "
                f"since; if you did not edit it, {fix}")
    return None


def load_summary(grid: str, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The summary table (one row per trial; columns in docs/collect.md) as a DataFrame.

    Raises:
        SummaryChanged: the file is empty or ends mid-line (`check_summary`).
    """
    paths = RunPaths.of(grid, root)
    _need(paths.summary, grid)
    check_summary(paths)
    return read_table(paths.summary)


def load_trial(grid: str, trial_id: str, root: str | os.PathLike | None = None) -> TrialResult:
    """One trial from results.h5 with all its arrays (`energy: [E, B, T+1, L]`, ...)."""
    paths = RunPaths.of(grid, root)
    _refuse_if_updating(paths)
    with ResultsFile(paths.results) as f:
        return f.trial(trial_id)


def load_arrays(grid: str, name: str, trial_ids: Iterable[str], root: str | os.PathLike | None = None
                ) -> dict[str, np.ndarray]:
    """trial id -> one array (e.g. name="energy": [E, B, T+1, L]) for many trials, one file open.

    Raises:
        KeyError: an unknown array name or a trial not in results.h5.
    """
    if name not in ARRAY_NAMES:
        raise KeyError(f"array {name!r}: expected one of {', '.join(ARRAY_NAMES)}")
    paths = RunPaths.of(grid, root)
    _refuse_if_updating(paths)
    with ResultsFile(paths.results) as f:
        return f.arrays(name, trial_ids)


def read_results_arrays(path: str | os.PathLike, name: str, trial_ids: Iterable[str]) -> dict[str, np.ndarray]:
    """`load_arrays` for a results file outside a run folder (no `.updating` check: it has no run folder)."""
    with ResultsFile(path) as f:
        return f.arrays(name, trial_ids)
