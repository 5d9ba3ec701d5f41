"""Benchmark: `collect` on synthetic shards shaped like the two-moons trials of the paper's grids.

Writes N trials (default 50,000; PC, E=8 epochs, B=32 batches, T=8, L=3, so energy is
[8, 32, 9, 3] float32, ~64 KB of arrays per trial) in shards of 100 trials into a temporary run
folder, then measures:
  1. a full collect (target >= 2,000 trials/s on the reference machine);
  2. an incremental collect after adding 1% new shards (target < 5 s);
  3. the baseline, in the same run: a naive merge of two shards with h5py's high-level API
     (read every array, write every dataset and attribute), extrapolated per trial.
Shards are made from one template written by `pc.shard.write_shard` (copied, trials renamed to
real trial ids and their config attribute rewritten), since writing 50,000 trials through the
writer would take longer than the collect under test. The last line printed is one JSON object.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from pc.config import TrialConfig, canonical_json, trial_id  # noqa: E402
from pc.paths import RunPaths  # noqa: E402
from pc.shard import ARRAY_NAMES, TrialResult, write_shard  # noqa: E402

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


def template_shard(path: Path, n: int, E: int, B: int, T: int, L: int) -> None:
    rng = np.random.default_rng(0)
    base = TrialConfig.from_mapping({"train": {"epochs": E, "T": T}})
    trials = []
    for j in range(n):
        cfg = base.replace(seed=10**9 + j)
        arrays = {"test_accuracy": rng.random(E, dtype=np.float32),
                  "energy": rng.random((E, B, T + 1, L), dtype=np.float32),
                  "energy_var": rng.random((E, B, T + 1, L), dtype=np.float32),
                  "w_norm": rng.random((E, B, 3), dtype=np.float32),
                  "w_grad_norm": rng.random((E, B, 3), dtype=np.float32),
                  "w_grad_var": rng.random((E, B, 3), dtype=np.float32)}
        trials.append(TrialResult(cfg.trial_id, cfg.to_mapping(), "ok", 1.0, arrays))
    write_shard(path, trials, grid=GRID, task_key="template")


def make_shards(paths: RunPaths, template: Path, first_seed: int, n_trials: int, per_shard: int,
                created: str, prefix: str) -> list[str]:
    """Copies of the template whose trials are renamed to the ids of configs with seeds first_seed..."""
    base = TrialConfig.from_mapping({}).to_mapping()
    with h5py.File(template, "r") as f:
        template_ids = list(f["trials"])
        base = json.loads(f["trials"][template_ids[0]].attrs["config"])
    ids = []
    paths.shards_dir.mkdir(parents=True, exist_ok=True)
    for s, start in enumerate(range(0, n_trials, per_shard)):
        count = min(per_shard, n_trials - start)
        tmp = paths.shards_dir / f"{prefix}{s:05d}.h5.tmp.bench"
        shutil.copyfile(template, tmp)
        with h5py.File(tmp, "a") as f:
            f.attrs["created"] = created
            f.attrs["task_key"] = f"{prefix}{s:05d}"
            g = f["trials"]
            for j, old in enumerate(template_ids):
                if j >= count:
                    del g[old]
                    continue
                base["seed"] = first_seed + start + j
                config = canonical_json(base)
                tid = trial_id(base)
                g.move(old, tid)
                g[tid].attrs["config"] = config
                ids.append(tid)
        os.replace(tmp, paths.shard(f"{prefix}{s:05d}"))
    return ids


def naive_merge_s_per_trial(shards: list[Path], out: Path) -> float:
    """The baseline: h5py's high-level API, every array read and written, attrs copied one by one."""
    t0, n = time.perf_counter(), 0
    with h5py.File(out, "w") as dst:
        trials = dst.create_group("trials")
        for path in shards:
            with h5py.File(path, "r") as src:
                for tid, g in src["trials"].items():
                    h = trials.create_group(tid)
                    for k, v in g.attrs.items():
                        h.attrs[k] = v
                    for name in ARRAY_NAMES:
                        h.create_dataset(name, data=g[name][()])
                    h.attrs["shard"] = path.name
                    n += 1
    return (time.perf_counter() - t0) / n


def cpu_s() -> float:
    """CPU seconds used by this process and its finished children (collect's reader worker)."""
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
    import collect

    try:
        t = time.perf_counter()
        template = work / "template.h5"
        template_shard(template, args.per_shard, E, B, T, L)
        ids = make_shards(paths, template, 0, args.trials, args.per_shard, "2026-01-01T00:00:00+00:00", "a")
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

        new_ids = make_shards(paths, template, args.trials, n_new, args.per_shard, "2026-01-02T00:00:00+00:00", "b")
        t, cpu0 = time.perf_counter(), cpu_s()
        inc = collect.collect(GRID, root, progress=args.progress)
        inc_s, inc_cpu = time.perf_counter() - t, cpu_s() - cpu0
        assert inc.mode == "incremental" and inc.merged_trials == len(new_ids), inc
        assert inc.complete == args.trials + n_new
        print(f"incremental collect of {n_new} new trials: {inc_s:.2f} s", file=sys.stderr)

        naive = naive_merge_s_per_trial(sorted(paths.shards_dir.glob("a*.h5"))[:2], work / "naive.h5")
        result = {
            "bench": "collect_scale",
            "trials": args.trials,
            "shards": len(list(paths.shards_dir.glob("a*.h5"))),
            "shape_EBTL": [E, B, T, L],
            "full_s": round(full.wall_s, 2),
            "full_trials_per_s": round(args.trials / full.wall_s, 1),
            "full_target_trials_per_s": 2000,
            "full_cpu_s": round(full_cpu, 2),  # both processes: on an idle 2-core machine wall ~ cpu / 2
            "full_trials_per_cpu_s": round(args.trials / full_cpu, 1),
            "incremental_new_trials": n_new,
            "incremental_s": round(inc_s, 2),
            "incremental_target_s": 5.0,
            "incremental_cpu_s": round(inc_cpu, 2),
            "baseline_naive_h5py_trials_per_s": round(1 / naive, 1),
            "speedup_vs_naive": round((args.trials / full.wall_s) * naive, 2),
            "results_bytes": paths.results.stat().st_size,
            "summary_bytes": paths.summary.stat().st_size,
            "loadavg_1m_before_full": round(load_before[0], 2),
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
