"""Trial sets: the exact trial configs a submission sent, written once at launch (docs/design.md section 4).

A grid file is how a person writes a sweep; after a launch, nothing re-expands it. Every submission writes
`runs/<grid>/submissions/<stamp>.trials.jsonl` beside its manifest, before any task can start:

    {"schema": "pcsweep-trials", "schema_version": 1, "grid": "<grid>", "stamp": "<stamp>", "trials": N}
    {"trial_id": "<16 hex>", "config": {<the full trial config>}}        (N lines, one per trial)

Tasks read the configs of their trial ids from here; relaunch, status, collect's expected set and the coverage
figure read the union of a run folder's trial sets. A trial set is evidence, not truth: the reader re-hashes
every config and refuses a row whose id does not match it, so a config edited in place, or a row copied from
another trial, is never trained or counted under the wrong id. Trials need not come from a grid: any writer of
this format (an adaptive search, say) adds trials that no grid file holds.

Run folders from before trial sets hold only `grid.yaml`; `grids.launched.launched_trials` (the one reader of a
run folder's trials) then expands it once (source `grid.yaml`), so they keep working. Pure Python (no jax, no
pandas): a login node reads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.config import canonical_json, trial_id
from contracts.paths import RunPaths

SCHEMA = "pcsweep-trials"
VERSION = 1
SUFFIX = ".trials.jsonl"
MAX_LINE_BYTES = 1 << 20  # one trial config is ~1 KB; a longer line is not one


class TrialSetError(ValueError):
    """A trial set that cannot be read or trusted: the message names the file, the line and the fix."""


def trial_set_path(paths: RunPaths, stamp: str) -> Path:
    """`submissions/<stamp>.trials.jsonl`, beside the submission's manifest."""
    return paths.submissions_dir / f"{stamp}{SUFFIX}"


def write_trial_set(paths: RunPaths, stamp: str, configs: Iterable[Mapping[str, Any]]) -> Path:
    """Write the configs one submission sends (atomically: tmp, fsync, rename); returns the file."""
    rows = [(trial_id(c), c) for c in configs]
    header = {"schema": SCHEMA, "schema_version": VERSION, "grid": paths.grid, "stamp": stamp, "trials": len(rows)}
    target = trial_set_path(paths, stamp)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(header, sort_keys=True) + "\n")
            for tid, config in rows:
                f.write(f'{{"config":{canonical_json(config)},"trial_id":"{tid}"}}\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_trial_set(path: Path, grid: str | None = None,
                   wanted: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
    """trial id -> config of one trial set; TrialSetError names the file, the line and what is wrong.

    wanted: keep (and re-hash) only these ids (a task needs its own few among thousands).
    """
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except OSError as e:
        raise TrialSetError(f"{path}: cannot read ({e.strerror or e})") from e
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise TrialSetError(f"{path}: empty; not a trial set (relaunch to write it again)")
    header = _json_line(path, 1, lines[0])
    if not isinstance(header, dict) or header.get("schema") != SCHEMA or header.get("schema_version") != VERSION:
        raise TrialSetError(f"{path}: line 1 is not a {SCHEMA} v{VERSION} header")
    if grid is not None and header.get("grid") != grid:
        raise TrialSetError(f"{path}: written for grid {header.get('grid')!r}, not {grid!r}; it does not belong here")
    if header.get("trials") != len(lines) - 1:
        raise TrialSetError(f"{path}: the header promises {header.get('trials')!r} trials, the file holds "
                            f"{len(lines) - 1} (cut short?)")
    out: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines[1:], start=2):
        row = _json_line(path, number, line)
        if not isinstance(row, dict) or not isinstance(row.get("config"), dict):
            raise TrialSetError(f"{path}: line {number} is not a trial row (trial_id and config)")
        tid = row.get("trial_id")
        if wanted is not None and tid not in wanted:
            continue
        if tid != trial_id(row["config"]):
            raise TrialSetError(f"{path}: line {number}: trial id {tid!r} is not the hash of its config "
                                f"({trial_id(row['config'])}); the file was edited or damaged")
        out[tid] = row["config"]
    return out


def _json_line(path: Path, number: int, line: bytes) -> Any:
    if len(line) > MAX_LINE_BYTES:
        raise TrialSetError(f"{path}: line {number} is {len(line):,} bytes; not a trial set")
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as e:
        raise TrialSetError(f"{path}: line {number} is not JSON ({e})") from e


@dataclass
class Trials:
    """A run folder's trials: id -> config (the union of its trial sets), where they came from, and notes on
    files that could not be read (each set aside, never a crash of the reader's caller)."""

    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "none"  # "trial sets" | "grid.yaml" (a run folder from before trial sets) | "none"
    notes: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.source != "none"


def trial_set_files(paths: RunPaths) -> list[Path]:
    """The run folder's trial sets, in submission order."""
    folder = paths.submissions_dir
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def read_trial_sets(paths: RunPaths, wanted: Collection[str] | None = None) -> Trials:
    """Every trial ever submitted into the run folder: the union of its trial sets (an unreadable one is a note).

    A run folder from before trial sets has none: `grids.launched.launched_trials` then expands its grid.yaml.
    """
    out = Trials()
    for path in trial_set_files(paths):
        try:
            out.configs.update(read_trial_set(path, paths.grid, wanted))
            out.source = "trial sets"
        except TrialSetError as e:
            out.notes.append(str(e))
    return out


__all__ = ["SCHEMA", "TrialSetError", "Trials", "read_trial_set", "read_trial_sets", "trial_set_files",
           "trial_set_path", "write_trial_set"]
