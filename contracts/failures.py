"""`runs/<grid>/failed/<trial_id>.json`: the record of a trial that raised (docs/design.md §4).

The task writes one per raising trial (and removes it once the trial has a result); `launch status`,
relaunch and `collect` read them. One writer and one reader, here, so the shape is written once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contracts.atomic import write_json_atomic
from contracts.paths import RunPaths

FIELDS = ("trial_id", "task_key", "error", "traceback_tail", "host", "job_id", "attempt", "time", "log_paths")


def write_failure(paths: RunPaths, record: Mapping[str, Any]) -> Path:
    """Store one failure record atomically; `record` holds at least `trial_id` and `error`."""
    return write_json_atomic(paths.failed(str(record["trial_id"])), dict(record))


def read_failures(paths: RunPaths) -> dict[str, dict[str, Any]]:
    """trial id -> its record, for every `failed/*.json` (temporary files skipped).

    An unreadable or malformed record still counts as a failure: its `error` says why it was unreadable.
    """
    records: dict[str, dict[str, Any]] = {}
    if not paths.failed_dir.is_dir():
        return records
    with os.scandir(paths.failed_dir) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(".json") and ".tmp." not in e.name)
    for name in names:
        path = paths.failed_dir / name
        trial_id = name[: -len(".json")]
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError(f"got a JSON {type(record).__name__}, expected an object")
        except (OSError, ValueError) as e:
            record = {"trial_id": trial_id, "error": f"unreadable failed record {path}: {e}"}
        records[str(record.get("trial_id", trial_id))] = record
    return records


def failure_reason(record: Mapping[str, Any]) -> str:
    """One line: the error's last line, then where it happened (host, job id, attempt)."""
    error = str(record.get("error", "")).strip().splitlines()
    where = ", ".join(f"{k} {record[k]}" for k in ("host", "job_id", "attempt") if record.get(k) not in (None, ""))
    return (error[-1] if error else "unknown error") + (f" ({where})" if where else "")
