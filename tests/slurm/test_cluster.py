"""The local SLURM cluster really runs submitit array jobs, and accounting reports their final states.

These talk to the cluster that `scripts/slurm-dev-cluster up` starts (see docs/slurm-dev-cluster.md). Each test
uses a fresh submitit folder: job ids restart at 1 after `scripts/slurm-dev-cluster reset`, and a reused folder
could hand back a stale result. `sacct` lags the end of a job by up to a few seconds, so final states are
polled against a deadline instead of asserted once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

submitit = pytest.importorskip("submitit")

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

# The worker unpickles the task in a fresh interpreter where this test module is not importable
# (pytest put tests/slurm on sys.path, the worker does not), so ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

JOB_DEADLINE_S = 180  # 2 cores shared with other work: a task's interpreter start can take a while
SACCT_DEADLINE_S = 30


def square_and_mark(x: int, out_dir: str) -> dict:
    """Task body: write a marker file named after the array index, return x**2 and where it ran."""
    task_id = os.environ["SLURM_ARRAY_TASK_ID"]
    Path(out_dir, f"task-{task_id}.txt").write_text(f"{x}\n")
    return {
        "square": x * x,
        "task_id": int(task_id),
        "array_job_id": os.environ["SLURM_ARRAY_JOB_ID"],
        "host": socket.gethostname(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def sleep_long(seconds: float) -> str:
    time.sleep(seconds)
    return "not cancelled"


def raise_value_error() -> None:
    raise ValueError("task failed on purpose")


def visible_gpus() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def make_executor(folder: Path, partition: str = "cpu", **params) -> submitit.SlurmExecutor:
    # Plain folder (no %j): Slurm 22.05 fails silently when the --output folder is missing.
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
    executor.update_parameters(partition=partition, time=10, ntasks_per_node=1, cpus_per_task=1, **params)
    return executor


def wait_done(jobs, deadline_s: float = JOB_DEADLINE_S) -> None:
    """Poll until every job is done (result file or final sacct state); fail with the logs after the deadline."""
    end = time.monotonic() + deadline_s
    while not all(job.done() for job in jobs):
        if time.monotonic() > end:
            states = {job.job_id: job.watcher.get_state(job.job_id, mode="force") for job in jobs}
            logs = "\n".join(_log_tail(job) for job in jobs)
            pytest.fail(f"jobs not done after {deadline_s}s: {states}\n{logs}")
        time.sleep(0.5)


def _log_tail(job) -> str:
    out = []
    for path in (job.paths.stdout, job.paths.stderr):
        text = path.read_text(errors="replace")[-1500:] if path.exists() else "(missing)"
        out.append(f"--- {path}:\n{text}")
    return "\n".join(out)


def sacct_states(array_job_id: str) -> dict[str, str]:
    """JobID -> State for the allocation lines of one (array) job, straight from sacct."""
    r = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", array_job_id, "-o", "JobID,State"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, f"sacct failed: {r.stderr}"
    return dict(line.split("|", 1) for line in r.stdout.splitlines() if line)


def poll_sacct(array_job_id: str, ok, deadline_s: float = SACCT_DEADLINE_S) -> dict[str, str]:
    """Poll sacct until ok(states) holds; sacct lags a job's end by 0.1-2.6 s on these machines."""
    end = time.monotonic() + deadline_s
    while True:
        states = sacct_states(array_job_id)
        if ok(states):
            return states
        if time.monotonic() > end:
            pytest.fail(f"sacct states of job {array_job_id} after {deadline_s}s: {states}")
        time.sleep(0.5)


def wait_running(job, deadline_s: float = JOB_DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while job.watcher.get_state(job.job_id, mode="force") != "RUNNING":
        if time.monotonic() > end:
            pytest.fail(f"job {job.job_id} not RUNNING after {deadline_s}s: {job.state}")
        time.sleep(0.5)


def test_array_job_runs_every_task_and_sacct_reports_completed(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    executor = make_executor(tmp_path / "submitit", array_parallelism=2)
    xs = [3, 4, 5]
    t0 = time.monotonic()
    jobs = executor.map_array(square_and_mark, xs, [str(out_dir)] * len(xs))
    assert len(jobs) == 3
    array_id = jobs[0].job_id.split("_")[0]
    assert [job.job_id for job in jobs] == [f"{array_id}_{i}" for i in range(3)]

    wait_done(jobs)
    results = [job.result() for job in jobs]
    elapsed = time.monotonic() - t0

    assert [r["square"] for r in results] == [9, 16, 25]
    assert [r["task_id"] for r in results] == [0, 1, 2]
    assert {r["array_job_id"] for r in results} == {array_id}
    assert {r["host"] for r in results} == {socket.gethostname()}
    assert sorted(p.name for p in out_dir.iterdir()) == ["task-0.txt", "task-1.txt", "task-2.txt"]
    assert [(out_dir / f"task-{i}.txt").read_text() for i in range(3)] == ["3\n", "4\n", "5\n"]

    states = poll_sacct(array_id, lambda s: len(s) == 3 and set(s.values()) == {"COMPLETED"})
    assert set(states) == {f"{array_id}_{i}" for i in range(3)}
    # submitit reads the same states through its own sacct watcher
    for job in jobs:
        assert job.watcher.get_state(job.job_id, mode="force") == "COMPLETED"
    print(f"3-task array job {array_id}: submit to last result {elapsed:.1f}s")


def test_cancelled_job_is_seen_as_cancelled(tmp_path: Path) -> None:
    executor = make_executor(tmp_path / "submitit")
    job = executor.submit(sleep_long, 600)
    wait_running(job)
    job.cancel()
    # submitit's task ignores SIGTERM (it waits for USR2), so scancel kills it after KillWait (5 s)
    states = poll_sacct(job.job_id, lambda s: s.get(job.job_id, "").startswith("CANCELLED"))
    assert states[job.job_id].startswith("CANCELLED")
    wait_done([job], deadline_s=SACCT_DEADLINE_S)
    assert job.state.startswith("CANCELLED")
    with pytest.raises(submitit.core.utils.UncompletedJobError, match="has not produced any output"):
        job.result()


def test_failing_task_is_failed_in_sacct_and_raises(tmp_path: Path) -> None:
    executor = make_executor(tmp_path / "submitit")
    job = executor.submit(raise_value_error)
    wait_done([job])
    with pytest.raises(submitit.core.utils.FailedJobError, match="task failed on purpose"):
        job.result()
    poll_sacct(job.job_id, lambda s: s.get(job.job_id) == "FAILED")


def test_gpu_partition_hands_out_fake_gpus(tmp_path: Path) -> None:
    executor = make_executor(tmp_path / "submitit", partition="gpu", gpus_per_node=1)
    job = executor.submit(visible_gpus)
    wait_done([job])
    assert job.result() in {"0", "1"}


def test_sbatch_rejects_array_index_beyond_max_array_size() -> None:
    """MaxArraySize caps the array *index*; submitit never splits, so the launcher must (docs: MaxArraySize)."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    max_size = int(next(line.split("=")[1] for line in config.splitlines() if line.startswith("MaxArraySize")))
    r = subprocess.run(
        ["sbatch", "--parsable", "--hold", f"--array={max_size}-{max_size}", "-o", "/dev/null", "--wrap", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode == 0:  # should not happen; do not leave a held job behind
        subprocess.run(["scancel", r.stdout.strip()], timeout=30)
    assert r.returncode != 0
    assert "Invalid job array specification" in r.stderr


# ---------------------------------------------------------------- the script itself (non-disruptive checks only;
# `scripts/slurm-dev-cluster selftest` covers down/up twice in a row, and .ci/run runs it before the tests)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm-dev-cluster"
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")


def run_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}
    )


def daemon_pids(status_out: str) -> dict[str, str]:
    pids = {}
    for line in status_out.splitlines():
        words = line.split()
        if len(words) >= 4 and words[0] in DAEMONS and words[1] == "running":
            pids[words[0]] = words[3].rstrip(")")
    return pids


def test_status_reports_every_daemon_and_a_usable_cluster() -> None:
    r = run_script("status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "cluster usable" in r.stdout
    assert set(daemon_pids(r.stdout)) == set(DAEMONS), r.stdout
    assert "sacct answers" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/slurm-dev-cluster up needs root")
def test_up_on_a_running_cluster_changes_nothing() -> None:
    before = daemon_pids(run_script("status").stdout)
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    current = next(line.split("=")[1].strip() for line in config.splitlines() if line.startswith("MaxArraySize"))
    # keep the MaxArraySize in force: a plain `up` would reset it to the default
    r = run_script("up", env={"PCSWEEP_SLURM_MAX_ARRAY_SIZE": current})
    assert r.returncode == 0, r.stderr
    assert "already up" in r.stderr
    assert daemon_pids(run_script("status").stdout) == before


def test_help_lists_every_command() -> None:
    r = run_script("help")
    assert r.returncode == 0
    for command in ("install", "up", "down", "status", "reset", "selftest", "logs"):
        assert f"\n  {command} " in r.stdout
    bad = run_script("frobnicate")
    assert bad.returncode != 0
    assert "unknown command 'frobnicate'" in bad.stderr
