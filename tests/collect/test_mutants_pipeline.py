"""collect.pipeline where the mutation run found survivors (fast tier; tests/README.md "Mutation testing").

Real shards (`contracts.shard.write_shard`, through the `run` fixture), real collects, real lock files. What a
collect did is read from its report (mode, shards read, copies merged, duplicates, notes) and from the summary
it wrote, against what the shards hold.
"""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
from collect_cases import GRID, synthetic_trial

import collect
from collect import pipeline
from collect.results import ResultsWriter
from contracts.lock import LockHeld, RunLock


def _ids(run) -> list[str]:
    return list(collect.load_summary(GRID, root=run.root)["trial_id"])


def test_a_missing_run_folder_names_the_folder_the_root_and_the_fix(run, tmp_path):
    with pytest.raises(collect.NoRunFolder, match=r"no such run folder") as info:
        collect.collect("nope", tmp_path, progress=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'nope'}: no such run folder; launch the grid first, or pass --root ")
    assert f"(now {tmp_path})" in message and "$PCSWEEP_ROOT" in message and "'nope/'" in message
    assert isinstance(info.value, FileNotFoundError) and not (tmp_path / "nope").exists()


def test_notes_say_why_a_collect_was_full(run):
    run.shard("s1", [synthetic_trial(1)])
    first = collect.collect(GRID, run.root, progress=False)
    assert first.mode == "full" and first.notes == []  # a first collect: nothing to explain
    again = collect.collect(GRID, run.root, rebuild=True, progress=False)
    assert again.mode == "full" and again.notes == ["full collect: --rebuild"]
    run.paths.collect_state.unlink()
    lost = collect.collect(GRID, run.root, progress=False)
    assert lost.mode == "full" and len(lost.notes) == 1
    assert lost.notes[0].startswith("full collect: no ") and "a first collect" in lost.notes[0]
    unchanged = collect.collect(GRID, run.root, progress=False)
    assert unchanged.mode == "unchanged" and unchanged.notes == []


def test_rebuild_on_an_empty_run_folder_says_so(run):
    r = collect.collect(GRID, run.root, rebuild=True, progress=False)
    assert r.mode == "full" and r.notes == ["full collect: --rebuild"] and r.complete == 0


def test_counts_of_shards_read_and_copies_merged(run):
    a, b, c = synthetic_trial(1), synthetic_trial(2), synthetic_trial(3)
    run.shard("s1", [a, b])
    run.shard("s2", [c])
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.new_shards, r.merged_trials, r.complete) == ("full", 2, 3, 3)
    run.shard("s3", [synthetic_trial(4), synthetic_trial(5)])
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.new_shards, r.merged_trials, r.complete) == ("incremental", 1, 2, 5)
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.new_shards, r.merged_trials, r.complete) == ("unchanged", 0, 0, 5)
    r = collect.collect(GRID, run.root, rebuild=True, progress=False)
    assert (r.mode, r.new_shards, r.merged_trials, r.complete) == ("full", 3, 5, 5)


def test_a_changed_shard_whose_copies_lose_is_remembered_and_not_read_again(run):
    """Changed, but every trial of it has a newer copy elsewhere: nothing merged, and the next run reads nothing."""
    t = synthetic_trial(1)
    run.shard("new", [synthetic_trial(1, offset=4.0)], created="2026-01-05T00:00:00+00:00")
    old = run.shard("old", [t], created="2026-01-01T00:00:00+00:00")
    collect.collect(GRID, run.root, progress=False)
    run.shard("old", [t, synthetic_trial(2)][:1], created="2026-01-02T00:00:00+00:00")  # rewritten, still older
    run.touch_later(old)
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.new_shards, r.merged_trials, r.duplicate) == ("unchanged", 1, 0, 1)
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.new_shards, r.merged_trials, r.duplicate) == ("unchanged", 0, 0, 1)
    # and the state written then still matches results.h5 and summary.csv: no full collect follows
    assert r.notes == [] and r.complete == 1


def test_a_shard_rewritten_to_the_same_mtime_but_another_size_is_read_again(run):
    path = run.shard("s1", [synthetic_trial(1)])
    collect.collect(GRID, run.root, progress=False)
    mtime = path.stat().st_mtime_ns
    size = path.stat().st_size
    run.shard("s1", [synthetic_trial(1, offset=2.0), synthetic_trial(2)], created="2026-01-02T00:00:00+00:00")
    os.utime(path, ns=(mtime, mtime))
    assert path.stat().st_size != size
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.new_shards, r.merged_trials, r.complete) == ("incremental", 1, 2, 2)


def test_a_shard_touched_with_the_same_size_is_read_again(run):
    """Same size, newer mtime: read again; its copy (same `created`, newer file) wins the tie and is merged."""
    path = run.shard("s1", [synthetic_trial(1)])
    collect.collect(GRID, run.root, progress=False)
    run.touch_later(path)
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.new_shards, r.merged_trials) == ("incremental", 1, 1)


def test_a_vanished_shard_keeps_its_trials_but_no_longer_counts_as_a_copy(run):
    t = synthetic_trial(1)
    run.shard("s1", [t, synthetic_trial(2)], created="2026-01-01T00:00:00+00:00")
    s2 = run.shard("s2", [synthetic_trial(1, offset=1.0)], created="2026-01-02T00:00:00+00:00")
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.complete, r.duplicate, r.duplicate_ids) == (2, 1, [t.trial_id])
    s2.unlink()
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.complete, r.duplicate, r.new_shards) == ("unchanged", 2, 0, 0)
    assert sorted(_ids(run)) == sorted([t.trial_id, synthetic_trial(2).trial_id])


def test_a_valid_shard_rewritten_bad_is_set_aside_and_no_longer_counts_as_a_copy(run):
    t = synthetic_trial(1)
    run.shard("s1", [t], created="2026-01-01T00:00:00+00:00")
    s2 = run.shard("s2", [synthetic_trial(1, offset=1.0)], created="2026-01-02T00:00:00+00:00")
    assert collect.collect(GRID, run.root, progress=False).duplicate == 1
    s2.write_bytes(s2.read_bytes()[:200])  # truncated by a later writer
    r = collect.collect(GRID, run.root, progress=False)
    assert [name for name, _ in r.corrupt] == ["s2.h5"] and r.duplicate == 0 and r.complete == 1
    assert r.new_shards == 1 and r.mode == "unchanged"


def test_a_full_collect_rewrites_the_summary_instead_of_updating_it(run):
    """A rebuild after a shard was deleted: its trials leave the summary (an update would keep their rows)."""
    a, b = synthetic_trial(1), synthetic_trial(2)
    run.shard("s1", [a, b])
    collect.collect(GRID, run.root, progress=False)
    run.paths.shard("s1").unlink()
    run.shard("s2", [a])
    r = collect.collect(GRID, run.root, rebuild=True, progress=False)
    assert r.mode == "full" and r.complete == 1 and _ids(run) == [a.trial_id]


def test_an_edited_summary_is_replaced_by_the_shards_rows(run):
    a = synthetic_trial(1)
    run.shard("s1", [a])
    collect.collect(GRID, run.root, progress=False)
    text = run.paths.summary.read_text()
    header, row = text.splitlines()[:2]
    run.paths.summary.write_text(f"{header}\n{row}\n{'f' * 16}{row[16:]}\n")  # a row nobody collected
    r = collect.collect(GRID, run.root, progress=False)
    assert r.mode == "full" and _ids(run) == [a.trial_id] and run.paths.summary.read_text() == text


def test_an_incremental_collect_updates_the_summary_rows(run):
    a, b = synthetic_trial(1), synthetic_trial(2)
    run.shard("s1", [a, b], created="2026-01-01T00:00:00+00:00")
    collect.collect(GRID, run.root, progress=False)
    a_new, c = synthetic_trial(1, offset=10.0), synthetic_trial(3)
    run.shard("s2", [a_new, c], created="2026-01-02T00:00:00+00:00")
    r = collect.collect(GRID, run.root, progress=False)
    assert r.mode == "incremental"
    table = collect.load_summary(GRID, root=run.root).set_index("trial_id")
    assert sorted(table.index) == sorted(t.trial_id for t in (a, b, c))
    assert table.loc[a.trial_id, "w_norm_0"] == float(a_new.arrays["w_norm"][-1, -1, 0])
    assert table.loc[b.trial_id, "w_norm_0"] == float(b.arrays["w_norm"][-1, -1, 0])


def test_results_held_open_fall_back_to_a_full_collect_with_a_note(run):
    import h5py

    run.shard("s1", [synthetic_trial(1)])
    collect.collect(GRID, run.root, progress=False)
    run.shard("s2", [synthetic_trial(2)])
    with h5py.File(run.paths.results, "r"):
        r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.complete, r.new_shards, r.merged_trials) == ("full", 2, 2, 2)
    assert len(r.notes) == 1
    assert r.notes[0].startswith(f"{run.paths.results}: cannot update in place (")
    assert r.notes[0].endswith("); wrote a new file instead")
    assert collect.collect(GRID, run.root, progress=False).mode == "unchanged"


def test_strict_raises_with_the_counts_and_the_report(run):
    run.shard("s1", [synthetic_trial(1), synthetic_trial(2)])
    run.manifest([synthetic_trial(1).trial_id, synthetic_trial(3).trial_id])
    run.failed(synthetic_trial(4).trial_id)
    with pytest.raises(collect.IncompleteError, match=r"^g: 1 missing, 1 failed and 1 unexpected trial\(s\)$") as e:
        collect.collect(GRID, run.root, strict=True, progress=False)
    assert e.value.report.complete == 2 and e.value.report.missing == [synthetic_trial(3).trial_id]
    assert isinstance(e.value, RuntimeError) and run.paths.summary.exists()
    r = collect.collect(GRID, run.root, progress=False)  # not strict: the same report, returned
    assert (len(r.missing), len(r.failed), r.unexpected) == (1, 1, 1)


def test_strict_passes_a_clean_run(run):
    t = synthetic_trial(1)
    run.shard("s1", [t])
    run.manifest([t.trial_id])
    r = collect.collect(GRID, run.root, strict=True, progress=False)
    assert r.is_clean and r.complete == 1


def test_a_locked_run_folder_is_refused_at_once_by_default(run):
    with RunLock(run.paths.lock, "launch"):
        t0 = time.monotonic()
        with pytest.raises(LockHeld, match="locked"):
            collect.collect(GRID, run.root, progress=False)
        assert time.monotonic() - t0 < 0.45  # no wait: the poll interval is 0.5 s
    assert not run.paths.results.exists()


def test_wait_s_waits_for_the_lock(run):
    run.shard("s1", [synthetic_trial(1)])
    lock = RunLock(run.paths.lock, "launch")
    lock.acquire()
    releaser = threading.Timer(0.3, lock.release)
    releaser.start()
    try:
        r = collect.collect(GRID, run.root, progress=False, wait_s=20.0)
    finally:
        releaser.join()
    assert r.complete == 1 and not run.paths.lock.exists()


def test_progress_is_shown_by_default_and_hidden_on_request(run, capsys):
    run.shard("s1", [synthetic_trial(1), synthetic_trial(2)])
    collect.collect(GRID, run.root)
    assert "merge" in capsys.readouterr().err
    run.shard("s2", [synthetic_trial(3)])
    collect.collect(GRID, run.root, progress=False)
    assert "merge" not in capsys.readouterr().err
    run.shard("s3", [synthetic_trial(4)])
    r = collect.collect(GRID, run.root, progress=True)
    assert "merge" in capsys.readouterr().err and r.complete == 4


def test_the_summary_of_a_collect_holds_the_winning_copies_values(run):
    old, new, other = synthetic_trial(1), synthetic_trial(1, offset=3.0), synthetic_trial(2, kind="bp")
    run.shard("a", [old, other], created="2026-01-01T00:00:00+00:00")
    run.shard("b", [new], created="2026-01-02T00:00:00+00:00")
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.new_shards, r.merged_trials, r.duplicate) == (2, 2, 1)
    table = collect.load_summary(GRID, root=run.root).set_index("trial_id")
    T = new.config["train"]["T"]
    assert table.loc[new.trial_id, "energy_0"] == float(new.arrays["energy"][-1, -1, T - 1, 0])
    assert table.loc[other.trial_id, "n_layers_energy"] == 1
    assert np.isnan(table.loc[other.trial_id, "energy_1"])


def _rewrite_after_probe(monkeypatch, run, name: str) -> list[int]:
    """Make shard `name` change right after every probe (as a task rewriting it mid-collect would); count probes."""
    real = pipeline.probe_shards
    calls: list[int] = []

    def probe_then_rewrite(paths, names, notes=None):
        infos = real(paths, names, notes)
        calls.append(len(infos))
        run.touch_later(run.paths.shard(name), seconds=10 * len(calls))
        return infos

    monkeypatch.setattr(pipeline, "probe_shards", probe_then_rewrite)
    return calls


def test_a_shard_changed_between_probe_and_copy_is_skipped_with_a_note(run, monkeypatch):
    run.shard("s1", [synthetic_trial(1)])
    run.shard("s2", [synthetic_trial(2)])
    _rewrite_after_probe(monkeypatch, run, "s2")
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.mode, r.complete, r.merged_trials) == ("full", 1, 1)
    assert r.notes == [f"{run.paths.shard('s2')}: changed since it was probed; its trials were not taken from it "
                       f"this time"]
    monkeypatch.undo()
    r = collect.collect(GRID, run.root, progress=False)  # read again next time
    assert (r.mode, r.complete, r.new_shards, r.merged_trials) == ("incremental", 2, 1, 1)


def test_a_shard_changed_during_the_fallback_full_collect_is_noted_too(run, monkeypatch, capsys):
    import h5py

    run.shard("s1", [synthetic_trial(1)])
    collect.collect(GRID, run.root, progress=False)
    run.shard("s2", [synthetic_trial(2), synthetic_trial(3)])
    calls = _rewrite_after_probe(monkeypatch, run, "s2")
    with h5py.File(run.paths.results, "r"):
        r = collect.collect(GRID, run.root)  # progress shown by default, in the fallback too
    assert calls == [1, 2] and r.mode == "full" and (r.complete, r.merged_trials) == (1, 1)
    assert len(r.notes) == 2 and r.notes[0].startswith(f"{run.paths.results}: cannot update in place (")
    assert r.notes[1] == (f"{run.paths.shard('s2')}: changed since it was probed; its trials were not taken from "
                          f"it this time")
    assert "merge" in capsys.readouterr().err


def test_the_lock_says_a_collect_holds_it(run, monkeypatch):
    """While a collect runs, its lock record names it, so a launch or a second collect can say who waits on whom."""
    run.shard("s1", [synthetic_trial(1)])
    records = []
    commit = ResultsWriter.commit

    def recording_commit(self, expected):
        records.append(json.loads(run.paths.lock.read_text()))
        commit(self, expected)

    monkeypatch.setattr(ResultsWriter, "commit", recording_commit)
    collect.collect(GRID, run.root, progress=False)
    assert len(records) == 1 and records[0]["purpose"] == "collect" and records[0]["pid"] == os.getpid()
    assert not run.paths.lock.exists()
