"""`python -m plots GRID ...`: redraw the Section 5.1 figures from results.h5 and summary.csv.

Every argument is checked (formats, figure names, each GRID through `grids.resolve`, each summary
table) before the first figure is drawn, so a bad input is one line on stderr with exit 2 and
nothing written. Exit 1: a grid not collected yet, or every requested figure skipped. With two or
more grids, figures that have a side-by-side form (state_init) are also drawn once over the grids.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.cli import OneLineParser, root_path
from grids import GridError, GridRef, resolve
from plots.registry import FIGURES, Outcome, make_combined, make_figures, select

PROG = "python -m plots"
FORMATS = ("pdf", "png")
AGGREGATES = ("auto", "replay", "search")  # = plots.fig_state_init.AGGREGATES, not imported: --help stays light


class UsageError(Exception):
    """A bad argument: one line naming the option or file and the fix (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG,
        description="Draw the figures of Section 5.1 (and grid coverage) from a collected run: reads only "
                    "runs/<grid>/summary.csv, runs/<grid>/results.h5 and, for coverage, the grid as launched "
                    "(runs/<grid>/grid.yaml) or the grid file. A figure whose data are absent is skipped with a "
                    "message. Exit status: 0 when at least one figure was written; 1 when the grid has no summary "
                    "yet or every requested figure was skipped; 2 for a bad argument or grid file (nothing is "
                    "written).",
        epilog="Figures (for --only): " + "; ".join(f"{s.name}: {s.about}" for s in FIGURES))
    p.add_argument("grids", nargs="*", metavar="GRID",
                   help="grid names or grid files (a file names its grid by its name: entry); each grid is drawn "
                        "on its own, into its own folder; with two or more grids, state_init is also drawn once "
                        "with one panel per grid that has state-init rows (state-init-side-by-side-<dataset>, "
                        "into --out, else the first grid's figures folder)")
    p.add_argument("--root", type=root_path, default=None,
                   help="run root holding <grid>/ folders (default: $PCSWEEP_ROOT or ./runs)")
    p.add_argument("--format", default="pdf,png",
                   help="comma-separated output formats among pdf, png (default: pdf,png)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: runs/<grid>/figures; with several grids: OUT/<grid>, and the "
                        "side-by-side figures in OUT itself)")
    p.add_argument("--only", nargs="+", metavar="NAME", default=None,
                   help="draw only these figures (names from --list)")
    p.add_argument("--list", action="store_true", help="list the figures and their file names, then exit")
    p.add_argument("--ratio-min-accuracy", type=float, default=0.5, dest="min_accuracy",
                   help="energy_ratios keeps PC AdamW trials with final accuracy above this (paper: 0.5, "
                        "also for FashionMNIST where chance is 0.1)")
    p.add_argument("--state-init-aggregate", choices=AGGREGATES, default="auto", dest="aggregate",
                   help="state_init: replay = mean and 95%% CI over every trial of a cell (seeds of one "
                        "configuration); search = over the top 5 trials of a cell by accuracy_best; auto (default) "
                        "= search for a grid with any cell (init, T) holding several configurations, else replay")
    return p


def _formats(text: str) -> list[str]:
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UsageError(f"--format: got {text!r}; expected a comma-separated subset of {', '.join(FORMATS)}")
    return formats


def _resolve(arg: str, root: Path | None) -> GridRef:
    """`grids.resolve` (it refuses unsafe names, binary and non-UTF-8 files), as a UsageError."""
    try:
        return resolve(arg, root)
    except GridError as e:
        raise UsageError(str(e)) from e


def _out_folder(out: Path | None, ref: GridRef, several: bool) -> Path:
    """Where one grid's figures go; UsageError when `--out` (or a folder above it) is a file."""
    folder = ref.paths.figures if out is None else (out / ref.name if several else out)
    for parent in (folder, *folder.parents):
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--out: {parent} is a file, not a folder; give a folder path")
    return folder


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {' '.join(message.split())}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for s in FIGURES:
            print(f"{s.name:22s} {s.stem:48s} {s.about}")
        return 0
    if not args.grids:
        return _fail("give at least one GRID (a grid name or grid file), or --list", 2)
    try:
        formats, specs = _formats(args.format), select(args.only)
        refs = [_resolve(grid, args.root) for grid in args.grids]
        outs = [_out_folder(args.out, ref, len(refs) > 1) for ref in refs]
    except UsageError as e:
        return _fail(str(e), 2)
    except KeyError as e:  # select: an unknown figure name
        return _fail(e.args[0], 2)
    from plots.data import Inputs, SummaryError  # pandas and h5py only after the arguments are known good

    try:
        inputs = [Inputs.from_ref(ref, grid) for ref, grid in zip(refs, args.grids)]
    except FileNotFoundError as e:  # not collected yet: a state, not a bad argument
        return _fail(str(e), 1)
    except SummaryError as e:
        return _fail(str(e), 2)
    options = {"min_accuracy": args.min_accuracy, "aggregate": args.aggregate}
    outcomes: list[Outcome] = []
    for one, out in zip(inputs, outs):
        outcomes += make_figures(one, out, formats, specs, options)
    # figures over several grids (state_init side by side): into --out itself, else the first grid's folder
    outcomes += make_combined(inputs, args.out if args.out is not None else refs[0].paths.figures, formats, specs,
                              options)
    written = [p for o in outcomes for p in o.written]
    skipped = sum(o.skipped is not None for o in outcomes)
    if not written:
        return _fail(f"every requested figure was skipped ({skipped} of {', '.join(r.name for r in refs)}, "
                     "reasons above); nothing written", 1)
    print(f"wrote {len(written)} files ({skipped} figures skipped):")
    for path in written:
        print(f"  {path}")
    return 0
