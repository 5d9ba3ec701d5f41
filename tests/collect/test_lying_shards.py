"""Shards are evidence, not truth: rows whose ids are not the hash of their stored config are refused (the shard
is set aside with the reason), and a later launch's shard beats an earlier one however far a node's clock ran
ahead (collect.rows.check_ids, collect.probe.submission_order). Real HDF5 files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from collect_cases import GRID, synthetic_trial

import collect
from collect.probe import submission_order
from contracts.shard import ARRAY_NAMES, write_shard


def _swap_ids(path, i: int, j: int) -> None:
    with h5py.File(path, "a") as f:
        (block,) = [g for g in f["blocks"].values()]
        ids = block["trial_id"][...]
        ids[[i, j]] = ids[[j, i]]
        block["trial_id"][...] = ids


def test_a_shard_whose_rows_carry_each_others_ids_is_set_aside_and_the_rest_merged(run):
    good = [synthetic_trial(s) for s in (1, 2)]
    liar = [synthetic_trial(s) for s in (3, 4)]
    run.shard("s1", good)
    path = run.shard("s2", liar)
    _swap_ids(path, 0, 1)
    run.manifest([t.trial_id for t in good + liar])
    r = collect.collect(GRID, run.root, progress=False)
    assert r.complete == 2 and sorted(r.missing) == sorted(t.trial_id for t in liar)
    assert not path.exists() and len(list(run.paths.bad_shards_dir.glob("s2*.h5"))) == 1
    ((bad, reason),) = r.corrupt
    assert "s2" in bad and "its stored config hashes to" in reason and "not to its id" in reason, reason


def test_an_edited_config_is_refused_like_swapped_ids(run):
    trials = [synthetic_trial(s) for s in (1, 2)]
    path = run.shard("s1", trials)
    with h5py.File(path, "a") as f:
        (block,) = [g for g in f["blocks"].values()]
        configs = block["config"][...]
        edited = [c.replace(b'"seed":2', b'"seed":7').replace(b'"seed": 2', b'"seed": 7') for c in configs]
        assert edited[1] != configs[1] and edited[0] == configs[0]
        block["config"][...] = edited
    run.manifest([t.trial_id for t in trials])
    r = collect.collect(GRID, run.root, progress=False)
    assert r.complete == 0 and len(r.corrupt) == 1
    assert f"trial {trials[1].trial_id}: its stored config hashes to" in r.corrupt[0][1]


@pytest.mark.parametrize("name, order", [
    ("20261207T171930Z-t-0123456789abcdef.h5", ("20261207T171930Z", 1)),
    ("20261207T171930Z-2-t-0123456789abcdef.a1.h5", ("20261207T171930Z", 2)),
    ("20261207T171930Z-w3.h5", ("20261207T171930Z", 1)),
    ("search-width_8-n000004-w0.h5", ("", 0)),
    ("trial.h5", ("", 0)),
])
def test_submission_order_reads_the_launch_stamp(name, order):
    assert submission_order(name) == order


def test_a_later_launch_beats_a_shard_from_a_node_whose_clock_ran_ahead(run):
    first = synthetic_trial(1)
    rerun = synthetic_trial(1, offset=40.0)  # same trial id, other numbers: the --force rerun's result
    run.shard("20261201T000000Z-t-aaaaaaaaaaaaaaaa", [first], created="2030-01-01T00:00:00+00:00")  # clock ahead
    run.manifest([first.trial_id])
    collect.collect(GRID, run.root, progress=False)
    run.shard("20261202T000000Z-t-bbbbbbbbbbbbbbbb", [rerun], created="2026-12-02T00:05:00+00:00")
    r = collect.collect(GRID, run.root, progress=False)
    assert r.complete == 1
    got = collect.load_arrays(GRID, "energy", [first.trial_id], root=run.root)[first.trial_id]
    np.testing.assert_array_equal(got, rerun.arrays["energy"])
    rebuilt = collect.collect(GRID, run.root, rebuild=True, progress=False)  # the same from scratch
    assert rebuilt.complete == 1
    got = collect.load_arrays(GRID, "energy", [first.trial_id], root=run.root)[first.trial_id]
    np.testing.assert_array_equal(got, rerun.arrays["energy"])


def test_a_small_shard_declaring_terabytes_is_set_aside_without_reading_it(run):
    """Chunked datasets whose chunks were never written: a few KiB on disk, about 2 TB declared. collect used to
    allocate it all and die, leaving a huge results file and its update marker; now the probe compares the declared
    bytes with the file's size (pcsweep writes its float32 arrays whole) and sets the shard aside."""
    real = synthetic_trial(1)
    path = run.shard("s1", [real])
    with h5py.File(path, "a") as f:
        (block,) = [g for g in f["blocks"].values()]
        for name in ARRAY_NAMES:  # every array with E = 10^6 epochs of B = 10^4 batches, consistently
            shape = block[name].shape
            huge = (shape[0], 10**6, *((10**4, *shape[3:]) if len(shape) > 2 else ()))
            del block[name]
            block.create_dataset(name, shape=huge, dtype="f4", chunks=(1, 1, *huge[2:]) if len(huge) > 2 else (1, 1))
    assert path.stat().st_size < 10**6
    run.manifest([real.trial_id])
    r = collect.collect(GRID, run.root, progress=False)
    assert r.complete == 0 and len(r.corrupt) == 1 and "bytes of arrays in a file of" in r.corrupt[0][1]
    assert not run.paths.results.exists() or run.paths.results.stat().st_size < 10**7


def test_a_renamed_run_folder_keeps_its_shards_on_rebuild(run, tmp_path):
    """The shards say grid 'g', the folder is now 'g2': its manifests (written at launch) name 'g', so the shards
    are its own, not foreign; a shard of a truly other grid is still set aside."""
    trials = [synthetic_trial(s) for s in (1, 2)]
    run.shard("s1", trials)
    run.manifest([t.trial_id for t in trials])
    collect.collect(GRID, run.root, progress=False)
    renamed = run.paths.folder.rename(run.root / "g2")
    write_shard(renamed / "shards" / "other.h5", [synthetic_trial(5)], grid="elsewhere")
    r = collect.collect("g2", run.root, rebuild=True, progress=False)
    assert r.complete == 2 and not r.missing
    assert any("its manifests name grid 'g' (the folder was renamed?)" in n for n in r.notes), r.notes
    assert len(r.corrupt) == 1 and "a shard of grid 'elsewhere', not 'g'" in r.corrupt[0][1]
