"""The run folder layout (DESIGN.md section 4): the only place that spells its paths.

All four stages use `RunPaths`; nothing else builds `f"{root}/..."` strings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "PCSWEEP_ROOT"


def default_root() -> Path:
    """`$PCSWEEP_ROOT` if set, else `./runs`."""
    return Path(os.environ.get(ROOT_ENV, "runs"))


@dataclass(frozen=True)
class RunPaths:
    """Paths of one grid's run folder: `<root>/<grid>/...`."""

    root: Path
    grid: str

    @classmethod
    def of(cls, grid: str, root: str | os.PathLike | None = None) -> "RunPaths":
        return cls(Path(root) if root is not None else default_root(), grid)

    @property
    def folder(self) -> Path:
        return self.root / self.grid

    @property
    def grid_yaml(self) -> Path:
        return self.folder / "grid.yaml"

    @property
    def submissions_dir(self) -> Path:
        return self.folder / "submissions"

    def submission(self, stamp: str) -> Path:
        return self.submissions_dir / f"{stamp}.json"

    @property
    def shards_dir(self) -> Path:
        return self.folder / "shards"

    def shard(self, task_key: str) -> Path:
        return self.shards_dir / f"{task_key}.h5"

    @property
    def bad_shards_dir(self) -> Path:
        return self.shards_dir / "bad"

    @property
    def failed_dir(self) -> Path:
        return self.folder / "failed"

    def failed(self, trial_id: str) -> Path:
        return self.failed_dir / f"{trial_id}.json"

    @property
    def slurm_dir(self) -> Path:
        return self.folder / "slurm"

    @property
    def jax_cache_dir(self) -> Path:
        return self.root / ".jax_cache"

    @property
    def results(self) -> Path:
        return self.folder / "results.h5"

    @property
    def summary(self) -> Path:
        return self.folder / "summary.csv"

    @property
    def collect_state(self) -> Path:
        return self.folder / ".collect_state.json"

    @property
    def figures(self) -> Path:
        return self.folder / "figures"
