"""Fixtures for collect tests: a run folder with real shards written by `contracts.shard.write_shard`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from collect_cases import GRID

from contracts.paths import RunPaths
from contracts.shard import TrialResult, write_shard


class Run:
    """A run folder under tmp_path with helpers to write shards, failures and manifests."""

    def __init__(self, root: Path):
        self.root = root
        self.paths = RunPaths.of(GRID, root)
        self.paths.folder.mkdir(parents=True)

    def shard(self, name: str, trials: list[TrialResult], *, created: str = "2026-01-01T00:00:00+00:00") -> Path:
        return write_shard(self.paths.shard(name), trials, grid=GRID, task_key=name,
                           attrs={"created": created, "hostname": f"node-{name}", "slurm_job_id": f"job-{name}"})

    def manifest(self, trial_ids: list[str], stamp: str = "20260101T000000Z") -> None:
        self.paths.submissions_dir.mkdir(parents=True, exist_ok=True)
        doc = {"grid": GRID, "stamp": stamp, "tasks": {"t0": list(trial_ids)}, "arrays": []}
        self.paths.submission(stamp).write_text(json.dumps(doc))

    def failed(self, trial_id: str, error: str = "FloatingPointError: boom") -> None:
        self.paths.failed_dir.mkdir(parents=True, exist_ok=True)
        rec = {"trial_id": trial_id, "task_key": "t9", "error": error, "traceback_tail": "...",
               "host": "node7", "job_id": "123_4", "attempt": 1, "time": "2026-01-01T00:00:00+00:00"}
        self.paths.failed(trial_id).write_text(json.dumps(rec))

    def leftovers(self) -> list[str]:
        """Temporary files anywhere under the run folder (there must be none after a collect)."""
        return sorted(str(p) for p in self.paths.folder.rglob("*") if ".tmp." in p.name)

    def touch_later(self, path: Path, seconds: int = 10) -> None:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path / "runs")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
