"""Kill and lock tests at the write points the issue names: a shard writer killed mid-write, and a collect
started while a launch holds the run folder (HDF5 file locking off, as on NFS/Lustre). Real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from collect_cases import GRID, synthetic_trial

import collect
from contracts.lock import RunLock
from contracts.shard import open_shard

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "HDF5_USE_FILE_LOCKING": "FALSE"}

# A writer of one large shard (~250 MB: 400 trials of 8 epochs x 256 batches x 9 steps x 3 layers, twice),
# slow enough that a kill lands while the temporary file is being written.
WRITER = """
import sys
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
from collect_cases import synthetic_trial
from contracts.shard import write_shard
trials = [synthetic_trial(s, E=8, B=256, T=8) for s in range(400)]
print("writing", flush=True)
write_shard({path!r}, trials, grid={grid!r}, task_key="big")
print("written", flush=True)
"""


def test_a_shard_writer_killed_mid_write_leaves_no_shard_and_collect_ignores_its_temporary_file(run):
    good = run.shard("good", [synthetic_trial(s) for s in range(3)])
    target = run.paths.shard("big")
    code = WRITER.format(repo=str(REPO), tests=str(Path(__file__).parent), path=str(target), grid=GRID)
    writer = subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 120
        while not list(run.paths.shards_dir.glob("big.h5.tmp.*")) and time.monotonic() < deadline:
            time.sleep(0.01)
        tmp = list(run.paths.shards_dir.glob("big.h5.tmp.*"))
        assert tmp, "the writer never created its temporary file"
        time.sleep(0.05)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(60)
    assert writer.returncode == -signal.SIGKILL
    assert not target.exists(), "a killed writer must never leave a shard under the final name"
    report = collect.collect(GRID, root=run.root, progress=False)
    assert report.complete == 3 and report.corrupt == [], report
    assert sorted(collect.load_summary(GRID, root=run.root)["trial_id"]) == sorted(
        t.trial_id for t in _trials(good))


def test_a_collect_started_during_a_launch_refuses_or_waits_for_the_lock(run):
    run.shard("s0", [synthetic_trial(s) for s in range(2)])
    args = [sys.executable, "-m", "collect", GRID, "--root", str(run.root), "--no-progress"]
    with RunLock(run.paths.lock, "launch"):
        refused = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2, refused.stderr
        assert f"launch by pid {os.getpid()}" in refused.stderr and "--wait" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
        assert not run.paths.results.exists() and not run.paths.summary.exists()
        waiter = subprocess.Popen([*args, "--wait", "60"], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        threading.Event().wait(1.0)  # the waiter polls the lock while the "launch" still holds it
        assert waiter.poll() is None
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
    assert len(collect.load_summary(GRID, root=run.root)) == 2


def _trials(path: Path) -> list:
    with open_shard(path) as shard:
        return list(shard.trials())
