"""Sections 4 (one task through the real task path, with the compilation cache) and 5 (device/CPU parity).

Section 4 launches a two-trial grid with the launcher's own library call (`launch.submit.launch`, executor
`local`: `python -m launch.task` in a subprocess with the task environment, JAX_COMPILATION_CACHE_DIR under the
run root included), twice with `force`, and reads each shard with contracts.shard: the second run's `programs`
attribute should show persistent-cache hits. Section 5 trains the same small config at matmul precision
`default` and `highest` in this process (the device) and in a child process with JAX_PLATFORMS=cpu
(`python -m gpucheck.runs parity-child CONFIGS.json SHARD.h5`), and compares the final metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from gpucheck.common import REPO, line, programs_of, say, small_config, validate_shard

TASK_GRID = "gpu-check-task"
SEEDS = (0, 1)  # two trials: one program of 2, the smallest group (a lone trial is padded to 2 anyway)
PARITY_RTOL = {"highest": 1e-5, "default": 1e-3}  # docs/pc.md, "Matmul precision": what a GPU should hold
FINAL_METRICS = ("energy", "energy_var", "w_norm", "w_grad_norm", "w_grad_var")
MIN_CACHED_S = 1.0  # jax 0.4.38's default jax_persistent_cache_min_compile_time_secs


def task_grid(quick: bool) -> Any:
    """The grid of section 4: the small config with seeds 0 and 1."""
    from grids.grid import grid_from_mapping

    doc = {"name": TASK_GRID, "description": "scripts/gpu-check section 4: one task through the task path",
           "defaults": small_config(quick), "sweep": [{"name": "seeds", "axes": {"seed": list(SEEDS)}}]}
    return grid_from_mapping(doc, source="scripts/gpu-check section 4")


def enable_compile_cache(folder: Path) -> None:
    """Use jax's persistent compilation cache in this process from now on (pc.calibrate turned it off; jax
    decides once per process, so its state is reset). pc.trials installs the atomic entries on first use."""
    import jax
    from jax._src import compilation_cache

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_enable_compilation_cache", True)
    compilation_cache.reset_cache()


def task(platform: str, runs_root: Path, quick: bool) -> dict[str, Any]:
    """Section 4: the task path, twice; each shard validated; compile seconds and cache hits per run."""
    from contracts.paths import RunPaths
    from contracts.shard import open_shard
    from launch.options import LaunchOptions
    from launch.submit import launch

    grid = task_grid(quick)
    paths = RunPaths.of(TASK_GRID, runs_root)
    options = LaunchOptions(root=runs_root, executor="local", platform=platform, force=True)
    line(f"grid {TASK_GRID}: {len(grid.trials)} trials (two moons, width {grid.trials[0].model.width}, "
         f"T {grid.trials[0].train.T}), executor local, JAX_PLATFORMS={platform}, cache {paths.jax_cache_dir}")
    runs, problems = [], []
    for k in (1, 2):
        before = set(paths.shards_dir.glob("*.h5")) if paths.shards_dir.is_dir() else set()
        t0 = time.perf_counter()
        submission = launch(grid, options)
        wall = time.perf_counter() - t0
        new = sorted(set(paths.shards_dir.glob("*.h5")) - before) if paths.shards_dir.is_dir() else []
        run: dict[str, Any] = {"run": k, "wall_s": round(wall, 2), "failed_tasks": list(submission.failed_tasks),
                               "shard": str(new[0]) if len(new) == 1 else None}
        if submission.failed_tasks or len(new) != 1:
            problems.append(f"run {k}: {len(submission.failed_tasks)} failed task(s), {len(new)} new shard(s)")
            for log in submission.logs:
                say(f"task log {log}, last lines:")
                for text in Path(log).read_text(errors="replace").splitlines()[-15:]:
                    line(f"  {text}")
            runs.append(run)
            continue
        check = validate_shard(new[0], grid.trials)
        with open_shard(new[0]) as shard:
            attrs = shard.attrs
        programs = programs_of(attrs)
        run.update(check, programs=len(programs), compile_s=round(sum(p["compile_s"] for p in programs), 3),
                   cache_hits=sum(p["cache_hits"] for p in programs), git_sha=attrs.get("git_sha"),
                   device_kind=attrs.get("device_kind"), matmul_precision=attrs.get("matmul_precision"))
        problems += [f"run {k}: {p}" for p in check["problems"]]
        line(f"run {k}: {check['trials']} trials in {wall:.1f} s (task process start included); {len(programs)} "
             f"program(s), compile {run['compile_s']:.2f} s, persistent-cache hits {run['cache_hits']}; shard "
             f"{new[0].name} valid{' ' if not check['problems'] else ' NOT '}(contracts.shard); device "
             f"{run['device_kind'] or '?'}; git {run['git_sha']}")
        runs.append(run)
    hits = runs[-1].get("cache_hits", 0) if len(runs) == 2 else 0
    share = None
    if len(runs) == 2 and "compile_s" in runs[0] and "compile_s" in runs[1]:
        first, second = runs[0]["compile_s"], runs[1]["compile_s"]
        share = round(second / first, 3) if first > 0 else None
        if not hits:
            say(f"WARNING: the second run had no compilation-cache hit (first compile {first:.2f} s; jax writes only "
                f"compiles of >= {MIN_CACHED_S:g} s, jax_persistent_cache_min_compile_time_secs): tasks recompile")
        else:
            line(f"second run: {hits} cache hit(s), compile {first:.2f} s -> {second:.2f} s ({share:.0%})")
        if hits and share is not None and share > 0.5:
            say(f"WARNING: a fresh task process still compiled {second:.2f} s despite the cache hit: the rest is "
                f"small programs (init, optimizer, transfers) whose compiles take < {MIN_CACHED_S:g} s each, which "
                "jax never writes to the persistent cache (jax_persistent_cache_min_compile_time_secs; the task "
                "environment leaves it at jax's default)")
    return {"grid": TASK_GRID, "cache_dir": str(paths.jax_cache_dir), "runs": runs, "second_run_cache_hits": hits,
            "uncached_compile_share": share, "problems": problems}


def parity_configs(quick: bool) -> list[Any]:
    """The small config at `default` and `highest`, seeds 0 and 1 (two programs of two trials)."""
    from contracts.config import TrialConfig

    base = small_config(quick)
    return [TrialConfig.from_mapping({**base, "train": {**base["train"], "matmul_precision": p}, "seed": s})
            for p in PARITY_RTOL for s in SEEDS]


def final_values(trial: Any) -> dict[str, np.ndarray]:
    """The values compared: each metric at the last batch of the last epoch (energies at t = T-1, the summary's
    value), and the final test accuracy."""
    T = trial.config["train"]["T"]
    out = {name: np.asarray(trial.arrays[name][-1, -1], dtype=np.float64) for name in FINAL_METRICS}
    out["energy"], out["energy_var"] = out["energy"][T - 1], out["energy_var"][T - 1]
    out["test_accuracy"] = np.asarray(trial.arrays["test_accuracy"][-1:], dtype=np.float64)
    return out


def differences(a: dict[str, dict], b: dict[str, dict], ids: list[str]) -> dict[str, Any]:
    """Max |a - b| per metric over `ids`, and relative to the metric's largest |b| (inf when only one side is
    finite). Accuracy is reported apart: one test sample more or less is not a rounding error."""
    per_metric = {}
    for name in (*FINAL_METRICS, "test_accuracy"):
        x = np.concatenate([a[t][name].ravel() for t in ids])
        y = np.concatenate([b[t][name].ravel() for t in ids])
        if not np.array_equal(np.isfinite(x), np.isfinite(y)):
            diff = rel = float("inf")
        else:
            finite = np.isfinite(y)
            diff = float(np.max(np.abs(x[finite] - y[finite]), initial=0.0))
            scale = float(np.max(np.abs(y[finite]), initial=0.0))
            rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
        per_metric[name] = {"max_abs": diff, "max_rel": rel}
    metrics = [per_metric[n] for n in FINAL_METRICS]
    return {"max_abs": max(m["max_abs"] for m in metrics), "max_rel": max(m["max_rel"] for m in metrics),
            "accuracy_max_abs": per_metric["test_accuracy"]["max_abs"], "per_metric": per_metric}


def read_finals(path: Path) -> dict[str, dict]:
    from contracts.shard import open_shard

    with open_shard(path) as shard:
        return {tid: final_values(shard.trial(tid)) for tid in shard.trial_ids}


def parity(platform: str, runs_root: Path, out: Path, quick: bool) -> dict[str, Any]:
    """Section 5: the same trials on this device and on CPU (a child process), at default and highest."""
    from contracts.paths import RunPaths
    from pc.trials import run_trials

    cfgs = parity_configs(quick)
    cpu_only = platform == "cpu"
    compared = "CPU against CPU (this process, a child process)" if cpu_only else "GPU against CPU (a child process)"
    if cpu_only:
        say("PARITY ON A CPU-ONLY RUN: this compares CPU against CPU (same machine and flags: expect 0 difference); "
            "it says nothing about a GPU")
    cache = RunPaths.of(TASK_GRID, runs_root).jax_cache_dir
    enable_compile_cache(cache)
    t0 = time.perf_counter()
    device_shard = out / "parity-device.h5"
    failures = run_trials(cfgs, device_shard, grid="gpu-check-parity", task_key="device", progress=False)
    device_s = time.perf_counter() - t0
    configs_file = out / "parity-configs.json"
    configs_file.write_text(json.dumps([c.to_mapping() for c in cfgs]))
    cpu_shard = out / "parity-cpu.h5"
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache),
           "PYTHONPATH": os.pathsep.join([str(REPO / "scripts"), str(REPO), os.environ.get("PYTHONPATH", "")])}
    t1 = time.perf_counter()
    child = subprocess.run([sys.executable, "-m", "gpucheck.runs", "parity-child", str(configs_file), str(cpu_shard)],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    cpu_s = time.perf_counter() - t1
    problems = [f"device: {f.trial_id} raised {f.error}" for f in failures]
    if child.returncode != 0:
        problems.append(f"CPU child exited {child.returncode}: {child.stderr.strip()[-2000:]}")
    result: dict[str, Any] = {"compared": compared, "cpu_only": cpu_only, "device_s": round(device_s, 1),
                              "cpu_s": round(cpu_s, 1), "problems": problems}
    if problems:
        for p in problems:
            say(f"PARITY FAILED: {p}")
        return result
    problems += [f"device shard: {p}" for p in validate_shard(device_shard, cfgs)["problems"]]
    problems += [f"CPU shard: {p}" for p in validate_shard(cpu_shard, cfgs)["problems"]]
    dev, cpu = read_finals(device_shard), read_finals(cpu_shard)
    line(f"{len(cfgs)} trials (two moons width {cfgs[0].model.width}, T {cfgs[0].train.T}, {cfgs[0].train.epochs} "
         f"epoch(s)): device {device_s:.1f} s, CPU child {cpu_s:.1f} s (process start included); {compared}")
    for precision, rtol in PARITY_RTOL.items():
        ids = [c.trial_id for c in cfgs if c.train.matmul_precision == precision]
        d = differences(dev, cpu, ids)
        d.update(tolerance_rel=rtol, within=d["max_rel"] <= rtol)
        result[precision] = d
        line(f"{precision:8s}: max |device - CPU| of the final energies and weight metrics {d['max_abs']:.3g} "
             f"(relative {d['max_rel']:.3g}); docs/pc.md tolerance {rtol:g} relative: "
             f"{'WITHIN' if d['within'] else 'OUTSIDE'}; final accuracy differs by {d['accuracy_max_abs']:.4g}")
    ids_default = [c.trial_id for c in cfgs if c.train.matmul_precision == "default"]
    ids_highest = [c.trial_id for c in cfgs if c.train.matmul_precision == "highest"]
    same = differences({t: dev[t] for t in ids_default}, {t: dev[h] for t, h in zip(ids_default, ids_highest)},
                       ids_default)
    result["device_default_vs_highest"] = {"max_abs": same["max_abs"], "max_rel": same["max_rel"]}
    line(f"device default vs device highest: max abs {same['max_abs']:.3g} (relative {same['max_rel']:.3g})"
         + (" (CPU: one float32 path, expect 0)" if cpu_only else ""))
    result["problems"] = problems
    return result


def parity_child(argv: list[str]) -> int:
    """The CPU side of section 5: train the configs of a JSON file into a shard; prints one JSON line."""
    configs_file, shard = argv
    from contracts.config import TrialConfig
    from pc.trials import run_trials  # pc before jax: it sets XLA_FLAGS (the parent's are inherited anyway)

    cfgs = [TrialConfig.from_mapping(m) for m in json.loads(Path(configs_file).read_text())]
    failures = run_trials(cfgs, shard, grid="gpu-check-parity", task_key="cpu", progress=False)
    import jax

    print(json.dumps({"platform": jax.devices()[0].platform, "failed": [f.trial_id for f in failures]}))
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["parity-child"]:
        sys.exit("usage: python -m gpucheck.runs parity-child CONFIGS.json SHARD.h5")
    sys.exit(parity_child(sys.argv[2:]))
