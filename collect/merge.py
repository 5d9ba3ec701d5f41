"""Shards -> results.h5: find, validate and set aside shards; copy trial groups; remember what was merged.

`results.h5` has a shard's per-trial layout (`/trials/<trial_id>` with attrs config, status,
wall_s and the six datasets, DESIGN.md section 5) plus provenance attrs per trial (`shard`,
`shard_created`, `hostname`, `slurm_job_id`) and file attrs `schema = "pcsweep-results"`,
`schema_version = 1`, `grid`, `created`. It is written to `results.h5.tmp.<pid>` and
`os.replace`d on a full collect; an incremental collect adds to the existing file in place behind a
marker file (see `ResultsWriter`), since copying a multi-GB results file costs more than the update.

Trial groups are copied with HDF5's own object copy (`H5Ocopy`), one call per trial.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5a, h5g, h5o, h5s, h5t

from pc.paths import RunPaths
from pc.shard import ShardError, open_shard

RESULTS_SCHEMA = "pcsweep-results"
RESULTS_SCHEMA_VERSION = 1
STATE_VERSION = 1
PROVENANCE = ("shard", "shard_created", "hostname", "slurm_job_id")
_STR = h5py.string_dtype()
_STR_TYPE = h5t.py_create(_STR, logical=True)


@dataclass(frozen=True)
class ShardInfo:
    """A validated shard: where it is, when it was made, which trials it holds."""

    name: str
    path: Path
    size: int
    mtime_ns: int
    created: str
    hostname: str
    slurm_job_id: str
    trial_ids: tuple[str, ...]

    @property
    def key(self) -> tuple[str, int, str]:
        """Newest wins: by `created`, then file mtime, then name (so ties are deterministic)."""
        return (self.created, self.mtime_ns, self.name)


def list_shards(paths: RunPaths) -> dict[str, tuple[int, int]]:
    """name -> (size, mtime_ns) of every `shards/*.h5`; in-flight `*.tmp.*` writes and `bad/` are skipped."""
    out: dict[str, tuple[int, int]] = {}
    if not paths.shards_dir.is_dir():
        return out
    with os.scandir(paths.shards_dir) as entries:
        for e in entries:
            if e.name.endswith(".h5") and ".tmp." not in e.name and e.is_file():
                st = e.stat()
                out[e.name] = (st.st_size, st.st_mtime_ns)
    return out


def probe(path: Path) -> ShardInfo:
    """Open and validate a shard's file attributes and list its trials (reads no arrays).

    Raises:
        ShardError: not HDF5, truncated, partial (no `complete`), wrong schema or version.
    """
    st = path.stat()
    with open_shard(path) as shard:
        a = shard.attrs
        return ShardInfo(name=path.name, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns,
                         created=str(a.get("created", "")), hostname=str(a.get("hostname", "")),
                         slurm_job_id=str(a.get("slurm_job_id", "")), trial_ids=tuple(shard.trial_ids))


def set_aside(paths: RunPaths, path: Path, reason: str) -> str:
    """Move a bad shard to `shards/bad/` with `<name>.reason.txt` next to it; return the new name."""
    paths.bad_shards_dir.mkdir(parents=True, exist_ok=True)
    dest = paths.bad_shards_dir / path.name
    try:
        os.replace(path, dest)
    except FileNotFoundError:
        return dest.name  # already gone (deleted or moved by someone else): nothing to set aside
    note = dest.with_name(dest.name + ".reason.txt")
    note.write_text(f"{reason}\nmoved here by collect at {_now()}; fix or delete it, then relaunch the task\n")
    return dest.name


def bad_shards(paths: RunPaths) -> list[tuple[str, str]]:
    """(file, reason) for every shard in `shards/bad/`, reasons read from their `.reason.txt`."""
    if not paths.bad_shards_dir.is_dir():
        return []
    out = []
    for p in sorted(paths.bad_shards_dir.glob("*.h5")):
        note = p.with_name(p.name + ".reason.txt")
        reason = note.read_text().splitlines()[0] if note.is_file() else "no reason recorded"
        out.append((p.name, reason))
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CopyError(ShardError):
    """Copying from a shard failed midway; `copied` lists the trials already in the results file."""

    def __init__(self, message: str, copied: list[str]):
        super().__init__(message)
        self.copied = copied


def updating_marker(paths: RunPaths) -> Path:
    """Present while collect updates results.h5 in place (or after such an update was killed)."""
    return paths.results.with_name(paths.results.name + ".updating")


class ResultsWriter:
    """results.h5 being written. Use as a context manager, then `commit()`.

    Two modes:
      * new (a full collect): everything goes to `results.h5.tmp.<pid>`, which `commit()` renames
        over results.h5, so readers see the old file or the new one, never a mix; an exception
        deletes the tmp file.
      * in place (an incremental collect): the new trials are added to results.h5 itself, because
        copying a multi-GB file per collect is what made incremental runs slow. A marker file
        `results.h5.updating` exists for the duration; if the process dies, the marker stays, the
        loaders refuse the file and the next collect rebuilds it from the shards (which are the
        truth). A replaced trial is swapped only once its new copy is whole.
    """

    def __init__(self, paths: RunPaths, *, in_place: bool):
        self.final = paths.results
        self.in_place = in_place
        self.marker = updating_marker(paths)
        self.tmp = paths.results.with_name(f"{paths.results.name}.tmp.{os.getpid()}")
        self.grid = paths.grid
        self.committed = False
        if in_place:
            self.marker.write_text(f"collect pid {os.getpid()} started {_now()}\n")
            try:
                self.file = h5py.File(self.final, "a")
            except BaseException:
                self.marker.unlink(missing_ok=True)
                raise
        else:
            self.file = h5py.File(self.tmp, "w")
        self.trials = self.file.require_group("trials").id
        self._space = h5s.create(h5s.SCALAR)

    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file.id.valid:
            self.file.close()  # in place: a cleanly closed file is valid HDF5; the state no longer matches it
        if self.in_place:
            self.marker.unlink(missing_ok=True)
        else:
            self.tmp.unlink(missing_ok=True)

    def has(self, trial_id: str) -> bool:
        return self.trials.links.exists(trial_id.encode())

    def delete(self, trial_id: str) -> None:
        if self.has(trial_id):
            self.trials.unlink(trial_id.encode())

    def _copy(self, src_trials: Any, trial_id: str, provenance: list[tuple[bytes, np.ndarray]]) -> None:
        name = trial_id.encode()
        replacing = self.in_place and self.trials.links.exists(name)  # a new file holds each trial once
        target = name + b".new" if replacing else name  # a replaced trial goes only once its copy is whole
        try:
            h5o.copy(src_trials, name, self.trials, target)
            gid = h5g.open(self.trials, target)
            for attr, value in provenance:
                try:
                    a = h5a.create(gid, attr, _STR_TYPE, self._space)
                except (KeyError, ValueError, RuntimeError, OSError):  # the shard had one: ours wins
                    h5a.delete(gid, attr)
                    a = h5a.create(gid, attr, _STR_TYPE, self._space)
                a.write(value)
        except BaseException:
            if self.trials.links.exists(target):
                self.trials.unlink(target)
            raise
        if replacing:
            self.trials.unlink(name)
            self.trials.links.move(target, self.trials, name)

    def copy_from(self, info: ShardInfo, trial_ids: list[str]) -> list[str]:
        """Copy `/trials/<id>` groups from a shard (HDF5 object copy) and stamp their provenance.

        Returns:
            The trial ids copied (all of them).
        Raises:
            CopyError: HDF5 failed midway; `.copied` lists the trials already copied.
        """
        provenance = [(a.encode(), np.array(v, dtype=_STR)) for a, v in
                      zip(PROVENANCE, (info.name, info.created, info.hostname, info.slurm_job_id))]
        copied: list[str] = []
        try:
            with h5py.File(info.path, "r") as src:
                src_trials = src["trials"].id
                for tid in trial_ids:
                    self._copy(src_trials, tid, provenance)
                    copied.append(tid)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            where = f"trial {trial_ids[len(copied)]}" if len(copied) < len(trial_ids) else "closing"
            raise CopyError(f"{info.path}: HDF5 copy failed at {where} ({e})", copied) from e
        return copied

    def commit(self) -> None:
        """Write the file attrs and close; a new file is then `os.replace`d over results.h5."""
        attrs = self.file.attrs
        attrs["schema"] = RESULTS_SCHEMA
        attrs["schema_version"] = RESULTS_SCHEMA_VERSION
        attrs["grid"] = self.grid
        attrs["created"] = _now()
        self.file.close()
        if not self.in_place:
            os.replace(self.tmp, self.final)
            self.marker.unlink(missing_ok=True)  # a stale marker from a killed update: the new file replaced it
        self.committed = True


def file_stamp(path: Path) -> list[int] | None:
    """[size, mtime_ns] of a file, or None: how the state recognises the results it wrote."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def load_state(paths: RunPaths) -> tuple[dict[str, Any] | None, str]:
    """The state of the last collect if it still matches results.h5 and the summary, else (None, why)."""
    path = paths.collect_state
    if not path.is_file():
        return None, "first collect (no state file)"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"{path} unreadable ({e}); rebuilding"
    if state.get("version") != STATE_VERSION:
        return None, f"{path}: state version {state.get('version')!r}; rebuilding"
    if updating_marker(paths).exists():
        return None, f"{updating_marker(paths)} exists: an earlier collect was interrupted; rebuilding"
    if file_stamp(paths.results) != state.get("results") or file_stamp(paths.summary) != state.get("summary"):
        return None, "results.h5 or summary.csv changed since the last collect; rebuilding"
    return state, ""


def save_state(paths: RunPaths, shards: dict[str, dict[str, Any]], kept: dict[str, list]) -> None:
    """Record what results.h5 holds (atomically; written after results and summary)."""
    state = {"version": STATE_VERSION, "grid": paths.grid, "results": file_stamp(paths.results),
             "summary": file_stamp(paths.summary), "shards": shards, "kept": kept}
    tmp = paths.collect_state.with_name(f"{paths.collect_state.name}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(state, separators=(",", ":")))
    os.replace(tmp, paths.collect_state)


def duplicates(shards: dict[str, dict[str, Any]]) -> list[str]:
    """Trial ids held by more than one valid shard, sorted."""
    seen: dict[str, int] = {}
    for entry in shards.values():
        for tid in entry["trials"]:
            seen[tid] = seen.get(tid, 0) + 1
    return sorted(t for t, n in seen.items() if n > 1)


def shard_entry(info: ShardInfo) -> dict[str, Any]:
    return {"size": info.size, "mtime_ns": info.mtime_ns, "created": info.created, "trials": list(info.trial_ids)}


def winners(infos: Iterable[ShardInfo], kept: dict[str, list], bad: set[str]) -> dict[str, ShardInfo]:
    """trial id -> the shard whose copy to merge; trials whose kept copy is at least as new are left out."""
    best: dict[str, ShardInfo] = {}
    for info in infos:
        if info.name in bad:
            continue
        for tid in info.trial_ids:
            cur = best.get(tid)
            if cur is None or info.key > cur.key:
                best[tid] = info
    out = {}
    for tid, info in best.items():
        old = kept.get(tid)
        if old is not None and (old[0], old[1], old[2]) >= info.key:
            continue
        out[tid] = info
    return out
