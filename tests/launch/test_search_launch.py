"""`launch` of a grid with `search:` on the local executor (the SLURM tier runs the same on the cluster): workers
as local processes, the manifest, status per study, the dry run, a relaunch that submits nothing once done."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from contracts.paths import RunPaths
from grids.grid import grid_from_mapping
from launch.manifest import array_records
from launch.options import LaunchOptions
from launch.search_launch import search_dry_run, worker_tasks, workers_launched
from launch.search_worker import study_storage
from launch.status import render_status, status_report
from launch.submit import launch

DOC = {"name": "local_search",
       "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                    "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
       "sweep": [{"axes": {"model.width": [6, 8]}}],
       "search": {"budget": 3, "batch": 2,
                  "params": {"train.h_lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}}}}


def test_a_local_search_launch_runs_its_workers_to_the_budgets(tmp_path):
    grid = grid_from_mapping(DOC, source="local_search.yaml")
    options = LaunchOptions(root=tmp_path, executor="local", workers=2, jobs=2)
    plan = search_dry_run(grid, options)
    assert (plan["studies"], plan["budget"], plan["workers"], plan["left"]) == (2, 3, 2, 6)
    assert plan["projected_device_hours"] > 0 and not (tmp_path / "local_search").exists()
    sub = launch(grid, options)
    assert sub.failed_tasks == () and sub.tasks == 2 and sub.trials == 6
    paths = RunPaths.of("local_search", tmp_path)
    (record,) = array_records(paths)
    assert list(record.task_keys) == [f"{sub.stamp}-w0", f"{sub.stamp}-w1"]
    assert all(not v for v in record.tasks.values())  # workers own no trials up front
    for study in ("width=6", "width=8"):
        trials = optuna.load_study(study_name=study, storage=study_storage(paths, study)).trials
        assert [t.state for t in trials].count(TrialState.COMPLETE) == 3
    report = status_report("local_search", tmp_path)
    assert report.workers_active == 0 and [s["left"] for s in report.studies] == [0, 0]
    text = render_status(report)
    assert "2 stud(ies): 6 of 6 trials complete" in text and "width=6: 3/3 complete" in text
    again = launch(grid, options)
    assert again.stamp is None and again.trials == 0 and len(array_records(paths)) == 1


def test_relaunched_workers_continue_the_worker_indices(tmp_path):
    grid = grid_from_mapping(DOC, source="local_search.yaml")
    paths = RunPaths.of("local_search", tmp_path)
    tasks = worker_tasks(paths, grid, "s2", 3, first=2)
    assert [(t.task_key, t.worker, t.trial_ids) for t in tasks] == [("s2-w2", 2, ()), ("s2-w3", 3, ()),
                                                                    ("s2-w4", 4, ())]
    assert tasks[0].command("py")[:4] == ["py", "-m", "launch.search_worker", str(paths.grid_yaml)]

    class Rec:
        task_keys = ["s1-w0", "s1-w1", "s1-t-abc"]

    assert workers_launched([Rec()]) == 2
