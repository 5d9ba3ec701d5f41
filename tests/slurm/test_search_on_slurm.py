"""Adaptive search on the real local SLURM cluster: `launch` with `--workers N` submits an array of search workers.

Three workers share one study, then two (budget 24 each, batch 4): each study ends with exactly its budget of COMPLETE
trials and unique Optuna numbers, every complete trial has its shard row and every search shard row is a complete
trial; status shows the studies; a relaunch after completion submits nothing; collect merges every trial. Then a
worker is SIGKILLed in the middle of its work, two workers are cancelled with `launch cancel`, and a worker gets
SLURM's checkpoint signal (the time limit's) and is requeued: each time the next worker fails the RUNNING trials it
finds, asks them again, and the study still ends at exactly its budget with every complete trial collected.
"""

from __future__ import annotations

import subprocess

import optuna
import pytest
from optuna.trial import TrialState
from test_launch_run import final_states, fresh_run, wait_for

import collect
from contracts.shard import open_shard
from grids.grid import grid_from_mapping
from launch.cancel import cancel
from launch.search_worker import search_trial_ids, study_storage
from launch.submit import launch
from launch.trial_states import squeue

pytestmark = pytest.mark.slurm


def search_doc(name: str, budget: int, widths: list[int], n_samples: int = 64, epochs: int = 1) -> dict:
    return {"name": name,
            "defaults": {"data": {"dataset": "two_moons", "n_samples": n_samples, "batch_size": 16},
                         "model": {"width": 8}, "train": {"epochs": epochs, "T": 2}},
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


@pytest.mark.parametrize("widths", [[8], [6, 8]], ids=["one_study", "two_studies"])
def test_three_workers_end_each_study_at_exactly_its_budget_of_24(run, widths):
    grid = grid_from_mapping(search_doc(run.name, 24, widths), source=f"{run.name}.yaml")
    studies = [s.name for s in grid.search.studies]
    assert len(studies) == len(widths)
    sub = launch(grid, run.options(workers=3))
    assert sub.tasks == 3 and len(sub.arrays) == 1 and sub.arrays[0].tasks == 3
    run.wait_status(lambda r: r.workers_active == 0 and r.studies and all(s["left"] == 0 for s in r.studies),
                    240, "every study at its budget")
    shard_rows = {t for ids in run.shard_ids().values() for t in ids}
    mapped = search_trial_ids(run.paths)
    for study in studies:
        trials = trials_of(run, study)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == 24, [t.state for t in trials]
        assert len({t.number for t in trials}) == len(trials)
        assert {t.user_attrs["trial_id"] for t in complete} <= shard_rows
    assert set(mapped) == shard_rows  # every search shard row is a trial some study asked
    report = run.status()
    n = len(studies)
    assert f"{n} stud(ies): {24 * n} of {24 * n} trials complete" in "\n".join(report.study_lines)
    again = launch(grid, run.options(workers=3))
    assert again.stamp is None and again.trials == 0  # a relaunch after completion submits nothing
    merged = collect.collect(run.name, run.root, progress=False)
    assert merged.expected_source == "trial sets" and not merged.missing and merged.complete >= 1


def _running(run, study: str) -> list[int] | None:
    """Optuna numbers of the study's RUNNING trials; None until some exist."""
    if not run.paths.folder.joinpath("optuna", f"{study}.log").exists():
        return None
    return [t.number for t in trials_of(run, study) if t.state == TrialState.RUNNING] or None


def _ends_at_budget(run, study: str, budget: int, interrupted: list[int]) -> None:
    """Exactly `budget` COMPLETE, none RUNNING; each interrupted trial finished or was failed and asked again;
    collect finds every complete trial."""
    trials = trials_of(run, study)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == budget
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    by_number = {t.number: t for t in trials}
    retried = {t.user_attrs.get("retry_of") for t in trials} - {None}
    for number in interrupted:
        assert by_number[number].state == TrialState.COMPLETE or (
            by_number[number].state == TrialState.FAIL and number in retried), by_number[number]
    collect.collect(run.name, run.root, progress=False)
    collected = set(collect.load_summary(run.name, run.root)["trial_id"])
    assert {t.user_attrs["trial_id"] for t in trials if t.state == TrialState.COMPLETE} <= collected


def test_a_killed_worker_costs_no_budget(run):
    # 8,192 samples: a batch trains for seconds, so the kill lands while its trials are RUNNING
    grid = grid_from_mapping(search_doc(run.name, 8, [8], n_samples=8192), source=f"{run.name}.yaml")
    (study,) = [s.name for s in grid.search.studies]
    launch(grid, run.options(workers=1))
    # wait until the worker has asked a batch (RUNNING trials in the journal), then kill its job hard
    asked = wait_for(lambda: _running(run, study), 120, "a RUNNING trial")
    subprocess.run(["scancel", "--signal", "KILL", "--full", "-n", f"pcsweep-{run.name}"], capture_output=True,
                   timeout=30)
    subprocess.run(["scancel", "-n", f"pcsweep-{run.name}"], capture_output=True, timeout=30)
    run.wait_status(lambda r: r.workers_active == 0, 60, "the killed worker gone")
    launch(grid, run.options(workers=1))  # the relaunch's worker fails dead owners' trials and asks them again
    run.wait_status(lambda r: r.workers_active == 0 and r.studies and r.studies[0]["left"] == 0, 240,
                    "the study at its budget")
    for path in sorted(run.paths.shards_dir.glob("*.h5")):
        with open_shard(path):  # every shard left behind is whole (the kill loses at most the group in flight)
            pass
    # exactly the budget, kill or not; each trial the kill interrupted finished before it landed or was failed and
    # asked again; collect finds every complete trial
    _ends_at_budget(run, study, 8, asked)


def test_cancel_stops_every_worker_and_a_relaunch_completes_the_budget(run):
    """`launch cancel` of a search: both workers' jobs end (SLURM lists none), their RUNNING trials stay until the
    relaunch's worker finds their owners gone, fails them and asks them again."""
    # 300 epochs of 512 batches: a round trains for seconds, so the cancel most likely lands inside one
    grid = grid_from_mapping(search_doc(run.name, 8, [8], n_samples=8192, epochs=300), source=f"{run.name}.yaml")
    (study,) = [s.name for s in grid.search.studies]
    sub = launch(grid, run.options(workers=2))
    interrupted = wait_for(lambda: _running(run, study), 120, "a RUNNING trial")
    assert cancel(run.name, run.root) == [sub.arrays[0].job_id]
    wait_for(lambda: squeue(run.name) == {} or None, 60, "SLURM to list no job of the run")
    assert run.status().workers_active == 0
    stranded = _running(run, study) or []  # a cancelled worker cannot fail its own trials: the next one must
    launch(grid, run.options(workers=1))
    run.wait_status(lambda r: r.workers_active == 0 and r.studies and r.studies[0]["left"] == 0, 240,
                    "the study at its budget")
    _ends_at_budget(run, study, 8, interrupted + stranded)
    by_number = {t.number: t for t in trials_of(run, study)}
    assert all(by_number[n].state == TrialState.FAIL for n in stranded), "a trial left RUNNING was not failed"


def test_a_worker_signalled_before_its_time_limit_is_requeued_and_the_study_ends_at_its_budget(run):
    """SLURM's checkpoint signal (USR2, what `--signal-delay` asks for before the time limit, and what preemption
    sends) while the worker trains: submitit calls the worker's checkpoint, SLURM requeues the same job and task,
    and the new attempt (same job, a new pid) fails the RUNNING trials of the old one and asks them again.

    The signal is sent with `scancel --signal USR2` as soon as trials are RUNNING, as SLURM sends it to the job's
    steps: waiting for SLURM's own time-limit check (about every 30 s) raced the worker, which can finish a small
    study first (the grid tasks' time-limit test in test_launch_failures.py covers that timing)."""
    # 3 rounds of 4 trials, 300 epochs of 512 batches: several seconds per round
    grid = grid_from_mapping(search_doc(run.name, 12, [8], n_samples=8192, epochs=300), source=f"{run.name}.yaml")
    (study,) = [s.name for s in grid.search.studies]
    sub = launch(grid, run.options(workers=1, time_min=10, signal_delay_s=119))
    job = sub.arrays[0].job_id
    interrupted = wait_for(lambda: _running(run, study), 120, "a RUNNING trial")
    subprocess.run(["scancel", "--signal", "USR2", job], check=True, timeout=30)
    wait_for(lambda: "Requeued job" in run.log_text() or None, 150, "the checkpoint and the requeue")
    assert "Caught signal SIGUSR2" in run.log_text()
    run.wait_status(lambda r: r.workers_active == 0 and r.studies and r.studies[0]["left"] == 0, 300,
                    "the requeued worker to finish the study")
    _ends_at_budget(run, study, 12, interrupted)
    trials = trials_of(run, study)
    owners = {(t.user_attrs.get("owner") or {}).get("pid") for t in trials} - {None}
    assert len(owners) >= 2, "the requeued attempt (a new pid) ran trials too"
    assert final_states([job])[job].state == "COMPLETED"
