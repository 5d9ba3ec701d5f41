"""`python -m plots GRID ...`: redraw the Section 5.1 figures from results.h5 and summary.csv."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from plots.registry import FIGURES, Outcome, make_figures, select

FORMATS = ("pdf", "png")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m plots",
        description="Draw the figures of Section 5.1 (and grid coverage) from a collected run: reads only "
                    "runs/<grid>/summary.csv, runs/<grid>/results.h5 and, for coverage, runs/<grid>/grid.yaml. "
                    "A figure whose data are absent is skipped with a message.",
        epilog="Figures (for --only): " + "; ".join(f"{s.name}: {s.about}" for s in FIGURES))
    p.add_argument("grids", nargs="*", metavar="GRID",
                   help="grid names or grid yaml paths (each grid is drawn on its own, into its own folder)")
    p.add_argument("--root", type=Path, default=None,
                   help="run root holding <grid>/ folders (default: $PCSWEEP_ROOT or ./runs)")
    p.add_argument("--format", default="pdf,png",
                   help="comma-separated output formats among pdf, png (default: pdf,png)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: runs/<grid>/figures; with several grids: OUT/<grid>)")
    p.add_argument("--only", nargs="+", metavar="NAME", default=None,
                   help="draw only these figures (names from --list)")
    p.add_argument("--list", action="store_true", help="list the figures and their file names, then exit")
    p.add_argument("--ratio-min-accuracy", type=float, default=0.5, dest="min_accuracy",
                   help="energy_ratios keeps PC AdamW trials with accuracy above this (paper: 0.5, "
                        "also for FashionMNIST where chance is 0.1)")
    return p


def _formats(text: str) -> list[str]:
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"--format: got {text!r}; expected a comma-separated subset of {', '.join(FORMATS)}")
    return formats


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for s in FIGURES:
            print(f"{s.name:22s} {s.stem:48s} {s.about}")
        return 0
    if not args.grids:
        print("python -m plots: give at least one GRID (or --list)", file=sys.stderr)
        return 2
    try:
        formats, specs = _formats(args.format), select(args.only)
    except (ValueError, KeyError) as e:
        print(f"python -m plots: {e.args[0]}", file=sys.stderr)
        return 2
    from contracts.paths import RunPaths
    from plots.data import Inputs  # pandas/h5py only after the arguments are known good

    outcomes: list[Outcome] = []
    for grid in args.grids:
        try:
            inputs = Inputs.load(grid, args.root)
        except FileNotFoundError as e:
            print(f"python -m plots: {e}", file=sys.stderr)
            return 1
        out = args.out if args.out is not None and len(args.grids) == 1 else (
            args.out / inputs.grid if args.out is not None else RunPaths.of(inputs.grid, args.root).figures)
        outcomes += make_figures(inputs, out, formats, specs, {"min_accuracy": args.min_accuracy})
    written = [p for o in outcomes for p in o.written]
    skipped = sum(o.skipped is not None for o in outcomes)
    print(f"wrote {len(written)} files ({skipped} figures skipped):")
    for path in written:
        print(f"  {path}")
    return 0
