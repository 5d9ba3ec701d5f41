"""Benchmark: `collect` on synthetic shards shaped like the two-moons trials of the paper's grids.

Writes N trials (default 50,000; PC, E=8 epochs, B=32 batches, T=8, L=3, so energy is
[8, 32, 9, 3] float32, ~64 KB of arrays per trial) in shards of 100 trials into a temporary run
folder, with `contracts.shard.write_shard` itself (the arrays of one random template are reused; every
trial has its own config and id), then measures:
  1. a full collect (target >= 2,000 trials/s on the reference machine);
  2. an incremental collect after adding 1% new shards (target < 5 s);
  3. the baseline, in the same run: the version-1 layout's cost, one HDF5 group with six datasets
     and four attributes per trial, written with h5py's high-level API (per trial).
Wall time and CPU time (this process and its children) are both reported, with the load average,
since the machine may be shared. The last line printed is one JSON object.

    python bench/collect_scale.py                 # 50,000 trials
    python bench/collect_scale.py --trials 5000   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Run as a script from any folder: the repository root goes on sys.path before the imports below, which is
# why they come after it (ruff allows imports that follow a sys.path change).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py
import numpy as np

import collect
from contracts.config import TrialConfig, trial_id
from contracts.paths import RunPaths
from contracts.shard import ARRAY_NAMES, TrialResult, open_shard, write_shard

GRID = "bench"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=50_000, help="trials in the full collect (default 50000)")
    p.add_argument("--per-shard", type=int, default=100, help="trials per shard (default 100)")
    p.add_argument("--new-fraction", type=float, default=0.01,
                   help="new trials added before the incremental collect, as a fraction of --trials (default 0.01)")
    p.add_argument("--shape", default="8,32,8,3", help="E,B,T,L of every trial (default 8,32,8,3: two moons PC)")
    p.add_argument("--dir", default=None, help="work folder (default: a new temporary folder, deleted at the end)")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--progress", action="store_true", help="show collect's progress bars")
    return p.parse_args(argv)


def template_arrays(n: int, E: int, B: int, T: int, L: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"test_accuracy": rng.random(E, dtype=np.float32),
             "energy": rng.random((E, B, T + 1, L), dtype=np.float32),
             "energy_var": rng.random((E, B, T + 1, L), dtype=np.float32),
             "w_norm": rng.random((E, B, 3), dtype=np.float32),
             "w_grad_norm": rng.random((E, B, 3), dtype=np.float32),
             "w_grad_var": rng.random((E, B, 3), dtype=np.float32)} for _ in range(n)]


def make_shards(paths: RunPaths, arrays: list[dict[str, np.ndarray]], first_seed: int, n_trials: int,
                per_shard: int, created: str, prefix: str, E: int, T: int) -> list[str]:
    """Shards of `per_shard` trials with seeds first_seed..., written by `contracts.shard.write_shard`."""
    base = TrialConfig.from_mapping({"train": {"epochs": E, "T": T}}).to_mapping()
    ids = []
    for s, start in enumerate(range(0, n_trials, per_shard)):
        trials = []
        for j in range(min(per_shard, n_trials - start)):
            cfg = {**base, "seed": first_seed + start + j}
            tid = trial_id(cfg)
            trials.append(TrialResult(tid, cfg, "ok", 1.0, arrays[j % len(arrays)]))
            ids.append(tid)
        write_shard(paths.shard(f"{prefix}{s:05d}"), trials, grid=GRID, task_key=f"{prefix}{s:05d}",
                    attrs={"created": created})
    return ids


def v1_layout_s_per_trial(shards: list[Path], out: Path) -> float:
    """The baseline: version 1's layout, one group + six datasets + four attributes per trial."""
    t0, n = time.perf_counter(), 0
    with h5py.File(out, "w") as dst:
        trials = dst.create_group("trials")
        for path in shards:
            with open_shard(path) as shard:
                for block in shard.blocks():
                    for i, tid in enumerate(block.trial_ids):
                        h = trials.create_group(tid)
                        h.attrs["config"] = block.configs[i]
                        h.attrs["status"] = block.status[i]
                        h.attrs["wall_s"] = float(block.wall_s[i])
                        for name in ARRAY_NAMES:
                            h.create_dataset(name, data=block.arrays[name][i])
                        h.attrs["shard"] = path.name
                        n += 1
    return (time.perf_counter() - t0) / n


def cpu_s() -> float:
    """CPU seconds (user + system) used by this process and its finished children (collect starts none)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    E, B, T, L = (int(x) for x in args.shape.split(","))
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="collect_scale_"))
    root = work / "runs"
    paths = RunPaths.of(GRID, root)
    if paths.folder.exists():
        shutil.rmtree(paths.folder)
    paths.folder.mkdir(parents=True)
    try:
        t = time.perf_counter()
        arrays = template_arrays(args.per_shard, E, B, T, L)
        ids = make_shards(paths, arrays, 0, args.trials, args.per_shard, "2026-01-01T00:00:00+00:00", "a", E, T)
        n_new = max(1, round(args.trials * args.new_fraction))
        paths.submissions_dir.mkdir(parents=True)
        paths.submission("bench").write_text(json.dumps({"grid": GRID, "stamp": "bench", "tasks": {"all": ids}}))
        gen_s = time.perf_counter() - t
        print(f"wrote {args.trials} trials in {len(list(paths.shards_dir.glob('*.h5')))} shards in {gen_s:.1f} s",
              file=sys.stderr)

        load_before = os.getloadavg()
        cpu0 = cpu_s()
        full = collect.collect(GRID, root, progress=args.progress)
        full_cpu = cpu_s() - cpu0
        assert full.complete == args.trials and full.mode == "full", full
        print(f"full collect: {full.wall_s:.1f} s, {args.trials / full.wall_s:.0f} trials/s", file=sys.stderr)

        new_ids = make_shards(paths, arrays, args.trials, n_new, args.per_shard, "2026-01-02T00:00:00+00:00", "b",
                              E, T)
        load_before_inc = os.getloadavg()
        t, cpu0 = time.perf_counter(), cpu_s()
        inc = collect.collect(GRID, root, progress=args.progress)
        inc_s, inc_cpu = time.perf_counter() - t, cpu_s() - cpu0
        assert inc.mode == "incremental" and inc.merged_trials == len(new_ids), inc
        assert inc.complete == args.trials + n_new
        print(f"incremental collect of {n_new} new trials: {inc_s:.2f} s", file=sys.stderr)

        naive = v1_layout_s_per_trial(sorted(paths.shards_dir.glob("a*.h5"))[:2], work / "v1.h5")
        result = {
            "bench": "collect_scale",
            "trials": args.trials,
            "shards": len(list(paths.shards_dir.glob("a*.h5"))),
            "shape_EBTL": [E, B, T, L],
            "full_s": round(full.wall_s, 2),
            "full_trials_per_s": round(args.trials / full.wall_s, 1),
            "full_target_trials_per_s": 2000,
            "full_cpu_s": round(full_cpu, 2),  # user + system; wall ~ cpu on an idle machine
            "full_trials_per_cpu_s": round(args.trials / full_cpu, 1),
            "incremental_new_trials": n_new,
            "incremental_s": round(inc_s, 2),
            "incremental_target_s": 5.0,
            "incremental_cpu_s": round(inc_cpu, 2),
            "baseline_v1_layout_write_trials_per_s": round(1 / naive, 1),
            "speedup_vs_v1_layout_write": round((args.trials / full.wall_s) * naive, 2),
            "results_bytes": paths.results.stat().st_size,
            "summary_bytes": paths.summary.stat().st_size,
            "loadavg_1m_before_full": round(load_before[0], 2),
            "loadavg_1m_before_incremental": round(load_before_inc[0], 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
