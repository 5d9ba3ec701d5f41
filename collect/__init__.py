"""collect: shards -> one results.h5 and one summary table, plus a report (docs/design.md section 6).

Runs on login nodes: importing it loads neither jax nor pandas nor h5py; the public names below are
resolved on first use.

    collect(grid, root=None, *, rebuild=False, strict=False, progress=True) -> CollectReport
    load_summary(grid, root=None) -> pandas.DataFrame
    load_trial(grid, trial_id, root=None) -> contracts.shard.TrialResult
    load_arrays(grid, name, trial_ids, root=None) -> dict[str, numpy.ndarray]
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["collect", "CollectReport", "NoRunFolder", "IncompleteError", "SummaryChanged", "load_summary",
           "load_trial", "load_arrays"]

_WHERE = {
    "collect": "collect.pipeline",
    "NoRunFolder": "collect.pipeline",
    "IncompleteError": "collect.pipeline",
    "CollectReport": "collect.report",
    "load_summary": "collect.load",
    "SummaryChanged": "collect.load",
    "load_trial": "collect.load",
    "load_arrays": "collect.load",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'collect' has no attribute {name!r}; public names: {', '.join(__all__)}")


def __dir__() -> list[str]:
    return sorted(__all__)
