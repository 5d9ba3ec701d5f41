"""Sections 3 (calibration of the paper shapes), 6 (peak memory) and 7 (projected device-hours) of scripts/gpu-check.

The calibration goes through the project's own API (`pc.calibrate.calibrate`, `render_table`,
`contracts.calibration.write_calibration`), one shape per call so that a time budget can stop it between
shapes; the shapes come coarse to fine (widest, narrowest and middle widths of every family first), so a
budget that runs out leaves the planner neighbours to interpolate between. The projection asks the launch
planner (`launch.prepare.prepare_launch` + `launch.dryrun.describe`, as `python -m launch GRID --dry-run`)
with the calibration just written in the run root.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path
from typing import Any

from gpucheck.common import REPO, line, say

PAPER_GRIDS = ("propagation", "stability", "stability_constant_width")  # Section 5.1 (grids/README.md)
GOAL_GPU_HOURS = 2.0  # issue 12: all of Section 5.1 on one H100/H200
GPU_GROUPS = (2, 32, 256, 2048)  # the paper grids' static groups hold 3..1960 trials (padded to 4..2048)
QUICK_GROUPS = (2,)  # --quick: one program per shape (compiles dominate a CPU run)
FULL_BUDGET_S = 240.0  # default calibration budget without --quick: the whole check must stay under 8 minutes
FAMILY_ORDER = (("fashion_mnist", "pc"), ("fashion_mnist", "bp"), ("constant", "pc"), ("constant", "bp"),
                ("two_moons", "pc"), ("two_moons", "bp"))


def coarse_to_fine(widths: tuple[int, ...]) -> list[list[int]]:
    """[first pass, second pass] of a width list: the ends and the middle first, the rest after."""
    first = sorted({0, len(widths) - 1, len(widths) // 2})
    return [[widths[i] for i in first], [w for i, w in enumerate(widths) if i not in first]]


def paper_shapes(quick: bool) -> list[str]:
    """`dataset:kind:width` specs in the order they are measured (pc.calibrate's shapes, coarse to fine)."""
    from pc.calibrate import CONSTANT_WIDTHS, QUICK_SHAPES, WIDTHS

    if quick:
        return list(QUICK_SHAPES)
    passes: list[list[str]] = [[], []]
    for dataset, kind in FAMILY_ORDER:
        widths = CONSTANT_WIDTHS if dataset == "constant" else WIDTHS
        for k, chunk in enumerate(coarse_to_fine(widths)):
            passes[k] += [f"{dataset}:{kind}:{w}" for w in chunk]
    return passes[0] + passes[1]


def measure_shapes(specs: list[str], platform: str, quick: bool, groups: tuple[int, ...], budget_s: float,
                   t0: float) -> tuple[list, dict[str, float], list[str], list]:
    """Calibrate `specs` one at a time (pc.calibrate.calibrate) until `budget_s` after `t0` is spent: the
    measured shapes, the first data load per dataset, the specs not measured, and each call's Calibration.
    A task's fixed start does not depend on the shape (and on a GPU each fresh process also starts CUDA), so it
    is timed once here and given to every call."""
    from pc.calibrate import MAX_PROGRAM_S, Settings, calibrate, measure_task_start, parse_shape

    shapes, loads, skipped, cals = [], {}, [], []
    task_start_s = measure_task_start()
    for spec in specs:
        if budget_s and time.perf_counter() - t0 > budget_s:
            skipped.append(spec)
            continue
        settings = Settings(platform=platform, shapes=(parse_shape(spec),), groups=groups, epochs_timed=1,
                            target_epoch_s=0.2 if quick else 0.5, max_program_s=MAX_PROGRAM_S[platform],
                            task_start_s=task_start_s)
        t = time.perf_counter()
        cal = calibrate(settings, progress=False)
        if not cal.shapes:
            skipped.append(spec)
            line(f"{spec}: not measured (data missing; see stderr)")
            continue
        cals.append(cal)
        shapes += cal.shapes
        for dataset, s in cal.data_load_s.items():
            loads.setdefault(dataset, s)  # the first load is the real one (pc.datasets caches the rest)
        line(f"{spec}: groups {[g.n for g in cal.shapes[0].groups]} in {time.perf_counter() - t:.1f} s")
    return shapes, loads, skipped, cals


def calibration(platform: str, quick: bool, budget_s: float, runs_root: Path) -> tuple[dict[str, Any], Any]:
    """Section 3: measure the paper shapes (or --quick's) on this device, write ROOT/.calibration/<kind>.json,
    print the table. Returns (figures, the Calibration or None)."""
    from contracts.calibration import FOLDER, write_calibration
    from pc.calibrate import GROUPS, render_table

    groups = QUICK_GROUPS if quick else GPU_GROUPS if platform == "cuda" else GROUPS["cpu"]
    specs = paper_shapes(quick)
    line(f"{len(specs)} shapes ({'--quick' if quick else 'the paper shapes'}), groups {list(groups)}, one timed "
         f"epoch each; budget {f'{budget_s:.0f} s' if budget_s else 'none'}; compile cache off (real compiles)")
    t0 = time.perf_counter()
    shapes, loads, skipped, cals = measure_shapes(specs, platform, quick, groups, budget_s, t0)
    if skipped:
        line(f"NOT MEASURED ({len(skipped)}, budget {budget_s:.0f} s spent or data missing): {', '.join(skipped)}; "
             "the planner interpolates or falls back to its FLOP model for them (--calibration-budget-s 0: no budget)")
    if not shapes:
        return {"file": None, "shapes": 0, "programs": 0, "skipped": skipped}, None
    first, last = cals[0], cals[-1]
    host = {**last.host, "load_average": [first.host["load_average"][0], last.host["load_average"][1]],
            "quick": quick, "source": "scripts/gpu-check", "budget_s": budget_s, "not_measured": skipped}
    cal = dataclasses.replace(last, shapes=tuple(shapes), data_load_s=loads, host=host)
    path = write_calibration(runs_root / FOLDER, cal)
    seconds = time.perf_counter() - t0
    print(render_table(cal), flush=True)
    programs = sum(len(s.groups) for s in cal.shapes)
    line(f"{len(cal.shapes)} shapes, {programs} programs on {cal.platform} ({cal.device_name}) in {seconds:.0f} s "
         f"-> {path}")
    rows = [{"shape": f"{'constant' if s.constant_width else s.dataset} {s.kind} w{s.width}", "n": g.n,
             "compile_s": g.compile_s, "trace_s": getattr(g, "trace_s", None), "trial_epoch_s": g.trial_epoch_s,
             "peak_bytes": g.peak_bytes, "est_bytes": g.est_bytes} for s in cal.shapes for g in s.groups]
    return {"file": str(path), "device_kind": cal.device_kind, "shapes": len(cal.shapes), "programs": programs,
            "groups": list(groups), "seconds": round(seconds, 1), "skipped": skipped, "rows": rows,
            "task_start_s": getattr(cal, "task_start_s", None)}, cal


def memory(cal: Any) -> dict[str, Any]:
    """Section 6: the process's peak device memory, and per calibrated program the device peak against
    pc.memory's estimate (an upper bound by design; docs/pc.md "Trial groups and speed")."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak, limit = stats.get("peak_bytes_in_use"), stats.get("bytes_limit")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    if peak is None:
        line("peak device memory: n/a: this device reports no memory statistics (jax gives none on CPU)")
    else:
        of = f" of {limit / 2**30:.1f} GiB" if limit else ""
        line(f"peak device memory {peak / 2**30:.2f} GiB{of} (this process, all sections so far)")
    line(f"host max RSS {rss / 2**30:.2f} GiB (this process)")
    rows = []
    for s in cal.shapes if cal is not None else ():
        for g in s.groups:
            rows.append({"shape": f"{'constant' if s.constant_width else s.dataset} {s.kind} w{s.width}", "n": g.n,
                         "peak_bytes": g.peak_bytes, "est_bytes": g.est_bytes})
    compared = [r for r in rows if r["peak_bytes"] and r["est_bytes"]]
    covered = [r for r in compared if r["est_bytes"] >= r["peak_bytes"]]
    for r in compared:
        line(f"{r['shape']} n{r['n']}: peak {r['peak_bytes'] / 2**20:.0f} MiB, estimate {r['est_bytes'] / 2**20:.0f} "
             f"MiB = {r['est_bytes'] / r['peak_bytes']:.2f}x" + ("" if r in covered else "  ESTIMATE BELOW PEAK"))
    if compared:
        ratios = [r["est_bytes"] / r["peak_bytes"] for r in compared]
        line(f"estimate >= peak in {len(covered)} of {len(compared)} programs; estimate/peak {min(ratios):.2f}x to "
             f"{max(ratios):.2f}x (a peak counts only programs that raised the process's peak; small programs' "
             "peaks include the data and earlier buffers)")
    elif rows:
        listed = ", ".join(f"{r['shape']} n{r['n']} {r['est_bytes'] / 2**20:.1f} MiB" for r in rows[:6])
        line(f"no program peak to compare: the {len(rows)} calibrated programs have estimates only ({listed})")
    return {"peak_bytes": peak, "bytes_limit": limit, "host_max_rss_bytes": rss, "programs": rows,
            "compared": len(compared), "estimate_covers_peak": len(covered)}


def projection(platform: str, runs_root: Path, cal_file: str | None) -> dict[str, Any]:
    """Section 7: `python -m launch grids/<grid>.yaml --dry-run --platform <platform>`'s projected device-hours
    for each Section 5.1 grid, from the calibration in `runs_root`, and their total against the 2-hour goal."""
    from grids.grid import load_grid
    from launch.dryrun import describe
    from launch.options import LaunchOptions
    from launch.prepare import prepare_launch

    options = LaunchOptions(root=runs_root, executor="local", platform=platform, force=True)
    grids, total = {}, 0.0
    for name in PAPER_GRIDS:
        grid = load_grid(REPO / "grids" / f"{name}.yaml")
        d = describe(prepare_launch(grid, options), options)
        est = d.estimate
        grids[name] = {"trials": d.trials, "tasks": d.tasks, "groups": d.groups, "device_hours": d.device_hours,
                       "estimate": est["source"], "calibration": est["file"], "flop_groups": est["flop_groups"]}
        total += d.device_hours
        used = (f"calibration {est['file']}" if est["source"] == "calibration" else "the FLOP model (NO calibration)")
        flop = f"; {est['flop_groups']} of {d.groups} groups by the FLOP model (no comparable shape measured)" \
            if est["flop_groups"] else ""
        line(f"grids/{name}.yaml: {d.trials:,} trials, {d.groups} programs, {d.tasks} tasks: "
             f"{d.device_hours:,.2f} {platform} device-hours ({used}{flop})")
    total = round(total, 2)
    meets = total <= GOAL_GPU_HOURS
    if platform == "cuda":
        line(f"Section 5.1 total: {total:,.2f} GPU-hours against the goal of {GOAL_GPU_HOURS:g}: "
             f"{'MEETS the goal' if meets else f'MISSES the goal ({total / GOAL_GPU_HOURS:.1f}x)'}")
    else:
        line(f"Section 5.1 total: {total:,.2f} CPU device-hours. The goal ({GOAL_GPU_HOURS:g} GPU-hours on one "
             "H100/H200) is a GPU goal: a CPU total says nothing about it")
    if cal_file and any(g["calibration"] != cal_file for g in grids.values()):
        say(f"WARNING: the planner used another calibration than the one just written ({cal_file})")
    return {"grids": grids, "total_device_hours": total, "platform": platform, "goal_gpu_hours": GOAL_GPU_HOURS,
            "meets_goal": meets if platform == "cuda" else None}


__all__ = ["GPU_GROUPS", "PAPER_GRIDS", "calibration", "memory", "paper_shapes", "projection"]
