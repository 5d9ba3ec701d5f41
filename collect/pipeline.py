"""`collect()`: one pass from `runs/<grid>/shards/` to results.h5, summary.csv and a report.

Steps: list shards; probe (validate) the new or changed ones, setting bad ones aside; choose, for
each trial, the newest valid copy; read each winning shard's rows block by block and append them
to results (a tmp file renamed into place on a full run, the existing file behind a marker on an
incremental one), computing their summary rows from the same arrays; write the summary; save the
state that makes the next run incremental. Imports no jax, and pandas only when the summary is built.
"""

from __future__ import annotations

import os
import time
from typing import Any

from collect import merge, summary
from collect.expected import expected_trial_ids, failed_records
from collect.report import CollectReport
from contracts.paths import RunPaths
from contracts.shard import ShardError


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

    table = summary.Parts()
    bad: set[str] = set()
    changed: set[str] = set()
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
            writer.plan(infos, pending)
            for name in sorted(by_shard):
                info = lookup[name]
                try:
                    copied = writer.copy_from(info, sorted(by_shard[name]))
                except merge.ShardChanged as e:  # rewritten since probed: skip now, read it next time
                    bad.add(name)
                    changed.add(name)
                    notes.append(f"{e}; its trials were not taken from it this time")
                except ShardError as e:
                    bad.add(name)
                    merge.set_aside(paths, info.path, str(e))
                else:
                    for c in copied:
                        table.add_rows(c)
                        for tid, status in zip(c.trial_ids, c.status):
                            kept[tid] = [info.created, info.mtime_ns, info.name, status]
                bar.update(len(by_shard[name]))
            # Trials whose chosen shard turned out bad fall back to the next-newest valid copy.
            retry = {t for n in bad & set(by_shard) for t in by_shard[n]}
            pending = {t: i for t, i in merge.winners(infos, kept, bad).items() if t in retry}
        bar.close()
        for info in infos:
            if info.name not in bad:
                shard_state[info.name] = merge.shard_entry(info)
            elif info.name in changed:
                shard_state.pop(info.name, None)

        if writer is not None:
            new_table = table.build()
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

    report = _report(paths, mode, kept, shard_state, len(todo), table.n_rows, notes, t0)
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

