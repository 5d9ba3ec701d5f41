"""A real adaptive-search run folder, made in about 10 s: a grid file with `search:` stored as the run folder's
grid.yaml (as the worker's command line stores it), one `launch.search_worker.run_worker` in this process training
tiny two-moons trials on CPU JAX into shards, Optuna journals and batch maps, then the real `collect.collect`.

Two studies (a sweep over `seed`, a per-trial key: both share one compiled program), budget 8 in batches of 4,
two searched learning rates: enough completed trials for the importance figure. Used by tests/collect/test_studies.py
and tests/plots/test_search_figures.py (each builds it once, in a module-scoped fixture).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

import collect
from contracts.paths import RunPaths
from grids import load_grid
from launch.compat import store_grid
from launch.search_worker import run_worker, study_storage

GRID = "searchrun"
STUDIES = ("seed=0", "seed=1")
BUDGET, BATCH = 8, 4
GRID_YAML = f"""\
name: {GRID}
defaults:
  data: {{dataset: two_moons, n_samples: 128, batch_size: 32}}
  model: {{width: 8}}
  train: {{epochs: 2, T: 2}}
sweep:
  - axes: {{seed: [0, 1]}}
search:
  metric: accuracy_best
  direction: maximize
  budget: {BUDGET}
  batch: {BATCH}
  params:
    train.h_lr: {{type: float, low: 0.01, high: 0.5, log: true}}
    train.w_lr: {{type: float, low: 1.0e-4, high: 1.0e-1, log: true}}
"""


def make_search_run(root: Path) -> RunPaths:
    """Run the search to its budget under `root` and collect it; returns the run folder's paths."""
    source = root.parent / f"{GRID}.yaml"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(GRID_YAML, encoding="utf-8")
    grid = load_grid(source)
    assert grid.search is not None and [s.name for s in grid.search.studies] == list(STUDIES)
    paths = RunPaths.of(GRID, root)
    paths.folder.mkdir(parents=True)
    store_grid(grid, paths)
    report = run_worker(paths, grid.search, worker=0, worker_ids={})
    assert (report.completed, report.failed) == (BUDGET * len(STUDIES), 0)
    collect.collect(GRID, root, progress=False)
    return paths


def journal_trials(paths: RunPaths, study: str) -> list[FrozenTrial]:
    """A study's trials read through Optuna's own API (the path docs/search.md shows), not through collect."""
    return optuna.load_study(study_name=study, storage=study_storage(paths, study)).get_trials(deepcopy=False)


def copy_run(paths: RunPaths, root: Path) -> RunPaths:
    """A copy of the run folder under another root (for tests that change it)."""
    shutil.copytree(paths.folder, root / GRID)
    return RunPaths.of(GRID, root)
