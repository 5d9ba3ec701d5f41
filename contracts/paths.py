"""The run folder layout (docs/design.md section 4): the only place that spells its paths.

All four stages use `RunPaths`; nothing else builds `f"{root}/..."` strings.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "PCSWEEP_ROOT"

# A grid name is one folder under the run root: no separators, no leading dot, so `..`, `/abs` and
# `a/b` can never point outside it. Every stage builds its paths through `RunPaths.of`, which checks it.
GRID_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class RunFolderError(ValueError):
    """A grid name or run root that would put files outside the run root (or cannot be a folder)."""


def check_grid_name(name: object, where: str = "grid name") -> str:
    """`name` if it is a safe folder name, else RunFolderError naming `where` and the rule."""
    if not isinstance(name, str) or not GRID_NAME_RE.match(name):
        raise RunFolderError(
            f"{where}: got {name!r}; expected a folder name of letters, digits, '_', '-', '.' "
            "(starting with a letter or digit, at most 100 characters)")
    return name


def default_root() -> Path:
    """`$PCSWEEP_ROOT` if set, else `./runs`.

    Raises:
        RunFolderError: `$PCSWEEP_ROOT` is set but empty or blank (`export PCSWEEP_ROOT=$UNSET`): it would mean
            the current folder.
    """
    value = os.environ.get(ROOT_ENV)
    if value is None:
        return Path("runs")
    if not value.strip():
        raise RunFolderError(f"${ROOT_ENV} is set but empty (it would mean the current folder); unset it "
                             f"(unset {ROOT_ENV}) or set it to the folder that holds the run folders")
    return Path(value)


@dataclass(frozen=True)
class RunPaths:
    """Paths of one grid's run folder: `<root>/<grid>/...`."""

    root: Path
    grid: str

    @classmethod
    def of(cls, grid: str, root: str | os.PathLike | None = None) -> RunPaths:
        """The run folder of grid `grid` under `root` (default: `default_root()`); the name is checked."""
        return cls(Path(root) if root is not None else default_root(), check_grid_name(grid))

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
    def lock(self) -> Path:
        """`.lock`: held by collect and launch while they change the folder (contracts.lock)."""
        return self.folder / ".lock"

    @property
    def collect_state(self) -> Path:
        return self.folder / ".collect_state.json"

    @property
    def figures(self) -> Path:
        return self.folder / "figures"
