"""Benchmark: batched adaptive search (`launch.search_worker.run_worker`) against Optuna's one-trial-per-call loop.

    python bench/search.py            # 3 seeds x 96 trials per method, width 64 (4 min on 2 shared cores)
    python bench/search.py --quick    # 1 seed x 32 trials, batches 16 and 4: a smoke run of every part (1.7 min)
    python bench/search.py --out DIR  # where the figure and results.json go (default: a new temporary folder)
    python bench/search.py --quick --ceiling-sizes 1,2,4,8,16,32,64,128   # + per-trial cost against group size

One search space on two moons (n_samples 1024, batch 32, width 64, T 8, 4 epochs, w_optimizer sgd, seed 0),
maximising accuracy_best over train.h_lr (log 1e-3..1), train.w_lr (log 1e-4..1e-1), train.w_momentum (0..0.95)
and model.activation {leaky_relu, hard_tanh, tanh}. Every method builds a trial's config with
`launch.search_worker.trial_config` and scores it with `trial_value`, so they search the same objective:

    tpe_batched     run_worker in this process: one worker, batch 32 (TPE, constant liar; journal storage on disk,
                    trial sets, shard parts), seeded through the worker index
    tpe_batched_small  the same with batch 8 (--small-batch): more rounds, smaller programs
    tpe_sequential  Optuna's usual loop, `study.optimize(objective, n_trials=N)` with the default TPESampler and
                    in-memory storage; the objective trains its one trial with `pc.trials.iter_trial_results`
                    (a program of 2 with one padded slot, pc's smallest), so one compiled program per activation,
                    reused by every later call: pcsweep's compile cache helps the baseline too
    random_batched  Optuna's RandomSampler; all N trials asked up front and trained in one iter_trial_results call
    grid            a fixed grid of about N points (log-bin centres of h_lr x w_lr, bin centres of momentum, x the
                    3 activations), trained once; each seed visits it in its own random order, so only the last
                    point of its curve is the grid's result (the same for every seed)

(a) throughput: trials per CPU-second (this process and its children: `time.process_time` plus the reaped
children's rusage; jax and pcx are imported before any timing) and per wall-second, tpe_batched against
tpe_sequential. Cold: all seeds, each method starting with no compiled program of the bench's shapes (pc's in-process
program cache is emptied before it; no persistent compile cache), so its own compiles are included. Warm: seed 0 of
each method run again, which asks the same trials and so needs no new program. Because model.activation is a shape
key, a batch of 32 splits into up to three programs (padded to 2..32 trials each); a second variant searches only the
per-trial keys (activation fixed at leaky_relu: one program per batch), seed 0, cold then warm. Last, the compute
ceiling: CPU-seconds per trial of one trial trained alone against a batch trained in one call (warm, training only).
(b) quality: best accuracy_best so far against COMPLETE trials used (a batch's trials in Optuna number order), mean
and range over the seeds, printed as a table and drawn in DIR/search_quality.png.

Every run root is a fresh temporary folder, removed at the end (--keep keeps it). Training and worker output goes to
DIR/search.log. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# No persistent compile cache: every compile is paid in this process, and a program dropped from pc's in-process
# cache is compiled again (a task would set the run root's cache folder; here jax reads this before it starts).
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
os.environ.setdefault("MPLBACKEND", "Agg")

# isort: off
import pc  # noqa: F401 -- first: it sets XLA_FLAGS before jax starts
# isort: on
import numpy as np
import optuna
from optuna.samplers import RandomSampler, TPESampler
from optuna.trial import TrialState

import launch.search_worker as search_worker
from contracts.config import TrialConfig, trial_id
from contracts.paths import RunPaths
from grids.search import Distribution, SearchSpec, Study
from launch.search_worker import run_worker, study_storage, trial_config, trial_value
from pc.compile_time import BACKEND_EVENT, CACHE_HIT_EVENT, COMPILE_EVENTS, CompileMeter
from pc.train import GROUP_SIZES, drop_program
from pc.trials import TrialFailure, iter_trial_results

GRID_NAME = "bench_search"
STUDY = "moons"
ACTIVATIONS = ("leaky_relu", "hard_tanh", "tanh")
H_LR, W_LR, MOMENTUM = (1e-3, 1.0), (1e-4, 1e-1), (0.0, 0.95)
PARAMS = (
    Distribution("train.h_lr", "float", *H_LR, log=True),
    Distribution("train.w_lr", "float", *W_LR, log=True),
    Distribution("train.w_momentum", "float", *MOMENTUM),
    Distribution("model.activation", "categorical", choices=ACTIVATIONS),
)
METHODS = ("tpe_batched", "tpe_batched_small", "tpe_sequential", "random_batched", "grid")
LABELS = {"tpe_batched": "TPE, run_worker batch {batch}", "tpe_batched_small": "TPE, run_worker batch {small}",
          "tpe_sequential": "TPE, Optuna loop (1 trial/call)",
          "random_batched": "random, all N at once", "grid": "grid ({grid} points, random order)"}
D_IN = N_CLASSES = 2  # two moons


def base_config(width: int, epochs: int, T: int) -> dict[str, Any]:
    return TrialConfig.from_mapping({
        "data": {"dataset": "two_moons", "n_samples": 1024, "batch_size": 32},
        "model": {"width": width},
        "train": {"epochs": epochs, "T": T, "w_optimizer": "sgd", "h_lr": 0.1, "w_lr": 0.01, "w_momentum": 0.9},
        "seed": 0,
    }).to_mapping()


_METERS: list[CompileMeter] = []


def _on_compile_event(event: str, duration: float, **_: object) -> None:
    """jax's compile events into the bench's active meters (as `pc.compile_time` does). The bench keeps its own
    listener: `pc.compile_time.measure_compile` removes a finished meter by equality, so an outer meter that has seen
    exactly the events of a nested one (pc's per-group meter) is removed in its place, and the outer one's exit
    raises ValueError."""
    if event not in COMPILE_EVENTS:
        return
    end = time.perf_counter()
    for meter in _METERS:
        meter.intervals.append((end - duration, end))
        meter.cache_hits += event == CACHE_HIT_EVENT
        if event == BACKEND_EVENT:
            meter.compiles += 1
            meter.backend_s += duration


def cpu_s() -> float:
    """CPU seconds of this process (all threads) and of its children that have been waited for."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


@dataclass
class Cost:
    cpu_s: float = 0.0
    wall_s: float = 0.0
    compile_s: float = 0.0  # wall seconds of jax compile events (trace, lowering, XLA)
    compiles: int = 0  # XLA backend compiles
    cache_hits: int = 0
    train_cpu_s: float = 0.0  # CPU inside the training call(s): iter_trial_results / PcsweepTask
    trials: int = 0

    def add(self, other: Cost) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class Run:
    method: str
    seed: int
    values: list[float]  # COMPLETE trials' values in Optuna number (ask) order
    cost: Cost = field(default_factory=Cost)
    best_params: dict[str, Any] = field(default_factory=dict)

    def curve(self) -> np.ndarray:
        return np.maximum.accumulate(np.asarray(self.values, dtype=np.float64))


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path, log_file: Any) -> None:
        self.args, self.work, self.log_file = args, work, log_file
        self.base = base_config(args.width, args.epochs, args.T)
        self.train_cpu = 0.0  # CPU inside training calls, accumulated by `train` and by run_worker's timed PcsweepTask

    def spec(self, params: Sequence[Distribution], batch: int | None = None) -> SearchSpec:
        return SearchSpec(params=tuple(params), metric="accuracy_best", direction="maximize",
                          budget=self.args.budget, batch=batch or self.args.batch,
                          studies=(Study(STUDY, {}, self.base),))

    @contextlib.contextmanager
    def measured(self, cost: Cost) -> Iterator[CompileMeter]:
        """Time the block into `cost`; its output goes to the log file."""
        c0, w0, t0 = cpu_s(), time.perf_counter(), self.train_cpu
        meter = CompileMeter()
        _METERS.append(meter)
        try:
            with contextlib.redirect_stdout(self.log_file), contextlib.redirect_stderr(self.log_file):
                yield meter
        finally:
            _METERS[:] = [m for m in _METERS if m is not meter]
        cost.add(Cost(cpu_s() - c0, time.perf_counter() - w0, meter.seconds, meter.compiles, meter.cache_hits,
                      self.train_cpu - t0))

    def cold(self) -> None:
        """Forget every program of the bench's shapes, so the next method compiles its own."""
        for act, n in itertools.product(ACTIVATIONS, GROUP_SIZES):
            cfg = TrialConfig.from_mapping({**self.base, "model": {**self.base["model"], "activation": act}})
            drop_program(cfg, D_IN, N_CLASSES, n)

    def train(self, configs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
        """trial id -> value (None: no value, told FAIL) of configs trained with iter_trial_results."""
        c0 = cpu_s()
        out: dict[str, float | None] = {}
        for res in iter_trial_results(configs):
            if isinstance(res, TrialFailure):
                print(f"bench: trial {res.trial_id} raised: {res.error}", file=sys.stderr)
                out[res.trial_id] = None
                continue
            out[res.trial_id] = trial_value(res.status, res.arrays["test_accuracy"], "accuracy_best", "maximize")[0]
        self.train_cpu += cpu_s() - c0
        return out

    # ---------------------------------------------------------------------------------------------------- methods

    def tpe_batched(self, seed: int, params: Sequence[Distribution], small: bool = False) -> Run:
        spec = self.spec(params, self.args.small_batch if small else None)
        root = Path(tempfile.mkdtemp(prefix=f"batched-s{seed}-", dir=self.work))
        paths = RunPaths.of(GRID_NAME, root)
        paths.folder.mkdir(parents=True, exist_ok=True)
        run = Run("tpe_batched_small" if small else "tpe_batched", seed, [])
        with self.measured(run.cost):
            report = run_worker(paths, spec, worker=seed)
        if report.failed:
            print(f"bench: {run.method} seed {seed}: {report.failed} trial(s) told FAIL", file=sys.stderr)
        study = optuna.load_study(study_name=STUDY, storage=study_storage(paths, STUDY))
        complete = sorted((t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE),
                          key=lambda t: t.number)
        run.values = [float(t.value) for t in complete]
        run.best_params = dict(study.best_params)
        run.cost.trials = len(run.values)
        return run

    def tpe_sequential(self, seed: int, params: Sequence[Distribution]) -> Run:
        spec = self.spec(params)
        meta = spec.studies[0]

        def objective(trial: optuna.Trial) -> float:
            config = trial_config(trial, spec, meta)
            value = self.train([config])[trial_id(config)]
            return math.nan if value is None else value  # NaN: Optuna tells FAIL

        run = Run("tpe_sequential", seed, [])
        with self.measured(run.cost):
            study = optuna.create_study(direction="maximize", sampler=TPESampler(seed=seed))
            study.optimize(objective, n_trials=self.args.budget)
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        run.values = [float(t.value) for t in complete]
        run.best_params = dict(study.best_params)
        run.cost.trials = len(run.values)
        return run

    def random_batched(self, seed: int) -> Run:
        spec = self.spec(PARAMS)
        run = Run("random_batched", seed, [])
        with self.measured(run.cost):
            study = optuna.create_study(direction="maximize", sampler=RandomSampler(seed=seed))
            trials = [study.ask() for _ in range(self.args.budget)]
            configs = [trial_config(t, spec, spec.studies[0]) for t in trials]
            values = self.train(configs)
            for t, c in zip(trials, configs):
                value = values.get(trial_id(c))
                study.tell(t, value, state=TrialState.FAIL if value is None else TrialState.COMPLETE)
        run.values = [float(t.value) for t in study.trials if t.state == TrialState.COMPLETE]
        run.best_params = dict(study.best_params)
        run.cost.trials = len(run.values)
        return run

    def grid_points(self) -> list[dict[str, Any]]:
        n_h, n_w, n_m = grid_shape(self.args.budget, len(ACTIVATIONS))
        hs, ws, ms = log_centres(*H_LR, n_h), log_centres(*W_LR, n_w), centres(*MOMENTUM, n_m)
        return [{"train.h_lr": h, "train.w_lr": w, "train.w_momentum": m, "model.activation": a}
                for a, h, w, m in itertools.product(ACTIVATIONS, hs, ws, ms)]

    def grid(self, seeds: Sequence[int]) -> list[Run]:
        """The grid trained once; one run per seed, each its own random order of the same points."""
        points = self.grid_points()
        cost = Cost()
        with self.measured(cost):
            configs = [Study(STUDY, {}, self.base).config(p).to_mapping() for p in points]
            values = self.train(configs)
        vals = [values.get(trial_id(c)) for c in configs]
        runs = []
        for seed in seeds:
            order = np.random.default_rng(seed).permutation(len(points))
            run = Run("grid", seed, [vals[i] for i in order if vals[i] is not None], cost)
            ok = [i for i in range(len(points)) if vals[i] is not None]
            run.best_params = points[max(ok, key=lambda i: vals[i])] if ok else {}
            run.cost.trials = len(ok)
            runs.append(run)
        return runs


def centres(low: float, high: float, n: int) -> list[float]:
    """Centres of n equal bins of [low, high]."""
    return [low + (high - low) * (i + 0.5) / n for i in range(n)]


def log_centres(low: float, high: float, n: int) -> list[float]:
    """Centres of n equal bins of [log10 low, log10 high]."""
    return [10 ** c for c in centres(math.log10(low), math.log10(high), n)]


def grid_shape(budget: int, n_cat: int) -> tuple[int, int, int]:
    """(h_lr, w_lr, momentum) values: the most points (x n_cat) within the budget, the two learning rates
    within one value of each other, momentum 1 or 2 values (e.g. 96 -> 4 x 4 x 2 x 3, 32 -> 3 x 3 x 1 x 3)."""
    cells = max(budget // n_cat, 1)
    best = (1, 1, 1)
    for k in range(1, cells + 1):
        for n_h, n_w, n_m in ((k, k, 1), (k + 1, k, 1), (k, k, 2), (k + 1, k, 2)):
            if n_h * n_w * n_m <= cells and n_h * n_w * n_m > math.prod(best):
                best = (n_h, n_w, n_m)
    return best


# -------------------------------------------------------------------------------------------------------- report


def best_at(runs: Sequence[Run], n: int) -> list[float]:
    """Each run's best value within its first n COMPLETE trials (NaN: fewer than n)."""
    return [float(r.curve()[n - 1]) if len(r.values) >= n else math.nan for r in runs]


def table(runs: dict[str, list[Run]], checkpoints: Sequence[int], labels: dict[str, str]) -> list[str]:
    width = max(len(v) for v in labels.values())
    head = f"{'method':<{width}}  " + "  ".join(f"{f'n={n}':>19}" for n in checkpoints)
    lines = [head, "-" * len(head)]
    for method, rs in runs.items():
        cells = []
        for n in checkpoints:
            v = best_at(rs, n)
            cells.append(f"{np.mean(v):.4f} [{np.min(v):.3f},{np.max(v):.3f}]" if not any(map(math.isnan, v))
                         else "-")
        lines.append(f"{labels[method]:<{width}}  " + "  ".join(f"{c:>19}" for c in cells))
    return lines


def figure(runs: dict[str, list[Run]], labels: dict[str, str], path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, rs in runs.items():
        n = min(len(r.values) for r in rs)
        if n == 0:
            continue
        curves = np.stack([r.curve()[:n] for r in rs])
        x = np.arange(1, n + 1)
        line, = ax.plot(x, curves.mean(axis=0), label=f"{labels[method]} (mean of {len(rs)})")
        if len(rs) > 1:
            ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.2, lw=0)
    # the first few trials of any method are poor: start the axis at the worst best-so-far after 8 trials
    firsts = [r.curve()[min(7, len(r.values) - 1)] for rs in runs.values() for r in rs if r.values]
    if firsts:
        ax.set_ylim(bottom=max(min(firsts) - 0.02, 0.0))
    ax.set_xlabel("trials used (COMPLETE, in ask order)")
    ax.set_ylabel("best accuracy_best so far")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def rate_line(name: str, c: Cost) -> str:
    return (f"  {name:<34} {c.trials:4d} trials  CPU {c.cpu_s:7.1f} s (training {c.train_cpu_s:6.1f} s; compile "
            f"{c.compile_s:5.1f} s wall in {c.compiles} XLA compiles)  wall {c.wall_s:7.1f} s  ->  "
            f"{c.trials / c.cpu_s:6.2f} trials/CPU-s, {c.trials / c.wall_s:6.2f} trials/s")


def ratios(batched: Cost, seq: Cost) -> dict[str, float]:
    """Batched over sequential trials per CPU-second and per wall-second."""
    return {"ratio_cpu": (batched.trials / batched.cpu_s) / (seq.trials / seq.cpu_s),
            "ratio_wall": (batched.trials / batched.wall_s) / (seq.trials / seq.wall_s)}


def ceiling(bench: Bench, n: int) -> dict[str, float]:
    """CPU-seconds per trial of warm leaky_relu programs: one trial alone (a program of 2, as each call of the
    sequential objective) against n trials in one call; the training alone, nothing of Optuna or the worker."""
    def configs(k: int, offset: int) -> list[dict[str, Any]]:
        return [Study(STUDY, {}, bench.base).config({"train.h_lr": 0.01 * (1 + (offset + i) / 1000)}).to_mapping()
                for i in range(k)]

    cost = Cost()
    with bench.measured(cost):
        bench.train(configs(n, 0))  # compiles the program of n if no method did
        bench.train(configs(1, n))
        c0, w0 = cpu_s(), time.perf_counter()
        bench.train(configs(n, n + 1))
        group, group_wall = (cpu_s() - c0) / n, (time.perf_counter() - w0) / n
        c0, w0 = cpu_s(), time.perf_counter()
        for i in range(4):
            bench.train(configs(1, 2 * n + 1 + i))
        alone, alone_wall = (cpu_s() - c0) / 4, (time.perf_counter() - w0) / 4
    return {"alone_cpu_s_per_trial": alone, "group_cpu_s_per_trial": group, "ceiling_ratio": alone / group,
            "alone_wall_s_per_trial": alone_wall, "group_wall_s_per_trial": group_wall,
            "ceiling_ratio_wall": alone_wall / group_wall}


def ceiling_curve(bench: Bench, sizes: Sequence[int]) -> dict[int, float]:
    """CPU-seconds per trial of a warm leaky_relu program trained n trials at once, per n in `sizes` (training
    only): where the curve flattens, a group is compute-bound and batching buys nothing more on this device."""
    out: dict[int, float] = {}
    offset = 10_000
    for n in sizes:
        def configs(k: int) -> list[dict[str, Any]]:
            nonlocal offset
            offset += k
            return [Study(STUDY, {}, bench.base).config({"train.h_lr": 0.01 * (1 + (offset + i) / 1e6)}).to_mapping()
                    for i in range(k)]

        with bench.measured(Cost()):
            bench.train(configs(n))  # compile (or reuse) the program of this size
            reps = max(1, 64 // n)
            c0 = cpu_s()
            for _ in range(reps):
                bench.train(configs(n))
            out[n] = (cpu_s() - c0) / (reps * n)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/search.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, budget 32, batch 16")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for search_quality.png, results.json and search.log (default: a new temp folder)")
    parser.add_argument("--budget", type=int, default=None, help="COMPLETE trials per method and seed (default 96; "
                                                                 "--quick 32)")
    parser.add_argument("--batch", type=int, default=None, help="run_worker batch (default 32; --quick 16)")
    parser.add_argument("--small-batch", type=int, default=None,
                        help="a second run_worker batch, smaller, for the quality/throughput trade-off (default 8; "
                             "--quick 4; 0: none)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per method (default 3; --quick 1)")
    parser.add_argument("--width", type=int, default=64, help="hidden width (default 64)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial (default 4)")
    parser.add_argument("--T", type=int, default=8, help="inference steps (default 8)")
    parser.add_argument("--no-variant", action="store_true",
                        help="skip the throughput variant without model.activation")
    parser.add_argument("--keep", action="store_true", help="keep the temporary run roots (their path is printed)")
    parser.add_argument("--ceiling-sizes", default="",
                        help="also print CPU-seconds per trial of warm programs of these group sizes, e.g. "
                             "1,2,4,8,16,32,64,128 (where it flattens, batching buys nothing more here)")
    args = parser.parse_args(argv)
    args.budget = args.budget or (32 if args.quick else 96)
    args.batch = args.batch or (16 if args.quick else 32)
    if args.small_batch is None:
        args.small_batch = 4 if args.quick else 8
    args.seeds = args.seeds or (1 if args.quick else 3)
    try:
        args.ceiling_sizes = [int(x) for x in args.ceiling_sizes.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--ceiling-sizes: got {args.ceiling_sizes!r}; expected integers, e.g. 1,8,32")
    if any(n < 1 or n > 4096 for n in args.ceiling_sizes):
        parser.error("--ceiling-sizes: each size must be 1 to 4096")
    if min(args.budget, args.batch, args.seeds, args.width, args.epochs, args.T) < 1 or args.small_batch < 0:
        parser.error("--budget, --batch, --seeds, --width, --epochs and --T must be >= 1, --small-batch >= 0")
    t_start = time.perf_counter()
    out = (args.out or Path(tempfile.mkdtemp(prefix="pcsweep-bench-search-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pcsweep-bench-search-runs-"))
    try:
        return run(args, out, work, t_start)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, out: Path, work: Path, t_start: float) -> int:
    """The bench itself; run roots go under `work`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    checkpoints = [n for n in (8, 16, 32, 64, 96, 128, 256) if n <= args.budget and (n >= 16 or args.budget < 64)]
    if not checkpoints or checkpoints[-1] != args.budget:
        checkpoints.append(args.budget)
    seeds = list(range(args.seeds))

    def log(msg: str) -> None:
        print(msg, flush=True)

    import jax
    from jax import monitoring

    monitoring.register_event_duration_secs_listener(_on_compile_event)
    device = jax.devices()[0]
    log(f"bench/search.py: {device.platform}:{device.device_kind} on {len(os.sched_getaffinity(0))} CPU(s); two moons "
        f"n_samples 1024 batch 32, width {args.width}, T {args.T}, {args.epochs} epochs, sgd; budget {args.budget}, "
        f"run_worker batch {args.batch}, {args.seeds} seed(s); output {out}")
    runs: dict[str, list[Run]] = {m: [] for m in METHODS}
    warm: dict[str, Run] = {}  # seed 0 of each TPE method again, every program compiled: the warm rate
    variant: dict[str, Run] = {}  # without model.activation: cold, then warm
    variant_warm: dict[str, Run] = {}
    with open(out / "search.log", "w", encoding="utf-8") as log_file:
        bench = Bench(args, work, log_file)
        task_call = search_worker.PcsweepTask

        def timed_task(*a: Any, **k: Any) -> Callable[[], Any]:
            """run_worker's PcsweepTask, its call's CPU counted as training (bench instrumentation only)."""
            task = task_call(*a, **k)

            def call() -> Any:
                c0 = cpu_s()
                try:
                    return task()
                finally:
                    bench.train_cpu += cpu_s() - c0
            return call

        search_worker.PcsweepTask = timed_task  # type: ignore[assignment,misc]
        try:
            with contextlib.redirect_stderr(log_file):
                bench.train([bench.base])  # warm-up: imports, data, pcx's first compiles; not timed
            tpe: dict[str, Callable[[int, Sequence[Distribution]], Run]] = {
                "tpe_sequential": bench.tpe_sequential, "tpe_batched": bench.tpe_batched,
                "tpe_batched_small": lambda seed, params: bench.tpe_batched(seed, params, small=True)}
            for name in (m for m in tpe if m != "tpe_batched_small" or args.small_batch):
                fn = tpe[name]
                bench.cold()
                for s in seeds:
                    log(f"  {name} seed {s} ...")
                    runs[name].append(fn(s, PARAMS))
                log(f"  {name} seed 0 again, warm ...")
                warm[name] = fn(0, PARAMS)
            for s in seeds:
                log(f"  random_batched seed {s} ...")
                runs["random_batched"].append(bench.random_batched(s))
            log("  grid ...")
            runs["grid"] = bench.grid(seeds)
            if not args.no_variant:
                fixed = PARAMS[:3]  # activation stays at the base's leaky_relu: per-trial keys only
                for name, fn in (("tpe_sequential", bench.tpe_sequential), ("tpe_batched", bench.tpe_batched)):
                    bench.cold()
                    log(f"  without model.activation: {name}, cold then warm ...")
                    variant[name] = fn(0, fixed)
                    variant_warm[name] = fn(0, fixed)
            log(f"  compute ceiling: one trial alone against {args.batch} in one call ...")
            ceil = ceiling(bench, args.batch)
            curve = ceiling_curve(bench, args.ceiling_sizes) if args.ceiling_sizes else {}
        finally:
            search_worker.PcsweepTask = task_call

    if not runs["tpe_batched_small"]:
        del runs["tpe_batched_small"]
    labels = {m: LABELS[m].format(batch=args.batch, small=args.small_batch, grid=len(bench.grid_points()))
              for m in runs}
    total = {m: Cost() for m in runs}
    for m in ("tpe_batched", "tpe_batched_small", "tpe_sequential", "random_batched"):
        if m not in runs:
            continue
        for r in runs[m]:
            total[m].add(r.cost)
    total["grid"] = runs["grid"][0].cost
    r_cold = ratios(total["tpe_batched"], total["tpe_sequential"])
    r_warm = ratios(warm["tpe_batched"].cost, warm["tpe_sequential"].cost)
    log("")
    log(f"(a) throughput. Cold: {args.seeds} seed(s) x {args.budget} trials, each TPE method starting with no compiled "
        "program (its compiles included):")
    for m in runs:
        log(rate_line(labels[m], total[m]))
    log("  warm: seed 0 again, every program already compiled:")
    for m in warm:
        log(rate_line(labels[m], warm[m].cost))
    log(f"  => batch {args.batch} / Optuna loop: {r_cold['ratio_cpu']:.2f}x trials per CPU-second cold (incl. "
        f"compile), {r_warm['ratio_cpu']:.2f}x warm; per wall-second {r_cold['ratio_wall']:.2f}x cold, "
        f"{r_warm['ratio_wall']:.2f}x warm")
    r_small_cold, r_small_warm = {}, {}
    if "tpe_batched_small" in runs:
        r_small_cold = ratios(total["tpe_batched_small"], total["tpe_sequential"])
        r_small_warm = ratios(warm["tpe_batched_small"].cost, warm["tpe_sequential"].cost)
        log(f"  => batch {args.small_batch} / Optuna loop: {r_small_cold['ratio_cpu']:.2f}x per CPU-second cold, "
            f"{r_small_warm['ratio_cpu']:.2f}x warm; per wall-second {r_small_cold['ratio_wall']:.2f}x cold, "
            f"{r_small_warm['ratio_wall']:.2f}x warm")
    r_var_cold, r_var_warm = {}, {}
    if variant:
        r_var_cold = ratios(variant["tpe_batched"].cost, variant["tpe_sequential"].cost)
        r_var_warm = ratios(variant_warm["tpe_batched"].cost, variant_warm["tpe_sequential"].cost)
        log("  without model.activation (per-trial keys only: one program per batch), seed 0, cold then warm:")
        for name in ("tpe_batched", "tpe_sequential"):
            log(rate_line(labels[name] + ", cold", variant[name].cost))
            log(rate_line(labels[name] + ", warm", variant_warm[name].cost))
        log(f"  => {r_var_cold['ratio_cpu']:.2f}x per CPU-second cold, {r_var_warm['ratio_cpu']:.2f}x warm; per "
            f"wall-second {r_var_cold['ratio_wall']:.2f}x cold, {r_var_warm['ratio_wall']:.2f}x warm")
    log(f"  compute ceiling (warm leaky_relu programs, training only): one trial alone "
        f"{ceil['alone_cpu_s_per_trial']:.3f} CPU-s, in a call of {args.batch} {ceil['group_cpu_s_per_trial']:.3f} "
        f"CPU-s per trial: {ceil['ceiling_ratio']:.2f}x ({ceil['ceiling_ratio_wall']:.2f}x per wall-second)")
    if curve:
        log("  CPU-s per trial of a warm program of n trials (training only): " + ", ".join(
            f"n={n} {v * 1000:.1f} ms" for n, v in curve.items()))
    log("")
    log(f"(b) best accuracy_best within the first n trials, mean [min, max] over {args.seeds} seed(s):")
    for line in table(runs, checkpoints, labels):
        log("  " + line)
    fig_path = out / "search_quality.png"
    figure(runs, labels, fig_path, f"two moons, width {args.width}, T {args.T}, {args.epochs} epochs: h_lr, w_lr, "
                                   f"w_momentum, activation ({args.seeds} seed(s); band: min-max)")
    wall = time.perf_counter() - t_start
    result: dict[str, Any] = {
        "device": f"{device.platform}:{device.device_kind}", "cpus": len(os.sched_getaffinity(0)),
        "width": args.width, "T": args.T, "epochs": args.epochs, "budget": args.budget, "batch": args.batch,
        "seeds": args.seeds,
        **r_cold, **{f"warm_{k}": v for k, v in r_warm.items()},
        **{f"small_batch_{k}": v for k, v in r_small_cold.items()},
        **{f"small_batch_warm_{k}": v for k, v in r_small_warm.items()},
        "small_batch": args.small_batch,
        **{f"no_activation_{k}": v for k, v in r_var_cold.items()},
        **{f"no_activation_warm_{k}": v for k, v in r_var_warm.items()},
        **ceil,
        "ceiling_curve_cpu_s_per_trial": {str(n): v for n, v in curve.items()},
        "trials_per_cpu_s": {m: c.trials / c.cpu_s for m, c in total.items()},
        "cost": {m: vars(c) for m, c in total.items()},
        "warm_cost": {m: vars(r.cost) for m, r in warm.items()},
        "checkpoints": checkpoints,
        "best_mean": {m: [float(np.mean(best_at(rs, n))) for n in checkpoints] for m, rs in runs.items()},
        "curves": {m: [r.curve().tolist() for r in rs] for m, rs in runs.items()},
        "best_params": {m: [r.best_params for r in rs] for m, rs in runs.items()},
        "figure": str(fig_path), "wall_s": wall,
    }
    (out / "results.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    if args.keep:
        log(f"run roots kept in {work}")
    log(f"figure {fig_path}; results {out / 'results.json'}; log {out / 'search.log'}; total wall {wall:.0f} s")
    short = {k: v for k, v in result.items() if k not in ("curves", "best_params", "cost", "warm_cost")}
    print(json.dumps(_rounded(short)))
    return 0


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
