"""Benchmark: the planner's predicted task seconds against measured ones, on the local SLURM cluster (CPU).

    python bench/plan_accuracy.py                 # calibrate, plan, launch, wait, compare (~8-10 min, 2 cores)
    python bench/plan_accuracy.py --quick         # two widths, 1 epoch: a smoke run of the whole path
    python bench/plan_accuracy.py --calibration runs/.calibration/cpu.json   # reuse a calibration

In a fresh temporary run root it
1. calibrates this CPU for the grid's shapes (`python -m pc.calibrate --platform cpu --shapes ... --groups ...`;
   the file goes to ROOT/.calibration/cpu.json, where `launch` finds it);
2. writes a mixed-width grid (two moons and two circles, widths 32..1024, PC over four gammas and BP over two
   weight rates, two seeds; 128 trials in 16 static groups);
3. plans it with `launch.prepare.prepare_launch` (task minutes = the predicted total / 4, so about 4 tasks,
   most mixing groups) and records each task's `Task.est_s`; the plan must say it used the calibration;
4. launches it for real (`--executor slurm --partition cpu --platform cpu --cpus 2 --max-parallel 1`: each task
   holds both cores of the 2-core node, so tasks run one at a time, as the calibration measured), waits (at most
   `--timeout-min`), and takes each task's time from SLURM accounting: `sacct` ElapsedRaw of the array element,
   i.e. from the job step's start to its end (python start, jax import, data, compiles, training, shard writes);
5. prints predicted against measured per task, the totals, and last one JSON line:
   {"tasks", "predicted_s", "measured_s", "ratio" (measured / predicted total), "per_task_ratio_min",
   "per_task_ratio_max", "within_30pct" (0.7 <= ratio <= 1.3), ...}.

Prediction and measurement share the machine's load in one run (other users of these cores slow both), so run
it twice when the number matters. Exit status: 0 when within 30% (or skipped: no SLURM here), 1 when not, 2 when
the run could not finish.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

CODE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CODE))

import yaml  # noqa: E402 - after the sys.path line above
from slurm_run import add_run_options, run_root  # noqa: E402 - bench/, the script's own folder

from contracts.calibration import FOLDER  # noqa: E402
from contracts.config import static_key  # noqa: E402
from contracts.paths import RunPaths  # noqa: E402
from contracts.shard import open_shard  # noqa: E402
from grids.grid import Grid, load_grid  # noqa: E402
from launch.cancel import cancel  # noqa: E402
from launch.manifest import array_records  # noqa: E402
from launch.options import LaunchOptions  # noqa: E402
from launch.prepare import LaunchPlan, prepare_launch  # noqa: E402
from launch.submit import launch  # noqa: E402

GRID_NAME = "plan_accuracy"
WIDTHS = (32, 128, 512, 1024)
QUICK_WIDTHS = (32, 512)
TOLERANCE = 0.3
TASKS = 4  # tasks the default sizing aims at
GROUP_MARGIN_S = 10.0  # task start and data load beyond the largest group's trials and compile
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE"}


def grid_document(quick: bool) -> dict[str, Any]:
    """Two moons and two circles, widths 32..1024; PC over 4 gammas x 2 seeds, BP over 2 w_lr x 4 seeds: 8 trials
    per static group (one program of 8), 16 groups (--quick: 2 widths, 1 epoch: 64 trials in 8 groups)."""
    return {
        "name": GRID_NAME,
        "description": "bench/plan_accuracy.py: a mixed-width two moons / two circles grid",
        "defaults": {
            "data": {"dataset": "two_moons", "n_samples": 1024, "batch_size": 32},
            "model": {"kind": "pc", "width": 32},
            "train": {"epochs": 1 if quick else 4, "T": 8, "h_lr": 0.1, "w_optimizer": "sgd", "w_lr": 0.01,
                      "w_momentum": 0.9},
            "seed": 0,
        },
        "sweep": [{
            "name": "mixed",
            "axes": {"data.dataset": ["two_moons", "two_circles"],
                     "model.width": list(QUICK_WIDTHS if quick else WIDTHS), "model.kind": ["pc", "bp"]},
            "by": {"model.kind": {
                "pc": {"axes": {"train.h_lr": [0.03, 0.1, 0.3, 1.0], "seed": [0, 1]}},
                "bp": {"set": {"train.T": 1, "train.h_lr": 1.0},
                       "axes": {"train.w_lr": [0.01, 0.1], "seed": [0, 1, 2, 3]}},
            }},
        }],
    }


def program_size(n: int) -> int:
    """The padded size of a group of `n` trials on CPU (pc.train: powers of two from 2, at most 32)."""
    size = 2
    while size < min(n, 32):
        size *= 2
    return size


def calibrate(grid: Grid, root: Path, reuse: Path | None) -> tuple[Path, float]:
    """Write ROOT/.calibration/cpu.json for the grid's shapes (or copy `reuse` there); (path, seconds)."""
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    if reuse is not None:
        return Path(shutil.copy(reuse, folder / "cpu.json")), 0.0
    groups = Counter(static_key(c) for c in grid.trials)
    sizes = sorted({program_size(n) for n in groups.values()})
    shapes = sorted({f"two_moons:{c.model.kind}:{c.model.width}" for c in grid.trials},
                    key=lambda s: (s.split(":")[1], int(s.split(":")[2])))
    cmd = [sys.executable, "-m", "pc.calibrate", "--platform", "cpu", "--root", str(root), "--no-progress",
           "--shapes", *shapes, "--groups", *map(str, sizes)]
    print("$ " + " ".join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=CODE, capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"calibration failed (exit {out.returncode}): {out.stderr.strip()[-2000:]}")
    print(out.stdout.strip(), flush=True)
    return folder / "cpu.json", time.perf_counter() - t0


def options(root: Path, task_minutes: float) -> LaunchOptions:
    """As production, minus the GPU and the container; one task at a time on the 2-core node."""
    return LaunchOptions(root=root, executor="slurm", container=False, platform="cpu", partition="cpu", gpus=0,
                         cpus=2, max_parallel=1, task_minutes=task_minutes, time_min=30)


def sacct_rows(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """Per array element `<A>_<a>` (or a plain job `<A>`): State, ElapsedRaw, Start, End."""
    cmd = ["sacct", "-n", "-P", "-X", "-o", "JobID,State,ElapsedRaw,Start,End"]
    for job_id in job_ids:
        cmd += ["-j", job_id]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    rows = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 5 and parts[0]:
            rows[parts[0]] = dict(zip(("state", "elapsed", "start", "end"), parts[1:]))
    return rows


def wait_for_tasks(paths: RunPaths, timeout_s: float) -> dict[str, dict[str, str]]:
    """Poll accounting until every task of the launch is in a final state; by task key (stamp-less trial set)."""
    records = array_records(paths)
    jobs = {r.task_job_id(i): frozenset(r.tasks[k]) for r in records for i, k in enumerate(r.task_keys)}
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        rows = sacct_rows(sorted({r.job_id for r in records}))
        states = Counter(rows.get(j, {}).get("state", "PENDING").split()[0] for j in jobs)
        line = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
        if line != last:
            print(f"  [{time.strftime('%H:%M:%S')}] {line}", flush=True)
            last = line
        if all(rows.get(j, {}).get("state", "").split(" ")[0] in FINAL_STATES for j in jobs):
            return {j: {**rows[j], "trials": jobs[j]} for j in jobs}
        if time.monotonic() > deadline:
            raise TimeoutError(f"tasks not finished after {timeout_s:.0f} s ({line})")
        time.sleep(5)


def shard_breakdown(paths: RunPaths) -> dict[frozenset, dict[str, float]]:
    """Per task (its trial set): compile seconds, training seconds (compile included) and cache hits, from the
    shards' `programs` attributes (pc.record)."""
    out = {}
    for path in paths.shards_dir.glob("*.h5"):
        with open_shard(path) as shard:
            attrs = shard.attrs
            programs = attrs.get("programs") or []
            if isinstance(programs, str):
                programs = json.loads(programs)
            out[frozenset(shard.trial_ids)] = {
                "compile_s": sum(p["compile_s"] for p in programs), "train_s": sum(p["train_s"] for p in programs),
                "cache_hits": sum(p["cache_hits"] for p in programs), "programs": len(programs),
                "xla_flags": attrs.get("xla_flags", "")}
    return out


def plan_tasks(lp: LaunchPlan) -> list[dict[str, Any]]:
    return [{"trials": frozenset(t.trial_ids), "n": len(t.trial_ids), "groups": t.groups, "est_s": t.est_s}
            for t in lp.plan.tasks]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 widths, 1 epoch (a smoke run)")
    ap.add_argument("--calibration", type=Path, default=None, help="reuse this calibration file (no calibrating)")
    ap.add_argument("--task-minutes", type=float, default=None,
                    help=f"task size for the plan (default: the predicted total / {TASKS}, so ~{TASKS} tasks that "
                         "mix groups)")
    add_run_options(ap)
    args = ap.parse_args(argv)
    root = run_root(args, "pcsweep-plan-accuracy-")
    if root is None:
        return 0
    grid_file = root / f"{GRID_NAME}.yaml"
    grid_file.write_text(yaml.safe_dump(grid_document(args.quick), sort_keys=False))
    grid = load_grid(grid_file)
    paths = RunPaths.of(grid.name, root)
    submitted = False
    try:
        cal_path, cal_s = calibrate(grid, root, args.calibration)
        opts = options(root, args.task_minutes or 1.5)
        lp = prepare_launch(grid, opts)
        if args.task_minutes is None:  # size tasks so the plan has about TASKS of them, whatever this CPU measured
            total_s = sum(t.est_s for t in lp.plan.tasks)
            group_s = max(p.trials / p.programs * p.trial_s + (p.compile_s or 0.0) for p in lp.plan.programs)
            opts = options(root, max(total_s / TASKS, group_s + GROUP_MARGIN_S) / 60)  # never split a group
            lp = prepare_launch(grid, opts)
        if lp.plan.estimate != "calibration" or Path(lp.plan.calibration or "") != cal_path or lp.plan.flop_groups:
            raise RuntimeError(f"the plan did not use the calibration {cal_path}: estimate={lp.plan.estimate}, "
                               f"file={lp.plan.calibration}, FLOP-model groups={lp.plan.flop_groups}")
        tasks = plan_tasks(lp)
        print(f"plan: {len(grid.trials)} trials, {lp.plan.groups} groups, {len(tasks)} tasks "
              f"(task minutes {opts.task_minutes:.2f}), estimate from {lp.plan.calibration}", flush=True)
        t0 = time.perf_counter()
        sub = launch(grid, opts)
        submitted = True
        print(f"launched {sub.tasks} tasks in arrays {', '.join(a.job_id for a in sub.arrays)}", flush=True)
        done = wait_for_tasks(paths, args.timeout_min * 60)
        wall_s = time.perf_counter() - t0
        submitted = False
    except (RuntimeError, TimeoutError, subprocess.SubprocessError) as e:
        print(json.dumps({"error": str(e), "root": str(root)}))
        return 2
    finally:
        if submitted:
            cancel(grid.name, root)
    by_trials = {d["trials"]: (j, d) for j, d in done.items()}
    breakdown = shard_breakdown(paths)
    print(f"\n{'task':>4} {'job':>10} {'trials':>6} {'groups':>6} {'predicted s':>11} {'measured s':>10} "
          f"{'ratio':>6} {'compile s':>9} {'train s':>8} {'state':>9}")
    rows = []
    for i, t in enumerate(tasks):
        job, d = by_trials[t["trials"]]
        measured = float(d["elapsed"])
        b = breakdown.get(t["trials"], {})
        rows.append({"task": i, "job": job, "trials": t["n"], "groups": t["groups"], "predicted_s": t["est_s"],
                     "measured_s": measured, "ratio": round(measured / t["est_s"], 3), "state": d["state"],
                     "compile_s": round(b.get("compile_s", float("nan")), 1),
                     "train_s": round(b.get("train_s", float("nan")), 1)})
        r = rows[-1]
        print(f"{i:>4} {job:>10} {r['trials']:>6} {r['groups']:>6} {r['predicted_s']:>11.1f} {measured:>10.0f} "
              f"{r['ratio']:>6.2f} {r['compile_s']:>9.1f} {r['train_s']:>8.1f} {d['state']:>9}")
    predicted = sum(r["predicted_s"] for r in rows)
    measured = sum(r["measured_s"] for r in rows)
    ratio = measured / predicted
    print(f"{'all':>4} {'':>10} {sum(r['trials'] for r in rows):>6} {sum(r['groups'] for r in rows):>6} "
          f"{predicted:>11.1f} {measured:>10.0f} {ratio:>6.2f}")
    failed = [r["job"] for r in rows if r["state"] != "COMPLETED"]
    result = {
        "tasks": len(rows), "predicted_s": round(predicted, 1), "measured_s": round(measured, 1),
        "ratio": round(ratio, 3), "per_task_ratio_min": min(r["ratio"] for r in rows),
        "per_task_ratio_max": max(r["ratio"] for r in rows), "within_30pct": 1 - TOLERANCE <= ratio <= 1 + TOLERANCE,
        "trials": len(grid.trials), "groups": lp.plan.groups, "failed_tasks": failed, "wall_s": round(wall_s, 1),
        "calibrate_s": round(cal_s, 1), "calibration": str(cal_path), "load_average": [round(x, 2) for x in
                                                                                        os.getloadavg()],
        "quick": args.quick, "root": str(root) if args.keep or args.root else None,
        "task_xla_flags": sorted({b.get("xla_flags", "") for b in breakdown.values()}),
    }
    if not args.keep and args.root is None:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return 0 if result["within_30pct"] and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
