"""Failures on the real local SLURM cluster: a trial that raises, and a task that hits its time limit.

The raising trial is real: `data.dataset: mnist` with PCSWEEP_DATA pointing at an empty folder makes
pc raise its DataError (mnist is never installed here). The time limit is real too: once the task
has finished its first trial, its limit is lowered with `scontrol update` so SLURM sends USR2 at
once (`--signal=USR2@119`: submitit's signal_delay_s=119) and kills it at the limit; submitit calls
our `checkpoint`, requeues, and the requeued attempt runs only the unfinished trials.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_launch_run import final_states, fresh_run, tiny_doc, wait_for

from contracts.shard import open_shard
from launch.manifest import read_manifests
from launch.preflight import PreflightError
from launch.submit import SubmissionError, launch
from launch.trial_states import squeue

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]
# 128 batches of 16 per epoch at width 12-16: ~10-60 ms per epoch on a 2-core CPU (10 ms since tasks run
# XLA with the allocation's one thread instead of oversubscribing the node), so each heavy group trains 20 s+
HEAVY_EPOCHS = 2000


@pytest.fixture
def run(slurm_cluster, tmp_path):
    with fresh_run(tmp_path / "runs") as r:
        yield r


def test_raising_trial_leaves_failed_record_and_slurm_sees_failed(run, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PCSWEEP_DATA", str(tmp_path / "empty"))  # sbatch exports it to the task
    doc = tiny_doc(run.name, seeds=1)
    doc["defaults"]["data"] = {"dataset": "mnist", "batch_size": 16}
    grid = run.grid(doc)
    # the launch-time data check refuses this grid (next test); --no-preflight submits it to fail on the node
    sub = launch(grid, run.options(preflight=False))
    (trial,) = grid.trial_ids
    job = sub.arrays[0].job_id  # one task: submitit sends a plain job, not an array
    report = run.wait_status(lambda r: r.counts["failed"] == 1 and r.active == 0, 180, "the failure record")
    record = json.loads(run.paths.failed(trial).read_text())
    assert record["job_id"] == job and record["attempt"] == 0 and "DataError" in record["error"]
    assert any(p.endswith(f"{job}_0_log.err") for p in record["log_paths"])
    acct = final_states([job])
    assert acct[job].state == "FAILED" and acct[job].exit_code != "0:0"
    (problem,) = run.status().problems
    assert problem.state == "failed" and "FAILED" in problem.reason and "DataError" in problem.reason
    assert not list(run.paths.shards_dir.glob("*.h5")) if run.paths.shards_dir.exists() else True
    again = launch(grid, run.options(preflight=False))
    assert again.trials == 0 and again.skipped["failed"] == 1
    assert report.counts["done"] == 0


def test_missing_image_data_is_refused_before_anything_is_submitted(run, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PCSWEEP_DATA", str(tmp_path / "empty"))
    doc = tiny_doc(run.name, seeds=1)
    doc["defaults"]["data"] = {"dataset": "mnist", "batch_size": 16}
    with pytest.raises(PreflightError, match=r"mnist: IDX files .* not found.*--no-preflight"):
        launch(run.grid(doc), run.options())
    assert not run.paths.submissions_dir.exists() or not any(run.paths.submissions_dir.iterdir())
    assert not run.paths.slurm_dir.exists() and not run.paths.grid_yaml.exists()


def elapsed_s(job: str) -> int:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%M"], capture_output=True, text=True, timeout=30).stdout
    parts = [int(p) for p in re.split("[:-]", out.strip())] if out.strip() else [0]
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


def test_task_hitting_its_time_limit_checkpoints_and_requeue_keeps_finished_trials(run):
    # three static groups, one trial each, in one task: a quick one (1 epoch), then two that train
    # long enough (~25-40 s each on 2 cores) that the signal lands while they run. (With 2,048 samples they took
    # ~5 s once tasks ran XLA's legacy CPU runtime and kept small programs in the compile cache: too short.)
    doc = tiny_doc(run.name, seeds=1, data__n_samples=8192)
    doc["sweep"] = [{"joint": {"model.width, train.epochs": [[8, 1], [12, HEAVY_EPOCHS], [16, HEAVY_EPOCHS]]}}]
    grid = run.grid(doc)
    sub = launch(grid, run.options(time_min=10, signal_delay_s=119))
    job = sub.arrays[0].job_id
    (manifest,) = read_manifests(run.paths)
    (key,) = manifest["tasks"]
    log = run.paths.slurm_dir / f"{job}_0_log.out"

    wait_for(lambda: log.exists() and log.read_text().count("pcsweep: trial ") >= 1, 240, "the first finished trial")
    limit_min = math.ceil((elapsed_s(job) + 20) / 60)  # a limit 20-80 s away: USR2 now, kill at the limit
    subprocess.run(["scontrol", "update", f"JobId={job}", f"TimeLimit={limit_min}"], check=True, timeout=30)

    def requeued():
        text = log.read_text()
        return "checkpoint of task" in text and "Requeued job" in (text + run.log_text())

    wait_for(requeued, 150, "the checkpoint and the requeue")
    # give the requeued attempt its time back, before it starts (the requeue round trip is ~40 s)
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=10"], check=True, timeout=30)
    first = run.shard_ids()
    assert list(first) == [key] and 1 <= len(first[key]) < 3, first
    assert run.status().counts["done"] == len(first[key])

    report = run.wait_status(lambda r: r.counts["done"] == 3, 240, "the requeued attempt to finish the rest")
    assert report.counts["lost"] == 0 and report.counts["failed"] == 0
    shards = run.shard_ids()
    assert shards[key] == first[key], "the first attempt's shard is never rewritten"
    rest = [k for k in shards if k != key]
    assert rest and all(k.startswith(f"{key}.a") for k in rest)
    ids = [t for k in shards for t in shards[k]]
    assert sorted(ids) == sorted(grid.trial_ids) and len(ids) == len(set(ids)), "no trial trained twice"
    with open_shard(run.paths.shard(rest[0])) as shard:
        assert shard.attrs["attempt"] >= 1
    text = run.log_text()
    assert "timed-out" in text and "Calling checkpoint method" in text
    assert final_states([job])[job].state == "COMPLETED"
    assert squeue(run.name) == {}


def test_a_refused_sbatch_stores_nothing_and_the_next_launch_is_not_refused(run):
    """sbatch refuses an unknown partition: no grid.yaml, no manifest; a corrected launch (even of a grid
    that would conflict with the refused one's) then goes out."""
    grid = run.grid(tiny_doc(run.name, seeds=1))
    with pytest.raises(PreflightError, match="no-such-partition: .* no such partition"):
        launch(grid, run.options(partition="no-such-partition"))  # the preflight refuses first ...
    assert not run.paths.root.exists()
    with pytest.raises(SubmissionError, match="sbatch refused array 1 of 1"):  # ... and sbatch without it
        launch(grid, run.options(partition="no-such-partition", preflight=False))
    assert not run.paths.grid_yaml.exists()
    assert not list(run.paths.submissions_dir.glob("*.json")) if run.paths.submissions_dir.exists() else True
    assert not run.paths.lock.exists()
    doc = tiny_doc(run.name, seeds=1)
    doc["defaults"]["train"]["epochs"] = 2  # other trial ids: refused had the first grid.yaml been kept
    sub = launch(run.grid(doc), run.options(sbatch={"begin": "now+1hour"}))
    assert sub.trials == 1 and len(read_manifests(run.paths)) == 1


def _unreachable_conf(tmp_path) -> dict[str, str]:
    """The dev cluster's SLURM config with the controller moved to a port nothing listens on: real scontrol and
    sbatch then fail with "Unable to contact slurm controller", as on a cluster whose controller is down."""
    conf_dir = tmp_path / "slurm-conf"
    shutil.copytree("/etc/slurm", conf_dir, ignore=shutil.ignore_patterns("*.key", "slurmdbd.conf"))
    conf = conf_dir / "slurm.conf"
    text = re.sub(r"(?im)^\s*SlurmctldPort\s*=.*$", "", conf.read_text())
    conf.write_text(f"{text}\nSlurmctldPort=9\n")  # discard: refused at once
    return {**os.environ, "SLURM_CONF": str(conf), "PYTHONPATH": str(REPO)}


def _error_lines(r: subprocess.CompletedProcess) -> list[str]:
    """stderr of a refused launch without launch.scheduler_call's progress lines (scontrol retries a controller it
    cannot reach for seconds, so "waiting for `scontrol ...`" may come first): exit 2, no traceback."""
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    return [line for line in r.stderr.strip().splitlines() if not line.startswith("launch: waiting for `")]


def test_a_controller_that_does_not_answer_gives_one_line_and_writes_nothing(run, tmp_path):
    """The preflight sees scontrol fail and refuses before the run folder exists; with --no-preflight sbatch fails,
    and its own stderr line is folded into our one line (no second line), with no manifest or task pickle left."""
    grid_file = tmp_path / "tiny.yaml"
    grid_file.write_text(json.dumps(tiny_doc(run.name, seeds=1)))
    env = _unreachable_conf(tmp_path)
    cmd = [sys.executable, "-m", "launch", str(grid_file), "--root", str(run.paths.root.parent), "--no-container",
           "--platform", "cpu", "--executor", "slurm"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    (error,) = _error_lines(r)
    assert "SLURM does not answer here (scontrol: " in error and "contact slurm controller" in error
    assert "--no-preflight" in error and not run.paths.root.exists()
    r = subprocess.run([*cmd, "--no-preflight"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    (error,) = _error_lines(r)
    assert "sbatch refused array 1 of 1 (sbatch: error: " in error and "nothing was submitted" in error
    assert "recorded in" not in error
    assert not list(run.paths.submissions_dir.glob("*")) and not list(run.paths.slurm_dir.glob("*.pkl"))
    assert not run.paths.lock.exists() and not run.paths.grid_yaml.exists()
