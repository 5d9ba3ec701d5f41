"""Benchmark: a reduced CPU slice of the state-initialisation replay, through the real local SLURM cluster.

    python bench/state_init_slice.py              # 3 rules x T {3, 20} x 2 seeds, 8 epochs, 8,192 images
    python bench/state_init_slice.py --epochs 5 --subset 4096 --seeds 3 --keep

In a fresh temporary run root it
1. derives a small grid from grids/state_init.yaml, the one source of the study's tuned values: the joint axis
   keeps the rows of T = 3 and T = 20 (forward, zero and normal, each with its README values), the seed axis is
   cut to `--seeds`, and the defaults get `train.epochs` = `--epochs` and `data.train_subset` = `--subset`
   (12 trials in 6 static groups by default); everything else (squared-error output, x/255 inputs, AdamW,
   momentum, early stopping) is the replay's;
2. launches it the way a user would, on partition `cpu` without a container:
   `python -m launch GRID --root ROOT --executor slurm --partition cpu --no-container --platform cpu --cpus 1
   --trials-per-task 6 --time 30` (2 tasks of 1 CPU, running side by side on the 2-core dev node),
   waits with `python -m launch status GRID --watch`, and collects with `python -m collect GRID`;
3. prints accuracy_best (the best test accuracy over the epochs, the study's reported value) by rule and T,
   mean over seeds (and the spread), zero's and normal's ratio to forward (the study's baseline rule, measured
   in the same run), the wall times, and last one JSON line:
   {"accuracy_best": {rule: {T: mean}}, "vs_forward": {rule: {T: ratio}}, "trials", "ok",
   "wall_s" (launch to collected), "launch_s", "run_s" (submitted to all settled), "collect_s",
   "trial_wall_s_mean", ...}.

A slice of 8 epochs on 8,192 images (about 1.5 minutes here) is a check of the study's training through the
whole pipeline, not the study: its accuracies are below the 32-epoch figure (~0.81-0.90). Exit status: 0 when
every trial finished (or skipped: no SLURM here; start one with `make slurm-up`), 1 when a trial failed or is
missing, 2 when the run could not finish.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CODE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CODE))

import yaml  # noqa: E402 - after the sys.path line above
from slurm_run import add_run_options, run_root  # noqa: E402 - bench/, the script's own folder

from grids.grid import load_grid  # noqa: E402

REPLAY = CODE / "grids" / "state_init.yaml"
GRID_NAME = "state_init_slice"
RULES = ("forward", "zero", "normal")
TS = (3, 20)


def slice_document(epochs: int, subset: int, seeds: int, ts: tuple[int, ...] = TS) -> dict[str, Any]:
    """grids/state_init.yaml cut to the rows of `ts`, `seeds` seeds, `epochs` epochs and `subset` training images.

    The tuned values are copied from the replay's joint axis, never written here.
    """
    doc = copy.deepcopy(load_grid(REPLAY).raw)
    (block,) = doc["sweep"]
    ((keys, rows),) = block["joint"].items()
    names = [k.strip() for k in keys.split(",")]
    t_col = names.index("train.T")
    kept = [row for row in rows if row[t_col] in ts]
    if len(kept) != len(RULES) * len(ts):
        raise RuntimeError(f"{REPLAY}: expected one row per rule for T in {ts}, found {len(kept)}")
    block["joint"] = {keys: kept}
    block["name"] = "slice"
    block["axes"]["seed"] = {"range": seeds}
    doc["name"] = GRID_NAME
    doc["description"] = (f"bench/state_init_slice.py: grids/state_init.yaml at T in {list(ts)}, {seeds} seeds, "
                          f"{epochs} epochs, the first {subset} training images")
    doc["defaults"]["train"]["epochs"] = epochs
    doc["defaults"]["data"]["train_subset"] = subset
    return doc


def run(cmd: list[str], timeout_s: float, quiet: bool = False) -> subprocess.CompletedProcess:
    """Run `python -m ...` from the checkout, echoing the command; stdout is printed unless `quiet`."""
    print("$ " + " ".join(cmd[1:]), flush=True)
    env = {**os.environ, "PYTHONPATH": str(CODE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(cmd, cwd=CODE, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    if not quiet and out.stdout.strip():
        print(out.stdout.rstrip(), flush=True)
    if out.returncode != 0:
        detail = (out.stderr or out.stdout).strip()[-2000:]
        raise RuntimeError(f"{' '.join(cmd[1:4])} exited {out.returncode}: {detail}")
    return out


def table(summary, ts: tuple[int, ...]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Mean accuracy_best per rule and T (over seeds), and the printed lines."""
    means: dict[str, dict[str, float]] = {}
    head = f"{'rule':<8}" + "".join(f"  {f'T = {t}':<24}" for t in ts)
    lines = ["accuracy_best (best test accuracy over epochs), mean over seeds (min-max, seeds):", head.rstrip()]
    for rule in RULES:
        cells = []
        for t in ts:
            acc = summary.loc[(summary["model.init_h"] == rule) & (summary["train.T"] == t), "accuracy_best"]
            values = [float(a) for a in acc]
            mean = statistics.fmean(values) if values else float("nan")
            means.setdefault(rule, {})[str(t)] = round(mean, 4)
            spread = f"({min(values):.3f}-{max(values):.3f}, {len(values)})" if values else "(none)"
            cells.append(f"  {f'{mean:.4f} {spread}':<24}")
        lines.append((f"{rule:<8}" + "".join(cells)).rstrip())
    fwd = means["forward"]
    lines.append("against forward (the study's baseline rule, same run): " + "; ".join(
        f"{rule} {'/'.join(f'{means[rule][str(t)] / fwd[str(t)]:.2f}' for t in ts)}" for rule in RULES[1:])
        + f" at T = {'/'.join(map(str, ts))}")
    return means, lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=8, help="epochs per trial (default 8)")
    ap.add_argument("--subset", type=int, default=8192, help="training images, data.train_subset (default 8192)")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per cell (default 2)")
    ap.add_argument("--cpus", type=int, default=1, help="CPUs per task (default 1: two tasks at once on 2 cores)")
    ap.add_argument("--trials-per-task", type=int, default=6, help="task size in trials (default 6: 2 tasks)")
    add_run_options(ap)
    args = ap.parse_args(argv)
    root = run_root(args, "pcsweep-state-init-slice-")
    if root is None:
        return 0
    grid_file = root / f"{GRID_NAME}.yaml"
    grid_file.write_text(yaml.safe_dump(slice_document(args.epochs, args.subset, args.seeds), sort_keys=False))
    grid = load_grid(grid_file)  # validates every trial before anything is submitted
    py = sys.executable
    where = ["--root", str(root)]
    submitted = False
    t0 = time.perf_counter()
    try:
        run([py, "-m", "launch", str(grid_file), *where, "--executor", "slurm", "--partition", "cpu",
             "--no-container", "--platform", "cpu", "--cpus", str(args.cpus),
             "--trials-per-task", str(args.trials_per_task), "--time", "30"], timeout_s=300)
        submitted = True
        t_launched = time.perf_counter()
        # --watch draws its bar on stderr; its last status table goes to stdout
        run([py, "-m", "launch", "status", GRID_NAME, *where, "--watch", "--interval", "5"],
            timeout_s=args.timeout_min * 60)
        submitted = False
        t_settled = time.perf_counter()
        collected = run([py, "-m", "collect", GRID_NAME, *where, "--json", "--no-progress"], timeout_s=600,
                        quiet=True)
        t_collected = time.perf_counter()
    except (RuntimeError, subprocess.SubprocessError) as e:
        print(json.dumps({"error": str(e)[-2000:], "root": str(root)}))
        return 2
    finally:
        if submitted:
            subprocess.run([py, "-m", "launch", "cancel", GRID_NAME, *where], cwd=CODE, timeout=120, check=False)

    from collect import load_summary  # pandas: only after the run

    report = json.loads(collected.stdout)
    summary = load_summary(GRID_NAME, root)
    means, lines = table(summary, TS)
    ok = int((summary["status"] == "ok").sum())
    print()
    print("\n".join(lines))
    wall_s = t_collected - t0
    print(f"\n{len(summary)} of {len(grid.trials)} trials collected ({ok} ok); wall {wall_s:.0f} s = launch "
          f"{t_launched - t0:.0f} s + run {t_settled - t_launched:.0f} s + collect {t_collected - t_settled:.0f} s; "
          f"per trial {summary['wall_s'].mean():.1f} s of training on average (trials train in groups)")
    complete = len(summary) == len(grid.trials) and not report.get("failed") and not report.get("missing")
    result = {
        "accuracy_best": means,
        "vs_forward": {rule: {t: round(means[rule][t] / means["forward"][t], 3) for t in means[rule]}
                       for rule in RULES[1:]},
        "trials": len(grid.trials), "collected": len(summary), "ok": ok,
        "epochs": args.epochs, "train_subset": args.subset, "seeds": args.seeds, "T": list(TS),
        "wall_s": round(wall_s, 1), "launch_s": round(t_launched - t0, 1), "run_s": round(t_settled - t_launched, 1),
        "collect_s": round(t_collected - t_settled, 1), "trial_wall_s_mean": round(float(summary["wall_s"].mean()), 2),
        "collect": {"expected": report.get("expected"), "complete": report.get("complete"),
                    "failed": len(report.get("failed") or {}), "missing": len(report.get("missing") or [])},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "root": str(root) if args.keep or args.root else None,
    }
    if not args.keep and args.root is None:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
