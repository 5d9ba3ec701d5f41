"""Launching an adaptive search: `python -m launch GRID --workers N` for a grid with a `search:` section.

A search launch submits N workers as one array (SLURM) or N local processes, each running
`launch.search_worker.run_worker` on every study of the grid (docs/search.md). It holds the run folder's lock
while it decides and submits, stores the grid as `grid.yaml` (the search spec the workers read) and writes a
submission manifest whose tasks are the workers (they own no trial ids up front: trial sets are written by the
workers as they ask), so `status`, `cancel` and relaunch find them like any array. A relaunch when every study has
its budget submits nothing; a relaunch while studies are unfinished adds N workers (raise N to go faster).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.paths import RunPaths
from grids.grid import Grid
from grids.search import SearchSpec


@dataclass(frozen=True)
class StudyProgress:
    """One study's trials by state, its best value so far and when its trials completed (for an ETA)."""

    name: str
    budget: int
    complete: int = 0
    running: int = 0
    failed: int = 0
    waiting: int = 0
    best: float | None = None
    complete_times: tuple[float, ...] = ()  # POSIX seconds of each COMPLETE trial's end, sorted

    @property
    def left(self) -> int:
        return max(0, self.budget - self.complete)

    def eta_s(self) -> float | None:
        """Seconds to the budget at the rate of the last completions (None before two have completed)."""
        times = self.complete_times[-32:]
        if not self.left:
            return 0.0
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return self.left * (times[-1] - times[0]) / (len(times) - 1)


def study_progress(paths: RunPaths, spec: SearchSpec) -> list[StudyProgress]:
    """Every study's progress from its journal (a study without a journal has not started)."""
    from optuna.trial import TrialState  # lazy: status and dry runs of grids never load optuna

    from launch.search_worker import journal_path, study_storage

    out = []
    for study in spec.studies:
        if not journal_path(paths, study.name).is_file():
            out.append(StudyProgress(study.name, spec.budget))
            continue
        import optuna

        trials = optuna.load_study(study_name=study.name, storage=study_storage(paths, study.name)).trials
        count = {s: sum(t.state == s for t in trials) for s in TrialState}
        done = [t for t in trials if t.state == TrialState.COMPLETE]
        pick = max if spec.direction == "maximize" else min
        out.append(StudyProgress(
            study.name, spec.budget, count[TrialState.COMPLETE], count[TrialState.RUNNING], count[TrialState.FAIL],
            count[TrialState.WAITING], pick((t.value for t in done), default=None),
            tuple(sorted(t.datetime_complete.timestamp() for t in done if t.datetime_complete))))
    return out


def render_studies(studies: list[StudyProgress]) -> list[str]:
    """Status lines: one per study, with the budget, the states, the best value and an ETA."""
    lines = [f"{len(studies)} stud(ies): {sum(s.complete for s in studies)} of {sum(s.budget for s in studies)} "
             "trials complete"]
    for s in studies:
        eta = s.eta_s()
        when = "done" if not s.left else (f"ETA {eta / 60:.0f} min" if eta is not None else "ETA unknown")
        best = f"best {s.best:.4f}" if s.best is not None else "best -"
        lines.append(f"  {s.name}: {s.complete}/{s.budget} complete, {s.running} running, {s.failed} failed; "
                     f"{best}; {when}")
    return lines


@dataclass
class SearchWorkerTask:
    """One search worker as a SLURM array task (submitit pickles it) or a local process.

    Small and picklable like `launch.task.PcsweepTask`; it owns no trial ids up front (`trial_ids` is empty, so
    status and relaunch treat its array like any other).
    """

    root: str
    grid: str
    task_key: str
    worker: int
    trial_ids: tuple[str, ...] = ()

    @property
    def paths(self) -> RunPaths:
        return RunPaths.of(self.grid, self.root)

    def __call__(self) -> dict[str, Any]:
        from grids.grid import load_grid
        from launch.environment import apply_task_environment
        from launch.search_worker import run_worker

        apply_task_environment(self.paths, None)
        grid = load_grid(self.paths.grid_yaml)  # the search spec as launched (its studies, not trials)
        if grid.search is None:
            raise RuntimeError(f"{self.paths.grid_yaml}: no search: section; relaunch the search grid")
        report = run_worker(self.paths, grid.search, worker=self.worker)
        return {"worker": self.worker, "completed": report.completed, "failed": report.failed}

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's USR2 hook (time limit or preemption): requeue this worker. Its finished groups are in their
        shard parts; its RUNNING trials are failed and asked again by the requeued worker (same job, new start)."""
        import submitit

        return submitit.helpers.DelayedSubmission(SearchWorkerTask(self.root, self.grid, self.task_key,
                                                                   self.worker))

    def command(self, python: str | None = None) -> list[str]:
        """The argv of a local worker process."""
        import shlex

        argv = shlex.split(python) if python else [sys.executable]
        return [*argv, "-m", "launch.search_worker", str(self.paths.grid_yaml), "--root",
                str(Path(self.root).resolve()), "--worker", str(self.worker)]


def worker_tasks(paths: RunPaths, grid: Grid, stamp: str, workers: int, first: int = 0) -> list[SearchWorkerTask]:
    """N workers; their indices continue after those of earlier launches (`first`), so seeds differ."""
    return [SearchWorkerTask(str(paths.root), grid.name, f"{stamp}-w{first + k}", first + k) for k in range(workers)]


def workers_launched(records: list[Any]) -> int:
    """How many search workers earlier submissions started (from their task keys `<stamp>-w<k>`)."""
    return sum(1 for r in records for key in r.task_keys if key.rsplit("-", 1)[-1].startswith("w"))


def studies_left(progress: list[StudyProgress]) -> int:
    return sum(1 for s in progress if s.left)


def search_summary(spec: SearchSpec, workers: int, per_trial_s: Mapping[str, float] | None = None) -> list[str]:
    """The dry run's lines: studies, budget, batch, workers and the projected device-hours (when estimated)."""
    lines = [f"search: {len(spec.studies):,} stud(ies) x budget {spec.budget:,} = {len(spec.studies) * spec.budget:,} "
             f"trials; batch {spec.batch}; {workers} worker(s); metric {spec.metric} ({spec.direction})",
             "  params: " + ", ".join(f"{d.key} ({d.kind})" for d in spec.params)]
    if per_trial_s:
        hours = sum(per_trial_s.values()) * spec.budget / 3600
        lines.append(f"  projected {hours:.2f} device-hours at each study's base config (searched values change "
                     f"it), about {hours / max(1, workers):.2f} h of wall time with {workers} worker(s)")
    return lines


def prepare_search(grid: Grid, options: Any, verdict: Any = None) -> Any:
    """The plan of a search launch (`launch.search_launch`): no trials up front, `options.workers` worker tasks in
    one array, with the same environment, python command, sbatch parameters and data check as a grid launch."""
    from contracts.config import TrialConfig
    from launch.datacheck import check_data
    from launch.options import DEFAULT_MAX_ARRAY_SIZE
    from launch.plan import TaskPacking
    from launch.preflight import preflight
    from launch.prepare import LaunchPlan, Sizing, run_paths
    from launch.sbatch import executor_parameters, python_command, task_environment

    paths = run_paths(grid, options)
    slurm = options.executor == "slurm"
    if verdict is None:
        verdict, options = preflight(options)
    bases = [TrialConfig.from_mapping(s.base) for s in grid.search.studies]
    data = check_data(bases)
    plan = TaskPacking(grid=grid.name, tasks=(), arrays=(tuple(range(options.workers)),), groups=len(bases))
    return LaunchPlan(
        grid=grid, paths=paths, executor=options.executor, trial_ids=(), configs=(), skipped={}, conflict=None,
        sizing=Sizing(None, None, options.max_array_size or DEFAULT_MAX_ARRAY_SIZE), plan=plan,
        python=python_command(options, paths, data.folders),
        environment={**task_environment(options, paths), **data.environment()},
        parameters=executor_parameters(options, grid.name, paths, data.environment()) if slurm else {},
        preflight=verdict if slurm else None, options=options, data=data,
    )


def search_dry_run(grid: Grid, options: Any) -> dict[str, Any]:
    """What a search launch would do (nothing is written): studies, budget, batch, workers, each study's progress
    where it has started, and the projected device-hours from the cost model (a calibration of the launch's
    platform under the run root, else the FLOP model), at each study's base config."""
    from contracts.calibration import find_calibration
    from contracts.config import TrialConfig
    from launch.plan import CostModel
    from launch.prepare import run_paths

    spec = grid.search
    paths = run_paths(grid, options)
    platform = options.platform or ("cuda" if options.executor == "slurm" else "cpu")
    cost = CostModel.for_platform(platform, find_calibration(Path(options.root), platform))
    per_trial = {}
    for study in spec.studies:
        seconds, overhead, _ = cost.group_cost(TrialConfig.from_mapping(study.base), spec.batch)
        per_trial[study.name] = seconds + overhead / max(1, spec.batch)  # a batch compiles once
    progress = study_progress(paths, spec) if (paths.folder / "optuna").is_dir() else []
    return {"grid": grid.name, "studies": len(spec.studies), "budget": spec.budget, "batch": spec.batch,
            "workers": options.workers, "metric": spec.metric, "direction": spec.direction,
            "params": [d.key for d in spec.params], "estimate": "calibration" if cost.calibration else "flop",
            "projected_device_hours": round(sum(per_trial.values()) * spec.budget / 3600, 3),
            "lines": [*search_summary(spec, options.workers, per_trial), *(render_studies(progress) if progress
                                                                             else ["no study has started"])],
            "left": sum(s.left for s in progress) if progress else len(spec.studies) * spec.budget}


__all__ = ["SearchWorkerTask", "StudyProgress", "prepare_search", "render_studies", "search_dry_run",
           "search_summary", "studies_left", "study_progress", "worker_tasks", "workers_launched"]
