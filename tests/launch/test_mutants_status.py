"""Status and relaunch decisions on literal squeue/sacct text and run-folder states (fast tier).

The scheduler is a real program on PATH that prints the literal text a test gives it and records its
arguments (as submitit tests its parsers on literal sacct text): what reaches the decisions is exactly
what squeue -o '%i|%T|%r' and sacct -P print. Each test names the mutant it exists to kill
(tests/README.md "Mutation testing").
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import time
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_manifest import fake_result as result

from contracts.failures import write_failure
from contracts.paths import RunPaths
from contracts.shard import write_shard
from grids.grid import grid_from_mapping
from launch.compat import store_grid
from launch.manifest import write_manifest
from launch.options import LaunchOptions, OptionsError
from launch.prepare import SubmissionError, queued_trials, select_trials
from launch.progress import TaskProgress, duration, progress_path
from launch.reasons import explain
from launch.status import ArrayStatus, Problem, StatusReport, render_status, status_report, watch
from launch.trial_states import LocalProcess, QueueEntry, write_local_marker

TINY = {
    "name": "tiny",
    "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                 "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
    "sweep": [{"axes": {"seed": [0, 1, 2, 3]}}],
}
SQUEUE_ARGS = ["--me", "-h", "-r", "-n", "pcsweep-tiny", "-o", "%i|%T|%r"]
SCRIPT = """#!/bin/sh
printf '%s\\n' "$@" > "{dir}/{name}.args"
cat "{dir}/{name}.out"
exit $(cat "{dir}/{name}.rc")
"""


class Scheduler:
    """`squeue` and `sacct` on PATH that print the text given to `answer` and record their arguments."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir()
        for name in ("squeue", "sacct"):
            script = folder / name
            script.write_text(SCRIPT.format(dir=folder, name=name))
            script.chmod(script.stat().st_mode | stat.S_IXUSR)
            self.answer(name, "")

    def answer(self, name: str, text: str, rc: int = 0) -> None:
        (self.folder / f"{name}.out").write_text(text)
        (self.folder / f"{name}.rc").write_text(str(rc))

    def args(self, name: str) -> list[str] | None:
        path = self.folder / f"{name}.args"
        return path.read_text().splitlines() if path.exists() else None


@pytest.fixture
def scheduler(tmp_path, monkeypatch) -> Scheduler:
    s = Scheduler(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{s.folder}{os.pathsep}{os.environ['PATH']}")
    return s


@pytest.fixture
def tiny(tmp_path):
    grid = grid_from_mapping(json.loads(json.dumps(TINY)), source="tiny.yaml")
    paths = RunPaths.of("tiny", tmp_path / "runs")
    store_grid(grid, paths)  # runs/tiny/grid.yaml: status counts the grid's trials
    return grid, paths


def submit(paths: RunPaths, stamp: str, job_id: str, tasks: dict[str, list[str]], executor: str = "slurm") -> None:
    """A manifest as launch writes it: one array holding `tasks` in order."""
    write_manifest(paths, {"grid": "tiny", "stamp": stamp, "executor": executor, "tasks": tasks,
                           "arrays": [{"job_id": job_id, "task_keys": list(tasks)}], "sbatch": {}, "image": None,
                           "python_command": None, "git_sha": "x", "git_dirty": False, "versions": {},
                           "options": {}})


def counts(**nonzero: int) -> dict[str, int]:
    return {"pending": 0, "running": 0, "done": 0, "failed": 0, "lost": 0, "unknown": 0} | nonzero


def test_pending_and_running_come_from_squeue_states(tiny, scheduler):
    """Kills: status with pending and running swapped; squeue's command line changed; lines of the wrong
    shape not ignored."""
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "4242", {"k0": [ids[0]], "k1": [ids[1], ids[2]], "k2": [ids[3]]})
    scheduler.answer("squeue", "4242_0|PENDING|Priority\n4242_1|RUNNING|None\nnot a squeue line\n4242_2|RUNNING\n")
    report = status_report("tiny", paths.root)
    assert scheduler.args("squeue") == SQUEUE_ARGS
    assert report.counts == counts(pending=1, running=2, lost=1)
    assert report.queue == "squeue" and report.active == 3
    assert [(a.job_id, a.tasks, a.trials, a.pending, a.running, a.lost) for a in report.arrays] == [
        ("4242", 3, 4, 1, 2, 1)]


@pytest.mark.parametrize("state", ["RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"])
def test_running_states(state):
    assert QueueEntry("1_0", state, "None").running


@pytest.mark.parametrize("state", ["PENDING", "REQUEUED", "REQUEUE_HOLD", "SUSPENDED", "PREEMPTED", "running"])
def test_waiting_states(state):
    assert not QueueEntry("1_0", state, "None").running


def test_a_failed_trial_whose_retry_is_queued_counts_as_queued(tiny, scheduler):
    """Kills: status counting a trial as failed before noticing its retry is queued (a requeued element of
    the same array, and a newer array that resubmitted it)."""
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "100", {"k1": [ids[0], ids[1]], "k2": [ids[2]]})
    submit(paths, "s2", "200", {"k3": [ids[3]]})
    for trial_id in ids:  # every trial has failed once
        write_failure(paths, {"trial_id": trial_id, "error": "ValueError: boom"})
    scheduler.answer("squeue", "100_0|RUNNING|None\n200|PENDING|Priority\n")
    report = status_report("tiny", paths.root)
    assert report.counts == counts(running=2, pending=1, failed=1)
    assert [p.task_key for p in report.problems] == ["k2"]


def test_a_complete_shard_wins_over_the_queue_and_a_failure_record(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "100", {"k1": [ids[0], ids[1]], "k2": [ids[2], ids[3]]})
    write_shard(paths.shard("k1"), [result(grid.trials[0])], grid="tiny", task_key="k1")
    write_failure(paths, {"trial_id": ids[0], "error": "ValueError: boom"})
    scheduler.answer("squeue", "100_0|RUNNING|None\n")
    report = status_report("tiny", paths.root)
    assert report.counts == counts(done=1, running=1, lost=2)


def test_sacct_names_why_a_task_was_lost_and_never_a_completed_state(tiny, scheduler):
    """The reason of each problem, from literal sacct -P text: states other than COMPLETED/RUNNING/PENDING,
    the first word only ("CANCELLED by 0"); the array ids asked for."""
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "77", {"k0": [ids[0]], "k1": [ids[1]], "k2": [ids[2]], "k3": [ids[3]]})
    scheduler.answer("squeue", "")
    scheduler.answer("sacct", "77_0|TIMEOUT|0:0\n77_1|CANCELLED by 0|0:15\n77_2|COMPLETED|0:0\n"
                              "|FAILED|1:0\n77_3|PENDING\n")
    report = status_report("tiny", paths.root)
    assert scheduler.args("sacct") == ["-n", "-P", "-X", "-o", "JobID,State,ExitCode", "-j", "77"]
    assert report.root == str(paths.root) and datetime.fromisoformat(report.time).utcoffset() == timedelta(0)
    assert report.counts == counts(lost=4) and report.accounting
    reasons = {p.task_key: (p.job_id, p.state, p.trials, p.reason) for p in report.problems}
    assert reasons == {
        "k0": ("77_0", "lost", 1, "TIMEOUT (exit 0:0)"),
        "k1": ("77_1", "lost", 1, "CANCELLED (exit 0:15)"),
        "k2": ("77_2", "lost", 1, "sacct has no record, no failure record, empty or missing log"),
        "k3": ("77_3", "lost", 1, "sacct has no record, no failure record, empty or missing log"),
    }
    # a failure record adds to sacct's state
    write_failure(paths, {"trial_id": ids[0], "error": "E", "traceback_tail": "Traceback\nMemoryError"})
    assert status_report("tiny", paths.root).problems[0].reason == f"TIMEOUT (exit 0:0); {ids[0]}: MemoryError"
    # sacct may still say PENDING or RUNNING for an element squeue no longer lists: that is no reason either
    scheduler.answer("sacct", "77_2|RUNNING|0:0\n77_3|PENDING|0:0\n")
    assert {p.reason for p in status_report("tiny", paths.root).problems if p.task_key in ("k2", "k3")} == {
        "sacct has no record, no failure record, empty or missing log"}


def test_reasons_from_failure_records_shards_and_logs(tiny, scheduler):
    """Without accounting: the failure record's last traceback line (else its error), an invalid shard of the
    task, the SLURM log's last line (.err before .out), else 'no accounting'."""
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "55", {"k0": [ids[0]], "k1": [ids[1]], "k2": [ids[2]], "k3": [ids[3]]})
    scheduler.answer("squeue", "")
    scheduler.answer("sacct", "", rc=1)
    write_failure(paths, {"trial_id": ids[0], "error": "E", "traceback_tail": "Traceback\n  x\nKeyError: 'lr'\n"})
    write_failure(paths, {"trial_id": ids[1], "error": "DataError: no mnist"})
    paths.shards_dir.mkdir(parents=True)
    paths.shard("k2.a0").write_bytes(b"not hdf5")
    paths.shard("k2.a1").write_bytes(b"not hdf5 either")  # only the first invalid shard is named
    paths.slurm_dir.mkdir(parents=True)
    (paths.slurm_dir / "55_3_0_log.out").write_text("started\nslurmstepd: CANCELLED DUE TO TIME LIMIT\n\n")
    report = status_report("tiny", paths.root)
    assert not report.accounting and report.counts == counts(failed=2, lost=2)
    reasons = {p.task_key: (p.state, p.reason) for p in report.problems}
    assert reasons["k0"] == ("failed", f"{ids[0]}: KeyError: 'lr'")
    assert reasons["k1"] == ("failed", f"{ids[1]}: DataError: no mnist")
    assert reasons["k2"][0] == "lost" and reasons["k2"][1].startswith(f"invalid shard: {paths.shard('k2.a0')}")
    assert reasons["k2"][1].count("invalid shard") == 1 and len(report.bad_shards) == 2
    assert reasons["k3"] == ("lost", "55_3_0_log.out: slurmstepd: CANCELLED DUE TO TIME LIMIT")
    paths.failed(ids[1]).write_text(json.dumps({"trial_id": ids[1]}))  # a record without error or traceback
    assert status_report("tiny", paths.root).problems[1].reason == f"{ids[1]}:"
    (paths.slurm_dir / "55_3_0_log.err").write_text("MemoryError\n")
    assert status_report("tiny", paths.root).problems[-1].reason == "55_3_0_log.err: MemoryError"
    (paths.slurm_dir / "55_3_0_log.err").unlink()
    (paths.slurm_dir / "55_3_0_log.out").unlink()
    assert status_report("tiny", paths.root).problems[-1].reason == (
        "no accounting, no failure record, empty or missing log")


def test_a_local_task_log_names_a_lost_local_task(tiny):
    grid, paths = tiny
    dead = f"local:{os.uname().nodename}:999999999"
    submit(paths, "s1", dead, {"k1": list(grid.trial_ids)}, executor="local")
    (paths.slurm_dir / "local").mkdir(parents=True)
    (paths.slurm_dir / "local" / "k1.log").write_text("Killed\n")
    report = status_report("tiny", paths.root)
    assert report.queue == "none" and not report.accounting
    assert [(p.job_id, p.reason) for p in report.problems] == [(dead, "k1.log: Killed")]


def test_squeue_silent_makes_slurm_trials_unknown_and_blocks_a_relaunch(tiny, scheduler):
    grid, paths = tiny
    submit(paths, "s1", "9", {"k1": list(grid.trial_ids)})
    scheduler.answer("squeue", "9|RUNNING|None\n", rc=1)
    report = status_report("tiny", paths.root)
    assert report.queue == "unavailable" and report.counts == counts(unknown=4) and report.problems == []
    with pytest.raises(SubmissionError, match="squeue did not answer, so queued trials cannot be told"):
        queued_trials(paths)


def test_never_submitted_trials_are_the_grid_minus_those_submitted(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "5", {"k1": [ids[0]]})
    report = status_report("tiny", paths.root)
    assert (report.grid_trials, report.submitted, report.not_submitted) == (4, 1, 3)
    assert "4 trials in grid.yaml, 1 submitted, 3 never submitted" in render_status(report)


def test_relaunch_leaves_out_trials_that_squeue_still_lists(tiny, scheduler):
    """Kills: relaunch ignoring queued trials (SLURM path), and squeue asked for another grid."""
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "4242", {"k0": [ids[0]], "k1": [ids[1], ids[2]]})
    scheduler.answer("squeue", "4242_1|PENDING|Priority\n4242_7|RUNNING|None\n")
    keep, skipped = select_trials(grid, paths, LaunchOptions(root=paths.root, executor="slurm"))
    assert scheduler.args("squeue") == SQUEUE_ARGS
    assert [grid.trial_ids[i] for i in keep] == [ids[0], ids[3]]
    assert skipped == {"done": 0, "queued": 2, "failed": 0}
    assert queued_trials(paths) == {ids[1], ids[2]}


def test_relaunch_leaves_out_trials_of_a_local_launch_still_running(tiny):
    """Kills: relaunch ignoring queued trials on the local executor path (its marker names this live process)."""
    grid, paths = tiny
    ids = grid.trial_ids
    job = f"local:{os.uname().nodename}:{os.getpid()}"
    submit(paths, "s1", job, {"k1": [ids[1], ids[2]]}, executor="local")
    marker = write_local_marker(paths, "s1", LocalProcess.of(os.getpid()))
    options = LaunchOptions(root=paths.root, executor="local")
    keep, skipped = select_trials(grid, paths, options)
    assert [grid.trial_ids[i] for i in keep] == [ids[0], ids[3]]
    assert skipped == {"done": 0, "queued": 2, "failed": 0}
    assert status_report("tiny", paths.root).counts == counts(running=2)
    marker.unlink()  # the launch returned: its trials are lost, and a relaunch takes them
    keep, skipped = select_trials(grid, paths, options)
    assert len(keep) == 4 and skipped == {"done": 0, "queued": 0, "failed": 0}


def test_relaunch_order_done_then_queued_then_failed(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "8", {"k0": [ids[0], ids[1]], "k1": [ids[2], ids[3]]})
    write_shard(paths.shard("k0"), [result(grid.trials[0])], grid="tiny", task_key="k0")
    for trial_id in ids[:3]:
        write_failure(paths, {"trial_id": trial_id, "error": "ValueError: boom"})
    scheduler.answer("squeue", "8_0|RUNNING|None\n")
    keep, skipped = select_trials(grid, paths, LaunchOptions(root=paths.root, executor="slurm"))
    assert [grid.trial_ids[i] for i in keep] == [ids[3]] and skipped == {"done": 1, "queued": 1, "failed": 1}
    keep, skipped = select_trials(grid, paths, LaunchOptions(root=paths.root, executor="slurm", rerun_failed=True))
    assert [grid.trial_ids[i] for i in keep] == [ids[2], ids[3]] and skipped == {"done": 1, "queued": 1, "failed": 0}


def test_render_status_text():
    """The whole human summary, literally."""
    report = StatusReport(
        grid="g", root="/r", time="2026-01-02T03:04:05+00:00", queue="unavailable", accounting=False,
        grid_trials=9, submitted=7, not_submitted=2,
        counts=counts(pending=1, running=2, done=1, failed=1, lost=1, unknown=1),
        arrays=[ArrayStatus("4242", "20260102T030405Z", "slurm", 3, 5, pending=1, running=2, failed=1, lost=1,
                            superseded=2),
                ArrayStatus("local:h:1", "20260103T000000Z", "local", 1, 2, done=1, unknown=1)],
        problems=[Problem("4242_2", "k2", "failed", 1, "TIMEOUT (exit 0:0)")],
        bad_shards=["/r/g/shards/x.h5: truncated"])
    assert render_status(report) == "\n".join([
        "grid g in /r/g  (2026-01-02T03:04:05+00:00)",
        "9 trials in grid.yaml, 7 submitted, 2 never submitted",
        "pending 1  running 2  done 1  failed 1  lost 1  unknown 1",
        "squeue did not answer: queued and lost trials cannot be told apart (shown as unknown)",
        "",
        "         array              stamp  tasks  pending  running   done  failed  lost",
        "          4242   20260102T030405Z      3        1        2      0       1     1  (2 resubmitted later)",
        "         local   20260103T000000Z      1        0        0      1       0     0  unknown 1",
        "",
        "problems:",
        "  4242_2 k2: 1 failed: TIMEOUT (exit 0:0)",
        "  invalid shard (ignored): /r/g/shards/x.h5: truncated",
        "",
        "rerun lost trials: python -m launch <grid file> --root /r  (add --rerun-failed for failed ones)",
    ])
    quiet = StatusReport(grid="g", root="/r", time="t", queue="none", accounting=False, grid_trials=None,
                         submitted=0, not_submitted=None, counts=counts(), arrays=[], problems=[])
    assert render_status(quiet) == "\n".join([
        "grid g in /r/g  (t)", "0 submitted", "pending 0  running 0  done 0",
        "nothing submitted yet: python -m launch grids/<grid>.yaml"])
    lost_only = StatusReport(grid="g", root="/r", time="t", queue="squeue", accounting=True, grid_trials=1,
                             submitted=1, not_submitted=0, counts=counts(lost=1), arrays=[], problems=[])
    assert render_status(lost_only).splitlines()[1:3] == ["1 trials in grid.yaml, 1 submitted",
                                                          "pending 0  running 0  done 0  lost 1"]
    assert render_status(lost_only).endswith("rerun lost trials: python -m launch <grid file> --root /r")


def test_pending_reasons_per_array_and_the_stuck_ones_named(tiny, scheduler):
    """squeue's %r per pending element: counted per array, most frequent first; a reason that never clears
    (PartitionConfig) gets its hint in the report and the text."""
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "31", {"k0": [ids[0]], "k1": [ids[1]], "k2": [ids[2]], "k3": [ids[3]]})
    scheduler.answer("squeue", "31_0|PENDING|Priority\n31_1|PENDING|PartitionConfig\n31_2|PENDING|Priority\n"
                               "31_3|RUNNING|None\n")
    report = status_report("tiny", paths.root)
    assert report.arrays[0].reasons == {"Priority": 2, "PartitionConfig": 1}
    hint = explain("PartitionConfig").hint
    assert report.stuck == {"PartitionConfig": hint}
    text = render_status(report).splitlines()
    at = text.index("pending reasons (squeue):")
    assert text[at - 1:at + 2] == ["", "pending reasons (squeue):",
                                   f"  array 31 pending: Priority 2; PartitionConfig 1 (STUCK: will not start by "
                                   f"itself; {hint})"]
    scheduler.answer("squeue", "31_0|PENDING|Priority\n31_1|PENDING|Resources\n31_2|PENDING|Resources\n")
    report = status_report("tiny", paths.root)
    assert report.arrays[0].reasons == {"Resources": 2, "Priority": 1} and report.stuck == {}
    assert "  array 31 pending: Resources 2; Priority 1" in render_status(report).splitlines()


def test_progress_of_running_tasks_is_listed_with_its_eta(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "12", {"k0": [ids[0], ids[1]], "k1": [ids[2], ids[3]]})
    scheduler.answer("squeue", "12_0|RUNNING|None\n12_1|RUNNING|None\n")
    progress_path(paths, "k0").parent.mkdir(parents=True)
    now = time.time()
    running = TaskProgress("k0", 0, "12_0", trials=2, done=1, group=2, groups=2, group_trials=1, epoch=3, epochs=8,
                           s_per_epoch=2.5, trial_epochs_total=16, trial_epochs_done=11, eta_s=12.5, updated=now)
    progress_path(paths, "k0").write_text(json.dumps(asdict(running)))
    progress_path(paths, "k1").write_text(json.dumps(asdict(running) | {"task_key": "k1", "finished": True}))
    report = status_report("tiny", paths.root)
    assert [p.task_key for p in report.progress] == ["k0"] and report.eta_s is not None and report.eta_s > 0
    text = render_status(report).splitlines()
    at = [i for i, line in enumerate(text) if line.startswith("running tasks")][0]
    assert text[at - 1:at + 2] == [
        "", f"running tasks (1 reporting); ETA of the queued trials ~{duration(report.eta_s)} from measured epoch "
            "times:",
        "  k0: group 2/2, epoch 3/8, 1 trials, 2.5 s/epoch, 1/2 done, task ETA 12 s"]
    unmeasured = StatusReport(grid="g", root="/r", time="t", queue="squeue", accounting=True, grid_trials=None,
                              submitted=2, not_submitted=None, counts=counts(running=2), arrays=[], problems=[],
                              progress=[TaskProgress("b", 0, "1", trials=2), TaskProgress("a", 0, "1", trials=2)])
    assert render_status(unmeasured).splitlines()[-3:] == [
        "running tasks (2 reporting); ETA of the queued trials ~? from measured epoch times:",
        "  a: group 0/0, epoch 0/0, 0 trials, ? s/epoch, 0/2 done, task ETA ?",
        "  b: group 0/0, epoch 0/0, 0 trials, ? s/epoch, 0/2 done, task ETA ?"]
    assert report.eta_s is not None
    scheduler.answer("squeue", "")  # nothing runs: no ETA
    assert status_report("tiny", paths.root).eta_s is None


def test_watch_polls_until_nothing_is_queued_then_prints_the_status(tiny, capsys):
    """A local launch still running (its marker names this process) settles while watched: 2 done, 1 failed,
    1 lost; the bar counts all four as settled and its last postfix shows the final counts."""
    grid, paths = tiny
    ids = grid.trial_ids
    job = f"local:{os.uname().nodename}:{os.getpid()}"
    submit(paths, "s1", job, {"k0": [ids[0], ids[1]], "k1": [ids[2]], "k2": [ids[3]]}, executor="local")
    marker = write_local_marker(paths, "s1", LocalProcess.of(os.getpid()))

    def settle() -> None:
        write_shard(paths.shard("k0"), [result(c) for c in grid.trials[:2]], grid="tiny", task_key="k0")
        write_failure(paths, {"trial_id": ids[2], "error": "ValueError: boom"})
        marker.unlink()

    timer = threading.Timer(0.5, settle)
    timer.start()
    try:
        watch("tiny", paths.root, interval_s=0.05)
    finally:
        timer.join()
    out, err = capsys.readouterr()
    # the last status, as render_status writes it (the first line holds the time of the poll)
    assert out.splitlines()[1:] == render_status(status_report("tiny", paths.root)).splitlines()[1:]
    assert "pending 0  running 0  done 2  failed 1  lost 1" in out
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("pcsweep-tiny: 100%|") and "| 4/4 trials [" in last
    assert last.endswith(", done 2, running 0, pending 0, failed 1, lost 1, ETA ?]")
    assert "running 4, pending 0" in err  # the first poll, while the launch ran


def test_grid_trials_are_read_again_only_when_grid_yaml_changes(tiny):
    """`status --watch` re-expands a legacy grid.yaml only when its mtime or size changes; one that no longer
    expands counts None."""
    grid, paths = tiny
    submit(paths, "s1", f"local:{os.uname().nodename}:999999999", {"k1": [grid.trial_ids[0]]}, executor="local")
    assert status_report("tiny", paths.root).grid_trials == 4
    stat_before = paths.grid_yaml.stat()
    five = paths.grid_yaml.read_text().replace("seed: [0, 1, 2, 3]", "seed: [0, 1, 2, 3, 4]")
    assert five != paths.grid_yaml.read_text()
    same_size = paths.grid_yaml.read_text().replace("seed: [0, 1, 2, 3]", "seed: [0, 1, 2, 4]")
    paths.grid_yaml.write_text(same_size)
    os.utime(paths.grid_yaml, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))  # same mtime and size: cached
    assert status_report("tiny", paths.root).grid_trials == 4
    paths.grid_yaml.write_text(five)
    os.utime(paths.grid_yaml, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))  # same mtime, new size: read
    assert status_report("tiny", paths.root).grid_trials == 5
    paths.grid_yaml.write_text(same_size)
    os.utime(paths.grid_yaml, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))
    assert status_report("tiny", paths.root).grid_trials == 4
    paths.grid_yaml.write_text(five)
    os.utime(paths.grid_yaml, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns + 10**9))
    assert status_report("tiny", paths.root).grid_trials == 5
    paths.grid_yaml.write_text("name: tiny\nsweep: 3\n")
    os.utime(paths.grid_yaml, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns + 2 * 10**9))
    report = status_report("tiny", paths.root)
    assert report.grid_trials is None and report.not_submitted is None
    paths.grid_yaml.unlink()
    assert status_report("tiny", paths.root).grid_trials is None


def test_debug_launches_and_launches_on_another_host(tiny, scheduler):
    """A debug launch is checked through its marker as a local one; a launch on another host cannot be checked
    (unknown, not lost); without SLURM arrays squeue is never asked."""
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", f"local:{os.uname().nodename}:{os.getpid()}", {"k1": [ids[0]]}, executor="debug")
    write_local_marker(paths, "s1", LocalProcess.of(os.getpid()))
    submit(paths, "s2", "local:elsewhere-host:5", {"k2": [ids[1], ids[2]]}, executor="local")
    write_local_marker(paths, "s2", LocalProcess("elsewhere-host", 5, "t"))
    report = status_report("tiny", paths.root)
    assert report.counts == counts(running=1, unknown=2) and report.queue == "none"
    assert scheduler.args("squeue") is None and scheduler.args("sacct") is None


def test_status_waits_for_a_hanging_squeue_or_sacct_only_as_long_as_asked(tiny, scheduler):
    grid, paths = tiny
    submit(paths, "s1", "9", {"k1": list(grid.trial_ids)})
    hang = f"#!/bin/sh\nexec {shutil.which('sleep', path=os.defpath)} 30\n"
    (scheduler.folder / "sacct").write_text(hang)
    t0 = time.monotonic()
    report = status_report("tiny", paths.root, queue_timeout_s=0.5)  # squeue answers: all lost; sacct hangs
    assert report.queue == "squeue" and report.counts == counts(lost=4) and not report.accounting
    (scheduler.folder / "squeue").write_text(hang)
    report = status_report("tiny", paths.root, queue_timeout_s=0.5)
    assert report.queue == "unavailable" and report.counts == counts(unknown=4)
    assert time.monotonic() - t0 < 15


def test_results_of_trials_no_manifest_lists_are_not_counted_as_never_submitted(tiny):
    """A trial done under a grid edited with --force (in no manifest) leaves one fewer trial to submit."""
    grid, paths = tiny
    submit(paths, "s1", f"local:{os.uname().nodename}:999999999", {"k1": [grid.trial_ids[0]]}, executor="local")
    other = grid_from_mapping(json.loads(json.dumps(TINY)) | {"sweep": [{"axes": {"seed": [9]}}]}, source="x.yaml")
    write_shard(paths.shard("old"), [result(other.trials[0])], grid="tiny", task_key="old")
    report = status_report("tiny", paths.root)
    assert (report.grid_trials, report.submitted, report.not_submitted) == (4, 1, 2)


def test_relaunch_counts_every_skipped_trial_and_a_debug_run_of_one_id_runs_it_anyway(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    dead = f"local:{os.uname().nodename}:999999999"
    submit(paths, "s1", dead, {"k0": [ids[0]], "k1": [ids[1], ids[2], ids[3]]}, executor="local")
    write_shard(paths.shard("k0"), [result(grid.trials[0])], grid="tiny", task_key="k0")
    for trial_id in ids[1:]:
        write_failure(paths, {"trial_id": trial_id, "error": "ValueError: boom"})
    keep, skipped = select_trials(grid, paths, LaunchOptions(root=paths.root, executor="local"))
    assert keep == [] and skipped == {"done": 1, "queued": 0, "failed": 3}
    assert scheduler.args("squeue") is None  # no SLURM array: squeue is not asked
    debug = LaunchOptions(root=paths.root, executor="debug", only=(ids[0],))
    assert select_trials(grid, paths, debug) == ([0], {})  # done, and run again on purpose
    keep, skipped = select_trials(grid, paths, LaunchOptions(root=paths.root, executor="local", only=(ids[0],)))
    assert keep == [] and skipped == {"done": 1, "queued": 0, "failed": 0}


def test_relaunch_refuses_when_squeue_is_silent_with_the_whole_message(tiny, scheduler):
    grid, paths = tiny
    submit(paths, "s1", "9", {"k1": list(grid.trial_ids)})
    scheduler.answer("squeue", "", rc=1)
    with pytest.raises(SubmissionError, match=r"^squeue did not answer, so queued trials cannot be told from missing "
                       r"ones; retry, or pass --force to submit every trial regardless$"):
        select_trials(grid, paths, LaunchOptions(root=paths.root, executor="slurm"))


def test_an_unknown_only_id_names_how_to_list_the_ids(tiny):
    grid, paths = tiny
    with pytest.raises(OptionsError, match=r"^--only feedfacefeedface: not a trial of grid 'tiny' \(1 of 1 id\(s\) "
                       r"unknown\); list the trial ids with: python -m launch tiny --dry-run --json$"):
        select_trials(grid, paths, LaunchOptions(root=paths.root, executor="local", only=("feedfacefeedface",)))


def test_watch_of_a_settled_grid_draws_one_full_bar(tiny, capsys):
    grid, paths = tiny
    submit(paths, "s1", f"local:{os.uname().nodename}:999999999", {"k1": [grid.trial_ids[0]]}, executor="local")
    write_shard(paths.shard("k1"), [result(grid.trials[0])], grid="tiny", task_key="k1")
    watch("tiny", paths.root, interval_s=0.01)
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("pcsweep-tiny: 100%|") and "| 1/1 trials [" in last


def test_render_lists_at_most_20_running_tasks_and_reasons_of_every_array():
    progress = [TaskProgress(f"k{i:02d}", 0, "1", trials=1) for i in range(21)]
    arrays = [ArrayStatus("1", "s1", "slurm", 1, 1, running=1),
              ArrayStatus("2", "s2", "slurm", 1, 1, pending=1, reasons={"Priority": 1})]
    report = StatusReport(grid="g", root="/r", time="t", queue="squeue", accounting=True, grid_trials=None,
                          submitted=2, not_submitted=None, counts=counts(running=1, pending=1), arrays=arrays,
                          problems=[], progress=progress)
    lines = render_status(report).splitlines()
    assert sum(line.startswith("  k") for line in lines) == 20 and "  k20: " not in "\n".join(lines)
    assert "  array 2 pending: Priority 1" in lines
