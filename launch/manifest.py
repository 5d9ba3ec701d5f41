"""Submission manifests (docs/design.md section 4): what one launch sent, written atomically as JSON.

`runs/<grid>/submissions/<UTC stamp>.json` holds the trial ids per task, the array job ids (with the
task keys in array-index order), the sbatch parameters, the image and python command, the git sha and
dirty flag and the package versions. Status, cancel and relaunch read these files; the submitit
`Job` objects are never needed again (submitit #1625/#1627: nothing else persists this mapping).

Pure standard library (no submitit, no jax): status runs on a login node.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.atomic import write_json_atomic
from contracts.paths import RunPaths
from launch.trial_states import parse_local_job_id

MANIFEST_KEYS = ("grid", "stamp", "executor", "tasks", "arrays", "sbatch", "image", "python_command",
                 "git_sha", "git_dirty", "versions", "options")


class ManifestError(ValueError):
    """A submission manifest that cannot be read (names the file)."""


def new_stamp(paths: RunPaths, now: datetime | None = None) -> str:
    """Reserve a unique UTC stamp `YYYYmmddTHHMMSSZ[-n]` for a new manifest (O_EXCL, so two
    launches in the same second get different stamps). Stamps sort in submission order."""
    base = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    paths.submissions_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        stamp = base if n == 1 else f"{base}-{n}"
        try:
            fd = os.open(paths.submission(stamp), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        return stamp
    raise ManifestError(f"{paths.submissions_dir}: could not reserve a stamp for {base}")


def array_entry(job_id: str, task_keys: Iterable[str]) -> dict[str, Any]:
    """One manifest array: its job id and its task keys in array-index order (index a is `<id>_<a>`)."""
    return {"job_id": str(job_id), "task_keys": list(task_keys)}


def write_manifest(paths: RunPaths, manifest: Mapping[str, Any]) -> Path:
    """Write (or rewrite, as arrays are added) the manifest of `manifest["stamp"]` atomically."""
    missing = [k for k in MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ManifestError(f"manifest for {manifest.get('stamp')}: missing keys {missing}")
    return write_json_atomic(paths.submission(manifest["stamp"]), dict(manifest))


@dataclass(frozen=True)
class ArrayRecord:
    """One submitted array, flattened from a manifest, with the trials of each of its tasks."""

    stamp: str
    executor: str
    job_id: str
    task_keys: tuple[str, ...]
    tasks: Mapping[str, tuple[str, ...]]  # task key -> trial ids

    def task_job_id(self, index: int) -> str:
        """The scheduler id of array element `index`: `<A>_<a>` on SLURM, except that submitit
        submits a single task as a plain job (`<A>`); local and debug runs share one job id."""
        if self.executor != "slurm" or len(self.task_keys) == 1:
            return self.job_id
        return f"{self.job_id}_{index}"


def read_manifests(paths: RunPaths) -> list[dict[str, Any]]:
    """Every complete manifest of the grid, oldest first. A stamp file reserved by a launch that
    has not written it yet (empty) is skipped; an unreadable one raises ManifestError."""
    manifests = []
    if not paths.submissions_dir.is_dir():
        return manifests
    for path in sorted(paths.submissions_dir.glob("*.json")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}), so not a manifest pcsweep "
                                "wrote: move it out of submissions/") from e
        if not text.strip():
            continue
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{path}: not valid JSON ({e}); move it away if it is not a manifest") from e
        if not isinstance(manifest, dict) or "arrays" not in manifest or "tasks" not in manifest:
            raise ManifestError(f"{path}: not a pcsweep submission manifest (no 'arrays'/'tasks')")
        manifests.append(manifest)
    return manifests


def _job_id(path: Path, executor: str, job_id: Any) -> str:
    """A manifest's array job id, checked: digits on SLURM, `local:<host>:<pid>` otherwise,
    so status and cancel never act on a malformed one (ManifestError names the file)."""
    text = str(job_id)
    try:
        if executor == "slurm":
            if not (text.isascii() and text.isdigit()):
                raise ValueError(f"job id {text!r} is not a SLURM job number")
        else:
            parse_local_job_id(text)
    except ValueError as e:
        raise ManifestError(f"{path}: {e}; this file was edited or damaged, move it away from "
                            f"{path.parent} (its trials then count as never submitted)") from None
    return text


def array_records(paths: RunPaths) -> list[ArrayRecord]:
    """All submitted arrays of the grid, oldest first (ManifestError names a file of the wrong shape)."""
    records = []
    for manifest in read_manifests(paths):
        path = paths.submission(str(manifest.get("stamp")))
        try:
            tasks = manifest["tasks"]
            executor = manifest.get("executor", "slurm")
            for array in manifest["arrays"]:
                keys = tuple(array["task_keys"])
                records.append(ArrayRecord(
                    stamp=manifest["stamp"], executor=executor, job_id=_job_id(path, executor, array["job_id"]),
                    task_keys=keys, tasks={k: tuple(tasks.get(k, ())) for k in keys},
                ))
        except (KeyError, TypeError, AttributeError) as e:
            raise ManifestError(f"{path}: malformed submission manifest ({type(e).__name__}: {e}); move it away "
                                f"from {path.parent} (its trials then count as never submitted)") from None
    return records
