"""One launch plan: what `python -m launch GRID` would send, computed once.

`prepare_launch` is the only place that applies the launch rules: the `--only` selection, the relaunch
filter (done, queued, failed), the grid.yaml compatibility check, the task sizing and array limit, the
task environment, python command and sbatch parameters. `launch.dryrun` renders its result and
`launch.submit` sends it, so a dry run shows exactly what a launch submits. It writes nothing (it may ask
`squeue` and `scontrol`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.calibration import CalibrationError, find_calibration
from contracts.config import TrialConfig
from contracts.failures import read_failures
from contracts.paths import RunPaths
from grids.grid import Grid
from launch.compat import grid_conflict
from launch.datacheck import DataCheck, check_data
from launch.manifest import array_records
from launch.options import DEFAULT_MAX_ARRAY_SIZE, LaunchOptions, OptionsError
from launch.plan import CostModel, TaskPacking, pack_tasks, read_max_array_size
from launch.preflight import Preflight, preflight
from launch.sbatch import executor_parameters, python_command, task_environment
from launch.trial_states import done_trials, local_running, squeue


class SubmissionError(RuntimeError):
    """Nothing was submitted: the message says why and what to do (squeue silent, sbatch refused, ...)."""


@dataclass(frozen=True)
class Sizing:
    """How tasks are sized: by trials or by estimated minutes, and the most tasks per array job."""

    trials_per_task: int | None
    task_minutes: float | None
    max_array_size: int


@dataclass(frozen=True)
class LaunchPlan:
    """Everything a launch sends (or a dry run shows), before a stamp is reserved."""

    grid: Grid
    paths: RunPaths
    executor: str
    trial_ids: tuple[str, ...]  # the trials to run now, in grid order
    configs: tuple[TrialConfig, ...]  # their configs (what the submission's trial set holds)
    skipped: dict[str, int]  # relaunch: done / queued / failed trials left out
    conflict: str | None  # why a launch refuses this grid (it drops launched trials); None with --force
    sizing: Sizing
    plan: TaskPacking
    python: str | None  # apptainer command, or None for the host python
    environment: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)  # submitit executor parameters (slurm only)
    preflight: Preflight | None = None  # the partition check (slurm only; launch.preflight)
    options: LaunchOptions | None = None  # the options with the preflight's defaults filled (--cpus)
    data: DataCheck = field(default_factory=DataCheck)  # image data folders to bind (launch.datacheck)


def only_indices(grid: Grid, only: Sequence[str]) -> list[int]:
    """Positions of the `--only` ids in grid order (all trials without `--only`); OptionsError names an
    id that is not in the grid and how to list the ids."""
    if not only:
        return list(range(len(grid.trial_ids)))
    index = {tid: i for i, tid in enumerate(grid.trial_ids)}
    unknown = [t for t in only if t not in index]
    if unknown:
        raise OptionsError(
            f"--only {unknown[0]}: not a trial of grid {grid.name!r} ({len(unknown)} of {len(only)} id(s) unknown); "
            f"list the trial ids with: python -m launch {grid.path or grid.name} --dry-run --json")
    return sorted({index[t] for t in only})


def queued_trials(paths: RunPaths) -> set[str]:
    """Trials of this grid's arrays that the scheduler still lists, or whose local run is still alive.

    Raises SubmissionError when squeue does not answer, rather than risk submitting trials twice.
    """
    records = array_records(paths)
    queue = squeue(paths.grid) if any(r.executor == "slurm" for r in records) else {}
    if queue is None:
        raise SubmissionError(
            "squeue did not answer, so queued trials cannot be told from missing ones; retry, or "
            "pass --force to submit every trial regardless")
    queued: set[str] = set()
    for record in records:
        for a, key in enumerate(record.task_keys):
            if record.executor == "slurm":
                live = record.task_job_id(a) in queue
            else:
                live = bool(local_running(paths, record.stamp, record.job_id))
            if live:
                queued.update(record.tasks[key])
    return queued


def select_trials(grid: Grid, paths: RunPaths, options: LaunchOptions) -> tuple[list[int], dict[str, int]]:
    """Positions of the trials to run now, in grid order, and how many were skipped for each reason.

    `--force` (and a debug run of one `--only` id) keeps every selected trial; otherwise trials with a
    complete result, trials still queued or running and (without `--rerun-failed`) failed ones are left out.
    """
    selected = only_indices(grid, options.only)
    if options.force or (options.executor == "debug" and options.only):
        return selected, {}
    done, _ = done_trials(paths)
    failed = read_failures(paths)
    queued = queued_trials(paths)
    skipped = {"done": 0, "queued": 0, "failed": 0}
    keep = []
    for i in selected:
        t = grid.trial_ids[i]
        if t in done:
            skipped["done"] += 1
        elif t in queued:
            skipped["queued"] += 1
        elif t in failed and not options.rerun_failed:
            skipped["failed"] += 1
        else:
            keep.append(i)
    return keep, skipped


def run_paths(grid: Grid, options: LaunchOptions) -> RunPaths:
    """The grid's run folder under the (absolute) run root: tasks on other nodes get absolute paths."""
    return RunPaths.of(grid.name, Path(options.root).resolve())


def prepare_launch(grid: Grid, options: LaunchOptions, *, max_array_size: int | None = None,
                   verdict: Preflight | None = None) -> LaunchPlan:
    """The plan of launching `grid` under `options` (see the module docstring); writes nothing.

    `max_array_size` overrides the cluster lookup (`--max-array-size`, else `scontrol show config` on
    SLURM, else SLURM's default 1001). `verdict` is a preflight already made on these options (by
    `launch`); without one the partition is checked here (a refusal is recorded, not raised).

    Raises:
        OptionsError: an `--only` id that is not in the grid.
        SubmissionError: a relaunch while squeue does not answer.
    """
    paths = run_paths(grid, options)
    slurm = options.executor == "slurm"
    if verdict is None:
        verdict, options = preflight(options)
    indices, skipped = select_trials(grid, paths, options)
    trials_per_task, task_minutes = options.task_sizing()
    limit = max_array_size or options.max_array_size or (read_max_array_size() if slurm else DEFAULT_MAX_ARRAY_SIZE)
    platform = options.platform or ("cuda" if slurm else "cpu")
    try:  # a calibration of this platform in ROOT/.calibration/ (python -m pc.calibrate), else the FLOP model
        cost = CostModel.for_platform(platform, find_calibration(Path(options.root), platform))
    except CalibrationError as e:
        raise OptionsError(f"calibration: {e}") from None
    trial_ids, configs = tuple(grid.trial_ids[i] for i in indices), tuple(grid.trials[i] for i in indices)
    data = check_data(configs)
    plan = pack_tasks(list(configs), grid=grid.name, trials_per_task=trials_per_task, task_minutes=task_minutes,
                     max_array_size=limit, cost=cost, trial_ids=list(trial_ids))
    return LaunchPlan(
        grid=grid, paths=paths, executor=options.executor, trial_ids=trial_ids, configs=configs, skipped=skipped,
        conflict=None if options.force else grid_conflict(grid, paths),
        sizing=Sizing(trials_per_task, task_minutes, limit), plan=plan,
        python=python_command(options, paths, data.folders),
        environment={**task_environment(options, paths), **data.environment()},
        parameters=executor_parameters(options, grid.name, paths, data.environment()) if slurm else {},
        preflight=verdict if slurm else None, options=options, data=data,
    )
