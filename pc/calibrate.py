"""`python -m pc.calibrate`: time the group program on representative shapes and write a calibration file.

For each shape (dataset, kind, width; docs/pc.md "Calibration") and group size this builds the real group
program (`pc.train.get_program`), loads `n` trials into it and trains epochs on a prefix of the data: the
first epoch pays the compile (metered by `pc.compile_time`, with the persistent compilation cache off so
the figure is a real compile), the next ones give the steady seconds per trial-epoch, scaled from the
timed batches to a full epoch. Peak memory comes from the device's `peak_bytes_in_use` where it reports
one (GPUs; counted when the program raised the process's peak), with `pc.memory`'s estimate beside it.
Of the compile seconds it also keeps the trace and lowering (`trace_s`: all but jax's backend-compile events),
which a task pays again when it loads the program from the persistent compilation cache, and it times a
task's fixed start once (`task_start_s`: a fresh python importing the task side, jax and pcx and starting the
device, as every SLURM task does before its first group).
The file goes to `ROOT/.calibration/<device kind>.json` (`contracts.calibration`), which `launch` reads.

Programs whose estimated steady epoch would take longer than `--max-program-s` are skipped (the largest
shapes at large groups on a CPU); the planner takes the nearest measured group size for them.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata as md
import math
import os
import platform as pyplatform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from contracts.calibration import (
    FOLDER,
    Calibration,
    GroupCost,
    ShapeCost,
    write_calibration,
)
from contracts.cli import OneLineParser, root_path, run_command
from contracts.config import TrialConfig
from contracts.paths import default_root
from contracts.shapes import batch_flops, layer_dims, train_batches

WIDTHS = (32, 128, 512, 1024, 2048, 4096)
CONSTANT_WIDTHS = (196, 784, 2304)  # in = h = out = resize^2 = n_classes
GROUPS = {"cpu": (2, 32), "cuda": (2, 32, 256, 1024, 4096)}
QUICK_SHAPES = ("two_moons:pc:32", "two_moons:bp:32")
QUICK_GROUPS = (2, 8)
ASSUMED_FLOPS = {"cpu": 2e10, "cuda": 2e12}  # only to choose how many batches to time, never reported
MAX_PROGRAM_S = {"cpu": 30.0, "cuda": 60.0}  # estimated steady epoch of one program above this: skipped
TASK_START_CODE = "import launch.task, pc.trials, pcx, jax; jax.devices()"  # what a task does before group 1
TASK_START_RUNS = 2  # fresh processes timed; the mean is kept


class CalibrateError(ValueError):
    """A bad argument or an unusable device: one line, exit 2."""


@dataclass(frozen=True)
class Settings:
    """What one calibration run measures."""

    platform: str
    shapes: tuple[TrialConfig, ...]
    groups: tuple[int, ...]
    epochs_timed: int  # steady epochs after the compiling one
    target_epoch_s: float  # aim of one timed epoch of a group (sets the timed batches)
    max_program_s: float
    task_start_s: float | None = None  # a task start measured already (`measure_task_start`); None: time it


def parse_shape(spec: str) -> TrialConfig:
    """`dataset:kind:width` (dataset two_moons | two_circles | fashion_mnist | mnist | constant) -> a config
    as the paper grids run it (B 32 for toy data, 128 for images; T 8 for PC, 1 for BP)."""
    parts = spec.split(":")
    if len(parts) != 3 or not parts[2].isdigit() or parts[1] not in ("pc", "bp") or int(parts[2]) < 1:
        raise CalibrateError(f"--shapes: got {spec!r}; expected DATASET:KIND:WIDTH, e.g. two_moons:pc:128")
    dataset, kind, width = parts[0], parts[1], int(parts[2])
    keys: dict[str, object] = {"model.kind": kind, "model.width": width, "train.T": 8 if kind == "pc" else 1,
                               "train.w_optimizer": "sgd", "train.w_momentum": 0.9}
    if dataset == "constant":
        side = math.isqrt(width)
        if side * side != width:
            raise CalibrateError(f"--shapes: got {spec!r}; a constant width must be a square (196, 784, 2304)")
        keys.update({"data.dataset": "fashion_mnist", "data.batch_size": 128, "data.resize": side,
                     "data.n_classes": width, "model.constant_width": True})
    elif dataset in ("two_moons", "two_circles", "fashion_mnist", "mnist"):
        keys.update({"data.dataset": dataset, "data.batch_size": 128 if dataset.endswith("mnist") else 32})
    else:
        raise CalibrateError(f"--shapes: got dataset {dataset!r}; expected two_moons, two_circles, fashion_mnist, "
                             "mnist or constant")
    return TrialConfig().replace(**keys)


def default_shapes(quick: bool) -> tuple[str, ...]:
    """The paper's shapes: toy and FashionMNIST widths 32..4096 and the constant widths, PC and BP."""
    if quick:
        return QUICK_SHAPES
    return tuple(f"{ds}:{kind}:{w}" for ds in ("two_moons", "fashion_mnist") for kind in ("pc", "bp")
                 for w in WIDTHS) + tuple(f"constant:{kind}:{w}" for kind in ("pc", "bp") for w in CONSTANT_WIDTHS)


def _timed_batches(cfg: TrialConfig, n: int, s: Settings) -> int:
    """A power of two of batches (at most a full epoch) whose epoch of `n` trials takes about the target."""
    per_batch = n * batch_flops(layer_dims(cfg), cfg.model.kind, cfg.train.T, cfg.data.batch_size)
    want = s.target_epoch_s * ASSUMED_FLOPS[s.platform] / per_batch
    k = 2 ** max(1, math.ceil(math.log2(max(want, 1.0))))
    return min(k, train_batches(cfg))


def _estimated_epoch_s(cfg: TrialConfig, n: int, batches: int, platform: str) -> float:
    return n * batches * batch_flops(layer_dims(cfg), cfg.model.kind, cfg.train.T,
                                     cfg.data.batch_size) / ASSUMED_FLOPS[platform]


def _device_peak() -> int | None:
    import jax  # lazy: the module's --help must not start jax

    return (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")


def measure_task_start(runs: int = TASK_START_RUNS) -> float:
    """Mean seconds of a fresh python that imports the task side, jax and pcx and starts the device: what each
    task pays once before its first group (same interpreter and environment as this process)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", TASK_START_CODE], check=True, capture_output=True, timeout=300)
        times.append(time.perf_counter() - t0)
    return round(sum(times) / len(times), 3)


def measure_program(cfg: TrialConfig, n: int, batches: int, epochs_timed: int) -> GroupCost:
    """Compile and run one program of `n` trials on the first `batches` batches; see the module docstring."""
    import jax.numpy as jnp  # lazy, as above

    from pc import train
    from pc.compile_time import measure_compile
    from pc.datasets import load_data
    from pc.memory import per_trial_bytes
    from pc.trials import batch_orders

    ds = load_data(cfg.data)
    full = ds.train_x.shape[0]
    n_test = max(1, round(ds.test_x.shape[0] * batches / full))
    data = {"train_x": jnp.asarray(ds.train_x[:batches]), "train_y": jnp.asarray(ds.train_y[:batches]),
            "test_x": jnp.asarray(ds.test_x[:n_test]), "test_y": jnp.asarray(ds.test_y[:n_test])}
    cfgs = [cfg.replace(seed=i) for i in range(n)]
    orders = [batch_orders(c.seed, batches, epochs_timed + 1) for c in cfgs]
    peak_before = _device_peak()
    steady = []
    with measure_compile() as meter:
        program = train.get_program(cfg, ds.d_in, ds.n_classes, n)
        with program.loaded(cfgs):
            for epoch in range(epochs_timed + 1):
                perm = [o[epoch] for o in orders]
                t0 = time.perf_counter()
                program.epoch(perm, data)  # returns numpy: the epoch has finished
                steady.append(time.perf_counter() - t0)
            compile_s = meter.seconds
    trace_s = min(compile_s, max(0.0, compile_s - meter.backend_s))
    train.drop_program(cfg, ds.d_in, ds.n_classes, n)
    peak_after = _device_peak()
    peak = peak_after if peak_after is not None and peak_after > (peak_before or 0) else None
    epoch_s = sum(steady[1:]) / epochs_timed * full / batches
    return GroupCost(n=n, compile_s=round(compile_s, 3), trial_epoch_s=float(f"{epoch_s / n:.4g}"),
                     epochs_timed=epochs_timed, peak_bytes=peak,
                     est_bytes=n * per_trial_bytes(program.dims, cfg.data.batch_size, cfg.train.T, batches),
                     trace_s=round(trace_s, 3))


def measure_data_load(cfg: TrialConfig) -> float:
    """Seconds to load a shape's data set the first time (a task pays it per dataset)."""
    from pc.datasets import load_data

    t0 = time.perf_counter()
    load_data(cfg.data)
    return round(time.perf_counter() - t0, 3)


def _groups_for(cfg: TrialConfig, s: Settings) -> list[tuple[int, int]]:
    """(group size, timed batches) to measure for `cfg`: within the memory budget and --max-program-s;
    at least the smallest group."""
    from pc.memory import memory_budget, per_trial_bytes

    budget = memory_budget()
    out = []
    for n in s.groups:
        batches = _timed_batches(cfg, n, s)
        fits = n * per_trial_bytes(layer_dims(cfg), cfg.data.batch_size, cfg.train.T, batches) <= budget
        fast = _estimated_epoch_s(cfg, n, batches, s.platform) <= s.max_program_s
        if not out or (fits and fast):
            out.append((n, batches))
    return out


def _shape_cost(cfg: TrialConfig, groups: Sequence[GroupCost], timed: int) -> ShapeCost:
    return ShapeCost(dataset=cfg.data.dataset, kind=cfg.model.kind, width=cfg.model.width, T=cfg.train.T,
                     batch_size=cfg.data.batch_size, constant_width=cfg.model.constant_width, dims=layer_dims(cfg),
                     n_batches=train_batches(cfg), timed_batches=timed, groups=tuple(groups))


def _device() -> tuple[str, str, str]:
    """(platform, device kind, a name for people: the CPU model on CPU)."""
    import jax  # lazy, as above

    try:
        device = jax.devices()[0]
    except (RuntimeError, AssertionError) as e:  # no such backend: jax 0.4.38 asserts when none initialised
        wanted = os.environ.get("JAX_PLATFORMS", "")
        raise CalibrateError(f"--platform {wanted}: jax cannot start it here ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'no backend'}); run on a node with that "
                             "device, inside the image") from None
    name = device.device_kind
    platform = "cpu" if device.platform == "cpu" else "cuda"  # jax 0.4.38 says "gpu" for CUDA devices
    if platform == "cpu":
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                            pyplatform.processor() or "cpu")
        except OSError:
            name = pyplatform.processor() or "cpu"
    return platform, device.device_kind, name


def calibrate(s: Settings, *, progress: bool = True) -> Calibration:
    """Measure every shape of `s` (data sets that are missing are skipped with a line on stderr)."""
    import jax  # lazy, as above
    from tqdm import tqdm

    from pc.datasets import DataError

    jax.config.update("jax_enable_compilation_cache", False)  # a cache hit would not be a compile
    platform, kind, name = _device()
    if platform != s.platform:
        raise CalibrateError(f"--platform {s.platform}: jax started on {platform}; run where a {s.platform} "
                             "device is visible (or give --platform " + platform + ")")
    loads: dict[str, float] = {}
    shapes = []
    load_before = os.getloadavg()[0]
    task_start = s.task_start_s if s.task_start_s is not None else measure_task_start()
    bar = tqdm(s.shapes, desc="calibrate", unit="shape", disable=not progress, file=sys.stderr)
    for cfg in bar:
        bar.set_postfix_str(f"{cfg.data.dataset} {cfg.model.kind} w{cfg.model.width}")
        try:
            load_s = measure_data_load(cfg)
        except DataError as e:
            print(f"calibrate: skipped {cfg.data.dataset} width {cfg.model.width}: {e}", file=sys.stderr)
            continue
        loads.setdefault(cfg.data.dataset, load_s)
        plan = _groups_for(cfg, s)
        groups = [measure_program(cfg, n, batches, s.epochs_timed) for n, batches in plan]
        shapes.append(_shape_cost(cfg, groups, plan[0][1]))
    bar.close()
    versions = {pkg: _version(pkg) for pkg in ("jax", "jaxlib", "pcx")} | {"python": pyplatform.python_version()}
    host = {"threads": os.cpu_count() or 0, "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "quick": s.shapes == tuple(parse_shape(x) for x in QUICK_SHAPES),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Calibration(platform=platform, device_kind=kind, device_name=name, date=date, versions=versions,
                       shapes=tuple(shapes), data_load_s=loads, host=host, task_start_s=task_start)


def _version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return ""


def render_table(cal: Calibration) -> str:
    """The calibration as a Markdown table (docs/pc.md "Calibration")."""
    lines = ["| shape | dims | group | compile s | trace s | s / trial-epoch | peak MiB | est MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for sh in cal.shapes:
        label = f"{'constant' if sh.constant_width else sh.dataset} {sh.kind} w{sh.width}"
        for g in sh.groups:
            peak = f"{g.peak_bytes / 2**20:.0f}" if g.peak_bytes else "-"
            est = f"{g.est_bytes / 2**20:.0f}" if g.est_bytes else "-"
            trace = "-" if g.trace_s is None else f"{g.trace_s:.1f}"
            lines.append(f"| {label} | {'x'.join(map(str, sh.dims))} | {g.n} | {g.compile_s:.1f} | {trace} | "
                         f"{g.trial_epoch_s:.4g} | {peak} | {est} |")
    if cal.task_start_s is not None:
        lines.append(f"\ntask start (fresh python, task side, jax, pcx, device): {cal.task_start_s:.1f} s")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m pc.calibrate",
        description="Time the group program on representative shapes and group sizes and write "
                    f"ROOT/{FOLDER}/<device kind>.json, which `python -m launch` uses to size tasks and "
                    "project device-hours (docs/pc.md, Calibration).",
        epilog="examples:\n  python -m pc.calibrate --quick --platform cpu\n"
               "  python -m pc.calibrate --platform cuda --root /scratch/runs\n"
               "  python -m pc.calibrate --shapes two_moons:pc:128 fashion_mnist:bp:1024 constant:pc:784",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", choices=("cpu", "cuda"), default=None,
                        help="JAX platform to measure (sets JAX_PLATFORMS; default: jax's choice)")
    parser.add_argument("--quick", action="store_true",
                        help="two small two-moons shapes at groups 2 and 8 (< 1 min on an idle CPU)")
    parser.add_argument("--root", type=root_path, default=None, help="run root (default $PCSWEEP_ROOT or ./runs)")
    parser.add_argument("--shapes", nargs="+", metavar="DATASET:KIND:WIDTH",
                        help="shapes to measure instead of the defaults; DATASET may be 'constant' (in = h = out)")
    parser.add_argument("--groups", nargs="+", type=int, metavar="N", help="group sizes (default: cpu 2 32; "
                        "cuda 2 32 256 1024 4096; --quick 2 8), each capped by the memory budget")
    parser.add_argument("--epochs", type=int, default=2, help="steady epochs timed after the compiling one")
    parser.add_argument("--max-program-s", type=float, default=None,
                        help="skip a group size whose estimated steady epoch exceeds this (cpu 30, cuda 60)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def settings_from_args(args: argparse.Namespace, platform: str) -> Settings:
    """Check the arguments; CalibrateError names the bad one."""
    groups = tuple(args.groups) if args.groups else QUICK_GROUPS if args.quick else GROUPS[platform]
    if any(g < 1 or g > 4096 for g in groups):
        raise CalibrateError(f"--groups: got {list(groups)}; expected integers from 1 to 4096")
    if args.epochs < 1:
        raise CalibrateError(f"--epochs: got {args.epochs}; expected at least 1")
    shapes = tuple(parse_shape(x) for x in (args.shapes or default_shapes(args.quick)))
    return Settings(platform=platform, shapes=shapes, groups=tuple(sorted(set(groups))),
                    epochs_timed=1 if args.quick else args.epochs, target_epoch_s=0.2 if args.quick else 1.0,
                    max_program_s=args.max_program_s or MAX_PROGRAM_S[platform])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.platform:
        os.environ["JAX_PLATFORMS"] = args.platform  # before jax starts (it is imported lazily below)
    root = args.root or default_root()
    t0 = time.perf_counter()
    try:
        settings = settings_from_args(args, args.platform or _platform_now())
        cal = calibrate(settings, progress=not args.no_progress)
    except CalibrateError as e:
        print(f"calibrate: {e}", file=sys.stderr)
        return 2
    if not cal.shapes:
        print("calibrate: no shape could be measured (data missing?); nothing written", file=sys.stderr)
        return 2
    path = write_calibration(root / FOLDER, cal)
    print(render_table(cal))
    programs = sum(len(s.groups) for s in cal.shapes)
    print(f"calibrate: {len(cal.shapes)} shapes, {programs} programs on {cal.platform} ({cal.device_name}) in "
          f"{time.perf_counter() - t0:.0f} s, load average {cal.host['load_average'][0]}-"
          f"{cal.host['load_average'][1]} on {cal.host['threads']} threads -> {path}")
    return 0


def _platform_now() -> str:
    import jax  # lazy, as above

    return "cpu" if jax.devices()[0].platform == "cpu" else "cuda"


if __name__ == "__main__":
    sys.exit(run_command("pc.calibrate", main))
