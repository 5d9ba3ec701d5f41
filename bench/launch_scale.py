"""Benchmark: load + plan the three paper grids (target < 2 s), and submit 5,000 trials (< 30 s).

    python bench/launch_scale.py              # planning only
    python bench/launch_scale.py --submit     # also submit a 5,000-trial grid to the local SLURM
                                              # cluster (held with --begin, then cancelled)

The baseline, measured in the same run, is the straightforward way: for every trial build and
validate a TrialConfig from its mapping, hash it (`.trial_id`) and compute `static_key`; it is
timed on a sample and scaled to all trials. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CODE))

from contracts.config import TrialConfig, static_key  # noqa: E402 - after the sys.path line above
from grids.grid import grid_from_mapping, load_grid  # noqa: E402
from launch.cancel import cancel  # noqa: E402
from launch.options import LaunchOptions  # noqa: E402
from launch.plan import pack_tasks  # noqa: E402
from launch.submit import launch  # noqa: E402

PAPER = ("propagation", "stability", "stability_constant_width")


def plan_once() -> tuple[float, float, dict]:
    """Wall and CPU seconds to load and plan the three paper grids, and their counts."""
    w0, c0 = time.perf_counter(), time.process_time()
    counts = {}
    for name in PAPER:
        grid = load_grid(CODE / "grids" / f"{name}.yaml")
        plan = pack_tasks(grid.trials, grid=name, trial_ids=grid.trial_ids)
        counts[name] = {"trials": len(grid.trials), "tasks": len(plan.tasks), "groups": plan.groups}
    return time.perf_counter() - w0, time.process_time() - c0, counts


def naive_seconds(sample: int = 3000) -> float:
    """Per-trial from_mapping + trial_id + static_key over a sample, scaled to all paper trials."""
    trials = [c for name in PAPER for c in load_grid(CODE / "grids" / f"{name}.yaml").trials]
    picks = random.Random(0).sample(trials, min(sample, len(trials)))
    mappings = [c.to_mapping() for c in picks]
    t0 = time.perf_counter()
    for m in mappings:
        cfg = TrialConfig.from_mapping(m)
        _ = cfg.trial_id, static_key(cfg)
    return (time.perf_counter() - t0) / len(picks) * len(trials)


def bench_submit(trials_per_task: int) -> dict:
    """Time `launch.submit.launch` for a 5,000-trial grid on the local cluster, then cancel it."""
    if shutil.which("sbatch") is None:
        return {"skipped": "sbatch not on PATH (start a cluster: scripts/slurm-dev-cluster up)"}
    doc = {
        "name": "bench5000",
        "defaults": {"data": {"n_samples": 64, "batch_size": 16}, "train": {"epochs": 1}},
        "sweep": [{"axes": {"model.width": [8, 16, 32, 64, 128], "train.h_lr": [0.01 * (i + 1) for i in range(10)],
                            "seed": {"range": 100}}}],
    }
    grid = grid_from_mapping(doc, source="bench5000")
    root = Path(tempfile.mkdtemp(prefix="pcsweep-bench-"))
    options = LaunchOptions(root=root, executor="slurm", gpus=0, cpus=1, time_min=5, container=False, platform="cpu",
                            trials_per_task=trials_per_task, sbatch={"begin": "now+1hour"})  # held: nothing runs
    t0 = time.perf_counter()
    try:
        submission = launch(grid, options)
        seconds = time.perf_counter() - t0
    finally:
        cancelled = cancel(grid.name, root)
        shutil.rmtree(root, ignore_errors=True)
    return {"trials": submission.trials, "tasks": submission.tasks, "arrays": len(submission.arrays),
            "wall_s": round(seconds, 2), "target_s": 30, "cancelled_jobs": len(cancelled)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="planning repetitions; the median is reported (default 3)")
    p.add_argument("--submit", action="store_true",
                   help="also time a 5,000-trial submission to the local SLURM cluster")
    p.add_argument("--trials-per-task", type=int, default=5,
                   help="task size of the submit part (default 5: 1,000 tasks)")
    a = p.parse_args()
    runs = [plan_once() for _ in range(a.repeat)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    counts = runs[0][2]
    naive = naive_seconds()
    total = sum(c["trials"] for c in counts.values())
    for name, c in counts.items():
        print(f"{name}: {c['trials']:,} trials, {c['groups']} static groups, {c['tasks']} tasks")
    print(f"load + plan of {total:,} trials: {wall:.2f} s wall, {cpu:.2f} s CPU (median of {a.repeat}; target < 2 s); "
          f"naive per-trial validate+hash baseline ~{naive:.1f} s ({naive / wall:.1f}x slower)")
    result = {"plan": {"trials": total, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "target_s": 2,
                       "naive_wall_s": round(naive, 2), "speedup_vs_naive": round(naive / wall, 1), "grids": counts}}
    if a.submit:
        result["submit"] = bench_submit(a.trials_per_task)
        print(f"submit: {result['submit']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
