"""Adaptive search on the real local SLURM cluster: `launch` with `--workers N` submits an array of search workers.

Three workers share two studies (budget 12 each, batch 4): each study ends with exactly its budget of COMPLETE
trials and unique Optuna numbers, every complete trial has its shard row and every search shard row is a complete
trial; status shows the studies; a relaunch after completion submits nothing; collect merges every trial. Then a
worker is SIGKILLed in the middle of its work: the next launch's worker fails its RUNNING trials, asks them again
and the study still ends at exactly its budget.
"""

from __future__ import annotations

import subprocess

import optuna
import pytest
from optuna.trial import TrialState
from test_launch_run import fresh_run, wait_for

import collect
from contracts.shard import open_shard
from grids.grid import grid_from_mapping
from launch.search_worker import search_trial_ids, study_storage
from launch.submit import launch

pytestmark = pytest.mark.slurm


def search_doc(name: str, budget: int, widths: list[int], n_samples: int = 64) -> dict:
    return {"name": name,
            "defaults": {"data": {"dataset": "two_moons", "n_samples": n_samples, "batch_size": 16},
                         "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
            "sweep": [{"axes": {"model.width": widths}}],
            "search": {"budget": budget, "batch": 4,
                       "params": {"train.h_lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
                                  "train.w_lr": {"type": "float", "low": 1.0e-3, "high": 0.1, "log": True}}}}


def trials_of(run, study: str):
    return optuna.load_study(study_name=study, storage=study_storage(run.paths, study)).trials


@pytest.fixture
def run(slurm_cluster, tmp_path):
    with fresh_run(tmp_path / "runs") as r:
        yield r


def test_three_workers_end_two_studies_at_exactly_their_budget(run):
    grid = grid_from_mapping(search_doc(run.name, 12, [6, 8]), source=f"{run.name}.yaml")
    studies = [s.name for s in grid.search.studies]
    sub = launch(grid, run.options(workers=3))
    assert sub.tasks == 3 and len(sub.arrays) == 1 and sub.arrays[0].tasks == 3
    run.wait_status(lambda r: r.workers_active == 0 and r.studies and all(s["left"] == 0 for s in r.studies),
                    240, "both studies at their budget")
    shard_rows = {t for ids in run.shard_ids().values() for t in ids}
    mapped = search_trial_ids(run.paths)
    for study in studies:
        trials = trials_of(run, study)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == 12, [t.state for t in trials]
        assert len({t.number for t in trials}) == len(trials)
        assert {t.user_attrs["trial_id"] for t in complete} <= shard_rows
    assert set(mapped) == shard_rows  # every search shard row is a trial some study asked
    report = run.status()
    assert "2 stud(ies): 24 of 24 trials complete" in "\n".join(report.study_lines)
    again = launch(grid, run.options(workers=3))
    assert again.stamp is None and again.trials == 0  # a relaunch after completion submits nothing
    merged = collect.collect(run.name, run.root, progress=False)
    assert merged.expected_source == "trial sets" and not merged.missing and merged.complete >= 1


def test_a_killed_worker_costs_no_budget(run):
    # 8,192 samples: a batch trains for seconds, so the kill lands while its trials are RUNNING
    grid = grid_from_mapping(search_doc(run.name, 8, [8], n_samples=8192), source=f"{run.name}.yaml")
    (study,) = [s.name for s in grid.search.studies]
    launch(grid, run.options(workers=1))
    # wait until the worker has asked a batch (RUNNING trials in the journal), then kill its job hard
    asked = wait_for(lambda: [t.number for t in trials_of(run, study) if t.state == TrialState.RUNNING]
                     if run.paths.folder.joinpath("optuna", f"{study}.log").exists() else None, 120,
                     "a RUNNING trial")
    subprocess.run(["scancel", "--signal", "KILL", "--full", "-n", f"pcsweep-{run.name}"], capture_output=True,
                   timeout=30)
    subprocess.run(["scancel", "-n", f"pcsweep-{run.name}"], capture_output=True, timeout=30)
    run.wait_status(lambda r: r.workers_active == 0, 60, "the killed worker gone")
    launch(grid, run.options(workers=1))  # the relaunch's worker fails dead owners' trials and asks them again
    run.wait_status(lambda r: r.workers_active == 0 and r.studies and r.studies[0]["left"] == 0, 240,
                    "the study at its budget")
    trials = trials_of(run, study)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 8  # exactly the budget, kill or not
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # each trial the kill interrupted either finished before it landed or was failed and asked again
    by_number = {t.number: t for t in trials}
    retried = {t.user_attrs.get("retry_of") for t in trials} - {None}
    for number in asked:
        assert by_number[number].state == TrialState.COMPLETE or (
            by_number[number].state == TrialState.FAIL and number in retried), by_number[number]
    for path in sorted(run.paths.shards_dir.glob("*.h5")):
        with open_shard(path):  # every shard left behind is whole (the kill loses at most the group in flight)
            pass
    collect.collect(run.name, run.root, progress=False)
    collected = set(collect.load_summary(run.name, run.root)["trial_id"])
    assert {t.user_attrs["trial_id"] for t in trials if t.state == TrialState.COMPLETE} <= collected
