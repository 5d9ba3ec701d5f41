"""Section 8 of scripts/gpu-check: batched adaptive search against Optuna's one-trial loop on this device.

Runs bench/search.py in a child process (TPE batches of 32 through `run_worker` against `study.optimize` training
one trial per call, random search and a grid; docs/search.md "Benchmark") and keeps its throughput figures. On
CPU a warm group of 32 is compute-bound (about 6x cheaper per trial than one trial alone at the bench's shape),
so the 10x aim of the search can only be met, or not, on a GPU: this is where it is measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from gpucheck.common import REPO, line

GOAL = 10.0  # batched / sequential trials per second, warm (docs/search.md)
KEPT = ("device", "budget", "batch", "ratio_cpu", "ratio_wall", "warm_ratio_cpu", "warm_ratio_wall",
        "alone_cpu_s_per_trial", "group_cpu_s_per_trial", "ceiling_ratio", "alone_wall_s_per_trial",
        "group_wall_s_per_trial", "ceiling_ratio_wall", "best_mean", "checkpoints", "wall_s")


def bench_argv(out: Path, quick: bool) -> list[str]:
    """One seed, no smaller batch and no activation-free variant: the throughput figures, in a few minutes."""
    size = ["--quick"] if quick else ["--seeds", "1", "--budget", "64", "--batch", "32"]
    return [sys.executable, str(REPO / "bench" / "search.py"), *size, "--small-batch", "0", "--no-variant",
            "--out", str(out)]


def search_throughput(out: Path, quick: bool, timeout_s: float = 240.0) -> dict[str, Any]:
    """bench/search.py's figures (its last output line), printed as the section's lines."""
    proc = subprocess.run(bench_argv(out, quick), cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"bench/search.py exited {proc.returncode}: {tail}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    figures = {k: result.get(k) for k in KEPT}
    line(f"{figures['device']}: {figures['budget']} trials, batch {figures['batch']} through run_worker against "
         f"Optuna's loop (one trial per call); log and figure in {out}")
    line(f"trials per wall-second, batched / loop: {figures['warm_ratio_wall']}x warm, {figures['ratio_wall']}x "
         f"cold (compiles included); per CPU-second {figures['warm_ratio_cpu']}x warm, {figures['ratio_cpu']}x cold")
    line(f"training only, one trial alone / one of {figures['batch']} in one call: {figures['ceiling_ratio_wall']}x "
         f"per wall-second, {figures['ceiling_ratio']}x per CPU-second")
    figures["meets_goal"] = (figures["warm_ratio_wall"] or 0) >= GOAL
    line(f"goal {GOAL:g}x (warm, per wall-second): {'met' if figures['meets_goal'] else 'NOT met'}")
    return figures
