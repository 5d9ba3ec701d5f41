"""`python -m collect GRID`: argparse over `collect.pipeline.collect`; exit codes 0 / 1 (--strict) / 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m collect",
        description="Merge a grid's shards (runs/<grid>/shards/*.h5) into runs/<grid>/results.h5 and "
                    "runs/<grid>/summary.csv, then report expected, complete, failed, missing, duplicate and "
                    "corrupt trials. Corrupt or partial shards are moved to shards/bad/ with a .reason.txt. "
                    "Runs on a login node (no jax).",
        epilog="Exit status: 0 done; 1 with --strict when trials are missing or failed; 2 when the run folder "
               "or grid file cannot be found. Columns of summary.csv: docs/collect.md.")
    p.add_argument("grid", metavar="GRID",
                   help="grid name (the folder under --root), or a grid YAML file whose top-level `name` is used")
    p.add_argument("--root", default=None,
                   help="runs root holding <grid>/ (default: $PCSWEEP_ROOT, else ./runs)")
    p.add_argument("--rebuild", action="store_true",
                   help="ignore the previous collect and read every shard again (compacts results.h5); by default "
                        "only shards that are new or changed since the last collect are read")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 if any expected trial is missing or any trial failed (results are still written)")
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON object instead of text")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it goes to stderr and is shown by default)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    from collect.expected import grid_name
    from collect.pipeline import IncompleteError, RunFolderError, collect
    from collect.report import render

    try:
        grid = grid_name(args.grid)
    except ValueError as e:
        print(f"collect: {e}", file=sys.stderr)
        return 2
    try:
        report = collect(grid, args.root, rebuild=args.rebuild, strict=args.strict, progress=not args.no_progress)
        status = 0
    except RunFolderError as e:
        print(f"collect: {e}", file=sys.stderr)
        return 2
    except IncompleteError as e:
        report, status = e.report, 1
    print(json.dumps(report.to_json_dict()) if args.json else render(report))
    if status:
        print(f"collect: --strict: {len(report.missing)} missing, {len(report.failed)} failed", file=sys.stderr)
    return status
