"""launch on the real local SLURM cluster: a grid runs to done, status at each stage, cancel and
relaunch of the cancelled task only, arrays split at a small MaxArraySize.

Every test uses a fresh run root and its own grid name (so `squeue -n pcsweep-<grid>` sees only its
jobs) and polls against deadlines. Options as in production, minus the GPU and the container:
`--no-container --platform cpu --partition cpu --gpus 0 --cpus 1` and a tiny two moons grid.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contracts.paths import RunPaths
from contracts.shard import open_shard
from grids.grid import Grid, grid_from_mapping, read_grid_document
from launch.cancel import cancel
from launch.manifest import read_manifests
from launch.options import LaunchOptions
from launch.status import StatusReport, status_report
from launch.submit import launch
from launch.trial_states import sacct, squeue

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]


def tiny_doc(name: str, seeds: int = 4, **defaults: Any) -> dict:
    """Two moons, width 8, 64 samples in batches of 16, 1 epoch, T=2: `seeds` trials, one shape."""
    doc = {"name": name,
           "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                        "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
           "sweep": [{"axes": {"seed": list(range(seeds))}}]}
    for dotted, value in defaults.items():
        section, key = dotted.split("__")
        doc["defaults"][section][key] = value
    return doc


class Run:
    """A fresh run root and grid name for one test; cancels the grid's jobs afterwards."""

    def __init__(self, root: Path):
        self.root = root
        self.name = f"t{uuid.uuid4().hex[:8]}"

    def grid(self, doc: dict | None = None, **kw: Any) -> Grid:
        doc = doc or tiny_doc(self.name, **kw)
        doc["name"] = self.name
        return grid_from_mapping(doc, source=f"{self.name}.yaml")

    def options(self, **kw: Any) -> LaunchOptions:
        base = dict(executor="slurm", container=False, platform="cpu", partition="cpu", gpus=0, cpus=1,
                    time_min=5)
        return LaunchOptions(root=self.root, **{**base, **kw})

    @property
    def paths(self) -> RunPaths:
        return RunPaths.of(self.name, self.root)

    def status(self) -> StatusReport:
        return status_report(self.name, self.root)

    def wait_status(self, predicate: Callable[[StatusReport], bool], timeout_s: float, what: str) -> StatusReport:
        return wait_for(lambda: (lambda r: r if predicate(r) else None)(self.status()), timeout_s, what)

    def shard_ids(self) -> dict[str, list[str]]:
        out = {}
        for path in sorted(self.paths.shards_dir.glob("*.h5")):
            with open_shard(path) as shard:
                out[path.stem] = shard.trial_ids
        return out

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.paths.slurm_dir.glob("*_log.*")))


def wait_for(fn: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 2.0) -> Any:
    """Poll `fn` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def final_states(job_ids: list[str], timeout_s: float = 30) -> dict:
    """sacct states once every id has a final one (sacct lags the end of a job by up to ~3 s)."""
    def get():
        acct = sacct(sorted({j.split("_")[0] for j in job_ids}))
        if acct and all(j in acct and acct[j].state not in ("PENDING", "RUNNING", "REQUEUED") for j in job_ids):
            return acct
        return None
    return wait_for(get, timeout_s, f"final sacct states of {job_ids}", interval_s=1)


@contextmanager
def fresh_run(root: Path) -> Iterator[Run]:
    """A Run whose jobs are cancelled at the end, whatever the test did."""
    r = Run(root)
    try:
        yield r
    finally:
        subprocess.run(["scancel", "--me", "-n", f"pcsweep-{r.name}"], capture_output=True, timeout=30)


@pytest.fixture
def run(slurm_cluster, tmp_path):
    with fresh_run(tmp_path / "runs") as r:
        yield r


def test_demo_grid_runs_to_done_with_valid_shards_and_status_counts_each_stage(run):
    """grids/demo.yaml (32 trials, 8 static groups) with one epoch, as `python -m launch` would."""
    doc = read_grid_document(REPO / "grids" / "demo.yaml")
    doc["name"] = run.name
    grid = grid_from_mapping(doc, source="grids/demo.yaml", overrides=["train.epochs=1"])
    n = len(grid.trial_ids)
    assert n == 32
    t0 = time.monotonic()
    sub = launch(grid, run.options(trials_per_task=8))
    assert time.monotonic() - t0 < 15, "launch must return at once, never wait on results"
    assert (sub.executor, sub.trials, len(sub.arrays)) == ("slurm", n, 1) and sub.tasks >= 4
    job = sub.arrays[0].job_id
    (manifest,) = read_manifests(run.paths)
    (array,) = manifest["arrays"]
    assert array["job_id"] == job and sorted(array["task_keys"]) == sorted(manifest["tasks"])
    assert manifest["sbatch"]["job_name"] == f"pcsweep-{run.name}" and manifest["git_sha"]
    elements = {f"{job}_{a}" for a in range(sub.tasks)}

    first = run.status()
    assert first.counts["done"] == 0 and first.active == n and first.queue == "squeue"
    assert set(squeue(run.name)) == elements
    mid = run.wait_status(lambda r: r.counts["running"] > 0, 120, "a running task")
    assert mid.counts["running"] + mid.counts["pending"] + mid.counts["done"] == n
    done = run.wait_status(lambda r: r.active == 0, 420, "every task to finish")
    assert done.counts == {"pending": 0, "running": 0, "done": n, "failed": 0, "lost": 0, "unknown": 0}
    assert done.arrays[0].done == n and not done.problems

    shards = run.shard_ids()
    assert sorted(shards) == sorted(manifest["tasks"])  # one shard per task, named by its key
    for key, ids in shards.items():
        assert sorted(ids) == sorted(manifest["tasks"][key])
    with open_shard(run.paths.shard(next(iter(shards)))) as shard:
        trial = shard.trial(shard.trial_ids[0])
        assert trial.arrays["energy"].shape[0] == 1 and trial.status in ("ok", "diverged")
    acct = final_states(sorted(elements))
    assert {acct[e].state for e in elements} == {"COMPLETED"}

    again = launch(grid, run.options(trials_per_task=8))
    assert again.trials == 0 and again.skipped == {"done": n, "queued": 0, "failed": 0}
    assert cancel(run.name, run.root) == []


def test_cancelled_task_is_lost_with_reason_and_relaunch_reruns_only_its_trials(run):
    # Each task trains for ~15-20 s (width 256, 256 batches, 60 epochs: ~0.3 s an epoch here), so task 1 is
    # still training when it is cancelled; with the tiny default shape a task can finish (the compile cached)
    # before scancel lands.
    grid = run.grid(seeds=4, data__n_samples=4096, model__width=256, train__epochs=60)
    sub = launch(grid, run.options(trials_per_task=2))
    job = sub.arrays[0].job_id
    (manifest,) = read_manifests(run.paths)
    keys = manifest["arrays"][0]["task_keys"]

    def both_running():
        q = squeue(run.name) or {}
        return all(q.get(f"{job}_{a}") and q[f"{job}_{a}"].running for a in (0, 1))

    wait_for(both_running, 120, "both tasks running")
    subprocess.run(["scancel", f"{job}_1"], check=True, timeout=30)
    report = run.wait_status(lambda r: r.active == 0, 300, "task 0 done and task 1 gone")
    assert report.counts["done"] == 2 and report.counts["lost"] == 2, report.counts
    final_states([f"{job}_1"])
    (problem,) = run.status().problems
    assert problem.job_id == f"{job}_1" and problem.task_key == keys[1] and problem.state == "lost"
    assert "CANCELLED" in problem.reason

    rerun = launch(grid, run.options(trials_per_task=2))
    assert rerun.trials == 2 and rerun.skipped["done"] == 2
    newest = read_manifests(run.paths)[-1]
    assert sorted(t for ids in newest["tasks"].values() for t in ids) == sorted(manifest["tasks"][keys[1]])
    report = run.wait_status(lambda r: r.active == 0, 300, "the relaunched task to finish")
    assert report.counts["done"] == 4 and report.counts["lost"] == 0
    assert [a.superseded for a in report.arrays] == [2, 0]


def test_grid_larger_than_max_array_size_splits_into_arrays_and_cancel_stops_them(run):
    grid = run.grid(seeds=7)
    sub = launch(grid, run.options(trials_per_task=1, max_array_size=3, max_parallel=1))
    assert [a.tasks for a in sub.arrays] == [3, 3, 1] and sub.trials == 7
    manifest = read_manifests(run.paths)[0]
    assert [len(a["task_keys"]) for a in manifest["arrays"]] == [3, 3, 1]
    scripts = sorted(run.paths.slurm_dir.glob("*_submission.sh"))
    assert any("--array=0-2%1" in s.read_text() for s in scripts)
    ids = [a.job_id for a in sub.arrays]
    queued = squeue(run.name)
    assert {q.split("_")[0] for q in queued} == set(ids)
    assert run.status().active == 7
    again = launch(grid, run.options(trials_per_task=1, max_array_size=3))
    assert again.trials == 0 and again.skipped == {"done": 0, "queued": 7, "failed": 0}
    assert sorted(cancel(run.name, run.root), key=int) == sorted(ids, key=int)
    report = run.wait_status(lambda r: r.active == 0, 60, "the cancelled arrays to leave the queue")
    assert report.counts["lost"] + report.counts["done"] == 7
    assert cancel(run.name, run.root) == []
    json.dumps(report.to_json())
