"""launch.trial_states's readers on literal inputs (fast tier): local job ids, marker files, log tails, shards that
count as done, and scheduler commands that are missing, fail or hang. Real files and real processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_manifest import fake_result as result

from contracts.lock import process_start_time
from contracts.paths import RunPaths
from contracts.shard import write_shard
from grids.grid import grid_from_mapping
from launch.scheduler_call import forget_unresponsive
from launch.trial_states import (
    Accounting,
    LocalMarker,
    LocalProcess,
    _zombie,
    done_trials,
    live_processes,
    local_job_id,
    local_marker,
    local_running,
    log_tail,
    parse_local_job_id,
    read_local_marker,
    sacct,
    squeue,
    write_local_marker,
)

HOST = socket.gethostname()
TINY = {"name": "tiny", "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                                     "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
        "sweep": [{"axes": {"seed": [0, 1, 2]}}]}


@pytest.mark.parametrize(("job_id", "parsed"), [
    ("local:node1:42", ("node1", 42)),
    ("local:a:b:7", ("a:b", 7)),  # the pid is after the last colon
    ("local:h:1", ("h", 1)),
])
def test_local_job_ids_parse(job_id, parsed):
    assert parse_local_job_id(job_id) == parsed


@pytest.mark.parametrize("job_id", ["local:h:0", "local:h:-3", "local::5", "slurm:h:5", "local:h:", "local:h:٣",
                                    "local:h:5x", "4242", "debug:h:5"])
def test_other_job_ids_are_refused(job_id):
    with pytest.raises(ValueError, match=r"is not local:<host>:<pid> with a positive pid"):
        parse_local_job_id(job_id)


def test_local_job_id_names_this_host_and_process():
    assert local_job_id() == f"local:{HOST}:{os.getpid()}"
    assert local_job_id(17) == f"local:{HOST}:17"


@pytest.mark.parametrize("obj", [
    None, [], {"host": "h", "pid": 5}, {"host": 1, "pid": 5, "start_time": "s"},
    {"host": "h", "pid": True, "start_time": "s"}, {"host": "h", "pid": "5", "start_time": "s"},
    {"host": "h", "pid": 5, "start_time": 9},
])
def test_malformed_marker_entries_name_no_process(obj):
    assert LocalProcess.from_json(obj) is None


def test_a_marker_round_trips_and_a_malformed_one_names_nothing(tmp_path):
    paths = RunPaths.of("tiny", tmp_path)
    me = LocalProcess.of(os.getpid())
    assert me == LocalProcess(HOST, os.getpid(), process_start_time(os.getpid()))
    assert read_local_marker(paths, "s1") is None
    write_local_marker(paths, "s1", me, {"k1": LocalProcess("other", 9, "t"), "k2": me})
    marker = read_local_marker(paths, "s1")
    assert marker == LocalMarker(me, {"k1": LocalProcess("other", 9, "t"), "k2": me})
    assert marker.processes() == [me, LocalProcess("other", 9, "t"), me]
    for text in ("{not json", "[1, 2]", json.dumps({"launcher": None, "tasks": [1]}),
                 json.dumps({"launcher": {"host": "h"}, "tasks": {"k": {"host": "h", "pid": 2}}})):
        local_marker(paths, "s1").write_text(text)
        assert read_local_marker(paths, "s1") == LocalMarker(None, {})
    local_marker(paths, "s1").write_text(json.dumps({"tasks": {"k": {"host": "h", "pid": 2, "start_time": "s"}}}))
    assert read_local_marker(paths, "s1") == LocalMarker(None, {"k": LocalProcess("h", 2, "s")})
    assert read_local_marker(paths, "s1").processes() == [LocalProcess("h", 2, "s")]  # no launcher, no None


def test_liveness_needs_host_pid_and_start_time(tmp_path):
    me = LocalProcess.of(os.getpid())
    assert me.alive() is True
    assert LocalProcess(HOST, os.getpid(), "another start").alive() is False  # a reused pid
    assert LocalProcess(HOST, 1, me.start_time).alive() is False and LocalProcess(HOST, 0, "x").alive() is False
    assert LocalProcess(HOST, 1, process_start_time(1)).alive() is False  # init: running, but never ours
    assert _zombie(999_999_999) is False  # no /proc entry: not a zombie (alive() has said it is gone)
    assert LocalProcess("elsewhere-host", os.getpid(), me.start_time).alive() is None
    assert LocalProcess.of(999_999_999) is None
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        start = process_start_time(zombie.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
                break
            time.sleep(0.05)
        assert LocalProcess(HOST, zombie.pid, start).alive() is False  # exited, not yet reaped
    finally:
        zombie.wait()


def test_a_process_whose_name_holds_a_parenthesis_is_alive(tmp_path):
    """/proc/<pid>/stat puts the name in parentheses and a name may hold ') Z (': the state is after the last ')'."""
    odd = tmp_path / "x) Z (y"
    odd.symlink_to(sys.executable)
    proc = subprocess.Popen([str(odd), "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 30
        while process_start_time(proc.pid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "x) Z (y" in Path(f"/proc/{proc.pid}/stat").read_text()
        assert LocalProcess.of(proc.pid).alive() is True
    finally:
        proc.kill()
        proc.wait()


def test_live_processes_believe_only_the_job_ids_launcher(tmp_path):
    paths = RunPaths.of("tiny", tmp_path)
    me = LocalProcess.of(os.getpid())
    job = local_job_id()
    assert live_processes(paths, "s1", job) == ([], False) and local_running(paths, "s1", job) is False
    write_local_marker(paths, "s1", me)
    assert live_processes(paths, "s1", job) == ([me], False) and local_running(paths, "s1", job) is True
    assert live_processes(paths, "s1", local_job_id(os.getpid() + 1)) == ([], False)  # another launch's marker
    elsewhere = LocalProcess("elsewhere-host", 5, "t")
    write_local_marker(paths, "s1", LocalProcess(HOST, os.getpid(), "gone"), {"k": elsewhere})
    assert live_processes(paths, "s1", job) == ([], True) and local_running(paths, "s1", job) is None
    write_local_marker(paths, "s1", LocalProcess(HOST, os.getpid(), "gone"), {"k": me, "j": elsewhere})
    assert local_running(paths, "s1", job) is True


def test_log_tail_reads_the_last_non_empty_lines_from_the_end(tmp_path):
    log = tmp_path / "x.log"
    assert log_tail(log) == ""
    log.write_text("first\nsecond\n\n  \nthird\n\n")
    assert log_tail(log) == "third"
    assert log_tail(log, lines=2) == "second\nthird"
    log.write_bytes(b"a" * 50 + b"\nold\n" + b"b" * 10 + b"\nlast\xff\n")
    assert log_tail(log, lines=5, max_bytes=17) == "bbbbbbbbbb\nlast\ufffd"
    log.write_text("a\n" + "b" * 19_999)  # 20,001 bytes: the default window (20,000) ends inside the newline
    assert log_tail(log, lines=2) == "b" * 19_999


def test_done_trials_take_complete_shards_only_and_name_bad_ones(tmp_path):
    grid = grid_from_mapping(json.loads(json.dumps(TINY)), source="tiny.yaml")
    paths = RunPaths.of("tiny", tmp_path)
    assert done_trials(paths) == ({}, [])
    first = write_shard(paths.shard("a"), [result(grid.trials[0]), result(grid.trials[1])], grid="tiny", task_key="a")
    newer = write_shard(paths.shard("b"), [result(grid.trials[1])], grid="tiny", task_key="b")
    os.utime(newer, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    paths.shard("c").write_bytes(b"junk")
    (paths.shards_dir / "d.h5.tmp.123").write_bytes(b"being written")
    done, bad = done_trials(paths)
    assert done == {grid.trial_ids[0]: first, grid.trial_ids[1]: newer}
    assert len(bad) == 1 and bad[0].startswith(str(paths.shard("c")))
    assert done_trials(paths) == (done, bad)  # read again from the cache, same answer
    # only shards whose (mtime, size) changed are read again: junk of the same size and mtime is not noticed ...
    before = first.stat()
    first.write_bytes(b"x" * before.st_size)
    os.utime(first, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert done_trials(paths) == (done, bad)
    # ... a new mtime is
    os.utime(first, ns=(before.st_atime_ns, before.st_mtime_ns + 5 * 10**9))
    done, bad = done_trials(paths)
    assert done == {grid.trial_ids[1]: newer} and len(bad) == 2


def test_the_local_marker_path():
    paths = RunPaths.of("tiny", "/runs")
    assert local_marker(paths, "20260102T030405Z") == paths.slurm_dir / "local" / "20260102T030405Z.running"


def _program(folder, name: str, body: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_scheduler_commands_missing_failing_or_hanging_mean_no_answer(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", str(bin_dir))
    assert squeue("g") is None and sacct(["1"]) is None  # not installed
    assert sacct([]) == {}  # nothing asked: no command run
    _program(bin_dir, "squeue", "echo '1_0|RUNNING|None'; exit 1")
    assert squeue("g") is None
    sleep = shutil.which("sleep", path=os.defpath)
    for name in ("squeue", "sacct"):
        _program(bin_dir, name, f"exec {sleep} 30")
    t0 = time.monotonic()
    assert sacct(["1"], timeout_s=0.5) is None and squeue("g", timeout_s=0.5) is None
    assert time.monotonic() - t0 < 20
    _program(bin_dir, "sacct", "printf '7_0|TIMEOUT|0:0\\n7_1|CANCELLED by 1000|0:15\\n|FAILED|1:0\\n7_2||0:0\\n"
                               "7_3|FAILED|\\n7_4|COMPLETED\\n'")
    assert sacct(["7"]) is None  # one command timed out in this process: SLURM is not asked again ...
    forget_unresponsive()  # ... until this (status --watch does it each tick)
    assert sacct(["7"]) == {"7_0": Accounting("7_0", "TIMEOUT", "0:0"), "7_1": Accounting("7_1", "CANCELLED", "0:15"),
                            "7_2": Accounting("7_2", "", "0:0"), "7_3": Accounting("7_3", "FAILED", "")}
    _program(bin_dir, "squeue", "printf '1_0|RUNNING|None\\n 1_1|PENDING|Priority \\n\\n'")
    queue = squeue("g")
    assert sorted(queue) == ["1_0", "1_1"] and queue["1_1"].reason == "Priority" and not queue["1_1"].running
