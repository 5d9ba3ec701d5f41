"""What the grid should hold and what failed: expected trial ids and `failed/` records.

Expected trials are those launched into the run folder: its trial sets (`grids.launched`; for a run folder from
before trial sets, its grid.yaml expanded), else the union of the trial ids in `submissions/*.json`, else they
are unknown. Failed trials are the
`failed/<trial_id>.json` records, read by `contracts.failures`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from contracts.failures import failure_reason, read_failures
from contracts.paths import RunPaths
from grids.launched import launched_trials


def _manifests(paths: RunPaths, notes: list[str]) -> Iterator[tuple[Path, dict]]:
    """(path, document) of every readable `submissions/*.json` object, oldest first; the others become notes."""
    for manifest in sorted(paths.submissions_dir.glob("*.json")) if paths.submissions_dir.is_dir() else []:
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            notes.append(f"{manifest}: unreadable submission manifest ({e}); skipped")
            continue
        if isinstance(doc, dict):
            yield manifest, doc
        else:
            notes.append(f"{manifest}: unreadable submission manifest (a JSON {type(doc).__name__}); skipped")


def _from_submissions(paths: RunPaths, notes: list[str]) -> set[str] | None:
    """The union of the trial ids of every `submissions/*.json`, or None when there is none."""
    ids: set[str] = set()
    found = False
    for manifest, doc in _manifests(paths, notes):
        try:
            for trial_ids in doc["tasks"].values():
                ids.update(trial_ids)
            found = True
        except (KeyError, TypeError, AttributeError) as e:
            notes.append(f"{manifest}: unreadable submission manifest ({e}); skipped")
    return ids if found else None


def recorded_grid(paths: RunPaths) -> tuple[str, str | None]:
    """The grid the run folder's own records name (its submission manifests, written at launch), and a note when
    that is not the folder's name: a renamed run folder's shards are its own, not foreign."""
    for _, doc in _manifests(paths, []):  # unreadable ones are reported by expected_trial_ids
        name = doc.get("grid")
        if isinstance(name, str) and name:
            if name == paths.grid:
                return name, None
            return name, (f"{paths.folder}: its manifests name grid {name!r} (the folder was renamed?): shards of "
                          f"{name!r} are taken as its own")
    return paths.grid, None


def expected_trial_ids(paths: RunPaths) -> tuple[set[str] | None, str, list[str]]:
    """The trial ids the grid should produce.

    Returns:
        (ids or None when unknown, source: "trial sets" | "grid.yaml" | "submissions" | "unknown", notes) where
        notes explain a fallback (e.g. a trial set or grid.yaml present but unreadable).
    """
    launched = launched_trials(paths)
    notes = list(launched.notes)
    if launched.known:
        return set(launched.configs), launched.source, notes
    if notes:
        notes[-1] += "; falling back to submissions/*.json"
    ids = _from_submissions(paths, notes)
    if ids is not None:
        return ids, "submissions", notes
    return None, "unknown", notes


def failed_records(paths: RunPaths) -> dict[str, str]:
    """trial id -> one-line reason (the error, then host, job id, attempt), from every `failed/<trial_id>.json`.

    An unreadable record still counts as a failure, with that as its reason.
    """
    return {tid: failure_reason(record) for tid, record in read_failures(paths).items()}
