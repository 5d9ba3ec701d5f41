"""The run-folder lock's rules, decided without real processes (contracts.lock): how a lock record is read
(`parse_lock_record`), when a holder is stale (`lock_is_stale`, `is_running`), and what `RunLock` does with a
damaged, stale, foreign or own record. A damaged record read as "released" made collect and launch retry at full
CPU forever without a word; these tests pin that it is held by an unknown process and judged by its age."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from contracts.lock import (
    UNREADABLE_STALE_S,
    LockHeld,
    RunLock,
    is_running,
    lock_is_stale,
    parse_lock_record,
    process_start_time,
    start_time_from_stat,
)

HOST = "node1"
STARTS = {100: "5000", 200: "6000"}  # pid -> start time of the processes running on HOST


def start_of(pid: int) -> str | None:
    return STARTS.get(pid)


def stale(holder: dict, age_s: float = 0.0, host: str = HOST) -> bool:
    return lock_is_stale(holder, age_s, this_host=host, start_time_of=start_of)


@pytest.mark.parametrize("text", ["", " ", "{\"host\": \"node", "[1, 2]", "null", "3", "\"pid\"", "{not json"])
def test_an_empty_or_damaged_record_is_held_by_an_unknown_process_never_released(text):
    holder = parse_lock_record(text)
    assert holder == {} and holder is not None


def test_a_whole_record_is_its_holder():
    record = {"host": HOST, "pid": 100, "start_time": "5000", "purpose": "collect", "created": "x"}
    assert parse_lock_record(json.dumps(record)) == record


def test_is_running_compares_host_pid_and_start_time():
    assert is_running(HOST, 100, "5000", this_host=HOST, start_time_of=start_of) is True
    assert is_running(HOST, 100, None, this_host=HOST, start_time_of=start_of) is True  # an old record: pid only
    assert is_running(HOST, 100, "4999", this_host=HOST, start_time_of=start_of) is False  # the pid was reused
    assert is_running(HOST, 300, None, this_host=HOST, start_time_of=start_of) is False  # no such process
    assert is_running("node2", 100, "5000", this_host=HOST, start_time_of=start_of) is None  # cannot check
    assert is_running("node2", 300, None, this_host=HOST, start_time_of=start_of) is None


@pytest.mark.parametrize("pid", [1, 0, -5])
def test_pid_1_or_less_is_never_a_running_holder_even_if_it_runs(pid):
    assert is_running(HOST, pid, None, this_host=HOST, start_time_of=lambda _: "1") is False
    assert is_running(HOST, 2, None, this_host=HOST, start_time_of=lambda _: "1") is True  # pid 2 may be ours


def test_is_running_defaults_to_this_host_and_proc():
    me = os.getpid()
    assert is_running(socket.gethostname(), me, process_start_time(me)) is True
    assert is_running(socket.gethostname(), me, "0") is False
    assert is_running(socket.gethostname() + "-other", me, process_start_time(me)) is None


def test_process_start_time_reads_proc():
    me = os.getpid()
    with open(f"/proc/{me}/stat") as f:
        expected = f.read().rsplit(")", 1)[-1].split()[19]
    assert process_start_time(me) == expected
    assert process_start_time(1) is not None  # init runs (it is never believed as a holder: see is_running)
    assert process_start_time(0) is None and process_start_time(-1) is None
    assert process_start_time(2**22 + 12345) is None  # above pid_max: never a process


STAT_TAIL = " ".join(["S"] + [str(n) for n in range(4, 22)] + ["777", "23", "24"])  # fields 3.., starttime 777


@pytest.mark.parametrize("name", ["python", "a b", "x) (y", "))", "(", ""])
def test_the_start_time_is_field_22_counted_after_the_last_parenthesis(name):
    assert start_time_from_stat(f"4242 ({name}) {STAT_TAIL}\n") == "777"


def test_a_stat_line_cut_short_has_no_start_time():
    fields = STAT_TAIL.split()
    assert start_time_from_stat(f"1 (x) {' '.join(fields[:20])}") == "777"  # just long enough
    assert start_time_from_stat(f"1 (x) {' '.join(fields[:19])}") is None
    assert start_time_from_stat("") is None and start_time_from_stat("garbage") is None


def test_a_live_holder_on_this_host_is_not_stale():
    assert not stale({"host": HOST, "pid": 100, "start_time": "5000"})
    assert not stale({"host": HOST, "pid": "100", "start_time": "5000"}, age_s=1e9)  # however old
    assert not stale({"host": HOST, "pid": 100})  # a record without start time: the pid decides


def test_a_gone_or_reused_holder_on_this_host_is_stale_at_once():
    assert stale({"host": HOST, "pid": 300, "start_time": "1"})
    assert stale({"host": HOST, "pid": 100, "start_time": "4999"})
    assert stale({"host": HOST, "pid": 1, "start_time": "1"})


def test_a_holder_on_another_host_is_never_stale():
    assert not stale({"host": "node2", "pid": 300, "start_time": "1"}, age_s=1e9)
    assert not stale({"pid": 300, "start_time": "1"}, age_s=1e9)  # no host: not this one
    assert stale({"pid": 300, "start_time": "1"}, host="")  # ... it reads as the empty host name, nothing else
    assert not stale({"pid": 300, "start_time": "1"}, host="None")


@pytest.mark.parametrize("holder", [{}, {"host": HOST}, {"pid": None}, {"pid": "x"}, {"pid": [1]}],
                         ids=["empty", "no-pid", "null-pid", "text-pid", "list-pid"])
def test_a_record_without_a_usable_pid_is_stale_only_after_the_grace_time(holder):
    assert not stale(holder, age_s=0.0)
    assert not stale(holder, age_s=UNREADABLE_STALE_S)
    assert stale(holder, age_s=UNREADABLE_STALE_S + 0.5)
    assert UNREADABLE_STALE_S == 60.0


def test_the_lock_record_names_this_process(tmp_path):
    lock = tmp_path / "runs" / "grid" / ".lock"  # the run folder (and the root) are made if missing
    with RunLock(lock, "collect") as held:
        assert held.path == lock
        record = json.loads(lock.read_text(encoding="utf-8"))
        assert record["host"] == socket.gethostname() and record["pid"] == os.getpid()
        assert record["start_time"] == process_start_time(os.getpid()) and record["purpose"] == "collect"
        assert record["created"].endswith("+00:00") and len(record["created"]) == 25
        assert oct(lock.stat().st_mode & 0o777) == oct(0o644)
    assert not lock.exists()


def test_a_damaged_young_record_is_refused_at_once_with_its_age_and_no_advice_to_remove_it(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text("{\"host\": \"node")
    old = time.time() - 7
    os.utime(lock, (old, old))
    t0 = time.monotonic()
    with pytest.raises(LockHeld, match=r"^\S+\.lock: the run folder is locked \(a lock record 7 s old that cannot be "
                       r"read yet\); try again in a moment or wait with --wait S: a record still unreadable after 60 s "
                       r"is taken over$") as info:
        RunLock(lock, "collect", poll_s=5).acquire()
    assert time.monotonic() - t0 < 2 and "remove" not in str(info.value)
    assert lock.read_text() == "{\"host\": \"node"


def test_a_record_in_other_encoding_counts_as_damaged_not_released(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_bytes(b"\xff\xfe{")
    with pytest.raises(LockHeld, match="cannot be read yet"):
        RunLock(lock, "collect").acquire()
    old = time.time() - UNREADABLE_STALE_S - 5
    os.utime(lock, (old, old))
    with RunLock(lock, "launch"):
        assert json.loads(lock.read_text())["purpose"] == "launch"


def test_a_held_lock_names_holder_purpose_host_and_time(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"host": "node7", "pid": 42, "start_time": "1", "purpose": "launch",
                                "created": "2026-12-07T10:00:00+00:00"}))
    with pytest.raises(LockHeld, match=r"^\S+\.lock: the run folder is locked \(launch by pid 42 on node7 since "
                       r"2026-12-07T10:00:00\+00:00\); wait for it to finish \(--wait S waits\), or, if no such "
                       r"process is running on node7, remove \S+\.lock$"):
        RunLock(lock, "collect").acquire()


def test_a_held_record_missing_fields_still_names_what_it_has(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"pid": 42}))  # no host: never this host's, so never broken
    with pytest.raises(LockHeld, match=r"locked \(\? by pid 42 on \? since \?\).*running on \?, remove"):
        RunLock(lock, "collect").acquire()


def test_waiting_polls_until_the_deadline_then_refuses(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"host": "node7", "pid": 42, "purpose": "launch"}))
    t0 = time.monotonic()
    with pytest.raises(LockHeld, match="launch by pid 42 on node7"):
        RunLock(lock, "collect", wait_s=0.3, poll_s=0.05).acquire()
    assert 0.3 <= time.monotonic() - t0 < 3


def test_waiting_takes_the_lock_once_the_holder_releases_it(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"host": "node7", "pid": 42, "purpose": "launch"}))
    timer = threading.Timer(0.3, lock.unlink)
    timer.start()
    try:
        with RunLock(lock, "collect", wait_s=20, poll_s=0.05):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
    finally:
        timer.cancel()


def test_a_stale_holder_is_taken_over_without_waiting(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "start_time": "0"}))
    t0 = time.monotonic()
    with RunLock(lock, "collect", poll_s=5):
        assert json.loads(lock.read_text())["start_time"] == process_start_time(os.getpid())
    assert time.monotonic() - t0 < 2


def test_release_removes_only_its_own_lock(tmp_path):
    lock = tmp_path / ".lock"
    mine = RunLock(lock, "collect")
    mine.acquire()
    others = [{"host": socket.gethostname(), "pid": os.getpid() + 1}, {"host": "node7", "pid": os.getpid()},
              {"pid": os.getpid()}, {}]
    for record in others:  # replaced meanwhile (taken over as stale by another process): not ours to remove
        lock.write_text(json.dumps(record))
        mine.release()
        assert lock.exists()
    lock.write_text("{damaged")
    mine.release()
    assert lock.exists()
    lock.unlink()
    mine.release()  # already gone: nothing to do, no error
    assert not lock.exists()


def test_a_failed_record_write_leaves_no_empty_lock_behind(tmp_path, monkeypatch):
    lock = tmp_path / ".lock"

    def full_disk(*_args, **_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", full_disk)
    with pytest.raises(OSError, match=r"No space left on device: '\S+\.lock'$"):
        RunLock(lock, "collect").acquire()
    assert not lock.exists()


def test_a_young_record_without_a_pid_is_refused_as_unreadable_not_named(tmp_path):
    lock = tmp_path / ".lock"
    lock.write_text(json.dumps({"host": "node7", "purpose": "launch"}))
    with pytest.raises(LockHeld, match=r"a lock record \d+ s old that cannot be read yet"):
        RunLock(lock, "collect").acquire()


def test_the_age_of_a_lock_file_gone_meanwhile_is_zero(tmp_path):
    assert RunLock(tmp_path / ".lock", "collect")._age_s() == 0.0
    (tmp_path / ".lock").write_text("")
    old = time.time() - 100
    os.utime(tmp_path / ".lock", (old, old))
    assert 99 < RunLock(tmp_path / ".lock", "collect")._age_s() < 110


class Racing(RunLock):
    """A RunLock that loses the race for the file once, as when another process holds or clears it meanwhile."""

    lost = False

    def _try(self) -> bool:
        if not self.lost:
            self.lost = True
            return False
        return super()._try()


def test_a_lock_released_between_our_open_and_our_read_is_taken_at_once(tmp_path):
    lock = tmp_path / ".lock"  # absent: the holder released it after our O_EXCL open failed
    with Racing(lock, "collect", poll_s=5):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_stale_lock_removed_by_another_process_meanwhile_is_no_error(tmp_path):
    lock = tmp_path / ".lock"

    class Cleared(RunLock):
        def _stale(self, holder: dict) -> bool:
            lock.unlink()  # another collect took it over and released it in the meantime
            return True

    lock.write_text(json.dumps({"host": "node7", "pid": 42}))
    with Cleared(lock, "collect"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_releasing_a_lock_removed_meanwhile_is_no_error(tmp_path):
    lock = tmp_path / ".lock"

    class Vanishing(RunLock):
        def _holder(self) -> dict | None:
            holder = super()._holder()
            lock.unlink(missing_ok=True)
            return holder

    held = Vanishing(lock, "collect")
    RunLock._try(held)
    held.release()
    assert not lock.exists()
