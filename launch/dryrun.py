"""`python -m launch GRID --dry-run`: the plan a launch would send (`launch.prepare`), rendered, sent nowhere.

`dry_run` returns a frozen dataclass (`--json` prints `dataclasses.asdict` of it);
`render_dry_run` turns it into the text a user reads. Neither imports jax; only the sbatch text
imports submitit (to render with submitit's own template).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.config import TrialConfig
from grids.grid import Grid
from launch.options import LaunchOptions
from launch.plan import FLOP_MODEL_SPREAD
from launch.prepare import LaunchPlan, prepare_launch
from launch.sbatch import render_sbatch

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
    preflight: dict[str, Any] | None = None  # the partition check (slurm only): launch.preflight.Preflight
    preflight_text: str = ""  # its one-line rendering
    data_text: str = ""  # the image data check (launch.datacheck), one line, "" when no image dataset
    platform: str = ""  # what tasks run on: cuda | cpu
    device_hours: float = 0.0  # projected device-hours: task-hours x GPUs per task (cuda), task-hours (cpu)
    estimate: dict[str, Any] = field(default_factory=dict)  # source (calibration | flop), file, date, flop_groups
    programs: list[dict[str, Any]] = field(default_factory=list)  # per shape: trials, trial_s, compile_s


def _sample(grid: Grid, trial_ids: Sequence[str], configs: Sequence[TrialConfig]) -> list[dict[str, Any]]:
    if not trial_ids:
        return []
    n, k = len(trial_ids), min(SAMPLE_SIZE, len(trial_ids))
    picks = sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(k)})  # evenly spread, ends included
    out = []
    for i in picks:
        cfg = configs[i]
        row: dict[str, Any] = {"trial_id": trial_ids[i]}
        for key in grid.swept:
            obj: Any = cfg
            for part in key.split("."):
                obj = getattr(obj, part)
            row[key] = obj
        out.append(row)
    return out


def describe(p: LaunchPlan, options: LaunchOptions) -> DryRun:
    """The dry-run record of a launch plan: counts, sample, arrays and (slurm) the sbatch script."""
    plan, grid = p.plan, p.grid
    arrays = [
        {
            "index": a,
            "tasks": len(ix),
            "trials": sum(len(plan.tasks[i].trial_ids) for i in ix),
            "est_hours": round(sum(plan.tasks[i].est_s for i in ix) / 3600, 2),
        }
        for a, ix in enumerate(plan.arrays)
    ]
    slurm = p.executor == "slurm"
    opts = p.options or options
    platform = opts.platform or ("cuda" if slurm else "cpu")
    est_hours = round(sum(t.est_s for t in plan.tasks) / 3600, 2)
    return DryRun(
        grid=grid.name,
        source=str(grid.path) if grid.path else None,
        trials=len(p.trial_ids),
        grid_trials=len(grid.trials),
        duplicates=grid.duplicates,
        groups=plan.groups,
        tasks=len(plan.tasks),
        arrays=arrays,
        sample=_sample(grid, p.trial_ids, p.configs),
        skipped=p.skipped,
        conflict=p.conflict,
        executor=p.executor,
        sizing=asdict(p.sizing),
        est_hours=est_hours,
        max_task_minutes=round(max((t.est_s for t in plan.tasks), default=0.0) / 60, 1),
        python=p.python,
        environment=p.environment,
        parameters=p.parameters,
        sbatch=render_sbatch(p.options or options, grid.name, p.paths, arrays[0]["tasks"], python=p.python,
                             parameters=p.parameters) if slurm and arrays else "",
        preflight=asdict(p.preflight) | {"refused": p.preflight.refused} if p.preflight else None,
        preflight_text=p.preflight.render() if p.preflight else "",
        data_text=p.data.render(),
        platform=platform,
        device_hours=round(est_hours * (max(1, opts.gpu_count) if platform == "cuda" else 1), 2),
        estimate={"source": plan.estimate, "file": plan.calibration, "date": plan.calibration_date,
                  "flop_groups": plan.flop_groups},
        programs=[asdict(c) for c in plan.programs],
    )


def dry_run(grid: Grid, options: LaunchOptions) -> DryRun:
    """Plan `grid` under `options` exactly as a launch would (`prepare_launch`), without touching the cluster.

    When the run folder exists (a relaunch) the plan covers only what `launch` would submit. Raises
    OptionsError for an --only id that is not in the grid.
    """
    return describe(prepare_launch(grid, options), options)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    cells = [[str(k) for k in keys]] + [[str(r[k]) for k in keys] for r in rows]
    widths = [max(len(c[j]) for c in cells) for j in range(len(keys))]
    return ["  " + "  ".join(c[j].ljust(widths[j]) for j in range(len(keys))).rstrip() for c in cells]


def _estimate_line(d: DryRun) -> str:
    """Which cost model sized the tasks, and the projected device-hours of the plan."""
    e = d.estimate
    if e.get("source") == "calibration":
        line = f"estimate: calibration {e['file']}, {e['date']}"
        if e.get("flop_groups"):
            line += f" ({e['flop_groups']} groups it has no comparable shape for: FLOP model)"
    else:
        low, high = FLOP_MODEL_SPREAD
        line = (f"estimate: FLOP model (no calibration: a trial's time may be {low:g}-{high:g}x this estimate, small "
                "shapes the most; run python -m pc.calibrate)")
    return f"{line}; projected {d.device_hours:,} {d.platform} device-hours"


def _compile_table(d: DryRun) -> list[str]:
    """With a calibration: per shape, the programs, the estimate per trial and the compile per program."""
    if d.estimate.get("source") != "calibration":
        return []
    rows = [{"dataset": c["dataset"], "kind": c["kind"], "width": c["width"], "programs": c["programs"],
             "trials": c["trials"], "s/trial": f"{c['trial_s']:.3g}",
             "compile s/program": "-" if c["compile_s"] is None else f"{c['compile_s']:g}",
             "measured": c["measured"] or "FLOP model"} for c in d.programs]
    return ["", "per shape (calibrated):", *_table(rows)]


def render_dry_run(d: DryRun) -> str:
    """The dry run as text: counts, sample, plan per array, the task environment and sbatch script."""
    sizing = (
        f"{d.sizing['trials_per_task']} trials per task"
        if d.sizing["trials_per_task"] is not None
        else f"tasks of about {d.sizing['task_minutes']:g} estimated minutes"
    )
    left = ", ".join(f"{n:,} {why}" for why, n in d.skipped.items() if n)
    only = ""
    if d.trials != d.grid_trials:
        only = f" ({d.trials:,} to run" + (f"; skipped: {left}" if left else "") + ")"
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
        _estimate_line(d),
        *_table(d.arrays),
        *_compile_table(d),
        "",
        f"executor: {d.executor}; python: {d.python or 'host python'}",
        "environment: " + " ".join(f"{k}={v}" for k, v in d.environment.items()),
    ]
    if d.preflight_text:
        lines.append(d.preflight_text)
    if d.data_text:
        lines.append(d.data_text)
    if d.sbatch:
        lines += ["", f"sbatch script of array 0 ({d.arrays[0]['tasks']} tasks), as submitit sends it:",
                  d.sbatch.rstrip()]
    lines += ["", "dry run: nothing was submitted"]
    return "\n".join(lines) + "\n"
