"""Shards through `run_trials`, a shard cut off mid-write, and `python -m pc` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pc_cases import SGD_A, SGD_B, SGD_SMALL_GAMMA

from contracts.shard import ShardError, open_shard, read_shard
from pc.trials import TrialFailure, run_trials

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shard(tmp_path_factory, sgd_group):
    path = tmp_path_factory.mktemp("shards") / "task-0.h5"
    failures = run_trials([SGD_A, SGD_B, SGD_SMALL_GAMMA, SGD_A, {"model": {"kind": "cnn"}}], path,
                          grid="demo", task_key="task-0", attrs={"image_digest": "sha256:abc"}, progress=False)
    return path, failures


def test_run_trials_round_trip(shard, sgd_group):
    path, failures = shard
    assert [type(f) for f in failures] == [TrialFailure] and "model.kind" in failures[0].error
    trials = {t.trial_id: t for t in read_shard(path)}
    assert set(trials) == {r.trial_id for r in sgd_group}
    for expected in sgd_group:
        got = trials[expected.trial_id]
        assert got.status == expected.status and got.config == expected.config
        for name, value in expected.arrays.items():
            np.testing.assert_array_equal(got.arrays[name], value, err_msg=name)
    with open_shard(path) as s:
        assert s.attrs["grid"] == "demo" and s.attrs["task_key"] == "task-0"
        assert s.attrs["image_digest"] == "sha256:abc"
        assert '"pcx": "0.6.3"' in s.attrs["versions"] and s.attrs["device_kind"].startswith("cpu")
        assert s.attrs["complete"] is True


def test_a_shard_cut_off_mid_write_is_rejected(shard, tmp_path):
    path, _ = shard
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match="cut.h5"):
        read_shard(cut)
    import h5py

    partial = tmp_path / "partial.h5"
    partial.write_bytes(data)
    with h5py.File(partial, "a") as f:  # a writer killed after a flush, before `complete`
        del f.attrs["complete"]
    with pytest.raises(ShardError, match="complete"):
        read_shard(partial)


def _pc(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pc", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_cli_trains_one_trial_and_writes_its_shard(tmp_path):
    out = tmp_path / "one.h5"
    r = _pc("model.width=8", "train.epochs=2", "train.T=2", "data.n_samples=128", "seed=4",
            "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "test accuracy per epoch:" in r.stdout and "status ok" in r.stdout and "t = T-1" in r.stdout
    (trial,) = read_shard(out)
    assert trial.config["model"]["width"] == 8 and trial.config["seed"] == 4
    assert trial.arrays["energy"].shape == (2, 4, 3, 3)


def test_cli_rejects_an_unknown_key_listing_the_valid_ones(tmp_path):
    r = _pc("model.widht=8", "--out", str(tmp_path / "x.h5"), timeout=120)
    assert r.returncode == 2
    assert "model.widht: unknown key" in r.stderr and "model.width" in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_cli_help_explains_every_option():
    r = _pc("--help", timeout=120)
    assert r.returncode == 0
    for text in ("--out", "--data-dir", "--no-progress", "train.h_lr", "key=value"):
        assert text in r.stdout
