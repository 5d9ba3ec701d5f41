"""The trials launched into a run folder: the one reader every stage uses after a launch (docs/design.md section 4).

Tasks, relaunch, status, collect's expected set and the coverage figure ask here, never the grid file: what a
launch sent is in its trial set (`contracts.trialset`). A run folder from before trial sets has only its
`grid.yaml`, which is expanded once instead (source `grid.yaml`), so old run folders keep working.
"""

from __future__ import annotations

from collections.abc import Collection

from contracts.paths import RunPaths
from contracts.trialset import Trials, read_trial_sets
from grids.grid import load_grid


def launched_trials(paths: RunPaths, wanted: Collection[str] | None = None) -> Trials:
    """trial id -> config of every trial launched into `paths` (or only the `wanted` ones), with where they came
    from and notes."""
    trials = read_trial_sets(paths, wanted)
    if trials.known or trials.notes or not paths.grid_yaml.is_file():
        return trials
    try:
        grid = load_grid(paths.grid_yaml)
    except Exception as e:  # noqa: BLE001 - a grid.yaml that no longer expands only leaves the trials unknown
        trials.notes.append(f"{paths.grid_yaml}: could not expand ({type(e).__name__}: {e})")
        return trials
    trials.configs = {tid: cfg.to_mapping() for tid, cfg in zip(grid.trial_ids, grid.trials)
                      if wanted is None or tid in wanted}
    trials.source = "grid.yaml"
    return trials


__all__ = ["launched_trials"]
