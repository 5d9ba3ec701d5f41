"""`collect()`: one pass from `runs/<grid>/shards/` to results.h5, summary.csv and a report.

Steps: list shards; probe (validate) the new or changed ones, setting bad ones aside; choose, for
each trial, the newest valid copy; read each winner's summary row (which validates the trial
before anything is copied from its shard), then copy the groups into results (a tmp file renamed
into place on a full run, the existing file behind a marker on an incremental one); write the
summary; save the state that makes the next run incremental. Imports no jax, and pandas only when
the summary is built.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pc.paths import RunPaths
from pc.shard import ShardError

from collect import merge, summary
from collect.expected import expected_trial_ids, failed_records
from collect.report import CollectReport


class RunFolderError(FileNotFoundError):
    """The run folder `<root>/<grid>` does not exist."""


class IncompleteError(RuntimeError):
    """`collect(..., strict=True)` found missing or failed trials (results are written all the same)."""

    def __init__(self, report: CollectReport):
        super().__init__(f"{report.grid}: {len(report.missing)} missing and {len(report.failed)} failed trial(s)")
        self.report = report


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="trial", desc="merge", disable=not enabled, dynamic_ncols=True,
                mininterval=0.5, leave=False)


PARALLEL_MIN_TRIALS = 2000  # below this, a worker process costs more to start than it saves
PARALLEL_ENV = "PCSWEEP_COLLECT_PARALLEL_MIN"  # overrides PARALLEL_MIN_TRIALS (tests, tuning)


def _parallel_min() -> int:
    try:
        return int(os.environ.get(PARALLEL_ENV, PARALLEL_MIN_TRIALS))
    except ValueError:
        return PARALLEL_MIN_TRIALS


def _rows_in_order(jobs: list[tuple[str, Path, list[str]]], parallel: bool
                   ) -> Iterator[tuple[str, list[summary.Row] | ShardError]]:
    """(shard name, its rows or the ShardError that makes it bad), in `jobs` order.

    With `parallel`, one spawned worker process reads rows ahead while the caller copies groups
    (the two halves of a merge cost about the same). Spawn, not fork: a forked child would inherit
    the HDF5 library state of the open results file.
    """
    if not parallel:
        for name, path, tids in jobs:
            try:
                yield name, summary.read_rows(path, tids)
            except ShardError as e:
                yield name, e
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [(name, path, tids, pool.submit(summary.read_rows, path, tids)) for name, path, tids in jobs]
        for name, path, tids, future in futures:
            try:
                yield name, future.result()
            except ShardError as e:
                yield name, e
            except Exception:  # noqa: BLE001 - a broken worker: read this shard here instead
                try:
                    yield name, summary.read_rows(path, tids)
                except ShardError as e:
                    yield name, e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _probe_all(paths: RunPaths, names) -> list[merge.ShardInfo]:
    """Validate shards by name; bad ones are moved to shards/bad/ (and left out)."""
    infos = []
    for name in sorted(names):
        path = paths.shards_dir / name
        try:
            infos.append(merge.probe(path))
        except FileNotFoundError:
            continue  # deleted or renamed since it was listed
        except ShardError as e:
            merge.set_aside(paths, path, str(e))
    return infos


def collect(grid: str, root: str | os.PathLike | None = None, *, rebuild: bool = False, strict: bool = False,
            progress: bool = True) -> CollectReport:
    """Merge the grid's shards into results.h5 and summary.csv; report what is there and what is not.

    Args:
        grid: the grid name (`runs/<grid>/`).
        root: the runs root (default `$PCSWEEP_ROOT` or `./runs`).
        rebuild: ignore the previous collect and read every shard.
        strict: raise IncompleteError (carrying the report) if any trial is missing or failed; the
            outputs are written first either way.
        progress: show a tqdm bar while trials are merged.
    Raises:
        RunFolderError: `<root>/<grid>` does not exist.
        IncompleteError: with strict=True, something is missing or failed.
    """
    t0 = time.perf_counter()
    paths = RunPaths.of(grid, root)
    if not paths.folder.is_dir():
        raise RunFolderError(f"{paths.folder}: no such run folder; launch the grid first, or pass --root "
                             f"(now {paths.root}) or set $PCSWEEP_ROOT to the folder holding '{grid}/'")
    notes: list[str] = []
    state, why = (None, "--rebuild") if rebuild else merge.load_state(paths)
    incremental = state is not None
    if not incremental and why and (paths.results.exists() or rebuild):
        notes.append(f"full collect: {why}")
    shard_state: dict[str, dict[str, Any]] = dict(state["shards"]) if incremental else {}
    kept: dict[str, list] = dict(state["kept"]) if incremental else {}

    on_disk = merge.list_shards(paths)
    shard_state = {n: e for n, e in shard_state.items() if n in on_disk}  # vanished shards: trials stay
    todo = [n for n, (size, mtime) in sorted(on_disk.items())
            if not incremental or n not in shard_state
            or (shard_state[n]["size"], shard_state[n]["mtime_ns"]) != (size, mtime)]
    infos = _probe_all(paths, todo)
    shard_state = {n: e for n, e in shard_state.items() if (paths.shards_dir / n).exists()}

    rows: dict[str, summary.Row] = {}
    bad: set[str] = set()
    pending = merge.winners(infos, kept, bad)
    mode = "incremental" if incremental else "full"
    if not pending and incremental:
        mode = "unchanged"
    writer = None
    if pending or not incremental:
        try:
            writer = merge.ResultsWriter(paths, in_place=incremental)
        except OSError as e:  # e.g. a notebook holds results.h5 open (HDF5 file lock): write a new file
            notes.append(f"{paths.results}: cannot update in place ({e}); wrote a new file instead")
            writer, incremental, mode = merge.ResultsWriter(paths, in_place=False), False, "full"
            kept, shard_state = {}, {}
            todo = sorted(merge.list_shards(paths))
            infos = _probe_all(paths, todo)
            pending = merge.winners(infos, kept, bad)
    try:
        bar = _progress(len(pending), progress and bool(pending))
        lookup = {i.name: i for i in infos}
        while pending:
            by_shard: dict[str, list[str]] = {}
            for tid, info in pending.items():
                by_shard.setdefault(info.name, []).append(tid)
            jobs = [(name, lookup[name].path, sorted(tids)) for name, tids in sorted(by_shard.items())]
            parallel = len(pending) >= _parallel_min() and (os.cpu_count() or 1) > 1
            for name, got in _rows_in_order(jobs, parallel):
                info = lookup[name]
                try:
                    if isinstance(got, ShardError):
                        raise got
                    writer.copy_from(info, [r.trial_id for r in got])
                except merge.CopyError as e:
                    for tid in e.copied:  # HDF5 copy failed midway: drop what came from this shard
                        writer.delete(tid)
                        kept.pop(tid, None)
                    bad.add(name)
                    merge.set_aside(paths, info.path, str(e))
                except ShardError as e:
                    bad.add(name)
                    merge.set_aside(paths, info.path, str(e))
                else:
                    for row in got:
                        rows[row.trial_id] = row
                        kept[row.trial_id] = [info.created, info.mtime_ns, info.name, row.status]
                bar.update(len(by_shard[name]))
            # Trials whose chosen shard turned out bad fall back to the next-newest valid copy.
            retry = {t for n in bad & set(by_shard) for t in by_shard[n]}
            pending = {t: i for t, i in merge.winners(infos, kept, bad).items() if t in retry}
        bar.close()
        for info in infos:
            if info.name not in bad:
                shard_state[info.name] = merge.shard_entry(info)

        if writer is not None:
            new_table = summary.build_table(rows.values())
            writer.commit()
            if incremental and paths.summary.exists():
                summary.update_table(paths.summary, new_table)
            else:
                summary.write_table(new_table, paths.summary)
            merge.save_state(paths, shard_state, kept)
        elif todo:
            merge.save_state(paths, shard_state, kept)  # changed shards whose copies lost: remember them
    finally:
        if writer is not None:
            writer.__exit__(None, None, None)

    report = _report(paths, mode, kept, shard_state, len(todo), len(rows), notes, t0)
    if strict and not report.is_clean:
        raise IncompleteError(report)
    return report


def _report(paths: RunPaths, mode: str, kept: dict[str, list], shard_state: dict[str, dict[str, Any]],
            n_read: int, n_merged: int, notes: list[str], t0: float) -> CollectReport:
    expected, source, expected_notes = expected_trial_ids(paths)
    notes = notes + expected_notes
    failed = {t: r for t, r in failed_records(paths).items() if t not in kept}
    done = set(kept)
    missing = sorted(expected - done - set(failed)) if expected is not None else []
    dups = merge.duplicates(shard_state)
    n_diverged = sum(1 for v in kept.values() if v[3] == "diverged")
    return CollectReport(
        grid=paths.grid, folder=str(paths.folder), mode=mode,
        expected=len(expected) if expected is not None else None, expected_source=source,
        complete=len(kept), ok=len(kept) - n_diverged, diverged=n_diverged,
        failed=dict(sorted(failed.items())), missing=missing,
        unexpected=len(done - expected) if expected is not None else 0,
        duplicate=len(dups), duplicate_ids=dups, corrupt=merge.bad_shards(paths),
        new_shards=n_read, merged_trials=n_merged, results=str(paths.results), summary=str(paths.summary),
        wall_s=time.perf_counter() - t0, notes=notes,
    )

