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
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.cli import OneLineParser, root_path
from contracts.config import ConfigError
from contracts.lock import LockHeld
from contracts.paths import ROOT_ENV, RunFolderError, default_root
from grids import GridError, load_grid, resolve
from launch.cancel import CancelError, cancel
from launch.dryrun import dry_run, render_dry_run
from launch.manifest import ManifestError
from launch.options import EXECUTORS, MAX_WAIT_S, PLATFORMS, LaunchOptions, OptionsError, default_executor
from launch.prepare import SubmissionError
from launch.status import render_status, status_report, watch
from launch.submit import launch

COMMANDS = ("status", "cancel")
# Errors that are the user's to fix: one line on stderr, exit 2, no traceback.
USER_ERRORS = (GridError, ConfigError, OptionsError, RunFolderError, SubmissionError, ManifestError, CancelError,
               LockHeld)
OVERRIDE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*=")  # train.epochs=1; never a path, never an option
MAX_INTERVAL_S = 24 * 3600.0

LAUNCH_EPILOG = """\
examples:
  python -m launch grids/demo.yaml --dry-run            # count, sample, plan and sbatch script; submits nothing
  python -m launch grids/demo.yaml --executor local --jobs 2 train.epochs=1   # overrides go anywhere
  python -m launch grids/demo.yaml train.epochs=1 --root /scratch/runs --executor local
  python -m launch grids/demo.yaml --partition cpu --no-container --platform cpu train.epochs=1   # no GPU asked
  python -m launch grids/stability.yaml --partition gpu --time 120 --image pcsweep.sif
  python -m launch grids/propagation.yaml --partition gpu --max-parallel 64 --sbatch mail-type=END
  python -m launch grids/stability.yaml                 # again: submits only what is missing
  python -m launch grids/stability.yaml --rerun-failed  # ... and the trials that raised
  python -m launch grids/demo.yaml --executor debug --only 0123456789abcdef   # one trial here, pdb works
  python -m launch status stability --watch
  python -m launch cancel stability

GRID is a grids/*.yaml file, or a grid name (grids/NAME.yaml, else ROOT/NAME/grid.yaml).
KEY=VALUE overrides set a config key for every trial, before or after the options; `--only ID ...` stops
at the first KEY=VALUE (docs/launch-cli.md; grids/README.md).
Run `python -m launch status --help` and `python -m launch cancel --help` for those commands.
"""


def _int_in(low: int, high: int):
    """An argparse type: an integer in [low, high], with a message that names what was given."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; expected an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"got {value}; expected an integer >= {low} and <= {high}")
        return value

    return parse


def _number_in(low: float, high: float, *, open_low: bool = False):
    """An argparse type: a finite number in [low, high] (or (low, high] with `open_low`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"got {text!r}; expected a number") from None
        if not math.isfinite(value) or value > high or value < low or (open_low and value == low):
            bound = f"> {low:g}" if open_low else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"got {text!r}; expected a finite number {bound} and <= {high:g}")
        return value

    return parse


INT_MAX = 2**31 - 1
_positive_int = _int_in(1, INT_MAX)
_positive_float = _number_in(0.0, float(INT_MAX), open_low=True)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected KEY=VALUE, e.g. gres=gpu:a100:1")
    return key, value


def _root_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root", type=root_path, default=None,
        help=f"run root holding one folder per grid (default: ${ROOT_ENV} if set, else ./runs)",
    )


def launch_parser() -> argparse.ArgumentParser:
    """The parser of `python -m launch GRID [KEY=VALUE ...] [options]`.

    Over 80 lines on purpose: it declares every option once, in the groups and order `--help` shows them, so
    the help text and the code read the same way; splitting it would scatter one table over several functions.
    """
    p = OneLineParser(
        prog="python -m launch", allow_abbrev=False,
        description="Turn a grid file into trials, pack them into tasks and submit them as SLURM array jobs "
        "(or run them here). Returns right after submitting; a second launch submits only trials without a "
        "complete result that are not queued or running.",
        epilog=LAUNCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", metavar="GRID", help="grid file (grids/x.yaml) or grid name")
    p.add_argument("overrides", metavar="KEY=VALUE", nargs="*",
                   help="config override for every trial, e.g. train.epochs=1, before or after the options "
                   "(a key the sweep varies is refused)")
    _root_arg(p)
    what = p.add_argument_group("what to do")
    what.add_argument("--dry-run", action="store_true",
                      help="print the trial count, a sample, the task and array plan and the sbatch script; "
                      "submit nothing")
    what.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    what.add_argument("--executor", choices=EXECUTORS, default=None,
                      help="slurm: submitit array jobs; local: subprocesses on this machine with a progress bar; "
                      "debug: one trial in this process (needs --only ID) so pdb works "
                      "(default: slurm if sbatch is on PATH, else local)")
    what.add_argument("--only", nargs="+", metavar="ID", default=(),
                      help="run only these trial ids (see --dry-run --json); put it after GRID; it stops at "
                      "the next option or KEY=VALUE")
    what.add_argument("--rerun-failed", action="store_true",
                      help="also resubmit trials that raised (they have runs/<grid>/failed/<id>.json)")
    what.add_argument("--force", action="store_true", help="rerun every selected trial, even those with a result")
    what.add_argument("--wait", dest="wait_s", type=_number_in(0.0, MAX_WAIT_S), default=0.0, metavar="S",
                      help="wait up to S seconds for the run folder's lock when another launch or collect of "
                      "the same grid holds it (default 0: refuse at once)")
    what.add_argument("--jobs", type=_int_in(1, 4096), default=1, metavar="N",
                      help="tasks run at once by --executor local (default 1)")
    what.add_argument("--workers", type=_int_in(1, 100_000), default=1, metavar="N",
                      help="a grid with a search: section: submit N search workers, one array task each (local: N "
                      "processes); a relaunch adds N more while studies are unfinished (docs/search.md; default 1)")
    slurm = p.add_argument_group("SLURM resources (per task)")
    slurm.add_argument("--partition", help="sbatch --partition (default: the cluster's default partition)")
    slurm.add_argument("--time", dest="time_min", type=_positive_int, default=60, metavar="MIN",
                       help="wall-clock limit per task in minutes (default 60); a task that hits it "
                       "saves its finished trials and is requeued")
    slurm.add_argument("--signal-delay", dest="signal_delay_s", type=_positive_int, default=90, metavar="S",
                       help="send the checkpoint signal (USR2) S seconds before --time runs out (default 90): "
                       "the task writes its finished trials to a shard and is requeued; raise it if an "
                       "epoch of your widest group takes longer")
    slurm.add_argument("--gpus", type=_int_in(0, 4096), default=None,
                       help="GPUs per task (default 1, or 0 with --platform cpu)")
    slurm.add_argument("--cpus", type=_positive_int, default=None,
                       help="CPUs per task (default 4, fewer if the partition's largest node has fewer); tasks "
                       "set their thread counts from it")
    slurm.add_argument("--mem", dest="mem_gb", type=_number_in(0.001, 1024.0 * 1024), default=None, metavar="GB",
                       help="memory per task in GB (default: none asked, the partition's DefMemPerCPU/Node "
                       "applies)")
    slurm.add_argument("--no-preflight", dest="preflight", action="store_false",
                       help="submit without checking the partition first (by default a request that no node or "
                       "limit of the partition can satisfy is refused with what it offers; --dry-run shows "
                       "the check)")
    slurm.add_argument("--account", help="sbatch --account to charge")
    slurm.add_argument("--qos", help="sbatch --qos")
    slurm.add_argument("--constraint", help="sbatch --constraint, e.g. a100")
    slurm.add_argument("--sbatch", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, repeatable, e.g. --sbatch mail-type=END "
                       "--sbatch exclude=node7")
    slurm.add_argument("--max-parallel", type=_positive_int, default=None, metavar="N",
                       help="array throttle: at most N tasks of an array run at once (%%N; default submitit's 256)")
    plan = p.add_argument_group("planning (docs/launch-cli.md)")
    size = plan.add_mutually_exclusive_group()
    size.add_argument("--trials-per-task", type=_positive_int, default=None, metavar="N",
                      help="at most N trials per array task")
    size.add_argument("--task-minutes", type=_positive_float, default=None, metavar="MIN",
                      help="aim each task at MIN estimated minutes (default: half of --time)")
    plan.add_argument("--max-array-size", type=_int_in(1, 4_000_001), default=None, metavar="N",
                      help="most tasks per array job (default: MaxArraySize from `scontrol show config`, "
                      "1001 if unknown)")
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
    p = OneLineParser(
        prog="python -m launch status", allow_abbrev=False,
        description="Counts of pending, running, done, failed and lost trials per array job, from the run "
        "folder (shards, failed/) plus squeue, and sacct failure reasons where accounting exists. Never hangs.",
        epilog="examples:\n  python -m launch status stability\n"
        "  python -m launch status grids/demo.yaml --watch --interval 5\n"
        "  python -m launch status stability --json | jq .counts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", metavar="GRID", help="grid name or grid file")
    _root_arg(p)
    p.add_argument("--watch", action="store_true",
                   help="refresh until no task is queued or running, with a progress bar and ETA")
    p.add_argument("--interval", type=_number_in(0.0, MAX_INTERVAL_S, open_low=True), default=10.0, metavar="S",
                   help="seconds between refreshes with --watch (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def cancel_parser() -> argparse.ArgumentParser:
    """The parser of `python -m launch cancel GRID`."""
    p = OneLineParser(
        prog="python -m launch cancel", allow_abbrev=False,
        description="Cancel every queued or running array job of a grid (scancel; local tasks get SIGTERM). "
        "Finished shards stay; a later launch resubmits what is missing.",
        epilog="example:\n  python -m launch cancel stability",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", metavar="GRID", help="grid name or grid file")
    _root_arg(p)
    return p


def split_overrides(argv: Sequence[str], parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """(the other arguments, the KEY=VALUE overrides), so overrides may stand anywhere: a word that looks
    like `key.path=value` is an override unless it is the value of an option that takes one (`--sbatch
    mail-type=END`). `--only ID ...` thereby never swallows an override."""
    takes_value = {flag for action in parser._actions if action.nargs is None and action.option_strings
                   for flag in action.option_strings if not isinstance(action, argparse._StoreConstAction)}
    rest: list[str] = []
    overrides: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "--":
            rest += [word, *words]
            break
        if word in takes_value:
            rest += [word, *[w for w in [next(words, None)] if w is not None]]
        elif OVERRIDE_RE.match(word):
            overrides.append(word)
        else:
            rest.append(word)
    return rest, overrides


def options_from_args(a: argparse.Namespace, root: Path) -> LaunchOptions:
    """LaunchOptions from the parsed launch arguments."""
    return LaunchOptions(
        root=root, executor=a.executor or default_executor(), partition=a.partition, time_min=a.time_min,
        signal_delay_s=a.signal_delay_s,
        gpus=a.gpus, cpus=a.cpus, mem_gb=a.mem_gb, account=a.account, qos=a.qos, constraint=a.constraint,
        sbatch=dict(a.sbatch), max_parallel=a.max_parallel, trials_per_task=a.trials_per_task,
        task_minutes=a.task_minutes, max_array_size=a.max_array_size, image=a.image, container=a.container,
        platform=a.platform, jobs=a.jobs, only=tuple(a.only), rerun_failed=a.rerun_failed, force=a.force,
        wait_s=a.wait_s, preflight=a.preflight, workers=a.workers,
    )


def _root(a: argparse.Namespace) -> Path:
    return a.root if a.root is not None else default_root()


def _launch(argv: Sequence[str]) -> int:
    parser = launch_parser()
    rest, overrides = split_overrides(argv, parser)
    a = parser.parse_args(rest)
    root = _root(a)
    options = options_from_args(a, root)
    grid = load_grid(resolve(a.grid, root).require_file(), [*a.overrides, *overrides])
    if a.dry_run and grid.search is not None:
        from launch.search_launch import search_dry_run

        plan = search_dry_run(grid, options)
        print(json.dumps({k: v for k, v in plan.items() if k != "lines"}) if a.json else
              "\n".join([f"grid {grid.name} ({grid.path}): adaptive search", *plan["lines"],
                          "dry run: nothing was submitted"]))
        return 0
    if a.dry_run:
        result = dry_run(grid, options)
        if a.json:
            print(json.dumps(dataclasses.asdict(result), default=str))
        else:
            sys.stdout.write(render_dry_run(result))
        return 0
    submission = launch(grid, options)
    print(json.dumps(dataclasses.asdict(submission), default=str) if a.json else submission.render())
    return submission.exit_code


def _status(argv: Sequence[str]) -> int:
    a = status_parser().parse_args(argv)
    root = _root(a)
    name = resolve(a.grid, root).name
    if a.watch:
        watch(name, root, a.interval)
        return 0
    report = status_report(name, root)
    if a.json:
        print(json.dumps(report.to_json(), default=str))
    else:
        print(render_status(report))
    return 0


def _cancel(argv: Sequence[str]) -> int:
    a = cancel_parser().parse_args(argv)
    name = resolve(a.grid, _root(a)).name
    cancelled = cancel(name, _root(a))
    print(f"cancelled {len(cancelled)} job(s) of {name}" + (": " + " ".join(cancelled) if cancelled else ""))
    return 0


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
    except USER_ERRORS as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        return 2


def _one_line(text: str) -> str:
    """Messages quote user input; a newline in it must not break the one-line rule."""
    return " ".join(text.split("\n")) if "\n" in text else text
