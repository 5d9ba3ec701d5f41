"""What the benchmarks that run on the local SLURM cluster share: their run-root options and the skip without SLURM.

Imported by `bench/plan_accuracy.py` and `bench/state_init_slice.py` (the scripts' folder is on `sys.path`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path


def add_run_options(ap: argparse.ArgumentParser) -> None:
    """--root, --timeout-min and --keep, the same in every SLURM benchmark."""
    ap.add_argument("--root", type=Path, default=None, help="run root (default: a fresh temporary folder)")
    ap.add_argument("--timeout-min", type=float, default=30.0, help="give up waiting after this (default 30)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary run root")


def run_root(args: argparse.Namespace, prefix: str) -> Path | None:
    """The run root to use (created), or None after printing the skip line when there is no SLURM here."""
    if shutil.which("sbatch") is None or shutil.which("sacct") is None:
        print(json.dumps({"skipped": "no SLURM here (sbatch/sacct not on PATH); start one with make slurm-up"}))
        return None
    root = (args.root or Path(tempfile.mkdtemp(prefix=prefix))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root
