"""Results kept per group, live progress and thread counts: the task on real pcx training (CPU JAX), and a
local launch whose task is killed with SIGKILL after its first group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contracts.paths import RunPaths
from contracts.shard import open_shard
from grids.grid import grid_from_mapping
from launch.compat import store_grid
from launch.dryrun import dry_run
from launch.environment import thread_environment
from launch.manifest import read_manifests
from launch.options import LaunchOptions
from launch.progress import TaskProgress, grid_eta, progress_path, read_progress
from launch.status import render_status, status_report
from launch.task import PcsweepTask
from launch.trial_states import read_local_marker

REPO = Path(__file__).resolve().parents[2]
TWO_GROUPS = {  # width 8 (2 trials, 1 epoch) then width 12 (2 trials, 2 epochs): two static groups
    "name": "groups",
    "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                 "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
    "sweep": [{"axes": {"seed": [0, 1]}}, {"set": {"model.width": 12, "train.epochs": 2}, "axes": {"seed": [0, 1]}}],
}


@pytest.fixture
def run(tmp_path):
    grid = grid_from_mapping(json.loads(json.dumps(TWO_GROUPS)), source="groups.yaml")
    paths = RunPaths.of(grid.name, tmp_path / "runs")
    store_grid(grid, paths)
    return grid, paths


def test_each_group_is_kept_as_it_ends_and_merged_at_the_end(run, monkeypatch, capsys):
    grid, paths = run
    import pc.trials

    real = pc.trials.iter_trial_results
    seen_at_second_group: list[list[str]] = []

    def watched(configs, **kw):
        hook = kw["on_group"]

        def on_group(ids):
            if seen_at_second_group == [] and hook is not None and list(paths.shards_dir.glob("*.g0.h5")):
                with open_shard(next(paths.shards_dir.glob("k.g0.h5"))) as part:
                    seen_at_second_group.append(sorted(part.trial_ids))
            hook(ids)

        yield from real(configs, **{**kw, "on_group": on_group})

    monkeypatch.setattr(pc.trials, "iter_trial_results", watched)
    summary = PcsweepTask(str(paths.root), grid.name, "k", tuple(grid.trial_ids))()
    first_group = sorted(grid.trial_ids[:2])
    assert seen_at_second_group == [first_group], "the first group's part exists before the second group trains"
    assert summary["done"] == 4 and summary["shard"].endswith("/k.h5")
    assert sorted(p.name for p in paths.shards_dir.glob("*.h5")) == ["k.h5"]  # parts merged and removed
    with open_shard(paths.shard("k")) as shard:
        assert sorted(shard.trial_ids) == sorted(grid.trial_ids) and shard.attrs["task_key"] == "k"
    out = capsys.readouterr().out
    assert "pcsweep: group 1/2, epoch 1/1, 2 trials," in out and "pcsweep: group 2/2, epoch 2/2, 2 trials," in out
    assert "s/epoch, task ETA" in out
    progress = json.loads(progress_path(paths, "k").read_text())
    assert progress["finished"] and progress["done"] == 4 and progress["trial_epochs_total"] == 2 + 4
    assert progress["group"] == 2 and progress["epochs"] == 2 and progress["s_per_epoch"] > 0


def test_a_single_group_is_renamed_not_rewritten(run):
    grid, paths = run
    PcsweepTask(str(paths.root), grid.name, "one", tuple(grid.trial_ids[:2]))()
    assert sorted(p.name for p in paths.shards_dir.glob("*.h5")) == ["one.h5"]
    with open_shard(paths.shard("one")) as shard:
        assert shard.attrs["task_key"] == "one" and sorted(shard.trial_ids) == sorted(grid.trial_ids[:2])


def test_sigkill_after_the_first_group_keeps_its_trials_and_relaunch_reruns_the_rest(tmp_path):
    """A local launch in a subprocess; its task is SIGKILLed as soon as the first group's part exists (the
    second group trains 400 epochs, so it is still in flight)."""
    doc = json.loads(json.dumps(TWO_GROUPS))
    doc["sweep"][1]["set"]["train.epochs"] = 400
    grid_file = tmp_path / "groups.yaml"
    grid_file.write_text(json.dumps(doc))
    root = tmp_path / "runs"
    paths = RunPaths.of("groups", root)
    launcher = subprocess.Popen([sys.executable, "-m", "launch", str(grid_file), "--root", str(root), "--executor",
                                 "local"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list(paths.shards_dir.glob("*.g0.h5")):
            assert launcher.poll() is None and time.monotonic() < deadline, "no part before the deadline"
            time.sleep(0.2)
        stamp = read_manifests(paths)[0]["stamp"]
        (task,) = read_local_marker(paths, stamp).tasks.values()
        os.killpg(task.pid, signal.SIGKILL)
        out, _ = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 1, out
    grid = grid_from_mapping(doc, source=str(grid_file))
    (part,) = paths.shards_dir.glob("*.h5")
    with open_shard(part) as shard:
        assert sorted(shard.trial_ids) == sorted(grid.trial_ids[:2])
    report = status_report("groups", root)
    assert report.counts["done"] == 2 and report.counts["lost"] == 2, render_status(report)
    again = dry_run(grid, LaunchOptions(root=root, executor="local"))
    assert again.trials == 2 and again.skipped["done"] == 2


def test_thread_counts_follow_the_allocation():
    env = thread_environment({"SLURM_CPUS_PER_TASK": "3", "XLA_FLAGS": "--xla_cpu_use_thunk_runtime=false",
                              "MKL_NUM_THREADS": "1"})
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3" and "MKL_NUM_THREADS" not in env
    assert "XLA_FLAGS" not in env  # XLA sizes its pool from the allocation's CPUs; a bad word here dropped flags
    assert thread_environment({}) == {} and thread_environment({"SLURM_CPUS_PER_TASK": "x"}) == {}


def test_a_task_keeps_the_legacy_cpu_runtime_flag_under_slurm(tmp_path):
    """Under SLURM_CPUS_PER_TASK the task's XLA_FLAGS must still reach XLA whole: only `--` flags, the legacy
    runtime flag among them (a stray word made XLA stop reading the rest)."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update({"SLURM_CPUS_PER_TASK": "2", "JAX_PLATFORMS": "cpu"})
    script = ("import os; from launch.environment import thread_environment; "
              "os.environ.update(thread_environment(os.environ)); import pc; "
              "print(os.environ['XLA_FLAGS']); import jax; jax.numpy.ones(2).block_until_ready()")
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                         cwd=str(REPO))
    assert run.returncode == 0, run.stderr
    flags = run.stdout.strip().split()
    assert flags == ["--xla_cpu_use_thunk_runtime=false"]


def test_eta_from_measured_epoch_times(tmp_path):
    now = 1000.0
    a = TaskProgress("a", 0, "1_0", trials=10, group=1, groups=1, group_trials=10, epochs=4, s_per_epoch=2.0,
                     trial_epochs_total=40, trial_epochs_done=20, eta_s=4.0, updated=now - 1)
    # 3 s left on the running task, plus 5 pending trials x 4 epochs x 0.2 s per trial-epoch, on one slot
    assert grid_eta([a], 5, now=now) == pytest.approx(3.0 + 5 * 4 * 0.2)
    assert grid_eta([], 5, now=now) is None
    assert TaskProgress.from_json({"task_key": "x"}) is None and TaskProgress.from_json([1]) is None
    paths = RunPaths.of("g", tmp_path)
    progress_path(paths, "bad").parent.mkdir(parents=True)
    progress_path(paths, "bad").write_text("{not json")
    assert read_progress(paths, ["bad", "missing"]) == {}
