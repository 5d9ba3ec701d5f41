"""What the grid should hold and what failed: expected trial ids and `failed/` records.

Expected trials come from `runs/<grid>/grid.yaml` (expanded with `grids.grid.load_grid`, imported
lazily: it is light, but collect must work even where launch is broken or absent), else from the
union of the trial ids in `submissions/*.json`, else they are unknown.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from contracts.paths import RunPaths


def expected_trial_ids(paths: RunPaths) -> tuple[set[str] | None, str, list[str]]:
    """The trial ids the grid should produce.

    Returns:
        (ids or None when unknown, source: "grid.yaml" | "submissions" | "unknown", notes) where
        notes explain a fallback (e.g. grid.yaml present but unreadable).
    """
    notes: list[str] = []
    if paths.grid_yaml.is_file():
        try:
            from grids.grid import load_grid

            grid = load_grid(paths.grid_yaml)
            ids = set(grid.trial_ids) if grid.trial_ids else {t.trial_id for t in grid.trials}
            return ids, "grid.yaml", notes
        except Exception as e:  # noqa: BLE001 - any failure here only degrades the report
            notes.append(f"{paths.grid_yaml}: could not expand ({type(e).__name__}: {e}); "
                         "falling back to submissions/*.json")
    ids: set[str] = set()
    found = False
    for manifest in sorted(paths.submissions_dir.glob("*.json")) if paths.submissions_dir.is_dir() else []:
        try:
            doc = json.loads(manifest.read_text())
            for trial_ids in doc["tasks"].values():
                ids.update(trial_ids)
            found = True
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            notes.append(f"{manifest}: unreadable submission manifest ({e}); skipped")
    if found:
        return ids, "submissions", notes
    return None, "unknown", notes


def failed_records(paths: RunPaths) -> dict[str, str]:
    """trial id -> one-line reason, from every `failed/<trial_id>.json`.

    The reason is the error, then where it happened (host, job id, attempt) so a person can find
    the log. An unreadable record still counts as a failure, with that as its reason.
    """
    out: dict[str, str] = {}
    if not paths.failed_dir.is_dir():
        return out
    with os.scandir(paths.failed_dir) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(".json") and ".tmp." not in e.name)
    for name in names:
        path = paths.failed_dir / name
        tid = name[: -len(".json")]
        try:
            rec = json.loads(path.read_text())
            tid = str(rec.get("trial_id", tid))
            error = str(rec.get("error", "")).strip().splitlines()
            where = ", ".join(f"{k} {rec[k]}" for k in ("host", "job_id", "attempt") if rec.get(k) not in (None, ""))
            out[tid] = (error[-1] if error else "unknown error") + (f" ({where})" if where else "")
        except (OSError, ValueError, AttributeError) as e:
            out[tid] = f"unreadable failed record {path}: {e}"
    return out


def grid_name(spec: str) -> str:
    """GRID on the command line: a grid name, or a grid YAML file whose `name` is read.

    The file is parsed with launch's grid reader (grid files use YAML flow sequences as keys for
    joint axes, which plain `yaml.safe_load` refuses).
    """
    path = Path(spec)
    if spec.endswith((".yaml", ".yml")) or path.is_file():
        from grids.grid import GridError, read_grid_document

        try:
            doc = read_grid_document(path)
        except GridError as e:
            raise ValueError(f"{e}; pass a grid name or a readable grid YAML") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            raise ValueError(f"{spec}: no top-level `name:` string; add one or pass the grid name instead")
        return doc["name"]
    return spec
