"""The shard probe (collect.probe): which shards are set aside before their rows are read, and what a good one's
`ShardInfo` says. Real HDF5 files, written by `contracts.shard.write_shard` and then damaged with h5py. A shard
whose energies lack the last inference step (T+1 < 2: no t = T-1) passed the full block check, so every collect
died later with a traceback; the probe must set it aside with the reason."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from collect_cases import GRID, synthetic_trial

import collect
from collect.probe import ShardChanged, ShardInfo, open_probed, probe, submission_order
from contracts.shard import ShardError, TrialResult, shape_key, write_shard

ATTRS = {"created": "2026-01-01T00:00:00+00:00", "hostname": "node-a", "slurm_job_id": "77_3"}


def write(path: Path, trials: list[TrialResult], grid: str = GRID, **attrs) -> Path:
    return write_shard(path, trials, grid=grid, task_key="k", attrs={**ATTRS, **attrs})


def steps(trial: TrialResult, n: int) -> TrialResult:
    """The trial with only the first `n` inference steps of its energies (energy [E, B, n, L])."""
    arrays = dict(trial.arrays)
    for name in ("energy", "energy_var"):
        arrays[name] = np.ascontiguousarray(arrays[name][:, :, :n, :])
    return TrialResult(trial.trial_id, trial.config, trial.status, trial.wall_s, arrays)


def edit(path: Path, change) -> Path:
    with h5py.File(path, "a") as f:
        change(f)
    return path


def replace_dataset(name: str, value_or_shape, block: str = "0"):
    def change(f: h5py.File) -> None:
        del f["blocks"][block][name]
        if isinstance(value_or_shape, tuple):
            f["blocks"][block].create_dataset(name, shape=value_or_shape, dtype="f4")  # never written
        else:
            f["blocks"][block].create_dataset(name, data=value_or_shape)
    return change


# ---- a good shard -----------------------------------------------------------------------------------------------

def test_a_good_shard_is_described_by_its_blocks_trials_and_provenance(tmp_path):
    trials = [synthetic_trial(1), synthetic_trial(2), synthetic_trial(3, B=5)]
    path = write(tmp_path / "20261207T171930Z-k.h5", trials)
    info = probe(path, GRID)
    st = path.stat()
    assert (info.name, info.path, info.size, info.mtime_ns) == (path.name, path, st.st_size, st.st_mtime_ns)
    assert (info.created, info.hostname, info.slurm_job_id) == (ATTRS["created"], "node-a", "77_3")
    assert info.trial_ids == tuple(t.trial_id for t in trials)
    assert [(b.name, b.trial_ids, b.shape_key) for b in info.blocks] == [
        ("0", (trials[0].trial_id, trials[1].trial_id), shape_key(trials[0].arrays)),
        ("1", (trials[2].trial_id,), shape_key(trials[2].arrays))]
    assert info.provenance == (path.name, ATTRS["created"], "node-a", "77_3")
    assert info.key == (("20261207T171930Z", 1), ATTRS["created"], st.st_mtime_ns, path.name)


def test_blocks_are_listed_in_numeric_order_past_nine(tmp_path):
    trials = [synthetic_trial(s, B=s) for s in range(1, 13)]  # 12 shapes: blocks 0..11
    info = probe(write(tmp_path / "s.h5", trials))
    assert [b.name for b in info.blocks] == [str(k) for k in range(12)]
    assert info.trial_ids == tuple(t.trial_id for t in trials)


def test_missing_provenance_reads_as_empty_text(tmp_path):
    path = write(tmp_path / "s.h5", [synthetic_trial(1)])
    edit(path, lambda f: [f.attrs.__delitem__(k) for k in ("created", "hostname", "slurm_job_id")])
    info = probe(path, GRID)
    assert (info.created, info.hostname, info.slurm_job_id) == ("", "", "")
    assert info.key[0] == ("", 0)


def test_a_shard_of_no_grid_is_accepted_by_every_grid_and_any_shard_by_no_grid(tmp_path):
    unnamed = write(tmp_path / "a.h5", [synthetic_trial(1)], grid="")
    assert probe(unnamed, GRID).trial_ids and probe(unnamed, "other").trial_ids
    named = write(tmp_path / "b.h5", [synthetic_trial(1)], grid="other")
    assert probe(named, "").trial_ids and probe(named).trial_ids and probe(named, "other").trial_ids


def test_two_inference_steps_are_enough(tmp_path):
    path = write(tmp_path / "s.h5", [steps(synthetic_trial(1), 2)])
    assert probe(path, GRID).blocks[0].shape_key[1][2] == 2


def test_large_arrays_written_whole_fit_the_file(tmp_path):
    """The declared array bytes of a real shard stay under its size even when the arrays are most of the file."""
    path = write(tmp_path / "s.h5", [synthetic_trial(s, E=4, B=300, T=7) for s in (1, 2)])
    info = probe(path, GRID)
    declared = sum(4 * len(b.trial_ids) * int(np.prod(s)) for b in info.blocks for s in b.shape_key)
    assert declared <= info.size < 1.1 * declared


# ---- set aside ---------------------------------------------------------------------------------------------------

def test_a_shard_without_its_last_inference_step_is_refused(tmp_path):
    path = write(tmp_path / "s.h5", [steps(synthetic_trial(1), 1)])
    with pytest.raises(ShardError, match=r"s\.h5: block 0: energy has 1 inference steps; expected T\+1 >= 2$"):
        probe(path, GRID)


def test_collect_sets_a_shard_without_its_last_inference_step_aside_and_merges_the_rest(run):
    good = synthetic_trial(1)
    short = steps(synthetic_trial(2), 1)
    run.shard("s1", [good])
    path = run.shard("s2", [short])
    run.manifest([good.trial_id, short.trial_id])
    r = collect.collect(GRID, run.root, progress=False)
    assert r.complete == 1 and r.missing == [short.trial_id]
    assert not path.exists() and len(list(run.paths.bad_shards_dir.glob("s2*.h5"))) == 1
    ((bad, reason),) = r.corrupt
    assert "s2" in bad and "energy has 1 inference steps" in reason


@pytest.mark.parametrize("attr, value, message", [
    ("schema", "other", r"schema is 'other'; expected 'pcsweep-shard' \(not a pcsweep shard: remove it\)$"),
    ("schema_version", 1, r"schema_version is 1; this pcsweep reads version 2 only \(a version-1 shard has one "
                          r"group per trial: rerun its task to rewrite it\)$"),
    ("complete", False, r"no 'complete' flag: the write did not finish \(partial shard; rerun its task\)$"),
    ("complete", 1, r"no 'complete' flag"),
    ("grid", "other", r"a shard of grid 'other', not 'g' \(foreign shard\): move it to that grid's shards/ folder, "
                      r"or delete it$"),
])
def test_a_bad_header_is_refused_naming_the_fix(tmp_path, attr, value, message):
    path = write(tmp_path / "s.h5", [synthetic_trial(1)])
    edit(path, lambda f: f.attrs.__setitem__(attr, value))
    with pytest.raises(ShardError, match=rf"^{tmp_path}/s\.h5: {message}"):
        probe(path, GRID)


@pytest.mark.parametrize("attr", ["schema", "schema_version", "complete"])
def test_a_missing_header_attribute_is_refused(tmp_path, attr):
    path = write(tmp_path / "s.h5", [synthetic_trial(1)])
    edit(path, lambda f: f.attrs.__delitem__(attr))
    with pytest.raises(ShardError, match=rf"s\.h5: {attr if attr != 'complete' else 'no .complete. flag'}"):
        probe(path, GRID)


@pytest.mark.parametrize("attr", ["created", "schema"])
def test_an_empty_attribute_is_unreadable_metadata_not_a_crash(tmp_path, attr):
    """A null-dataspace attribute (another writer's) made the probe raise TypeError, killing the whole collect."""
    path = edit(write(tmp_path / "s.h5", [synthetic_trial(1)]), lambda f: f.attrs.__setitem__(attr, h5py.Empty("f")))
    with pytest.raises(ShardError, match=r"s\.h5: unreadable HDF5 metadata \(truncated or corrupt; rerun its task\): "):
        probe(path, GRID)


def test_a_block_name_that_is_not_text_is_unreadable_metadata(tmp_path):
    path = edit(write(tmp_path / "s.h5", [synthetic_trial(1)]), lambda f: f["blocks"].create_group(b"\xff\xfe"))
    with pytest.raises(ShardError, match=r"s\.h5: unreadable HDF5 metadata \(truncated or corrupt; rerun its task\): "
                       r"'utf-8' codec can't decode"):
        probe(path, GRID)


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # the signature, then nothing
    with pytest.raises(ShardError, match=r"s\.h5: not a readable HDF5 file \(truncated or corrupt; rerun its task\): "):
        probe(path, GRID)


def test_a_folder_in_place_of_a_shard_is_refused_and_a_gone_one_is_not_found(tmp_path):
    (tmp_path / "d.h5").mkdir()
    with pytest.raises(ShardError, match="not a regular file"):
        probe(tmp_path / "d.h5", GRID)
    with pytest.raises(FileNotFoundError, match="gone.h5"):
        probe(tmp_path / "gone.h5", GRID)


def test_a_shard_without_blocks_is_refused(tmp_path):
    path = edit(write(tmp_path / "s.h5", [synthetic_trial(1)]), lambda f: f.__delitem__("blocks"))
    with pytest.raises(ShardError, match=r"s\.h5: no /blocks group \(malformed shard; rerun its task\)$"):
        probe(path, GRID)


@pytest.mark.parametrize("name", ["trial_id", "energy", "w_norm"])
def test_a_block_missing_a_dataset_is_refused(tmp_path, name):
    path = edit(write(tmp_path / "s.h5", [synthetic_trial(1)]), lambda f: f["blocks"]["0"].__delitem__(name))
    with pytest.raises(ShardError, match=r"s\.h5: block 0: malformed \(KeyError: "):
        probe(path, GRID)


def test_a_trial_id_that_is_not_text_is_refused(tmp_path):
    path = edit(write(tmp_path / "s.h5", [synthetic_trial(1)]),
                replace_dataset("trial_id", np.array([b"\xff\xfe"], dtype="S2")))
    with pytest.raises(ShardError, match=r"s\.h5: block 0: malformed \(UnicodeDecodeError: "):
        probe(path, GRID)


@pytest.mark.parametrize("name, shape, shown", [
    ("energy", (1, 2, 4, 4, 3, 1), r"energy \(2, 4, 4, 3, 1\) or w_norm \(2, 4, 3\)"),
    ("energy", (1, 2, 4, 4), r"energy \(2, 4, 4\) or w_norm \(2, 4, 3\)"),
    ("w_norm", (1, 2, 4), r"energy \(2, 4, 4, 3\) or w_norm \(2, 4\)"),
    ("w_norm", (1, 2, 4, 3, 1), r"energy \(2, 4, 4, 3\) or w_norm \(2, 4, 3, 1\)"),
])
def test_arrays_of_the_wrong_rank_are_refused(tmp_path, name, shape, shown):
    path = edit(write(tmp_path / "s.h5", [synthetic_trial(1)]), replace_dataset(name, np.zeros(shape, "f4")))
    with pytest.raises(ShardError, match=rf"s\.h5: block 0: {shown}: wrong rank$"):
        probe(path, GRID)


def test_arrays_declared_larger_than_the_file_are_refused_before_reading(tmp_path):
    path = edit(write(tmp_path / "s.h5", [synthetic_trial(1)]), replace_dataset("energy", (1, 400, 500, 50, 3)))
    size = path.stat().st_size
    with pytest.raises(ShardError, match=rf"s\.h5: its blocks declare [\d,]+ bytes of arrays in a file of {size:,} "
                       r"bytes \(chunks never written, or compressed by another writer\); reading it would allocate "
                       r"all of that: rerun its task$"):
        probe(path, GRID)


def test_the_declared_size_counts_every_trial(tmp_path):
    """Energies that one trial's arrays would fit in the file but three trials' do not: refused."""
    path = write(tmp_path / "s.h5", [synthetic_trial(s) for s in (1, 2, 3)])
    steps_declared = path.stat().st_size // 16  # energy [1, 1, T+1, 1] per trial; it and energy_var count
    edit(path, replace_dataset("energy", (3, 1, 1, steps_declared, 1)))
    size = path.stat().st_size
    per_trial = 4 * (1 + 2 * steps_declared + 3 * 2 * 4 * 3)  # test_accuracy [E = 1 now], energy(_var), 3 w_* [2, 4, 3]
    assert per_trial < size < 3 * per_trial
    with pytest.raises(ShardError, match=rf"declare {3 * per_trial:,} bytes of arrays in a file of {size:,} bytes"):
        probe(path, GRID)


# ---- open_probed ---------------------------------------------------------------------------------------------------

def test_open_probed_opens_the_shard_that_was_probed(tmp_path):
    trials = [synthetic_trial(1), synthetic_trial(2)]
    info = probe(write(tmp_path / "s.h5", trials), GRID)
    with open_probed(info) as shard:
        assert shard.trial_ids == sorted(t.trial_id for t in trials)


def test_open_probed_notices_a_shard_gone_or_rewritten_since_its_probe(tmp_path):
    path = write(tmp_path / "s.h5", [synthetic_trial(1)])
    info = probe(path, GRID)
    write(path, [synthetic_trial(1), synthetic_trial(2)])
    with pytest.raises(ShardChanged, match=r"s\.h5: changed since it was probed$"):
        open_probed(info)
    path.unlink()
    with pytest.raises(ShardChanged, match=r"s\.h5: gone since it was probed$"):
        open_probed(info)


def test_open_probed_notices_other_blocks_behind_the_same_size_and_time(tmp_path):
    path = write(tmp_path / "s.h5", [synthetic_trial(1), synthetic_trial(2)])
    info = probe(path, GRID)
    changed = ShardInfo(**{**info.__dict__, "blocks": (info.blocks[0].__class__(
        info.blocks[0].name, tuple(reversed(info.blocks[0].trial_ids)), info.blocks[0].shape_key),)})
    with pytest.raises(ShardChanged, match=r"s\.h5: changed since it was probed$"):
        open_probed(changed)
    st = path.stat()
    moved = ShardInfo(**{**info.__dict__, "mtime_ns": st.st_mtime_ns + 1})
    with pytest.raises(ShardChanged, match="changed since"):
        open_probed(moved)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with open_probed(info) as shard:
        assert len(shard.block_infos) == 1


@pytest.mark.parametrize("name, order", [
    ("20261207T171930Z-t.h5", ("20261207T171930Z", 1)),
    ("20261207T171930Z-1-t.h5", ("20261207T171930Z", 1)),
    ("20261207T171930Z-12-t.h5", ("20261207T171930Z", 12)),
    ("20261207T171930Z-123-t.h5", ("20261207T171930Z", 123)),
    ("20261207T171930Z-1234-t.h5", ("20261207T171930Z", 1)),  # not a counter: part of the task key
    ("20261207T171930Z.h5", ("", 0)),
    ("x20261207T171930Z-t.h5", ("", 0)),
    ("2026120T171930Z-t.h5", ("", 0)),
])
def test_submission_order_reads_the_stamp_and_its_counter(name, order):
    assert submission_order(name) == order
