"""What `python -m launch cancel` stops (launch.cancel): which SLURM job ids are still live given the manifests and
squeue's lines (a one-task launch is a plain job id, no `_N`), which local and debug launches are signalled, and that
each task's whole process group gets SIGTERM (as under apptainer, a task's children must stop with it even after
the launcher died) while the launcher alone gets it. SLURM is faked; the local processes are real, short-lived."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import launch.cancel as cancel_module
from contracts.lock import process_start_time
from contracts.paths import RunPaths
from launch.cancel import (
    CancelError,
    _signal,
    cancel,
    local_launches,
    signal_plan,
    slurm_job_ids,
    still_queued,
)
from launch.manifest import ArrayRecord, write_manifest
from launch.trial_states import LocalProcess, QueueEntry, write_local_marker

GRID = "cx"
HOST = os.uname().nodename


def rec(job_id: str, executor: str = "slurm", stamp: str = "s1") -> ArrayRecord:
    return ArrayRecord(stamp=stamp, executor=executor, job_id=job_id, task_keys=("k",), tasks={"k": ("t",)})


def manifest(paths: RunPaths, stamp: str, executor: str, *job_ids: str) -> None:
    write_manifest(paths, {"grid": GRID, "stamp": stamp, "executor": executor, "tasks": {"k": ["t"]},
                           "arrays": [{"job_id": j, "task_keys": ["k"]} for j in job_ids], "sbatch": {},
                           "image": None, "python_command": None, "git_sha": "x", "git_dirty": False,
                           "versions": {}, "options": {}})


class FakeSlurm:
    """squeue answers `queue` (None: no answer); scancel answers `returncode`/`stderr` or raises `error`."""

    def __init__(self, queue: list[str] | None, returncode: int = 0, stderr: str = "", error: Exception | None = None):
        self.queue, self.returncode, self.stderr, self.error = queue, returncode, stderr, error
        self.squeued: list[str] = []
        self.scancelled: list[list[str]] = []

    def squeue(self, grid: str) -> dict[str, QueueEntry] | None:
        self.squeued.append(grid)
        return None if self.queue is None else {q: QueueEntry(q, "PENDING", "Priority") for q in self.queue}

    def run(self, cmd: list[str], **kw) -> subprocess.CompletedProcess:
        assert kw == {"capture_output": True, "text": True, "timeout": 20.0}
        self.scancelled.append(cmd)
        if self.error is not None:
            raise self.error
        return subprocess.CompletedProcess(cmd, self.returncode, "", self.stderr)


@pytest.fixture
def slurm(monkeypatch):
    def install(*args, **kw) -> FakeSlurm:
        fake = FakeSlurm(*args, **kw)
        monkeypatch.setattr(cancel_module, "squeue", fake.squeue)
        monkeypatch.setattr(cancel_module.subprocess, "run", fake.run)
        return fake

    return install


# ---- pure rules -------------------------------------------------------------------------------------------------

def test_slurm_job_ids_are_the_slurm_arrays_once_in_numeric_order():
    records = [rec("10"), rec("9"), rec("10", stamp="s2"), rec(f"local:{HOST}:5", "local"),
               rec(f"local:{HOST}:6", "debug"), rec("100")]
    assert slurm_job_ids(records) == ["9", "10", "100"]
    assert slurm_job_ids([rec(f"local:{HOST}:5", "local")]) == []


def test_a_one_task_launch_is_live_under_its_plain_job_id():
    assert still_queued(["7"], ["7"]) == ["7"]
    assert still_queued(["7", "8"], ["8"]) == ["8"]


def test_an_array_is_live_while_any_of_its_elements_is_listed():
    assert still_queued(["12", "13"], ["12_3", "12_4", "99_0"]) == ["12"]
    assert still_queued(["12", "13"], iter(["13_0", "12_1"])) == ["12", "13"]  # squeue's order does not matter


def test_another_job_that_merely_starts_with_the_same_digits_is_not_ours():
    assert still_queued(["7", "12"], ["71", "71_0", "123_1", "1_7", "x7_0"]) == []
    assert still_queued(["7"], []) == []


def test_local_and_debug_launches_are_both_signalled_each_once_in_order():
    records = [rec(f"local:{HOST}:6", "debug", "s2"), rec(f"local:{HOST}:5", "local", "s1"),
               rec(f"local:{HOST}:5", "local", "s1"), rec("7")]
    assert local_launches(records) == [("s1", f"local:{HOST}:5"), ("s2", f"local:{HOST}:6")]
    assert local_launches([rec("7")]) == []


def test_tasks_get_their_group_signalled_and_the_launcher_only_itself():
    launcher = LocalProcess(HOST, 10, "1")
    task_a, task_b = LocalProcess(HOST, 11, "2"), LocalProcess(HOST, 12, "3")
    assert signal_plan([launcher, task_a, task_b], launcher) == [(launcher, False), (task_a, True), (task_b, True)]
    assert signal_plan([task_a], launcher) == [(task_a, True)]  # the launcher died (SIGKILL): its tasks still stop
    assert signal_plan([task_a], None) == [(task_a, True)]
    assert signal_plan([], launcher) == []


# ---- SLURM, with squeue and scancel faked -----------------------------------------------------------------------

def test_cancel_scancels_exactly_the_live_arrays_including_a_one_task_launch(tmp_path, slurm):
    paths = RunPaths.of(GRID, tmp_path)
    manifest(paths, "s1", "slurm", "7", "12")
    manifest(paths, "s2", "slurm", "9")
    fake = slurm(["7", "12_0", "12_5", "71_0"])
    assert cancel(GRID, tmp_path) == ["7", "12"]
    assert fake.squeued == [GRID] and fake.scancelled == [["scancel", "7", "12"]]


def test_nothing_listed_means_no_scancel(tmp_path, slurm):
    paths = RunPaths.of(GRID, tmp_path)
    manifest(paths, "s1", "slurm", "7")
    fake = slurm(["8_0"])
    assert cancel(GRID, tmp_path) == [] and fake.scancelled == []


def test_a_grid_without_slurm_arrays_never_asks_squeue(tmp_path, slurm):
    fake = slurm(None)
    assert cancel(GRID, tmp_path) == [] and fake.squeued == []  # no manifests at all
    manifest(RunPaths.of(GRID, tmp_path), "s1", "local", f"local:{HOST}:{2**22 + 7}")
    assert cancel(GRID, tmp_path) == [] and fake.squeued == [] and fake.scancelled == []


def test_a_silent_squeue_is_an_error_naming_the_arrays(tmp_path, slurm):
    manifest(RunPaths.of(GRID, tmp_path), "s1", "slurm", "7", "12")
    fake = slurm(None)
    with pytest.raises(CancelError, match=r"^squeue did not answer within 20 s; cannot tell which of 7, 12 are still "
                       r"queued\. Retry, or scancel them by hand\.$"):
        cancel(GRID, tmp_path)
    assert fake.scancelled == []


def test_a_failing_scancel_is_an_error_with_its_message(tmp_path, slurm):
    manifest(RunPaths.of(GRID, tmp_path), "s1", "slurm", "7", "12")
    slurm(["7", "12_1"], returncode=1, stderr="  scancel: error: Kill job error on job id 7\n")
    with pytest.raises(CancelError, match=r"^scancel 7 12 exited 1: scancel: error: Kill job error on job id 7$"):
        cancel(GRID, tmp_path)


@pytest.mark.parametrize("error", [FileNotFoundError(2, "No such file or directory"),
                                   subprocess.TimeoutExpired("scancel", 20)], ids=["missing", "timeout"])
def test_a_missing_or_hanging_scancel_is_an_error(tmp_path, slurm, error):
    manifest(RunPaths.of(GRID, tmp_path), "s1", "slurm", "7", "12")
    slurm(["7", "12_0"], error=error)
    with pytest.raises(CancelError, match=r"^scancel 7 12: ") as info:
        cancel(GRID, tmp_path)
    assert info.value.__cause__ is error


# ---- local and debug launches, real processes --------------------------------------------------------------------

def _gone(pid: int, within_s: float = 10.0) -> bool:
    """The process has exited (no such pid, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


class Group:
    """A process leading its own process group (like a task under apptainer) with one child in that group."""

    def __init__(self) -> None:
        self.leader = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!; wait"], start_new_session=True,
                                       stdout=subprocess.PIPE, text=True)
        self.child = int(self.leader.stdout.readline())
        self.child_start = process_start_time(self.child)
        self.process = LocalProcess.of(self.leader.pid)

    def leader_gone(self) -> bool:
        try:
            self.leader.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        self.leader.kill()  # a no-op once reaped (its pid may be another process's by now)
        if process_start_time(self.child) == self.child_start:  # still that very child
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGKILL)
        self.leader.wait()
        self.leader.stdout.close()


@pytest.fixture
def groups():
    made: list[Group] = []

    def make() -> Group:
        made.append(Group())
        return made[-1]

    yield make
    for g in made:
        g.close()


def _dead_process() -> LocalProcess:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return LocalProcess(HOST, proc.pid, "1")


@pytest.mark.parametrize("executor", ["local", "debug"])
def test_cancel_stops_every_task_group_after_the_launcher_died(tmp_path, groups, executor, slurm):
    paths = RunPaths.of(GRID, tmp_path)
    launcher = _dead_process()
    task_a, task_b = groups(), groups()
    job_id = f"local:{HOST}:{launcher.pid}"
    manifest(paths, "s1", executor, job_id)
    write_local_marker(paths, "s1", launcher, {"a": task_a.process, "b": task_b.process})
    fake = slurm(None)
    assert cancel(GRID, tmp_path) == [job_id] and fake.squeued == []
    for task in (task_a, task_b):
        assert task.leader_gone() and task.leader.returncode == -signal.SIGTERM
        assert _gone(task.child), "a task's child outlived cancel"


def test_a_live_launcher_is_signalled_alone_and_its_tasks_with_their_groups(tmp_path, groups):
    paths = RunPaths.of(GRID, tmp_path)
    launcher, task = groups(), groups()
    job_id = f"local:{HOST}:{launcher.leader.pid}"
    manifest(paths, "s1", "local", job_id)
    write_local_marker(paths, "s1", launcher.process, {"k": task.process})
    assert cancel(GRID, tmp_path) == [job_id]
    assert launcher.leader_gone() and task.leader_gone() and _gone(task.child)
    assert not _gone(launcher.child, within_s=0.3)  # the launcher's own group (e.g. the user's shell) is left alone


def test_a_launch_whose_processes_all_ended_is_not_reported_and_a_later_one_still_stopped(tmp_path, slurm, groups):
    paths = RunPaths.of(GRID, tmp_path)
    launcher = _dead_process()
    manifest(paths, "s1", "debug", f"local:{HOST}:{launcher.pid}")
    write_local_marker(paths, "s1", launcher, {"k": _dead_process()})
    manifest(paths, "s2", "local", f"local:{HOST}:{_dead_process().pid}")  # no marker at all: it returned
    slurm(None)
    assert cancel(GRID, tmp_path) == []
    task, later = groups(), _dead_process()
    manifest(paths, "s3", "local", f"local:{HOST}:{later.pid}")
    write_local_marker(paths, "s3", later, {"k": task.process})
    assert cancel(GRID, tmp_path) == [f"local:{HOST}:{later.pid}"]
    assert task.leader_gone() and _gone(task.child)


def test_a_marker_removed_just_after_its_check_still_stops_the_tasks_found_alive(tmp_path, groups, monkeypatch):
    paths = RunPaths.of(GRID, tmp_path)
    launcher, task = _dead_process(), groups()
    manifest(paths, "s1", "local", f"local:{HOST}:{launcher.pid}")
    write_local_marker(paths, "s1", launcher, {"k": task.process})
    monkeypatch.setattr(cancel_module, "read_local_marker", lambda *_: None)  # the launch returned meanwhile
    assert cancel(GRID, tmp_path) == [f"local:{HOST}:{launcher.pid}"]
    assert task.leader_gone() and _gone(task.child)


def test_slurm_arrays_come_first_then_local_launches(tmp_path, groups, slurm):
    paths = RunPaths.of(GRID, tmp_path)
    task = groups()
    launcher = _dead_process()
    manifest(paths, "s1", "local", f"local:{HOST}:{launcher.pid}")
    write_local_marker(paths, "s1", launcher, {"k": task.process})
    manifest(paths, "s2", "slurm", "7")
    slurm(["7"])
    assert cancel(GRID, tmp_path) == ["7", f"local:{HOST}:{launcher.pid}"]
    assert task.leader_gone()


def test_signal_to_a_group_stops_the_leader_and_its_children(groups):
    g = groups()
    _signal(g.process, group=True)
    assert g.leader_gone() and g.leader.returncode == -signal.SIGTERM and _gone(g.child)


def test_signal_without_group_stops_only_the_process(groups):
    g = groups()
    _signal(g.process, group=False)
    assert g.leader_gone() and not _gone(g.child, within_s=0.3)


def test_signal_to_a_process_that_leads_no_group_stops_it_alone():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # in this test's own group
    try:
        _signal(LocalProcess.of(proc.pid), group=True)
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def test_signal_never_reaches_pid_1_or_less_and_tolerates_gone_or_foreign_processes(monkeypatch):
    calls = []

    def record(name):
        def call(*args):
            calls.append((name, *args))
            if args[0] == 3:
                raise ProcessLookupError(3, "No such process")
            if args[0] == 4:
                raise PermissionError(1, "Operation not permitted")
            return args[0]
        return call

    monkeypatch.setattr(cancel_module.os, "getpgid", record("getpgid"))
    monkeypatch.setattr(cancel_module.os, "killpg", record("killpg"))
    monkeypatch.setattr(cancel_module.os, "kill", record("kill"))
    for pid in (1, 0, -1):
        _signal(LocalProcess(HOST, pid, "1"), group=True)
        _signal(LocalProcess(HOST, pid, "1"), group=False)
    assert calls == []
    _signal(LocalProcess(HOST, 2, "1"), group=False)
    _signal(LocalProcess(HOST, 2, "1"), group=True)
    assert calls == [("kill", 2, signal.SIGTERM), ("getpgid", 2), ("killpg", 2, signal.SIGTERM)]
    calls.clear()
    _signal(LocalProcess(HOST, 3, "1"), group=True)  # gone meanwhile
    _signal(LocalProcess(HOST, 4, "1"), group=False)  # not ours to signal
    assert calls == [("getpgid", 3), ("kill", 4, signal.SIGTERM)]
