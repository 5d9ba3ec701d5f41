"""The small shared contracts: run-folder lock, grid-name rule, failure records, labels, atomic writes."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from contracts.atomic import write_json_atomic
from contracts.failures import failure_reason, read_failures, write_failure
from contracts.labels import condition_label, optim_label, round12
from contracts.lock import UNREADABLE_STALE_S, LockHeld, RunLock, is_running, process_start_time
from contracts.paths import RunFolderError, RunPaths, check_grid_name


def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    lock = tmp_path / ".lock"
    with RunLock(lock, "collect"):
        record = json.loads(lock.read_text())
        assert record["pid"] == os.getpid() and record["purpose"] == "collect"
        with pytest.raises(LockHeld, match=rf"collect by pid {os.getpid()} on {socket.gethostname()}.*remove"):
            RunLock(lock, "launch").acquire()
    assert not lock.exists()


def _hold(path: str, seconds: float, ready) -> None:
    with RunLock(Path(path), "holder"):
        ready.set()
        time.sleep(seconds)


def test_wait_gets_the_lock_once_another_process_releases_it(tmp_path):
    lock = tmp_path / ".lock"
    spawn = multiprocessing.get_context("spawn")  # no fork of a process that may have JAX's threads running
    ready = spawn.Event()
    holder = spawn.Process(target=_hold, args=(str(lock), 1.0, ready))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(LockHeld, match="holder by pid"):
            RunLock(lock, "collect").acquire()
        t0 = time.monotonic()
        with RunLock(lock, "collect", wait_s=30, poll_s=0.05):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert time.monotonic() - t0 < 30
    finally:
        holder.join(30)


def test_a_stale_lock_on_this_host_is_taken_over(tmp_path):
    lock = tmp_path / ".lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "start_time": "1", "purpose": "x"}))
    with RunLock(lock, "collect"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_reused_pid_does_not_keep_a_lock_alive(tmp_path):
    """Our own pid with another start time is a different (dead) process: the lock is stale."""
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "start_time": "0", "purpose": "x"}))
    with RunLock(lock, "collect"):
        assert json.loads(lock.read_text())["start_time"] == process_start_time(os.getpid())


def test_a_lock_from_another_host_is_never_broken(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "start_time": "1", "purpose": "collect"}))
    with pytest.raises(LockHeld, match="on elsewhere"):
        RunLock(lock, "collect").acquire()
    assert json.loads(lock.read_text())["host"] == "elsewhere"


def test_process_identity():
    me = os.getpid()
    assert is_running(socket.gethostname(), me, process_start_time(me)) is True
    assert is_running(socket.gethostname(), me, "not-my-start") is False
    assert is_running(socket.gethostname(), 1, None) is False  # pid <= 1 is never "ours"
    assert is_running("another-host", me, None) is None
    assert process_start_time(-1) is None


@pytest.mark.parametrize("name", ["/abs", "../up", "a/b", ".hidden", "", "a\nb", "x" * 101, 3, None])
def test_unsafe_grid_names_are_refused_everywhere(tmp_path, name):
    with pytest.raises(RunFolderError, match="expected a folder name"):
        check_grid_name(name)
    with pytest.raises(RunFolderError, match="expected a folder name"):
        RunPaths.of(name, tmp_path)


def test_safe_grid_names_stay_under_the_root(tmp_path):
    for name in ("demo", "stability_constant_width", "a.b-c", "9x"):
        assert RunPaths.of(name, tmp_path).folder.parent == tmp_path


def test_failure_records_round_trip_and_damaged_ones_still_count(tmp_path):
    paths = RunPaths.of("g", tmp_path)
    write_failure(paths, {"trial_id": "aaaa", "error": "Traceback\nValueError: boom", "host": "n1", "job_id": "7"})
    paths.failed("bbbb").write_text("{not json")
    paths.failed("cccc").write_text("[1, 2]")
    (paths.failed_dir / "dddd.json.tmp.123").write_text("{}")
    records = read_failures(paths)
    assert sorted(records) == ["aaaa", "bbbb", "cccc"]
    assert failure_reason(records["aaaa"]) == "ValueError: boom (host n1, job_id 7)"
    assert "unreadable failed record" in failure_reason(records["bbbb"])
    assert "expected an object" in records["cccc"]["error"]


def test_labels_and_rounding():
    assert optim_label("sgd", 0.9) == "sgd-0.9" and optim_label("adamw", 0) == "adamw-0.0"
    assert condition_label("pc", "sgd-0.9") == "pc-sgd-0.9"
    assert round12(0.1 + 0.2) == 0.3 and round12(3) == 3 and round12(0.0) == 0.0
    assert str(round12(float("nan"))) == "nan"


def test_atomic_json_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "x.json"
    write_json_atomic(target, {"b": 1, "a": [1]})
    assert json.loads(target.read_text()) == {"a": [1], "b": 1}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


@pytest.mark.parametrize("record", ["", "{\"host\": \"node", "[1, 2]", "{}"], ids=["empty", "half", "list", "no-pid"])
def test_an_unreadable_lock_record_is_judged_by_its_age(tmp_path, record):
    """Young: perhaps a live holder still writing it, so refused without advice to delete it. Older than
    UNREADABLE_STALE_S: its writer died (or the disk filled first), so it is taken over."""
    lock = tmp_path / ".lock"
    lock.write_text(record)
    with pytest.raises(LockHeld, match=r"a lock record \d+ s old that cannot be read yet.*--wait S") as info:
        RunLock(lock, "collect").acquire()
    assert "remove" not in str(info.value) and lock.read_text() == record
    old = time.time() - UNREADABLE_STALE_S - 5
    os.utime(lock, (old, old))
    with RunLock(lock, "collect"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_a_lock_held_elsewhere_names_the_host_to_check_before_removing_it(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"host": "node7", "pid": 42, "start_time": "1", "purpose": "launch"}))
    with pytest.raises(LockHeld, match=r"if no such process is running on node7, remove"):
        RunLock(lock, "collect").acquire()
