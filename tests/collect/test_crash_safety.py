"""Run-folder safety: the lock between concurrent collects, a collect killed mid-update, bad configs,
foreign shards, set-aside names, and --strict on unexpected trials. Real HDF5 files and real processes."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from collect_cases import GRID, synthetic_trial
from paused_collect import PAUSE_LINE

import collect
from collect.merge_state import updating_marker
from collect.results import verify_results
from contracts.shard import write_shard

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    # HDF5 file locking off, as on NFS or Lustre: only the run-folder lock keeps two collects apart
    return {**os.environ, "PYTHONPATH": str(REPO), "HDF5_USE_FILE_LOCKING": "FALSE", **extra}


def _start(run, *args: str, pause: float | None = None) -> subprocess.Popen:
    """`python -m collect` in a process of its own; with `pause`, one that stops before its commit (paused_collect)."""
    head = ["-m", "collect"] if pause is None else [str(Path(__file__).with_name("paused_collect.py")), str(pause)]
    return subprocess.Popen([sys.executable, *head, GRID, "--root", str(run.root), "--no-progress", *args],
                            cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_pause(p: subprocess.Popen, timeout: float = 60.0) -> None:
    """Block until the collect prints its pause line (its rows are written, the commit is not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([p.stderr], [], [], deadline - time.monotonic())
        if ready:
            line = p.stderr.readline()
            if PAUSE_LINE in line:
                return
            if not line and p.poll() is not None:
                break
    p.kill()
    raise AssertionError(f"collect never paused (rc {p.poll()}): {p.stdout.read()} {p.stderr.read()}")


def _arrays(root: Path) -> dict[str, dict[str, np.ndarray]]:
    df = collect.load_summary(GRID, root=root)
    return {t: collect.load_arrays(GRID, "energy", [t], root=root)[t] for t in df["trial_id"]}


def _populate(run) -> list:
    trials = [synthetic_trial(s) for s in range(1, 5)]
    run.shard("s1", trials[:2], created="2026-01-01T00:00:00+00:00")
    run.shard("s2", trials[2:], created="2026-01-01T00:00:00+00:00")
    run.manifest([t.trial_id for t in trials] + [synthetic_trial(9).trial_id])
    return trials


def test_two_collects_at_once_one_waits_or_refuses(run):
    _populate(run)
    collect.collect(GRID, run.root, progress=False)
    run.shard("s3", [synthetic_trial(9)], created="2026-01-02T00:00:00+00:00")
    first = _start(run, pause=3)
    _wait_for_pause(first)
    refused = subprocess.run([sys.executable, "-m", "collect", GRID, "--root", str(run.root), "--no-progress"],
                             cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "locked" in refused.stderr
    assert str(run.paths.lock) in refused.stderr and "--wait" in refused.stderr
    waiter = _start(run, "--wait", "60")
    assert first.wait(timeout=120) == 0, first.stderr.read()
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
    assert "unchanged" in out  # it ran after the first one, which had merged everything
    assert not run.paths.lock.exists() and not updating_marker(run.paths).exists()
    r = collect.collect(GRID, run.root, progress=False)
    assert r.mode == "unchanged" and r.complete == 5 and r.missing == []
    assert len(collect.load_summary(GRID, root=run.root)) == 5 and len(_arrays(run.root)) == 5


def test_a_collect_killed_mid_update_is_rebuilt_to_what_a_clean_collect_gives(run, tmp_path):
    trials = _populate(run)
    collect.collect(GRID, run.root, progress=False)
    run.shard("s3", [synthetic_trial(9), synthetic_trial(1, offset=40.0)], created="2026-01-02T00:00:00+00:00")
    victim = _start(run, pause=60)
    _wait_for_pause(victim)
    assert updating_marker(run.paths).exists()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert updating_marker(run.paths).exists() and run.paths.lock.exists()  # what a kill leaves
    with pytest.raises(RuntimeError, match="interrupted"):
        collect.load_trial(GRID, trials[0].trial_id, root=run.root)
    r = collect.collect(GRID, run.root, progress=False)  # takes over the dead process's lock, rebuilds
    assert r.mode == "full" and any("interrupted" in n for n in r.notes) and r.complete == 5
    assert not updating_marker(run.paths).exists()
    clean = tmp_path / "clean"
    shutil.copytree(run.paths.shards_dir, clean / GRID / "shards")
    shutil.copytree(run.paths.submissions_dir, clean / GRID / "submissions")
    c = collect.collect(GRID, clean, progress=False)
    assert (c.complete, c.missing, c.duplicate_ids) == (r.complete, r.missing, r.duplicate_ids)
    pd.testing.assert_frame_equal(collect.load_summary(GRID, root=run.root), collect.load_summary(GRID, root=clean))
    got, want = _arrays(run.root), _arrays(clean)
    assert got.keys() == want.keys()
    for tid in want:
        np.testing.assert_array_equal(got[tid], want[tid])
    np.testing.assert_array_equal(got[trials[0].trial_id], synthetic_trial(1, offset=40.0).arrays["energy"])


def _break_config(path: Path, text: str = "{not json") -> None:
    with h5py.File(path, "a") as f:
        n = len(f["blocks/0/config"])
        del f["blocks/0/config"]
        f["blocks/0"].create_dataset("config", data=[text] * n, dtype=h5py.string_dtype("utf-8"))


@pytest.mark.parametrize("first", [True, False], ids=["first collect", "incremental"])
def test_a_newer_shard_with_a_bad_config_is_set_aside_and_the_rest_is_merged(run, first):
    old = synthetic_trial(1)
    run.shard("old", [old, synthetic_trial(2)], created="2026-01-01T00:00:00+00:00")
    if not first:
        collect.collect(GRID, run.root, progress=False)
    newer = run.shard("newer", [synthetic_trial(1, offset=5.0), synthetic_trial(3)],
                      created="2026-01-02T00:00:00+00:00")
    run.shard("other", [synthetic_trial(4)], created="2026-01-02T00:00:00+00:00")
    _break_config(newer)
    r = collect.collect(GRID, run.root, progress=False)
    assert [n for n, _ in r.corrupt] == ["newer.h5"] and "not valid JSON" in r.corrupt[0][1]
    assert (run.paths.bad_shards_dir / "newer.h5.reason.txt").is_file()
    assert r.complete == 3 and not updating_marker(run.paths).exists()
    df = collect.load_summary(GRID, root=run.root)
    assert sorted(df["trial_id"]) == sorted(t.trial_id for t in (old, synthetic_trial(2), synthetic_trial(4)))
    np.testing.assert_array_equal(collect.load_trial(GRID, old.trial_id, root=run.root).arrays["energy"],
                                  old.arrays["energy"])  # the older copy, not the bad shard's
    assert collect.collect(GRID, run.root, progress=False).mode == "unchanged"


def test_a_shard_of_another_grid_is_set_aside_not_merged(run):
    run.shard("mine", [synthetic_trial(1)])
    write_shard(run.paths.shard("theirs"), [synthetic_trial(2)], grid="propagation", task_key="theirs")
    r = collect.collect(GRID, run.root, progress=False)
    assert r.complete == 1 and [n for n, _ in r.corrupt] == ["theirs.h5"]
    assert "'propagation'" in r.corrupt[0][1] and "foreign" in r.corrupt[0][1]


def test_setting_aside_never_overwrites_an_earlier_bad_file(run):
    run.shard("good", [synthetic_trial(1)])
    for round_ in range(3):
        run.paths.shard("junk").write_text(f"not a shard, round {round_}\n")
        collect.collect(GRID, run.root, progress=False)
    bad = run.paths.bad_shards_dir
    names = sorted(p.name for p in bad.glob("*.h5"))
    assert names == ["junk.1.h5", "junk.2.h5", "junk.h5"]
    assert [(bad / n).read_text() for n in ("junk.h5", "junk.1.h5", "junk.2.h5")] == [
        f"not a shard, round {k}\n" for k in range(3)]
    assert all((bad / f"{n}.reason.txt").is_file() for n in names)


def test_strict_fails_on_trials_the_grid_does_not_list(run):
    a, stray = synthetic_trial(1), synthetic_trial(2)
    run.shard("s1", [a, stray])
    run.manifest([a.trial_id])
    with pytest.raises(collect.IncompleteError, match="1 unexpected") as info:
        collect.collect(GRID, run.root, strict=True, progress=False)
    assert info.value.report.unexpected == 1 and not info.value.report.missing
    p = subprocess.run([sys.executable, "-m", "collect", GRID, "--root", str(run.root), "--strict", "--no-progress"],
                       cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "1 unexpected" in p.stderr and "unexpected 1" in p.stdout


def test_the_lock_is_not_left_behind_and_a_missing_folder_takes_none(run, tmp_path):
    run.shard("s1", [synthetic_trial(1)])
    collect.collect(GRID, run.root, progress=False)
    assert not run.paths.lock.exists()
    with pytest.raises(collect.NoRunFolder, match="no such run folder"):
        collect.collect("absent", run.root, progress=False)
    assert not (run.root / "absent").exists()
    assert all(p.name != ".lock" for p in run.root.rglob("*"))


def test_verification_catches_a_missing_or_repeated_row(run):
    a, b = synthetic_trial(1), synthetic_trial(2)
    run.shard("s1", [a, b])
    collect.collect(GRID, run.root, progress=False)  # the real writer (it verifies too)
    path = run.paths.results
    verify_results(path, {a.trial_id, b.trial_id})
    with pytest.raises(OSError, match="holds 2 trial rows after writing, expected 3"):
        verify_results(path, {a.trial_id, b.trial_id, synthetic_trial(3).trial_id})
    with h5py.File(path, "a") as f:
        f["blocks/0/trial_id"][1] = a.trial_id.encode()
    with pytest.raises(OSError, match="1 repeated"):
        verify_results(path, {a.trial_id, b.trial_id})
