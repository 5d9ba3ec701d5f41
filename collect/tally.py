"""The report of one collect: what results hold, against what the grid expects and what failed."""

from __future__ import annotations

import time

from collect.expected import expected_trial_ids, failed_records
from collect.merge_state import State, duplicates
from collect.report import CollectReport
from collect.shards import bad_shards
from contracts.paths import RunPaths


def build_report(paths: RunPaths, mode: str, state: State, n_read: int, n_merged: int, notes: list[str],
                 t0: float) -> CollectReport:
    """Count complete, failed, missing, unexpected, duplicate and corrupt trials (`t0`: perf_counter at start)."""
    expected, source, expected_notes = expected_trial_ids(paths)
    kept = state.kept
    failed = {t: r for t, r in failed_records(paths).items() if t not in kept}
    done = set(kept)
    missing = sorted(expected - done - set(failed)) if expected is not None else []
    dups = duplicates(state.shards)
    n_diverged = sum(1 for k in kept.values() if k.status == "diverged")
    return CollectReport(
        grid=paths.grid, folder=str(paths.folder), mode=mode,
        expected=len(expected) if expected is not None else None, expected_source=source,
        complete=len(kept), ok=len(kept) - n_diverged, diverged=n_diverged,
        failed=dict(sorted(failed.items())), missing=missing,
        unexpected=len(done - expected) if expected is not None else 0,
        duplicate=len(dups), duplicate_ids=dups, corrupt=bad_shards(paths),
        new_shards=n_read, merged_trials=n_merged, results=str(paths.results), summary=str(paths.summary),
        wall_s=time.perf_counter() - t0, notes=notes + expected_notes,
    )
