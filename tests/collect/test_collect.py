"""collect on real HDF5 shards: validation, newest-wins merging, report, summary values, incremental runs."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pandas as pd
import pytest
from collect_cases import GRID, synthetic_trial

import collect
from collect.blockstore import PROVENANCE
from collect.merge_state import updating_marker
from collect.results import ResultsWriter
from contracts.config import valid_keys
from contracts.shard import ARRAY_NAMES
from grids import resolve


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _make_partial(path) -> None:
    with h5py.File(path, "a") as f:
        del f.attrs["complete"]


def _results_row(run, trial_id: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays, per-row string columns) of one trial, read straight from results.h5's blocks."""
    with h5py.File(run.paths.results, "r") as f:
        for g in f["blocks"].values():
            ids = [t.decode() for t in g["trial_id"][()]]
            if trial_id in ids:
                i = ids.index(trial_id)
                strings = {c: g[c].asstr()[i] if g[c].dtype.kind == "O" else g[c][i].decode()
                           for c in ("trial_id", "config", "status", *PROVENANCE)}
                return {n: g[n][i] for n in ARRAY_NAMES}, strings
    raise KeyError(trial_id)


def _results_arrays(run, trial_id: str) -> dict[str, np.ndarray]:
    return _results_row(run, trial_id)[0]


def _results_ids(f: h5py.File, deleted: bool = False) -> list[str]:
    """Trial ids of every row; a deleted row (a replaced copy) has an empty id and is left out unless asked."""
    return [t.decode() for g in f["blocks"].values() for t in g["trial_id"][()] if deleted or t]


@pytest.fixture
def messy(run):
    """Two good shards (one trial in both), a diverged trial, a truncated and a partial shard,
    a failed trial and a missing one, all listed in a submissions manifest."""
    a, b, c = (synthetic_trial(s) for s in (1, 2, 3))
    b_new = synthetic_trial(2, offset=100.0)  # same config, same id, other values
    d = synthetic_trial(4, diverge_at=(1, 2))
    bp = synthetic_trial(5, kind="bp")
    e, f, g, h = (synthetic_trial(s) for s in (6, 7, 8, 9))
    run.shard("s1", [a, b, c], created="2026-01-01T00:00:00+00:00")
    run.shard("s2", [b_new, d, bp], created="2026-01-02T00:00:00+00:00")
    _truncate(run.shard("s3", [g]))
    _make_partial(run.shard("s4", [h]))
    run.failed(e.trial_id)
    ids = [t.trial_id for t in (a, b, c, d, bp, e, f, g, h)]
    run.manifest(ids)
    return dict(a=a, b=b, b_new=b_new, c=c, d=d, bp=bp, e=e, f=f, g=g, h=h)


def test_report_counts_every_category(run, messy):
    r = collect.collect(GRID, run.root, progress=False)
    t = messy
    assert r.mode == "full" and r.expected == 9 and r.expected_source == "submissions"
    assert r.complete == 5 and r.ok == 4 and r.diverged == 1
    assert list(r.failed) == [t["e"].trial_id] and "FloatingPointError: boom" in r.failed[t["e"].trial_id]
    assert "node7" in r.failed[t["e"].trial_id]
    assert r.missing == sorted([t["f"].trial_id, t["g"].trial_id, t["h"].trial_id])
    assert r.duplicate == 1 and r.duplicate_ids == [t["b"].trial_id]
    assert sorted(name for name, _ in r.corrupt) == ["s3.h5", "s4.h5"]
    reasons = dict(r.corrupt)
    assert "truncated" in reasons["s3.h5"] and "partial" in reasons["s4.h5"]
    assert r.new_shards == 4 and r.merged_trials == 5 and not r.is_clean


def test_bad_shards_are_set_aside_with_a_reason(run, messy):
    collect.collect(GRID, run.root, progress=False)
    bad = run.paths.bad_shards_dir
    assert sorted(p.name for p in bad.iterdir()) == ["s3.h5", "s3.h5.reason.txt", "s4.h5", "s4.h5.reason.txt"]
    assert "complete" in (bad / "s4.h5.reason.txt").read_text()
    assert sorted(p.name for p in run.paths.shards_dir.glob("*.h5")) == ["s1.h5", "s2.h5"]
    assert run.leftovers() == []


def test_newest_copy_of_a_duplicate_wins_by_values(run, messy):
    collect.collect(GRID, run.root, progress=False)
    tid = messy["b"].trial_id
    got = collect.load_trial(GRID, tid, root=run.root)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(got.arrays[name], messy["b_new"].arrays[name])
    _, cols = _results_row(run, tid)
    assert cols["shard"] == "s2.h5" and cols["shard_created"] == "2026-01-02T00:00:00+00:00"
    assert cols["hostname"] == "node-s2" and cols["slurm_job_id"] == "job-s2"
    with h5py.File(run.paths.results, "r") as f:
        assert f.attrs["schema"] == "pcsweep-results" and f.attrs["schema_version"] == 2
        assert f.attrs["grid"] == GRID and "created" in f.attrs
        assert sorted(_results_ids(f)) == sorted(messy[k].trial_id for k in ("a", "b", "c", "d", "bp"))
        # one block per array shape: the PC trials (T = 3, L = 3) and the BP trial (T = 1, L = 1)
        assert sorted(len(g["trial_id"]) for g in f["blocks"].values()) == [1, 4]
        assert all(g["energy"].ndim == 5 and g["energy"].chunks is None for g in f["blocks"].values())  # contiguous


def test_equal_created_falls_back_to_file_mtime(run):
    old, new = synthetic_trial(1), synthetic_trial(1, offset=7.0)
    run.shard("x", [new])
    run.shard("y", [old])
    run.touch_later(run.paths.shard("x"))
    collect.collect(GRID, run.root, progress=False)
    np.testing.assert_array_equal(_results_arrays(run, old.trial_id)["energy"], new.arrays["energy"])


def test_summary_values_are_the_last_batch_of_the_last_epoch_at_t_T_minus_1(run, messy):
    collect.collect(GRID, run.root, progress=False)
    df = collect.load_summary(GRID, root=run.root).set_index("trial_id")
    t = messy["a"]
    row, arr = df.loc[t.trial_id], t.arrays
    T = t.config["train"]["T"]
    assert row["status"] == "ok" and row["wall_s"] == t.wall_s
    assert row["accuracy"] == pytest.approx(float(arr["test_accuracy"][-1]), rel=1e-7)
    assert row["accuracy_best"] == pytest.approx(float(arr["test_accuracy"].max()), rel=1e-7)
    assert row["n_layers_energy"] == 3
    for k in range(3):
        assert np.float32(row[f"energy_{k}"]) == arr["energy"][-1, -1, T - 1, k]
        assert np.float32(row[f"energy_var_{k}"]) == arr["energy_var"][-1, -1, T - 1, k]
        assert np.float32(row[f"energy_final_{k}"]) == arr["energy"][-1, -1, T, k]
        for m in ("w_norm", "w_grad_norm", "w_grad_var"):
            assert np.float32(row[f"{m}_{k}"]) == arr[m][-1, -1, k]
    e = arr["energy"][-1, -1, T - 1].astype(np.float64)
    assert row["energy_ratio_0/1"] == pytest.approx(e[0] / (e[1] + 1e-32), rel=1e-12)
    assert row["energy_ratio_1/2"] == pytest.approx(e[1] / (e[2] + 1e-32), rel=1e-12)
    # config columns, flattened, and the derived labels
    assert row["data.dataset"] == "two_moons" and row["seed"] == 1 and row["train.T"] == T
    assert row["optim"] == "adamw-0.9" and row["condition"] == "pc-adamw-0.9"
    assert row["model.constant_width"] == np.False_ and row["model.width"] == 128


def test_summary_columns_are_the_documented_ones_in_order(run, messy):
    collect.collect(GRID, run.root, progress=False)
    cols = list(collect.load_summary(GRID, root=run.root).columns)
    per_layer = [f"{m}_{k}" for m in ("energy", "energy_var", "w_norm", "w_grad_norm", "w_grad_var") for k in range(3)]
    assert cols == (["trial_id", "status", "wall_s", "accuracy", "accuracy_best"] + valid_keys()
                    + ["optim", "condition", "n_layers_energy"] + per_layer
                    + ["energy_ratio_0/1", "energy_ratio_1/2", "energy_final_0", "energy_final_1", "energy_final_2"])


def test_diverged_and_bp_rows_keep_nans_where_values_are_nan(run, messy):
    collect.collect(GRID, run.root, progress=False)
    df = collect.load_summary(GRID, root=run.root).set_index("trial_id")
    d = df.loc[messy["d"].trial_id]
    assert d["status"] == "diverged" and np.isnan(d["accuracy"]) and np.isnan(d["energy_0"])
    assert d["accuracy_best"] == pytest.approx(float(messy["d"].arrays["test_accuracy"][0]), rel=1e-7)
    bp = df.loc[messy["bp"].trial_id]
    assert bp["n_layers_energy"] == 1 and bp["condition"] == "bp-adamw-0.9"
    arr = messy["bp"].arrays
    assert np.float32(bp["energy_0"]) == arr["energy"][-1, -1, 0, 0]  # T = 1: t = T-1 = 0
    assert np.isnan(bp["energy_1"]) and np.isnan(bp["energy_ratio_0/1"])
    assert np.float32(bp["w_norm_2"]) == arr["w_norm"][-1, -1, 2]


def test_incremental_collect_reads_only_the_new_shard(run, messy):
    collect.collect(GRID, run.root, progress=False)
    before = {k: _results_arrays(run, messy[k].trial_id) for k in ("a", "b")}
    a_prov = _results_row(run, messy["a"].trial_id)[1]["shard"]
    unchanged = collect.collect(GRID, run.root, progress=False)
    assert unchanged.mode == "unchanged" and unchanged.new_shards == 0 and unchanged.complete == 5
    f = messy["f"]
    run.shard("s5", [f], created="2026-01-03T00:00:00+00:00")
    r = collect.collect(GRID, run.root, progress=False)
    assert r.mode == "incremental" and r.new_shards == 1 and r.merged_trials == 1
    assert r.complete == 6 and f.trial_id not in r.missing and r.duplicate == 1
    for k, arrays in before.items():
        for name in ARRAY_NAMES:
            np.testing.assert_array_equal(_results_arrays(run, messy[k].trial_id)[name], arrays[name])
    assert _results_row(run, messy["a"].trial_id)[1]["shard"] == a_prov
    assert len(collect.load_summary(GRID, root=run.root)) == 6
    assert run.leftovers() == []


def test_incremental_equals_rebuild(run, messy):
    collect.collect(GRID, run.root, progress=False)
    run.shard("s5", [messy["f"], synthetic_trial(1, offset=50.0)], created="2026-01-05T00:00:00+00:00")
    run.shard("s6", [synthetic_trial(2, offset=-1.0)], created="2025-12-31T00:00:00+00:00")  # older: loses
    inc = collect.collect(GRID, run.root, progress=False)
    assert inc.mode == "incremental" and inc.new_shards == 2 and inc.merged_trials == 2
    inc_table = collect.load_summary(GRID, root=run.root)
    inc_arrays = {t: _results_arrays(run, t) for t in inc_table["trial_id"]}
    full = collect.collect(GRID, run.root, rebuild=True, progress=False)
    assert full.mode == "full" and full.new_shards == 4
    pd.testing.assert_frame_equal(inc_table, collect.load_summary(GRID, root=run.root))
    for tid, arrays in inc_arrays.items():
        for name in ARRAY_NAMES:
            np.testing.assert_array_equal(_results_arrays(run, tid)[name], arrays[name])
    assert (inc.complete, inc.duplicate_ids, inc.missing) == (full.complete, full.duplicate_ids, full.missing)
    np.testing.assert_array_equal(_results_arrays(run, messy["a"].trial_id)["energy"],
                                  synthetic_trial(1, offset=50.0).arrays["energy"])


def test_a_rewritten_shard_is_read_again(run):
    t = synthetic_trial(1)
    path = run.shard("s1", [t])
    collect.collect(GRID, run.root, progress=False)
    run.shard("s1", [synthetic_trial(1, offset=3.0)], created="2026-02-01T00:00:00+00:00")
    run.touch_later(path)
    r = collect.collect(GRID, run.root, progress=False)
    assert r.new_shards == 1 and r.merged_trials == 1 and r.duplicate == 0
    assert _results_arrays(run, t.trial_id)["w_norm"][0, 0, 0] == np.float32(8.0)


def test_a_bad_trial_sets_its_shard_aside_and_an_older_copy_takes_over(run):
    t_old, t_new, other = synthetic_trial(1), synthetic_trial(1, offset=9.0), synthetic_trial(2)
    run.shard("old", [t_old], created="2026-01-01T00:00:00+00:00")
    path = run.shard("new", [t_new, other], created="2026-01-02T00:00:00+00:00")
    with h5py.File(path, "a") as f:
        del f["blocks"]["0"]["energy_var"]
    r = collect.collect(GRID, run.root, progress=False)
    assert [n for n, _ in r.corrupt] == ["new.h5"] and "energy_var" in r.corrupt[0][1]
    assert r.complete == 1  # `other` lived only in the bad shard
    np.testing.assert_array_equal(_results_arrays(run, t_old.trial_id)["energy"], t_old.arrays["energy"])


def test_a_failed_full_collect_leaves_results_untouched_and_no_temp_files(run, messy, monkeypatch):
    collect.collect(GRID, run.root, progress=False)
    before = run.paths.results.read_bytes()

    def boom(self, info, trial_ids):
        raise KeyboardInterrupt("killed by the test")

    monkeypatch.setattr(ResultsWriter, "copy_from", boom)
    with pytest.raises(KeyboardInterrupt, match="killed by the test"):
        collect.collect(GRID, run.root, rebuild=True, progress=False)
    assert run.paths.results.read_bytes() == before and run.leftovers() == []


def test_an_interrupted_in_place_update_is_refused_then_rebuilt(run, messy, monkeypatch):
    collect.collect(GRID, run.root, progress=False)
    run.shard("s5", [messy["f"]], created="2026-01-03T00:00:00+00:00")
    real_copy = ResultsWriter.copy_from

    def copy_then_die(self, info, trial_ids):
        real_copy(self, info, trial_ids)
        raise KeyboardInterrupt("killed by the test")

    monkeypatch.setattr(ResultsWriter, "copy_from", copy_then_die)
    with pytest.raises(KeyboardInterrupt, match="killed by the test"):
        collect.collect(GRID, run.root, progress=False)
    # a failed update leaves the marker (it is removed only after a complete, verified update)
    assert run.leftovers() == [] and updating_marker(run.paths).exists()
    with pytest.raises(RuntimeError, match="interrupted"):
        collect.load_trial(GRID, messy["a"].trial_id, root=run.root)
    monkeypatch.undo()
    r = collect.collect(GRID, run.root, progress=False)  # the marker: results.h5 is rebuilt from the shards
    assert r.mode == "full" and r.complete == 6 and any("interrupted" in n for n in r.notes)
    assert not updating_marker(run.paths).exists()
    # A process killed mid-update leaves the marker: loaders refuse, the next collect rebuilds.
    updating_marker(run.paths).write_text("killed")
    with pytest.raises(RuntimeError, match="interrupted"):
        collect.load_trial(GRID, messy["a"].trial_id, root=run.root)
    r = collect.collect(GRID, run.root, progress=False)
    assert r.mode == "full" and any("interrupted" in n for n in r.notes)
    assert not updating_marker(run.paths).exists()
    assert collect.load_trial(GRID, messy["a"].trial_id, root=run.root).status == "ok"


def test_results_held_open_by_a_reader_get_a_new_file(run, messy):
    collect.collect(GRID, run.root, progress=False)
    run.shard("s5", [messy["f"]], created="2026-01-03T00:00:00+00:00")
    with h5py.File(run.paths.results, "r") as reader:
        r = collect.collect(GRID, run.root, progress=False)
        assert len(_results_ids(reader)) == 5  # the reader still sees the file it opened
    assert r.complete == 6 and len(collect.load_summary(GRID, root=run.root)) == 6
    assert r.mode == "full" and any("cannot update in place" in n for n in r.notes)


def test_edited_results_trigger_a_full_collect(run, messy):
    collect.collect(GRID, run.root, progress=False)
    run.paths.summary.unlink()
    r = collect.collect(GRID, run.root, progress=False)
    assert r.mode == "full" and any("changed since" in n for n in r.notes)
    assert len(collect.load_summary(GRID, root=run.root)) == 5


def test_a_replaced_trial_deletes_its_old_row_and_a_new_shape_gets_a_block(run):
    a, b = synthetic_trial(1), synthetic_trial(2)
    run.shard("s1", [a, b], created="2026-01-01T00:00:00+00:00")
    collect.collect(GRID, run.root, progress=False)
    a_new, bp = synthetic_trial(1, offset=5.0), synthetic_trial(3, kind="bp")
    run.shard("s2", [a_new, bp], created="2026-01-02T00:00:00+00:00")
    r = collect.collect(GRID, run.root, progress=False)
    assert r.mode == "incremental" and r.merged_trials == 2 and r.complete == 3
    with h5py.File(run.paths.results, "r") as f:  # a's old row is deleted (empty id); a's and bp's rows are new
        assert sorted(_results_ids(f)) == sorted([a.trial_id, b.trial_id, bp.trial_id])
        assert _results_ids(f, deleted=True).count("") == 1
    np.testing.assert_array_equal(_results_arrays(run, a.trial_id)["energy"], a_new.arrays["energy"])
    assert _results_row(run, a.trial_id)[1]["shard"] == "s2.h5"
    got = collect.load_trial(GRID, bp.trial_id, root=run.root)
    assert got.config == bp.config and got.wall_s == bp.wall_s
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(got.arrays[name], bp.arrays[name])


def test_empty_run_folder_and_missing_folder(run, tmp_path):
    r = collect.collect(GRID, run.root, progress=False)
    assert r.complete == 0 and r.expected is None and r.expected_source == "unknown"
    assert list(collect.load_summary(GRID, root=run.root).columns[:2]) == ["trial_id", "status"]
    with pytest.raises(collect.NoRunFolder, match="no such run folder"):
        collect.collect("nope", run.root, progress=False)


def test_strict_raises_with_the_report_after_writing(run, messy):
    with pytest.raises(collect.IncompleteError, match="3 missing") as info:
        collect.collect(GRID, run.root, strict=True, progress=False)
    assert len(info.value.report.missing) == 3 and run.paths.results.exists()


def test_load_arrays_and_errors(run, messy):
    collect.collect(GRID, run.root, progress=False)
    ids = [messy["a"].trial_id, messy["c"].trial_id]
    got = collect.load_arrays(GRID, "w_grad_norm", ids, root=run.root)
    assert list(got) == ids
    np.testing.assert_array_equal(got[ids[1]], messy["c"].arrays["w_grad_norm"])
    with pytest.raises(KeyError, match="expected one of"):
        collect.load_arrays(GRID, "energies", ids, root=run.root)
    with pytest.raises(KeyError, match="no trial"):
        collect.load_trial(GRID, "0" * 16, root=run.root)
    with pytest.raises(FileNotFoundError, match="python -m collect"):
        collect.load_summary("other", root=run.root)


def test_report_json_is_plain_data(run, messy):
    r = collect.collect(GRID, run.root, progress=False)
    d = json.loads(json.dumps(r.to_json_dict()))
    assert d["n_missing"] == 3 and d["n_corrupt"] == 2 and d["duplicate"] == 1


def test_every_summary_column_is_documented(run, messy, repo_root):
    doc = (repo_root / "docs" / "collect.md").read_text()
    documented = re.findall(r"^\| `([^`]+)` \|", doc, flags=re.M)
    patterns = [re.compile("^" + re.escape(d).replace(r"\{k\-1\}", r"\d+").replace(r"\{k\}", r"\d+") + "$")
                for d in documented]
    collect.collect(GRID, run.root, progress=False)
    for column in collect.load_summary(GRID, root=run.root).columns:
        assert any(p.match(column) for p in patterns), f"docs/collect.md does not document column {column}"


def test_unreadable_failed_record_and_grid_yaml_fall_back_with_a_note(run, messy):
    (run.paths.failed_dir / "deadbeefdeadbeef.json").write_text("{not json")
    run.paths.grid_yaml.write_text("name: g\nsweep: 3\n")  # not a valid grid
    r = collect.collect(GRID, run.root, progress=False)
    assert "unreadable failed record" in r.failed["deadbeefdeadbeef"]
    assert r.expected_source == "submissions" and any("could not expand" in n for n in r.notes)


def test_grid_name_from_a_yaml_path(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("name: propagation\n")
    assert resolve(str(f)).name == "propagation" and resolve("demo").name == "demo"
    with pytest.raises(ValueError, match="no such grid file"):
        resolve(str(tmp_path / "absent.yaml"))
