"""contracts.shard, version 2: round trip through blocks, and the reader's rejections (each names file and reason)."""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np
import pytest

from contracts.config import TrialConfig
from contracts.shard import (
    ARRAY_NAMES,
    SCHEMA,
    SCHEMA_VERSION,
    ShardError,
    TrialResult,
    open_shard,
    read_shard,
    write_shard,
)


def _trial(seed: int, *, E: int = 2, B: int = 3, T: int = 4, L: int = 3, status: str = "ok") -> TrialResult:
    cfg = TrialConfig.from_mapping({}).replace(**{"seed": seed, "train.epochs": E, "train.T": T})
    rng = np.random.default_rng(seed)
    arrays = {"test_accuracy": rng.random(E, dtype=np.float32),
              "energy": rng.random((E, B, T + 1, L), dtype=np.float32),
              "energy_var": rng.random((E, B, T + 1, L), dtype=np.float32),
              "w_norm": rng.random((E, B, 3), dtype=np.float32),
              "w_grad_norm": rng.random((E, B, 3), dtype=np.float32),
              "w_grad_var": rng.random((E, B, 3), dtype=np.float32)}
    if status == "diverged":
        arrays["energy"][1:] = np.nan
    return TrialResult(cfg.trial_id, cfg.to_mapping(), status, 0.5 + seed, arrays)


@pytest.fixture
def trials() -> list[TrialResult]:
    # two shapes: three trials with L = 3 and T = 4, one BP-like trial with L = 1 and T = 1
    return [_trial(1), _trial(2, status="diverged"), _trial(3, T=1, L=1), _trial(4)]


def _same(a: TrialResult, b: TrialResult) -> None:
    assert (a.trial_id, a.config, a.status, a.wall_s) == (b.trial_id, b.config, b.status, b.wall_s)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name], err_msg=name)
        assert a.arrays[name].dtype == np.float32


def test_round_trip_groups_trials_by_shape(tmp_path, trials):
    path = write_shard(tmp_path / "s.h5", trials, grid="g", task_key="k", attrs={"versions": {"jax": "0.4"}})
    assert path == tmp_path / "s.h5" and not list(tmp_path.glob("*.tmp.*"))
    got = {t.trial_id: t for t in read_shard(path)}
    for t in trials:
        _same(got[t.trial_id], t)
    with open_shard(path) as shard:
        assert shard.trial_ids == sorted(t.trial_id for t in trials)
        assert shard.attrs["schema"] == SCHEMA and shard.attrs["schema_version"] == SCHEMA_VERSION == 2
        assert shard.attrs["grid"] == "g" and shard.attrs["task_key"] == "k" and shard.attrs["complete"] is True
        assert json.loads(shard.attrs["versions"]) == {"jax": "0.4"} and "created" in shard.attrs
        _same(shard.trial(trials[2].trial_id), trials[2])
        blocks = list(shard.blocks())
        assert [len(b) for b in blocks] == [3, 1]
        assert blocks[0].arrays["energy"].shape == (3, 2, 3, 5, 3)
        assert blocks[1].arrays["energy"].shape == (1, 2, 3, 2, 1)
        assert blocks[0].trial_ids == [trials[0].trial_id, trials[1].trial_id, trials[3].trial_id]
        assert json.loads(blocks[0].configs[0]) == trials[0].config and blocks[0].status[1] == "diverged"
        (only,) = shard.blocks([trials[3].trial_id])
        assert only.trial_ids == [trials[3].trial_id]
    with h5py.File(path, "r") as f:  # the documented layout (docs/shard-format.md)
        g = f["blocks"]["0"]
        assert sorted(f["blocks"]) == ["0", "1"] and "trials" not in f
        assert g["trial_id"].dtype == np.dtype("S16") and g["status"].dtype == np.dtype("S8")
        assert g["config"].dtype.kind == "O" and g["wall_s"].dtype == np.float64
        assert g["w_norm"].shape == (3, 2, 3, 3) and g["test_accuracy"].shape == (3, 2)


def test_empty_shard_is_valid(tmp_path):
    path = write_shard(tmp_path / "e.h5", [], grid="g")
    assert read_shard(path) == []
    with open_shard(path) as shard:
        assert shard.trial_ids == [] and list(shard.blocks()) == []


def test_writer_rejects_a_duplicate_trial_and_leaves_nothing(tmp_path, trials):
    with pytest.raises(ValueError, match="given twice"):
        write_shard(tmp_path / "d.h5", [trials[0], trials[0]])
    assert list(tmp_path.iterdir()) == []


def test_truncated_file_is_rejected_naming_it(tmp_path, trials):
    path = write_shard(tmp_path / "cut.h5", trials)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match=r"cut\.h5.*(truncated|corrupt)"):
        open_shard(path)
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(ShardError, match="empty.h5"):
        read_shard(tmp_path / "empty.h5")


def test_partial_shard_without_complete_is_rejected(tmp_path, trials):
    path = write_shard(tmp_path / "p.h5", trials)
    with h5py.File(path, "a") as f:
        del f.attrs["complete"]
    with pytest.raises(ShardError, match=r"p\.h5: no 'complete' flag.*partial"):
        open_shard(path)


@pytest.mark.parametrize(("attr", "value", "match"), [
    ("schema", "something-else", "schema is 'something-else'; expected 'pcsweep-shard'"),
    ("schema_version", 1, "schema_version is 1; this pcsweep reads version 2"),
    ("schema_version", 3, "schema_version is 3; this pcsweep reads version 2"),
])
def test_wrong_schema_or_version_is_rejected(tmp_path, trials, attr, value, match):
    path = write_shard(tmp_path / "v.h5", trials)
    with h5py.File(path, "a") as f:
        f.attrs[attr] = value
    with pytest.raises(ShardError, match=match):
        read_shard(path)


def test_malformed_blocks_are_rejected(tmp_path, trials):
    path = write_shard(tmp_path / "m.h5", trials)
    with h5py.File(path, "a") as f:  # one row fewer in energy than in trial_id
        g = f["blocks"]["0"]
        short = g["energy"][:-1]
        del g["energy"]
        g["energy"] = short
    with pytest.raises(ShardError, match=r"m\.h5: block 0: energy has 2 rows but trial_id has 3 \(length mismatch"):
        open_shard(path)
    path = write_shard(tmp_path / "n.h5", trials)
    with h5py.File(path, "a") as f:
        del f["blocks"]["1"]["w_grad_var"]
    with pytest.raises(ShardError, match=r"n\.h5: block 1: no dataset w_grad_var"):
        open_shard(path)
    path = write_shard(tmp_path / "s.h5", trials)
    with h5py.File(path, "a") as f:
        f["blocks"]["1"]["status"][0] = b"weird"
    with pytest.raises(ShardError, match="status 'weird'"):
        open_shard(path)
    path = write_shard(tmp_path / "w.h5", trials)
    with h5py.File(path, "a") as f:
        f["blocks"]["1"]["trial_id"][0] = f["blocks"]["0"]["trial_id"][0]
    with pytest.raises(ShardError, match="appears more than once"):
        open_shard(path)


def test_a_config_column_of_variable_length_floats_is_rejected(tmp_path, trials):
    """An object column must hold text: h5py reads vlen floats back as arrays, which would reach collect as
    the config string '[1.]'."""
    path = write_shard(tmp_path / "v.h5", trials)
    with h5py.File(path, "a") as f:
        g = f["blocks"]["0"]
        n = g["config"].shape[0]
        del g["config"]
        column = g.create_dataset("config", (n,), dtype=h5py.vlen_dtype(np.float64))
        for i in range(n):
            column[i] = np.array([1.0])
    with pytest.raises(ShardError, match=r"v\.h5: block 0: config has dtype object; expected strings"):
        open_shard(path)


def test_importing_pc_shard_loads_no_jax(tmp_path):
    import subprocess

    code = "import sys, contracts.shard; assert 'jax' not in sys.modules; print('ok')"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "ok", p.stderr
