"""`python -m launch GRID --dry-run`: what a launch would do, computed the same way, sent nowhere.

`dry_run` returns a frozen dataclass (`--json` prints `dataclasses.asdict` of it);
`render_dry_run` turns it into the text a user reads. Neither imports jax; only the sbatch text
imports submitit (to render with submitit's own template).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.paths import RunPaths
from grids.grid import Grid, load_grid
from launch.options import DEFAULT_MAX_ARRAY_SIZE, LaunchOptions, OptionsError
from launch.plan import FLOPS_PER_S, make_plan, read_max_array_size
from launch.sbatch import executor_parameters, python_command, render_sbatch, task_environment

SAMPLE_SIZE = 5


@dataclass(frozen=True)
class DryRun:
    """A launch's plan: counts, a sample of trials, tasks per array, and the sbatch text."""

    grid: str
    source: str | None  # the grid file
    trials: int  # trials that would be planned (after --only)
    grid_trials: int  # trials in the grid
    duplicates: int  # generated trials collapsed into an earlier identical one
    groups: int  # distinct static keys (compiled programs)
    tasks: int
    arrays: list[dict[str, Any]]  # per array job: index, tasks, trials, est_hours
    sample: list[dict[str, Any]]  # a few trials: trial_id and the keys the sweep varies
    executor: str
    sizing: dict[str, Any]  # trials_per_task, task_minutes, max_array_size
    est_hours: float  # estimated task-hours of the whole plan (rough)
    max_task_minutes: float  # the longest task's estimate
    python: str | None  # apptainer command, or None for the host python
    environment: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)  # submitit executor parameters
    sbatch: str = ""  # the first array's script (slurm executor only)
    skipped: dict[str, int] = field(default_factory=dict)  # relaunch: done / queued / failed trials left out
    conflict: str | None = None  # why `launch` would refuse this grid (it drops launched trials)


def _sample(grid: Grid, indices: list[int]) -> list[dict[str, Any]]:
    if not indices:
        return []
    n, k = len(indices), min(SAMPLE_SIZE, len(indices))
    picks = sorted({indices[round(i * (n - 1) / max(1, k - 1))] for i in range(k)})  # evenly spread, ends included
    out = []
    for i in picks:
        cfg = grid.trials[i]
        row: dict[str, Any] = {"trial_id": grid.trial_ids[i]}
        for key in grid.swept:
            obj: Any = cfg
            for part in key.split("."):
                obj = getattr(obj, part)
            row[key] = obj
        out.append(row)
    return out


def _conflict(grid: Grid, paths: RunPaths) -> str | None:
    """Read-only version of launch's grid check: trials of the stored grid.yaml that this grid drops."""
    if not paths.grid_yaml.exists():
        return None
    old = load_grid(paths.grid_yaml)
    vanished = set(old.trial_ids) - set(grid.trial_ids)
    if not vanished:
        return None
    return (f"{len(vanished):,} trial(s) already launched into {paths.folder} are not in this grid, so launch "
            f"will refuse it. Add values instead of changing them, relaunch {paths.grid_yaml} itself, or use --force")


def dry_run(grid: Grid, options: LaunchOptions) -> DryRun:
    """Plan `grid` under `options` exactly as a launch would, without touching the cluster.

    `--only` restricts the trials. When the run folder exists (a relaunch) the plan covers only
    what `launch` would submit: trials without a complete result that are not queued or running
    (`launch.submit.select_trials`, read-only; it may ask squeue). Raises OptionsError for an
    --only id that is not in the grid.
    """
    index = {tid: i for i, tid in enumerate(grid.trial_ids)}
    if options.only:
        missing = [t for t in options.only if t not in index]
        if missing:
            raise OptionsError(f"--only {missing[0]}: not a trial of grid {grid.name!r}; see the trial ids with --dry-run --json")
        selected = sorted({index[t] for t in options.only})
    else:
        selected = list(range(len(grid.trials)))
    paths = RunPaths.of(grid.name, options.root)
    skipped: dict[str, int] = {}
    conflict = None
    if paths.folder.exists():  # a relaunch: plan only what `launch` would submit (read-only)
        from launch.submit import select_trials

        conflict = _conflict(grid, paths) if not options.force else None

        keep, skipped = select_trials(grid, paths, options)
        keep_set = set(keep)
        selected = [i for i in selected if grid.trial_ids[i] in keep_set]
    slurm = options.executor == "slurm"
    # The same planning inputs as launch.submit.launch, so the dry run shows what a launch sends.
    trials_per_task, task_minutes = options.task_sizing()
    max_array_size = options.max_array_size or (read_max_array_size() if slurm else DEFAULT_MAX_ARRAY_SIZE)
    platform = options.platform or ("cuda" if slurm else "cpu")
    plan = make_plan(
        [grid.trials[i] for i in selected],
        grid=grid.name,
        trials_per_task=trials_per_task,
        task_minutes=task_minutes,
        max_array_size=max_array_size,
        flops_per_s=FLOPS_PER_S[platform],
        trial_ids=[grid.trial_ids[i] for i in selected],
    )
    arrays = [
        {
            "index": a,
            "tasks": len(ix),
            "trials": sum(len(plan.tasks[i].trial_ids) for i in ix),
            "est_hours": round(sum(plan.tasks[i].est_s for i in ix) / 3600, 2),
        }
        for a, ix in enumerate(plan.arrays)
    ]
    return DryRun(
        grid=grid.name,
        source=str(grid.path) if grid.path else None,
        trials=len(selected),
        grid_trials=len(grid.trials),
        duplicates=grid.duplicates,
        groups=plan.groups,
        tasks=len(plan.tasks),
        arrays=arrays,
        sample=_sample(grid, selected),
        skipped=skipped,
        conflict=conflict,
        executor=options.executor,
        sizing={"trials_per_task": trials_per_task, "task_minutes": task_minutes, "max_array_size": max_array_size},
        est_hours=round(sum(t.est_s for t in plan.tasks) / 3600, 2),
        max_task_minutes=round(max((t.est_s for t in plan.tasks), default=0.0) / 60, 1),
        python=python_command(options, paths),
        environment=task_environment(options, paths),
        parameters=executor_parameters(options, grid.name, paths) if slurm else {},
        sbatch=render_sbatch(options, grid.name, paths, arrays[0]["tasks"]) if slurm and arrays else "",
    )


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    cells = [[str(k) for k in keys]] + [[str(r[k]) for k in keys] for r in rows]
    widths = [max(len(c[j]) for c in cells) for j in range(len(keys))]
    return ["  " + "  ".join(c[j].ljust(widths[j]) for j in range(len(keys))).rstrip() for c in cells]


def render_dry_run(d: DryRun) -> str:
    """The dry run as text: counts, sample, plan per array, the task environment and sbatch script."""
    sizing = (
        f"{d.sizing['trials_per_task']} trials per task"
        if d.sizing["trials_per_task"] is not None
        else f"tasks of about {d.sizing['task_minutes']:g} estimated minutes"
    )
    left = ", ".join(f"{n:,} {why}" for why, n in d.skipped.items() if n)
    only = f" ({d.trials:,} to run" + (f"; skipped: {left}" if left else "") + ")" if d.trials != d.grid_trials else ""
    lines = [f"WARNING: {d.conflict}", ""] if d.conflict else []
    lines += [
        f"grid {d.grid}" + (f" ({d.source})" if d.source else "") + f": {d.grid_trials:,} trials{only}, "
        f"{d.duplicates:,} duplicates collapsed, {d.groups:,} static groups",
        "",
        f"sample ({len(d.sample)} of {d.trials:,}):",
        *_table(d.sample),
        "",
        f"plan: {d.tasks:,} tasks in {len(d.arrays)} array job{'s' if len(d.arrays) != 1 else ''} "
        f"(max array size {d.sizing['max_array_size']}), {sizing}; "
        f"estimated {d.est_hours:,} task-hours, longest task ~{d.max_task_minutes:g} min (rough)",
        *_table(d.arrays),
        "",
        f"executor: {d.executor}; python: {d.python or 'host python'}",
        "environment: " + " ".join(f"{k}={v}" for k, v in d.environment.items()),
    ]
    if d.sbatch:
        lines += ["", f"sbatch script of array 0 ({d.arrays[0]['tasks']} tasks), as submitit sends it:", d.sbatch.rstrip()]
    lines += ["", "dry run: nothing was submitted"]
    return "\n".join(lines) + "\n"
