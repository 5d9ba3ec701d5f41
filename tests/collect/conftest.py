"""Fixtures for collect tests: a run folder with real shards written by `pc.shard.write_shard`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pc.config import TrialConfig
from pc.paths import RunPaths
from pc.shard import TrialResult, write_shard

GRID = "g"


def synthetic_trial(seed: int, *, kind: str = "pc", E: int = 2, B: int = 4, T: int = 3, status: str = "ok",
                    offset: float = 0.0, diverge_at: tuple[int, int] | None = None, **dotted) -> TrialResult:
    """A trial whose every array element is distinct (value = its flat index + offset + 1), so an
    off-by-one in epoch, batch or t picks a different number. BP has T = 1 and one energy layer;
    w_* always have 3 layers. `diverge_at=(e, b)` NaN-pads from that batch on, as pc does."""
    if kind == "bp":
        T = 1
    cfg = TrialConfig.from_mapping({}).replace(**{"seed": seed, "model.kind": kind, "train.T": T,
                                                  "train.epochs": E, **dotted})
    L = 3 if kind == "pc" else 1

    def arr(shape: tuple[int, ...], scale: float) -> np.ndarray:
        return ((np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + 1 + offset) * scale).astype(np.float32)

    arrays = {
        "test_accuracy": (np.arange(E, dtype=np.float32) + 1 + offset) / (E + 10 + offset),
        "energy": arr((E, B, T + 1, L), 1.0),
        "energy_var": arr((E, B, T + 1, L), 0.5),
        "w_norm": arr((E, B, 3), 2.0),
        "w_grad_norm": arr((E, B, 3), 3.0),
        "w_grad_var": arr((E, B, 3), 0.25),
    }
    if diverge_at is not None:
        e, b = diverge_at
        for name, a in arrays.items():
            if a.ndim > 1:
                a[e, b:] = np.nan
                a[e + 1:] = np.nan
            else:
                a[e:] = np.nan
        status = "diverged"
    return TrialResult(cfg.trial_id, cfg.to_mapping(), status, 1.5 + seed, arrays)


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
