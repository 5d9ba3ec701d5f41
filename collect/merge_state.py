"""What the last collect merged (`.collect_state.json`), and which shard copy of each trial wins.

The state makes the next collect incremental: each valid shard's size, mtime, `created` and trial
ids, and each kept trial's source (`Kept`). It is trusted only while results.h5 and summary.csv are
the files it describes (size and mtime) and no `results.h5.updating` marker is left; otherwise the
next collect rebuilds from the shards, which are the truth.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from collect.probe import ShardInfo, submission_order
from contracts.atomic import tmp_path
from contracts.paths import RunPaths

STATE_VERSION = 2  # 1 described a version-1 (group per trial) results.h5: such a state forces a rebuild


class Kept(NamedTuple):
    """The copy of a trial that results.h5 holds (stored as a JSON list in that order)."""

    created: str
    mtime_ns: int
    shard: str
    status: str

    @property
    def key(self) -> tuple[tuple[str, int], str, int, str]:
        """Comparable with `ShardInfo.key`: a copy at least as new is not merged again."""
        return (submission_order(self.shard), self.created, self.mtime_ns, self.shard)


@dataclass(frozen=True)
class ShardEntry:
    """A merged shard as the state records it (a JSON object with these keys)."""

    size: int
    mtime_ns: int
    created: str
    trials: tuple[str, ...]

    @classmethod
    def of(cls, info: ShardInfo) -> ShardEntry:
        return cls(info.size, info.mtime_ns, info.created, info.trial_ids)

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "created": self.created, "trials": list(self.trials)}


@dataclass
class State:
    """Valid shards by name and the kept copy of every trial in results.h5."""

    shards: dict[str, ShardEntry] = field(default_factory=dict)
    kept: dict[str, Kept] = field(default_factory=dict)


def updating_marker(paths: RunPaths) -> Path:
    """Present while collect updates results.h5 in place (or after such an update was killed)."""
    return paths.results.with_name(paths.results.name + ".updating")


def file_stamp(path: Path) -> list[int] | None:
    """[size, mtime_ns] of a file, or None: how the state recognises the results it wrote."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def recorded_summary_size(paths: RunPaths) -> int | None:
    """The size of summary.csv that the last collect recorded in its state, or None (no readable state)."""
    try:
        stamp = json.loads(paths.collect_state.read_text(encoding="utf-8")).get("summary")
    except (OSError, ValueError, AttributeError):
        return None
    return stamp[0] if isinstance(stamp, list) and stamp and isinstance(stamp[0], int) else None


def load_state(paths: RunPaths) -> tuple[State | None, str]:
    """The state of the last collect if it still matches results.h5 and the summary, else (None, why)."""
    path = paths.collect_state
    if not path.is_file():
        return None, f"no {path.name} (a first collect): results.h5 and summary.csv are rewritten from the shards"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError(f"a JSON {type(doc).__name__}, not an object")
        if doc.get("version") != STATE_VERSION:
            return None, f"{path}: state version {doc.get('version')!r}; rebuilding"
        kept = doc["kept"]
        # Kept._make checks the length only (the field types are the ones save_state wrote): a third of
        # the cost of converting each field, on a state of 50,000 trials that every collect reads
        state = State({n: ShardEntry(int(e["size"]), int(e["mtime_ns"]), str(e["created"]), tuple(e["trials"]))
                       for n, e in doc["shards"].items()}, dict(zip(kept, map(Kept._make, kept.values()))))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        return None, f"{path} unreadable ({e}); rebuilding"
    if updating_marker(paths).exists():
        return None, f"{updating_marker(paths)} exists: an earlier collect was interrupted; rebuilding"
    if file_stamp(paths.results) != doc.get("results") or file_stamp(paths.summary) != doc.get("summary"):
        return None, "results.h5 or summary.csv changed since the last collect; rebuilding"
    return state, ""


def save_state(paths: RunPaths, state: State) -> None:
    """Record what results.h5 holds (atomically; written after results and summary)."""
    doc = {"version": STATE_VERSION, "grid": paths.grid, "results": file_stamp(paths.results),
           "summary": file_stamp(paths.summary), "shards": {n: e.to_json() for n, e in state.shards.items()},
           "kept": state.kept}  # a Kept (a tuple) is written as a JSON list
    # tmp + os.replace without fsync (unlike contracts.atomic): a state lost with the page cache is simply
    # unreadable or stale, and either makes the next collect rebuild from the shards; an fsync per collect is not
    tmp = tmp_path(paths.collect_state)
    try:
        tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, paths.collect_state)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def duplicates(shards: dict[str, ShardEntry]) -> list[str]:
    """Trial ids held by more than one valid shard, sorted."""
    seen: dict[str, int] = {}
    for entry in shards.values():
        for tid in entry.trials:
            seen[tid] = seen.get(tid, 0) + 1
    return sorted(t for t, n in seen.items() if n > 1)


def winners(infos: Iterable[ShardInfo], kept: dict[str, Kept], bad: set[str]) -> dict[str, ShardInfo]:
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
        if old is not None and old.key >= info.key:
            continue
        out[tid] = info
    return out
