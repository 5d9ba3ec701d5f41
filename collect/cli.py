"""`python -m collect GRID`: argparse over `collect.pipeline.collect`; exit codes 0 / 1 (--strict) / 2."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence

from collect.pipeline import IncompleteError, NoRunFolder, collect
from collect.report import render
from contracts.cli import OneLineParser, root_path
from contracts.lock import LockHeld
from contracts.paths import RunFolderError
from grids import GridError, resolve


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--wait: got {text!r}; expected seconds, e.g. --wait 60") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"--wait: got {text!r}; expected a number of seconds >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m collect",
        description="Merge a grid's shards (runs/<grid>/shards/*.h5) into runs/<grid>/results.h5 and "
                    "runs/<grid>/summary.csv, then report expected, complete, failed, missing, duplicate and "
                    "corrupt trials. Corrupt, partial or foreign shards are moved to shards/bad/ with a .reason.txt. "
                    "Holds the run folder's lock (runs/<grid>/.lock) while it works. Runs on a login node (no jax).",
        epilog="Exit status: 0 done; 1 with --strict when trials are missing, failed or unexpected; 2 when GRID, "
               "the grid file, the run folder or an option is wrong, or the run folder is locked (nothing is "
               "written then). Columns of summary.csv: docs/collect.md.")
    p.add_argument("grid", metavar="GRID",
                   help="grid name (the folder under --root), or a grid YAML file whose top-level `name` is used")
    p.add_argument("--root", type=root_path, default=None,
                   help="runs root holding <grid>/ (default: $PCSWEEP_ROOT, else ./runs)")
    p.add_argument("--rebuild", action="store_true",
                   help="ignore the previous collect and read every shard again (compacts results.h5); by default "
                        "only shards that are new or changed since the last collect are read")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 if any expected trial is missing, any trial failed, or results hold trials the grid "
                        "does not list (results are still written)")
    p.add_argument("--wait", type=_seconds, default=0.0, metavar="S",
                   help="wait up to S seconds for the run folder's lock if another collect or launch holds it "
                        "(default 0: exit 2 at once)")
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON object instead of text")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it goes to stderr and is shown by default)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        grid = resolve(args.grid, args.root).name
        report = collect(grid, args.root, rebuild=args.rebuild, strict=args.strict, progress=not args.no_progress,
                         wait_s=args.wait)
        status = 0
    except (GridError, RunFolderError, NoRunFolder, LockHeld) as e:
        print(f"collect: {e}", file=sys.stderr)
        return 2
    except IncompleteError as e:
        report, status = e.report, 1
    print(json.dumps(report.to_json_dict()) if args.json else render(report))
    if status:
        print(f"collect: --strict: {len(report.missing)} missing, {len(report.failed)} failed, "
              f"{report.unexpected} unexpected", file=sys.stderr)
    return status
