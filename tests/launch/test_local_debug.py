"""Local and debug executors end to end, without SLURM: the same task code, real pcx, real shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contracts.paths import RunPaths
from contracts.shard import open_shard
from grids.grid import grid_from_mapping
from launch.cancel import cancel
from launch.manifest import read_manifests
from launch.options import LaunchOptions
from launch.status import status_report
from launch.submit import launch

REPO = Path(__file__).resolve().parents[2]
MOONS = {
    "name": "localtest",
    "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                 "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
    "sweep": [{"axes": {"seed": [0, 1, 2, 3]}}],
}
MNIST_YAML = """\
name: nodata
defaults:
  data: {dataset: mnist, batch_size: 16}
  model: {width: 8}
  train: {epochs: 1, T: 2}
sweep:
  - axes: {seed: [0]}
"""


def options(root: Path, **kw) -> LaunchOptions:
    return LaunchOptions(root=root, **{"executor": "local", "platform": "cpu", "gpus": 0, **kw})


def all_shard_ids(paths: RunPaths) -> list[str]:
    ids = []
    for shard_path in paths.shards_dir.glob("*.h5"):
        with open_shard(shard_path) as shard:
            ids += shard.trial_ids
    return ids


def test_local_executor_runs_every_task_and_a_relaunch_submits_nothing(tmp_path):
    grid = grid_from_mapping(MOONS, source="localtest.yaml")
    sub = launch(grid, options(tmp_path, jobs=2, trials_per_task=2))
    assert (sub.executor, sub.trials, sub.tasks, sub.failed_tasks, sub.exit_code) == ("local", 4, 2, (), 0)
    paths = RunPaths.of("localtest", tmp_path)
    assert sorted(all_shard_ids(paths)) == sorted(grid.trial_ids)
    (manifest,) = read_manifests(paths)
    assert manifest["executor"] == "local" and manifest["python_command"] is None
    assert sorted(t for ids in manifest["tasks"].values() for t in ids) == sorted(grid.trial_ids)
    assert all(Path(log).exists() for log in sub.logs)
    report = status_report("localtest", tmp_path)
    assert report.counts["done"] == 4 and report.active == 0 and report.counts["lost"] == 0
    again = launch(grid, options(tmp_path))
    assert again.trials == 0 and again.skipped["done"] == 4 and again.manifest is None
    assert "nothing to submit" in again.render()
    assert len(read_manifests(paths)) == 1


def test_local_failure_leaves_a_record_and_exit_1_and_rerun_failed_retries_it(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PCSWEEP_DATA", str(tmp_path / "empty"))
    grid_file = tmp_path / "nodata.yaml"
    grid_file.write_text(MNIST_YAML)
    cmd = [sys.executable, "-m", "launch", str(grid_file), "--executor", "local", "--platform", "cpu",
           "--gpus", "0", "--root", str(tmp_path / "runs")]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed" in r.stdout
    paths = RunPaths.of("nodata", tmp_path / "runs")
    (record_path,) = paths.failed_dir.glob("*.json")
    record = json.loads(record_path.read_text())
    assert "DataError" in record["error"] and record["job_id"].startswith("local:")
    assert "DataError" in Path(record["log_paths"][0]).read_text()
    r = subprocess.run([sys.executable, "-m", "launch", "status", "nodata", "--root", str(tmp_path / "runs"),
                        "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    status = json.loads(r.stdout)
    assert status["counts"]["failed"] == 1 and "DataError" in status["problems"][0]["reason"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "nothing to submit" in r.stdout and "1 failed" in r.stdout
    r = subprocess.run(cmd + ["--rerun-failed"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "1 trials in 1 tasks" in r.stdout
    assert len(read_manifests(paths)) == 2


def test_debug_runs_one_trial_in_this_process_even_if_done(tmp_path):
    grid = grid_from_mapping(MOONS, source="localtest.yaml")
    trial = grid.trial_ids[1]
    sub = launch(grid, options(tmp_path, executor="debug", only=(trial,)))
    assert (sub.executor, sub.trials, sub.tasks) == ("debug", 1, 1)
    paths = RunPaths.of("localtest", tmp_path)
    (manifest,) = read_manifests(paths)
    assert manifest["arrays"][0]["job_id"].endswith(f":{os.getpid()}")  # this process ran it
    assert "pc.trials" in sys.modules
    assert all_shard_ids(paths) == [trial]
    again = launch(grid, options(tmp_path, executor="debug", only=(trial,)))  # --only in debug implies force
    assert again.trials == 1 and all_shard_ids(paths) == [trial, trial]
    with pytest.raises(Exception, match="--only"):
        options(tmp_path, executor="debug")


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def test_cancel_stops_a_running_local_launch_and_its_tasks(tmp_path):
    grid_file = tmp_path / "localtest.yaml"
    grid_file.write_text(json.dumps(MOONS))  # JSON is YAML
    root = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "launch", str(grid_file), "--executor", "local", "--platform",
                             "cpu", "--gpus", "0", "--root", str(root)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    paths = RunPaths.of("localtest", root)
    try:
        deadline = time.monotonic() + 60
        def task_started() -> bool:
            return any(p != proc.pid for p in _processes_mentioning(str(root.resolve())))

        while not (status_report("localtest", root).counts["running"] == 4 and task_started()):
            assert time.monotonic() < deadline and proc.poll() is None, "the local launch never started its task"
            time.sleep(0.5)
        assert cancel("localtest", root) == [f"local:{os.uname().nodename}:{proc.pid}"]
        assert proc.wait(timeout=30) == 143
        assert not task_started(), "a task outlived cancel"
        report = status_report("localtest", root)
        assert report.counts["lost"] == 4 and report.active == 0
        assert not list((paths.slurm_dir / "local").glob("*.running"))
        assert cancel("localtest", root) == []
    finally:
        if proc.poll() is None:
            proc.kill()
