"""Manifests, grid.yaml compatibility, the relaunch filter and status, on real files (no scheduler)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime

import numpy as np
import pytest

from contracts.paths import RunPaths
from contracts.shard import TrialResult, write_shard
from contracts.trialset import write_trial_set
from grids.grid import grid_from_mapping
from launch.compat import grid_conflict, store_grid
from launch.manifest import ManifestError, array_records, new_stamp, read_manifests, write_manifest
from launch.options import LaunchOptions, OptionsError
from launch.prepare import SubmissionError
from launch.prepare import select_trials as select_indices
from launch.status import render_status, status_report, watch
from launch.trial_states import LocalProcess, local_marker, write_local_marker

TINY = {
    "name": "tiny",
    "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                 "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
    "sweep": [{"axes": {"seed": [0, 1, 2, 3]}}],
}


def tiny_grid(**changes):
    doc = json.loads(json.dumps(TINY))
    for key, value in changes.items():
        doc["sweep"][0]["axes"][key] = value
    return grid_from_mapping(doc, source="tiny.yaml")


def fake_result(cfg) -> TrialResult:
    E, B, T, L = 1, 2, 2, 3
    arrays = {"test_accuracy": np.ones(E), "energy": np.zeros((E, B, T + 1, L)),
              "energy_var": np.zeros((E, B, T + 1, L)), "w_norm": np.ones((E, B, L)),
              "w_grad_norm": np.ones((E, B, L)), "w_grad_var": np.ones((E, B, L))}
    return TrialResult(cfg.trial_id, cfg.to_mapping(), "ok", 0.1, arrays)


def select_trials(grid, paths, options):
    """The selected trial ids (prepare.select_trials returns positions in the grid) and the skip counts."""
    keep, skipped = select_indices(grid, paths, options)
    return [grid.trial_ids[i] for i in keep], skipped


def manifest(stamp, tasks, arrays, executor="local"):
    return {"grid": "tiny", "stamp": stamp, "executor": executor, "tasks": tasks, "arrays": arrays,
            "sbatch": {}, "image": None, "python_command": None, "git_sha": "x", "git_dirty": False,
            "versions": {}, "options": {}}


def test_stamps_are_unique_within_a_second_and_sort_in_order(tmp_path):
    paths = RunPaths.of("tiny", tmp_path)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    stamps = [new_stamp(paths, now) for _ in range(3)] + [new_stamp(paths, now.replace(second=6))]
    assert stamps == ["20260102T030405Z", "20260102T030405Z-2", "20260102T030405Z-3", "20260102T030406Z"]
    assert sorted(stamps) == stamps
    assert read_manifests(paths) == []  # reserved but unwritten stamps are not manifests


def test_manifest_roundtrip_and_errors_name_the_file(tmp_path):
    paths = RunPaths.of("tiny", tmp_path)
    write_manifest(paths, manifest("s1", {"k1": ["a", "b"], "k2": ["c"]},
                                   [{"job_id": "17", "task_keys": ["k1", "k2"]}], executor="slurm"))
    write_manifest(paths, manifest("s2", {"k3": ["d"]}, [{"job_id": "18", "task_keys": ["k3"]}], executor="slurm"))
    records = array_records(paths)
    assert [r.job_id for r in records] == ["17", "18"]
    assert records[0].task_job_id(1) == "17_1"
    assert records[1].task_job_id(0) == "18"  # submitit sends a single task as a plain job
    assert records[0].tasks["k1"] == ("a", "b")
    assert not list(paths.submissions_dir.glob("*.tmp.*"))
    with pytest.raises(ManifestError, match="missing keys"):
        write_manifest(paths, {"stamp": "s3"})
    paths.submission("s0").write_text("{not json")
    with pytest.raises(ManifestError, match=str(paths.submission("s0"))):
        read_manifests(paths)


def test_relaunch_accepts_added_values_and_refuses_changed_meaning(tmp_path):
    paths = RunPaths.of("tiny", tmp_path)
    store_grid(tiny_grid(), paths)  # a run folder from before trial sets: its grid.yaml says what was launched
    first = paths.grid_yaml.read_text()
    superset = tiny_grid(seed=[0, 1, 2, 3, 4])
    assert grid_conflict(superset, paths) is None  # values added: accepted
    store_grid(superset, paths)
    assert paths.grid_yaml.read_text() != first and "4" in paths.grid_yaml.read_text()
    changed = json.loads(json.dumps(TINY))
    changed["defaults"]["model"]["width"] = 16  # every existing trial id changes
    conflict = grid_conflict(grid_from_mapping(changed, source="tiny.yaml"), paths)
    assert "keys that differ from" in conflict and "defaults.model.width" in conflict
    assert "--force" in conflict and "5 trial(s)" in conflict
    # with trial sets, the trials launched are theirs, whatever grid.yaml says
    write_trial_set(paths, "s1", [c.to_mapping() for c in tiny_grid().trials[:1]])
    assert grid_conflict(tiny_grid(seed=[0]), paths) is None
    assert "1 trial(s) already launched" in grid_conflict(tiny_grid(seed=[1]), paths)


def test_relaunch_filter_skips_done_and_failed_and_honours_flags(tmp_path):
    grid = tiny_grid()
    paths = RunPaths.of("tiny", tmp_path)
    ids = list(grid.trial_ids)
    write_shard(paths.shard("s-t0"), [fake_result(grid.trials[0])], grid="tiny", task_key="s-t0")
    paths.failed_dir.mkdir(parents=True)
    paths.failed(ids[1]).write_text(json.dumps({"trial_id": ids[1], "error": "boom"}))
    # a partial shard (no `complete`) is not a result: trial 2 must be submitted again
    partial = paths.shard("s-t2")
    write_shard(partial, [fake_result(grid.trials[2])], grid="tiny", task_key="s-t2")
    import h5py

    with h5py.File(partial, "a") as f:
        del f.attrs["complete"]
    opts = LaunchOptions(root=tmp_path, executor="local")
    keep, skipped = select_trials(grid, paths, opts)
    assert keep == ids[2:] and skipped == {"done": 1, "queued": 0, "failed": 1}
    keep, _ = select_trials(grid, paths, LaunchOptions(root=tmp_path, executor="local", rerun_failed=True))
    assert keep == ids[1:]
    keep, _ = select_trials(grid, paths, LaunchOptions(root=tmp_path, executor="local", force=True))
    assert keep == ids
    keep, _ = select_trials(grid, paths, LaunchOptions(root=tmp_path, executor="local", only=(ids[0], ids[3])))
    assert keep == [ids[3]]
    with pytest.raises(OptionsError, match="--only feedfacefeedface: not a trial of grid 'tiny' "
                       r"\(1 of 1 id\(s\) unknown\)"):
        select_trials(grid, paths, LaunchOptions(root=tmp_path, executor="local", only=("feedfacefeedface",)))


def test_status_counts_done_failed_lost_and_running_from_files(tmp_path):
    grid = tiny_grid()
    paths = RunPaths.of("tiny", tmp_path)
    store_grid(grid, paths)
    ids = list(grid.trial_ids)
    dead = f"local:{os.uname().nodename}:999999999"
    write_manifest(paths, manifest("s1", {"k1": ids[:2], "k2": ids[2:]},
                                   [{"job_id": dead, "task_keys": ["k1", "k2"]}]))
    write_shard(paths.shard("k1"), [fake_result(grid.trials[0])], grid="tiny", task_key="k1")
    paths.failed_dir.mkdir(parents=True)
    paths.failed(ids[1]).write_text(json.dumps({"trial_id": ids[1], "error": "DataError: x",
                                                 "traceback_tail": "Traceback\npc.data.DataError: no mnist"}))
    report = status_report("tiny", tmp_path)
    assert report.counts == {"pending": 0, "running": 0, "done": 1, "failed": 1, "lost": 2, "unknown": 0}
    assert report.grid_trials == 4 and report.submitted == 4 and report.not_submitted == 0
    assert report.queue == "none"
    reasons = {p.task_key: p for p in report.problems}
    assert "no mnist" in reasons["k1"].reason and reasons["k2"].state == "lost"
    text = render_status(report)
    assert "done 1" in text and "lost 2" in text and "--rerun-failed" in text
    json.dumps(asdict(report))  # --json works

    # a relaunch of the lost task by a live process (this one): counted once, as running, there
    write_manifest(paths, manifest("s2", {"k3": ids[2:]},
                                   [{"job_id": f"local:{os.uname().nodename}:{os.getpid()}", "task_keys": ["k3"]}]))
    marker = write_local_marker(paths, "s2", LocalProcess.of(os.getpid()))  # the launch still runs its tasks
    assert marker == local_marker(paths, "s2")
    report = status_report("tiny", tmp_path)
    assert report.counts["running"] == 2 and report.counts["lost"] == 0
    assert [a.superseded for a in report.arrays] == [2, 0]
    marker.unlink()  # the launch returned, though its process (this one) lives on
    assert status_report("tiny", tmp_path).counts["lost"] == 2


def test_status_without_squeue_says_unknown_and_never_hangs(tmp_path, monkeypatch, capsys):
    """A cluster whose squeue is gone (or a laptop reading a copied run folder): files still count."""
    grid = tiny_grid()
    paths = RunPaths.of("tiny", tmp_path)
    store_grid(grid, paths)
    ids = list(grid.trial_ids)
    write_manifest(paths, manifest("s1", {"k1": ids[:2], "k2": ids[2:]},
                                   [{"job_id": "4242", "task_keys": ["k1", "k2"]}], executor="slurm"))
    write_shard(paths.shard("k1"), [fake_result(c) for c in grid.trials[:2]], grid="tiny", task_key="k1")
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    report = status_report("tiny", tmp_path)
    assert report.queue == "unavailable" and report.counts["done"] == 2 and report.counts["unknown"] == 2
    assert "squeue did not answer" in render_status(report)
    with pytest.raises(SubmissionError, match="squeue did not answer"):
        select_trials(grid, paths, LaunchOptions(root=tmp_path, executor="slurm"))


def test_watch_returns_when_nothing_is_queued(tmp_path, capsys):
    grid = tiny_grid()
    paths = RunPaths.of("tiny", tmp_path)
    store_grid(grid, paths)
    write_manifest(paths, manifest("s1", {"k1": list(grid.trial_ids)},
                                   [{"job_id": "local:elsewhere-host:1", "task_keys": ["k1"]}]))
    write_shard(paths.shard("k1"), [fake_result(c) for c in grid.trials], grid="tiny", task_key="k1")
    watch("tiny", tmp_path, interval_s=0.01)
    assert "done 4" in capsys.readouterr().out
