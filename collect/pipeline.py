"""`collect()`: one pass from `runs/<grid>/shards/` to results.h5, summary.csv and a report.

Under the run folder's lock: list shards; probe (validate) the new or changed ones, setting bad ones
aside; choose, for each trial, the newest valid copy; copy each winning shard's rows into results (a
tmp file renamed into place on a full run, the existing file behind a marker on an incremental one),
computing their summary rows from the same values; write the summary and the state that makes the
next run incremental; only then drop the marker. Imports no jax; pandas only when the summary is built.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

from collect import studies, summary
from collect.copying import copy_winners, probe_shards, record_shards
from collect.merge_state import State, load_state, save_state, winners
from collect.report import CollectReport
from collect.results import InPlaceRefused, ResultsWriter
from collect.shards import list_shards
from collect.tally import build_report
from contracts.lock import RunLock
from contracts.paths import RunPaths


class NoRunFolder(FileNotFoundError):
    """The run folder `<root>/<grid>` does not exist."""


class IncompleteError(RuntimeError):
    """`collect(..., strict=True)` found missing, failed or unexpected trials (results are written all the same)."""

    def __init__(self, report: CollectReport):
        super().__init__(f"{report.grid}: {len(report.missing)} missing, {len(report.failed)} failed and "
                         f"{report.unexpected} unexpected trial(s)")
        self.report = report


@dataclass(frozen=True)
class Merged:
    """What one merge pass did."""

    mode: str  # full | incremental | unchanged
    state: State  # the valid shards and kept copies afterwards
    n_read: int  # shards probed
    n_merged: int  # trial copies written


def _merge(paths: RunPaths, previous: State | None, notes: list[str], progress: bool) -> Merged:
    """Probe the new or changed shards and copy the winning rows; `previous` None = a full collect.

    Raises:
        InPlaceRefused: results.h5 cannot be updated in place (the caller then runs a full collect).
    """
    incremental = previous is not None
    state = State(dict(previous.shards), dict(previous.kept)) if previous is not None else State()
    on_disk = list_shards(paths)
    state.shards = {n: e for n, e in state.shards.items() if n in on_disk}  # vanished shards: trials stay
    todo = [n for n, (size, mtime) in sorted(on_disk.items())
            if n not in state.shards or (state.shards[n].size, state.shards[n].mtime_ns) != (size, mtime)]
    infos = probe_shards(paths, todo, notes)
    state.shards = {n: e for n, e in state.shards.items() if (paths.shards_dir / n).exists()}
    pending = winners(infos, state.kept, set())
    if incremental and not pending:
        if todo:  # changed shards whose copies lost: remember them
            record_shards(state, infos, set(), set())
            save_state(paths, state)
        return Merged("unchanged", state, len(todo), 0)
    table = summary.Parts()
    with ResultsWriter(paths, in_place=incremental) as writer:
        copy_winners(paths, writer, infos, pending, state, table, notes, progress)
        writer.commit(set(state.kept))
        if incremental and paths.summary.exists():
            summary.update_table(paths.summary, table.build())
        else:
            summary.write_table(table.build(), paths.summary)
        save_state(paths, state)
        writer.finish()
    return Merged("incremental" if incremental else "full", state, len(todo), table.n_rows)


def _studies(paths: RunPaths, notes: list[str]) -> tuple[list[studies.StudyRow], Path | None]:
    """studies.csv of an adaptive search (journals in `optuna/`; collect.studies); problems become notes."""
    try:
        rows, target, study_notes = studies.write_studies(paths)
    except OSError as e:
        notes.append(f"{paths.folder / studies.STUDIES_CSV}: not written ({e})")
        return [], None
    notes.extend(study_notes)
    return rows, target


def collect(grid: str, root: str | os.PathLike | None = None, *, rebuild: bool = False, strict: bool = False,
            progress: bool = True, wait_s: float = 0.0) -> CollectReport:
    """Merge the grid's shards into results.h5 and summary.csv; report what is there and what is not.

    A run folder with Optuna journals (`optuna/*.log`, an adaptive search) also gets `studies.csv`, one row per
    study (`collect.studies`), and the report lists the studies.

    Args:
        grid: the grid name (`runs/<grid>/`).
        root: the runs root (default `$PCSWEEP_ROOT` or `./runs`).
        rebuild: ignore the previous collect and read every shard.
        strict: raise IncompleteError (carrying the report) if any trial is missing, failed or
            unexpected; the outputs are written first either way.
        progress: show a tqdm bar while trials are merged.
        wait_s: how long to wait for the run folder's lock (`runs/<grid>/.lock`) if another collect
            or launch holds it.
    Raises:
        contracts.paths.RunFolderError: `grid` is not a safe folder name.
        NoRunFolder: `<root>/<grid>` does not exist.
        contracts.lock.LockHeld: the run folder stayed locked for `wait_s` seconds.
        IncompleteError: with strict=True, something is missing, failed or unexpected.
    """
    t0 = time.perf_counter()
    paths = RunPaths.of(grid, root)
    if not paths.folder.is_dir():
        raise NoRunFolder(f"{paths.folder}: no such run folder; launch the grid first, or pass --root "
                             f"(now {paths.root}) or set $PCSWEEP_ROOT to the folder holding '{grid}/'")
    notes: list[str] = []
    with RunLock(paths.lock, "collect", wait_s):
        previous, why = (None, "--rebuild") if rebuild else load_state(paths)
        if previous is None and why and (paths.results.exists() or rebuild):
            notes.append(f"full collect: {why}")
        try:
            merged = _merge(paths, previous, notes, progress)
        except InPlaceRefused as e:  # e.g. a notebook holds results.h5 open (HDF5 file lock)
            notes.append(f"{paths.results}: cannot update in place ({e}); wrote a new file instead")
            merged = _merge(paths, None, notes, progress)
        study_rows, studies_csv = _studies(paths, notes)
    report = build_report(paths, merged.mode, merged.state, merged.n_read, merged.n_merged, notes, t0)
    if studies_csv is not None:
        report = dataclasses.replace(report, studies=[r.as_dict() for r in study_rows], studies_csv=str(studies_csv))
    if strict and not report.is_clean:
        raise IncompleteError(report)
    return report
