"""The merge loop: copy each trial's winning copy into results, falling back when a shard turns out bad.

Shards are probed first (`probe_shards`, which sets bad ones aside). Then, for each trial, the newest
valid copy is copied (`copy_winners`); a shard that fails its full check is set aside before anything
of it is written, and its trials fall back to the next-newest valid copy, if any.
"""

from __future__ import annotations

from collections.abc import Iterable

from tqdm import tqdm

from collect.expected import recorded_grid
from collect.merge_state import Kept, ShardEntry, State, winners
from collect.probe import ShardChanged, ShardInfo, probe
from collect.results import ResultsWriter
from collect.shards import set_aside
from collect.summary import Parts
from contracts.paths import RunPaths
from contracts.shard import ShardError, ShardUnreadable


def probe_shards(paths: RunPaths, names: Iterable[str], notes: list[str] | None = None) -> list[ShardInfo]:
    """Validate shards by name; bad ones are moved to shards/bad/ (and left out); ones this user may not read are
    left in place and named in `notes` (a permission says nothing about the shard)."""
    infos = []
    grid, renamed = recorded_grid(paths)
    if renamed and notes is not None and renamed not in notes:
        notes.append(renamed)
    for name in sorted(names):
        path = paths.shards_dir / name
        try:
            infos.append(probe(path, grid))
        except FileNotFoundError:
            continue  # deleted or renamed since it was listed
        except ShardUnreadable as e:
            if notes is not None:
                notes.append(str(e))
        except ShardError as e:
            set_aside(paths, path, str(e))
    return infos


def copy_winners(paths: RunPaths, writer: ResultsWriter, infos: list[ShardInfo], pending: dict[str, ShardInfo],
                 state: State, table: Parts, notes: list[str], progress: bool) -> None:
    """Copy `pending` (trial id -> shard) into `writer`; update `state` (kept copies, valid shards) and `table`."""
    bad: set[str] = set()
    changed: set[str] = set()
    lookup = {i.name: i for i in infos}
    with tqdm(total=len(pending), unit="trial", desc="merge", disable=not (progress and pending),
              dynamic_ncols=True, mininterval=0.5, leave=False) as bar:
        while pending:
            by_shard: dict[str, list[str]] = {}
            for tid, info in pending.items():
                by_shard.setdefault(info.name, []).append(tid)
            writer.plan(infos, pending)
            for name in sorted(by_shard):
                info = lookup[name]
                try:
                    copied = writer.copy_from(info, sorted(by_shard[name]))
                except ShardChanged as e:  # rewritten since probed: skip now, read it next time
                    bad.add(name)
                    changed.add(name)
                    notes.append(f"{e}; its trials were not taken from it this time")
                except ShardError as e:
                    bad.add(name)
                    set_aside(paths, info.path, str(e))
                else:
                    for c in copied:
                        table.add_rows(c)
                        for tid, status in zip(c.trial_ids, c.status):
                            state.kept[tid] = Kept(info.created, info.mtime_ns, info.name, status)
                bar.update(len(by_shard[name]))
            # Trials whose chosen shard turned out bad fall back to the next-newest valid copy.
            retry = {t for n in bad & set(by_shard) for t in by_shard[n]}
            pending = {t: i for t, i in winners(infos, state.kept, bad).items() if t in retry}
    record_shards(state, infos, bad, changed)


def record_shards(state: State, infos: Iterable[ShardInfo], bad: set[str], changed: set[str]) -> None:
    """Remember the valid shards read this time; forget those rewritten since their probe (read them again)."""
    for info in infos:
        if info.name not in bad:
            state.shards[info.name] = ShardEntry.of(info)
        elif info.name in changed:
            state.shards.pop(info.name, None)
