"""`runs/<grid>/grid.yaml`: the grid as last launched, and the rule for what a relaunch may change.

A grid that holds every trial already launched into the run folder (values added) replaces the stored one; one
that drops launched trial ids (a changed default or value) is refused, naming the keys that differ from the stored
grid.yaml, unless `--force`. The launched trials are the run folder's trial sets (`grids.launched`), so the rule
holds for trials that no grid file produced. The dry run shows the same message as a warning (`grid_conflict` is
the one rule for both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from contracts.atomic import write_text_atomic
from contracts.paths import RunPaths
from grids.document import read_grid_document
from grids.grid import Grid, GridError, dump_grid
from grids.launched import launched_trials


class GridConflictError(GridError):
    """A relaunch whose grid would change what existing trial ids mean (refused unless --force)."""


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and any(isinstance(v, Mapping) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def differing_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two grid documents (or exist in only one)."""
    a, b = _flat(old), _flat(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, object()) != b.get(k, object()))


def grid_conflict(grid: Grid, paths: RunPaths) -> str | None:
    """Why a launch must refuse `grid` (it drops trials already launched into `paths`), or None."""
    vanished = set(launched_trials(paths).configs) - set(grid.trial_ids)
    if not vanished:
        return None
    try:
        keys = ", ".join(differing_keys(read_grid_document(paths.grid_yaml), grid.raw)) or "(none: trial ids changed)"
    except (GridError, OSError) as e:
        keys = f"(unknown: {e})"
    return (f"{grid.path or grid.name}: {len(vanished)} trial(s) already launched into {paths.folder} would no "
            f"longer be in the grid; keys that differ from {paths.grid_yaml}: "
            f"{keys}. Add values instead of changing them, give the grid "
            f"a new name, relaunch {paths.grid_yaml} itself, or relaunch with --force (existing results are kept "
            "but no longer belong to the grid).")


def store_grid(grid: Grid, paths: RunPaths) -> str | None:
    """Write `grid` as `runs/<grid>/grid.yaml` (atomically); returns the text it replaced, if any."""
    previous = paths.grid_yaml.read_text(encoding="utf-8") if paths.grid_yaml.exists() else None
    text = dump_grid(grid)
    if text != previous:
        write_text_atomic(paths.grid_yaml, text)
    return previous


def restore_grid(paths: RunPaths, previous: str | None) -> None:
    """Undo `store_grid`: put back the text it replaced, or remove the file it created."""
    if previous is None:
        paths.grid_yaml.unlink(missing_ok=True)
    else:
        write_text_atomic(paths.grid_yaml, previous)


@contextmanager
def provisional_grid(grid: Grid, paths: RunPaths, sent: Callable[[], bool]) -> Iterator[None]:
    """Store the grid for the block (tasks read it as soon as they start), and undo that if the block
    raises before `sent()` is true, so a launch that sent nothing leaves no grid.yaml behind."""
    previous = store_grid(grid, paths)
    try:
        yield
    except BaseException:
        if not sent():
            restore_grid(paths, previous)
        raise
