"""One plan for the dry run and the launch; nothing stored by a failed launch; the run-folder lock;
local processes identified by host, pid and start time (real processes, real files, real trainings)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from contracts.lock import LockHeld, RunLock, process_start_time
from contracts.paths import RunPaths
from grids.grid import grid_from_mapping
from launch.cancel import cancel
from launch.manifest import read_manifests, write_manifest
from launch.options import LaunchOptions, OptionsError
from launch.prepare import prepare_launch, select_trials
from launch.status import status_report
from launch.submit import launch
from launch.trial_states import LocalProcess, local_job_id, local_marker, local_running, write_local_marker

REPO = Path(__file__).resolve().parents[2]
MOONS = {
    "name": "rules",
    "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                 "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
    "sweep": [{"axes": {"seed": [0, 1, 2, 3]}}],
}


def options(root: Path, **kw) -> LaunchOptions:
    return LaunchOptions(root=root, **{"executor": "local", "platform": "cpu", "gpus": 0, **kw})


def grid(overrides=()):
    return grid_from_mapping(MOONS, source="rules.yaml", overrides=overrides)


def test_the_dry_run_plan_is_the_plan_launch_submits(tmp_path):
    g = grid()
    opts = options(tmp_path, trials_per_task=3, max_array_size=1)
    planned = prepare_launch(g, opts)
    sub = launch(g, opts)
    (manifest,) = read_manifests(RunPaths.of("rules", tmp_path))
    stamp = manifest["stamp"]
    assert manifest["tasks"] == {f"{stamp}-{t.task_key}": list(t.trial_ids) for t in planned.plan.tasks}
    assert [a["task_keys"] for a in manifest["arrays"]] == [
        [f"{stamp}-{planned.plan.tasks[i].task_key}" for i in ix] for ix in planned.plan.arrays]
    assert (sub.trials, sub.tasks, len(sub.arrays)) == (4, 2, 2)
    assert manifest["python_command"] == planned.python and sub.failed_tasks == ()


def test_a_bad_only_id_stores_nothing_and_the_next_launch_is_not_refused(tmp_path):
    paths = RunPaths.of("rules", tmp_path)
    with pytest.raises(OptionsError, match="--only feedfacefeedface: not a trial of grid 'rules'"):
        launch(grid(["train.epochs=2"]), options(tmp_path, only=("feedfacefeedface",)))
    assert not paths.folder.exists(), "a refused launch writes nothing, not even the lock"
    g = grid()
    assert prepare_launch(g, options(tmp_path)).conflict is None
    sub = launch(g, options(tmp_path, only=(g.trial_ids[0],)))
    assert sub.trials == 1 and sub.failed_tasks == () and paths.grid_yaml.exists()


def test_a_held_lock_refuses_the_launch_and_wait_waits_for_it(tmp_path):
    g = grid()
    paths = RunPaths.of("rules", tmp_path)
    with RunLock(paths.lock, "collect"), pytest.raises(LockHeld, match=r"the run folder is locked \(collect by pid"):
        launch(g, options(tmp_path))
    assert not paths.grid_yaml.exists() and not paths.submissions_dir.exists()
    lock = RunLock(paths.lock, "collect")
    lock.acquire()
    timer = threading.Timer(1.0, lock.release)
    timer.start()
    t0 = time.monotonic()
    sub = launch(g, options(tmp_path, only=(g.trial_ids[1],), wait_s=60))
    timer.join()
    assert sub.trials == 1 and time.monotonic() - t0 >= 0.9
    assert not paths.lock.exists()


def test_two_relaunches_at_once_never_submit_the_same_trial(tmp_path):
    grid_file = tmp_path / "rules.yaml"
    grid_file.write_text(json.dumps(MOONS))  # JSON is YAML
    root = tmp_path / "runs"
    cmd = [sys.executable, "-m", "launch", str(grid_file), "--executor", "local", "--platform", "cpu",
           "--gpus", "0", "--trials-per-task", "2", "--root", str(root), "--wait", "120"]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    manifests = read_manifests(RunPaths.of("rules", root))
    sent = [t for m in manifests for ids in m["tasks"].values() for t in ids]
    assert sorted(sent) == sorted(set(sent)) and len(set(sent)) == 4, outputs
    assert any("nothing to submit" in out for out in outputs) or len(manifests) == 2


def _marker(paths: RunPaths, stamp: str, process: LocalProcess, g) -> str:
    job_id = f"local:{process.host}:{process.pid}"
    write_manifest(paths, {"grid": "rules", "stamp": stamp, "executor": "local", "tasks": {"k": list(g.trial_ids)},
                           "arrays": [{"job_id": job_id, "task_keys": ["k"]}], "sbatch": {}, "image": None,
                           "python_command": None, "git_sha": "x", "git_dirty": False, "versions": {},
                           "options": {}})
    write_local_marker(paths, stamp, process)
    return job_id


def test_a_reused_pid_is_not_running_not_queued_and_never_signalled(tmp_path):
    g = grid()
    paths = RunPaths.of("rules", tmp_path)
    me = LocalProcess.of(os.getpid())
    reused = LocalProcess(me.host, me.pid, str(int(me.start_time) - 1))  # this pid, another process's start
    job_id = _marker(paths, "s1", reused, g)
    assert local_running(paths, "s1", job_id) is False
    keep, skipped = select_trials(g, paths, options(tmp_path))
    assert len(keep) == 4 and skipped["queued"] == 0
    assert cancel("rules", tmp_path) == []  # had it signalled this pid, this test would be dead
    assert status_report("rules", tmp_path).counts["lost"] == 4


def test_a_launcher_killed_with_sigkill_leaves_a_marker_that_is_not_believed(tmp_path):
    g = grid()
    paths = RunPaths.of("rules", tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job_id = _marker(paths, "s1", LocalProcess.of(proc.pid), g)
        assert local_running(paths, "s1", job_id) is True
        assert select_trials(g, paths, options(tmp_path))[1]["queued"] == 4
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert local_marker(paths, "s1").exists() and local_running(paths, "s1", job_id) is False
    assert select_trials(g, paths, options(tmp_path))[1]["queued"] == 0
    assert cancel("rules", tmp_path) == []


def test_pid_1_and_a_marker_of_another_launcher_are_never_signalled(tmp_path):
    g = grid()
    paths = RunPaths.of("rules", tmp_path)
    init = LocalProcess(LocalProcess.of(os.getpid()).host, 1, process_start_time(1) or "0")
    job_id = _marker(paths, "s1", init, g)
    assert local_running(paths, "s1", job_id) is False and cancel("rules", tmp_path) == []
    write_local_marker(paths, "s1", LocalProcess.of(os.getpid()))  # this process, but not job 1's launcher
    assert local_running(paths, "s1", job_id) is False and cancel("rules", tmp_path) == []
    assert local_job_id().endswith(f":{os.getpid()}")
