"""`python -m launch`: argparse only; the work is done by library calls that return dataclasses.

Three commands share one entry: `python -m launch GRID ...` (launch or --dry-run),
`python -m launch status GRID ...` and `python -m launch cancel GRID`. The first word picks the
parser, so a grid file may be named anything but `status` or `cancel`. Errors in the grid or the
options print one line on stderr and exit 2; nothing imports jax.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contracts.config import ConfigError
from contracts.paths import ROOT_ENV, RunPaths, default_root
from grids.grid import GridError, load_grid, read_grid_document
from launch.options import EXECUTORS, PLATFORMS, LaunchOptions, OptionsError, default_executor

COMMANDS = ("status", "cancel")
GRIDS_DIR = Path(__file__).resolve().parents[1] / "grids"

LAUNCH_EPILOG = """\
examples:
  python -m launch grids/demo.yaml --dry-run            # count, sample, plan and sbatch script; submits nothing
  python -m launch grids/demo.yaml --executor local --jobs 2 train.epochs=1
  python -m launch grids/stability.yaml --partition gpu --time 120 --image pcsweep.sif
  python -m launch grids/propagation.yaml --partition gpu --max-parallel 64 --sbatch mail-type=END
  python -m launch grids/stability.yaml                 # again: submits only what is missing
  python -m launch grids/stability.yaml --rerun-failed  # ... and the trials that raised
  python -m launch grids/demo.yaml --executor debug --only 0123456789abcdef   # one trial here, pdb works
  python -m launch status stability --watch
  python -m launch cancel stability

GRID is a grids/*.yaml file, or a grid name (grids/NAME.yaml, else ROOT/NAME/grid.yaml).
KEY=VALUE overrides set a config key for every trial (docs/launch-cli.md; grids/README.md).
Run `python -m launch status --help` and `python -m launch cancel --help` for those commands.
"""


def _int_at_least(low: int):
    """An argparse type: an integer >= low, with a message that names what was given."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; expected an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"got {value}; expected an integer >= {low}")
        return value

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"got {value}; expected a positive number")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected KEY=VALUE, e.g. gres=gpu:a100:1")
    return key, value


def _root_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root", type=Path, default=None,
        help=f"run root holding one folder per grid (default: ${ROOT_ENV} if set, else ./runs)",
    )


def launch_parser() -> argparse.ArgumentParser:
    """The parser of `python -m launch GRID [KEY=VALUE ...] [options]`."""
    p = argparse.ArgumentParser(
        prog="python -m launch",
        description="Turn a grid file into trials, pack them into tasks and submit them as SLURM array jobs "
        "(or run them here). Returns right after submitting; a second launch submits only trials without a "
        "complete result that are not queued or running.",
        epilog=LAUNCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", metavar="GRID", help="grid file (grids/x.yaml) or grid name")
    p.add_argument("overrides", metavar="KEY=VALUE", nargs="*",
                   help="config override for every trial, e.g. train.epochs=1 (a key the sweep varies is refused)")
    _root_arg(p)
    what = p.add_argument_group("what to do")
    what.add_argument("--dry-run", action="store_true",
                      help="print the trial count, a sample, the task and array plan and the sbatch script; submit nothing")
    what.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    what.add_argument("--executor", choices=EXECUTORS, default=None,
                      help="slurm: submitit array jobs; local: subprocesses on this machine with a progress bar; "
                      "debug: one trial in this process (needs --only ID) so pdb works "
                      "(default: slurm if sbatch is on PATH, else local)")
    what.add_argument("--only", nargs="+", metavar="ID", default=(),
                      help="run only these trial ids (see --dry-run --json); put it after GRID")
    what.add_argument("--rerun-failed", action="store_true",
                      help="also resubmit trials that raised (they have runs/<grid>/failed/<id>.json)")
    what.add_argument("--force", action="store_true", help="rerun every selected trial, even those with a result")
    what.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                      help="tasks run at once by --executor local (default 1)")
    slurm = p.add_argument_group("SLURM resources (per task)")
    slurm.add_argument("--partition", help="sbatch --partition (default: the cluster's default partition)")
    slurm.add_argument("--time", dest="time_min", type=_positive_int, default=60, metavar="MIN",
                       help="wall-clock limit per task in minutes (default 60); a task that hits it "
                       "saves its finished trials and is requeued")
    slurm.add_argument("--signal-delay", dest="signal_delay_s", type=_positive_int, default=90, metavar="S",
                       help="send the checkpoint signal (USR2) S seconds before --time runs out (default 90): "
                       "the task writes its finished trials to a shard and is requeued; raise it if an "
                       "epoch of your widest group takes longer")
    slurm.add_argument("--gpus", type=_nonneg_int, default=1, help="GPUs per task (default 1; 0 for CPU jobs)")
    slurm.add_argument("--cpus", type=_positive_int, default=4, help="CPUs per task (default 4)")
    slurm.add_argument("--mem", dest="mem_gb", type=_positive_float, default=None, metavar="GB",
                       help="memory per task in GB (default: the partition's default)")
    slurm.add_argument("--account", help="sbatch --account to charge")
    slurm.add_argument("--qos", help="sbatch --qos")
    slurm.add_argument("--constraint", help="sbatch --constraint, e.g. a100")
    slurm.add_argument("--sbatch", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, repeatable, e.g. --sbatch mail-type=END --sbatch exclude=node7")
    slurm.add_argument("--max-parallel", type=_positive_int, default=None, metavar="N",
                       help="array throttle: at most N tasks of an array run at once (%%N; default submitit's 256)")
    plan = p.add_argument_group("planning (docs/launch-cli.md)")
    size = plan.add_mutually_exclusive_group()
    size.add_argument("--trials-per-task", type=_positive_int, default=None, metavar="N",
                      help="at most N trials per array task")
    size.add_argument("--task-minutes", type=_positive_float, default=None, metavar="MIN",
                      help="aim each task at MIN estimated minutes (default: half of --time)")
    plan.add_argument("--max-array-size", type=_positive_int, default=None, metavar="N",
                      help="most tasks per array job (default: MaxArraySize from `scontrol show config`, 1001 if unknown)")
    env = p.add_argument_group("task environment")
    box = env.add_mutually_exclusive_group()
    box.add_argument("--image", metavar="SIF",
                     help="Apptainer image: tasks run `apptainer exec --nv --bind ROOT,CODE SIF python`")
    box.add_argument("--no-container", dest="container", action="store_false",
                     help="run tasks with the host python (the default when no --image is given)")
    env.add_argument("--platform", choices=PLATFORMS, default=None,
                     help="JAX_PLATFORMS inside tasks (default: cuda on slurm, so a GPU-less node fails loudly; "
                     "unset locally, jax picks)")
    return p


def status_parser() -> argparse.ArgumentParser:
    """The parser of `python -m launch status GRID`."""
    p = argparse.ArgumentParser(
        prog="python -m launch status",
        description="Counts of pending, running, done, failed and lost trials per array job, from the run "
        "folder (shards, failed/) plus squeue, and sacct failure reasons where accounting exists. Never hangs.",
        epilog="examples:\n  python -m launch status stability\n  python -m launch status grids/demo.yaml --watch --interval 5\n"
        "  python -m launch status stability --json | jq .counts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", metavar="GRID", help="grid name or grid file")
    _root_arg(p)
    p.add_argument("--watch", action="store_true", help="refresh until no task is queued or running, with a progress bar and ETA")
    p.add_argument("--interval", type=_positive_float, default=10.0, metavar="S", help="seconds between refreshes with --watch (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def cancel_parser() -> argparse.ArgumentParser:
    """The parser of `python -m launch cancel GRID`."""
    p = argparse.ArgumentParser(
        prog="python -m launch cancel",
        description="Cancel every queued or running array job of a grid (scancel; local tasks get SIGTERM). "
        "Finished shards stay; a later launch resubmits what is missing.",
        epilog="example:\n  python -m launch cancel stability",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", metavar="GRID", help="grid name or grid file")
    _root_arg(p)
    return p


def resolve_grid_file(arg: str, root: Path) -> Path:
    """A grid file from GRID: the path itself, or for a bare name grids/NAME.yaml or ROOT/NAME/grid.yaml."""
    path = Path(arg)
    if path.is_file():
        return path
    bare = path.suffix not in (".yaml", ".yml") and len(path.parts) == 1
    candidates = [GRIDS_DIR / f"{arg}.yaml", RunPaths.of(arg, root).grid_yaml] if bare else []
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = f" (also looked for {', '.join(map(str, candidates))})" if candidates else ""
    raise GridError(f"{arg}: no such grid file{looked}; give a path like grids/demo.yaml")


def grid_name(arg: str) -> str:
    """The grid name from GRID: a file's `name:` entry, else GRID itself."""
    path = Path(arg)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        doc = read_grid_document(path)
        name = doc.get("name") if isinstance(doc, dict) else None
        if not isinstance(name, str):
            raise GridError(f"{path}: name: missing; a grid file names its experiment")
        return name
    return arg


def options_from_args(a: argparse.Namespace, root: Path) -> LaunchOptions:
    """LaunchOptions from the parsed launch arguments."""
    return LaunchOptions(
        root=root, executor=a.executor or default_executor(), partition=a.partition, time_min=a.time_min,
        signal_delay_s=a.signal_delay_s,
        gpus=a.gpus, cpus=a.cpus, mem_gb=a.mem_gb, account=a.account, qos=a.qos, constraint=a.constraint,
        sbatch=dict(a.sbatch), max_parallel=a.max_parallel, trials_per_task=a.trials_per_task,
        task_minutes=a.task_minutes, max_array_size=a.max_array_size, image=a.image, container=a.container,
        platform=a.platform, jobs=a.jobs, only=tuple(a.only), rerun_failed=a.rerun_failed, force=a.force,
    )


def _print(obj: Any, as_json: bool) -> None:
    if as_json:
        data = dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj
        print(json.dumps(data, default=str))
    else:
        text = obj.render() if hasattr(obj, "render") else str(obj)
        print(text, end="" if text.endswith("\n") else "\n")


def _launch(argv: Sequence[str]) -> int:
    a = launch_parser().parse_args(argv)
    root = a.root if a.root is not None else default_root()
    grid = load_grid(resolve_grid_file(a.grid, root), a.overrides)
    options = options_from_args(a, root)
    if a.dry_run:
        from launch.dryrun import dry_run, render_dry_run

        result = dry_run(grid, options)
        if a.json:
            print(json.dumps(dataclasses.asdict(result), default=str))
        else:
            sys.stdout.write(render_dry_run(result))
        return 0
    from launch.submit import launch

    submission = launch(grid, options)
    _print(submission, a.json)
    return int(getattr(submission, "exit_code", 0) or 0)


def _status(argv: Sequence[str]) -> int:
    a = status_parser().parse_args(argv)
    root = a.root if a.root is not None else default_root()
    from launch.status import render_status, status_report, watch

    name = grid_name(a.grid)
    if a.watch:
        watch(name, root, a.interval)
        return 0
    report = status_report(name, root)
    if a.json:
        data = report.to_json() if hasattr(report, "to_json") else dataclasses.asdict(report)
        print(json.dumps(data, default=str))
    else:
        print(render_status(report))
    return 0


def _cancel(argv: Sequence[str]) -> int:
    a = cancel_parser().parse_args(argv)
    root = a.root if a.root is not None else default_root()
    from launch.cancel import cancel

    name = grid_name(a.grid)
    cancelled = cancel(name, root)
    print(f"cancelled {len(cancelled)} job(s) of {name}" + (": " + " ".join(cancelled) if cancelled else ""))
    return 0


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's to fix: one line on stderr, exit 2, no traceback."""
    errors: list[type[BaseException]] = [GridError, ConfigError, OptionsError]
    for module, name in (("launch.submit", "SubmissionError"), ("launch.manifest", "ManifestError"),
                         ("launch.cancel", "CancelError")):
        mod = sys.modules.get(module)
        if mod is not None and isinstance(getattr(mod, name, None), type):
            errors.append(getattr(mod, name))
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 a grid/option error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    handler = {"status": _status, "cancel": _cancel}.get(argv[0] if argv else "", _launch)
    rest = argv[1:] if argv and argv[0] in COMMANDS else argv
    try:
        return handler(rest)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - only the user's errors are turned into one line
        if isinstance(e, _user_errors()):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
