"""The task callable on real pcx training (CPU JAX), in this process: shards, failure records, checkpoint."""

from __future__ import annotations

import json
import pickle

import pytest

from contracts.failures import FIELDS as FAILED_KEYS
from contracts.paths import RunPaths
from contracts.shard import open_shard, read_shard
from grids.grid import grid_from_mapping
from launch.compat import store_grid
from launch.task import PcsweepTask, TaskError

# Two static groups (width 8 and 12), two seeds each; 1 epoch of 4 batches.
TWO_GROUPS = {
    "name": "tasktest",
    "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                 "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
    "sweep": [{"axes": {"model.width": [8, 12], "seed": [0, 1]}},
              {"set": {"data.dataset": "mnist"}, "axes": {"seed": [5]}}],
}


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run folder holding the grid; PCSWEEP_DATA points at an empty folder, so mnist raises."""
    (tmp_path / "nodata").mkdir()
    monkeypatch.setenv("PCSWEEP_DATA", str(tmp_path / "nodata"))
    grid = grid_from_mapping(TWO_GROUPS, source="tasktest.yaml")
    paths = RunPaths.of(grid.name, tmp_path / "runs")
    store_grid(grid, paths)
    moons = [c.trial_id for c in grid.trials if c.data.dataset == "two_moons"]
    mnist = [c.trial_id for c in grid.trials if c.data.dataset == "mnist"]
    return paths, moons, mnist


def test_task_writes_one_valid_shard_and_a_record_per_raising_trial(run):
    paths, moons, mnist = run
    task = PcsweepTask(str(paths.root), paths.grid, "k-mixed", tuple(moons + mnist))
    paths.failed_dir.mkdir(parents=True)
    paths.failed(moons[0]).write_text("{}")  # a stale record from an earlier attempt
    with pytest.raises(TaskError, match=r"1 of 5 trial\(s\) raised: " + mnist[0]):
        task()
    with open_shard(paths.shard("k-mixed")) as shard:
        assert sorted(shard.trial_ids) == sorted(moons)
        assert shard.attrs["task_key"] == "k-mixed" and shard.attrs["grid"] == "tasktest"
        assert shard.attrs["attempt"] == 0 and len(shard.attrs["git_sha"]) > 0
    assert not paths.failed(moons[0]).exists(), "a finished trial keeps no stale failure record"
    record = json.loads(paths.failed(mnist[0]).read_text())
    assert set(record) == set(FAILED_KEYS)
    assert record["trial_id"] == mnist[0] and record["task_key"] == "k-mixed" and record["attempt"] == 0
    assert "DataError" in record["error"] and "DataError" in record["traceback_tail"]
    # the task pickles small: no results travel with it
    assert len(pickle.dumps(task)) < 2000 and pickle.loads(pickle.dumps(task))._finished == []


def test_checkpoint_saves_finished_trials_and_requeues_only_the_rest(run, monkeypatch):
    """What submitit's USR2 handler does mid-task: checkpoint(), then sys.exit in the handler."""
    paths, moons, _ = run
    import pc.trials

    real = pc.trials.iter_trial_results
    task = PcsweepTask(str(paths.root), paths.grid, "k-ckpt", tuple(moons))
    seen = []

    def interrupted(configs, **kw):
        for item in real(configs, **kw):
            seen.append(item.trial_id)
            yield item
            if len(seen) == 2:  # the first group (two trials) finished: the signal arrives
                delayed.append(task.checkpoint())
                raise SystemExit(-1)

    delayed = []
    monkeypatch.setattr(pc.trials, "iter_trial_results", interrupted)
    with pytest.raises(SystemExit, match="-1"):
        task()
    first = [t.trial_id for t in read_shard(paths.shard("k-ckpt"))]
    assert first == seen
    nxt = delayed[0].function
    assert isinstance(nxt, PcsweepTask) and nxt.attempt == 1 and nxt.task_key == "k-ckpt"
    assert sorted(nxt.trial_ids) == sorted(set(moons) - set(first))
    monkeypatch.setattr(pc.trials, "iter_trial_results", real)
    summary = pickle.loads(pickle.dumps(nxt))()  # the requeued attempt, as submitit unpickles it
    assert summary["done"] == 2 and summary["shard"].endswith("k-ckpt.a1.h5")
    with open_shard(paths.shard("k-ckpt.a1")) as shard:
        assert sorted(shard.trial_ids) == sorted(nxt.trial_ids) and shard.attrs["attempt"] == 1
    # a second run of the same attempt never overwrites the first's shard
    assert nxt() and paths.shard("k-ckpt.a1.2").exists()


def test_task_refuses_trial_ids_that_are_not_in_the_grid(run):
    paths, moons, _ = run
    with pytest.raises(TaskError, match=r"1 trial id\(s\) of this task were never launched into this run folder "
                                        r"\(first: feedfacefeedface\)"):
        PcsweepTask(str(paths.root), paths.grid, "k-bad", ("feedfacefeedface", moons[0]))()
    assert not paths.shard("k-bad").exists()


def test_a_platform_jax_cannot_start_fails_every_trial_with_the_reason(run):
    """--platform cuda on a machine without a GPU: each trial gets a failed/ record saying why (status then
    shows them failed with that line, not "lost" with a traceback footer), and the task exits 1 in one line."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    paths, moons, _ = run
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "launch.task", "--root", str(paths.root), "--grid", paths.grid,
                        "--task-key", "k-cuda", *moons], cwd=repo, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cuda", "PYTHONPATH": str(repo)})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "JAX cannot start its backend" in r.stderr and f"{len(moons)} of {len(moons)} trial(s) raised" in r.stderr
    for tid in moons:
        record = json.loads(paths.failed(tid).read_text())
        assert record["error"].startswith("JAX cannot start its backend (") and "--platform cpu" in record["error"]
    assert not paths.shards_dir.exists() or not list(paths.shards_dir.glob("*.h5"))
