"""`python -m pc key=value ... --out SHARD.h5`: train one trial here and write its shard.

A thin command line over `pc.trials.iter_trial_results`: it builds the trial config from dotted
keys (validated by `contracts.config`), shows a progress bar over epochs, prints a summary (test accuracy
per epoch, per-layer energies of the last batch, status) and writes a one-trial shard.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from contracts.cli import errors_name, writable_file_target
from contracts.config import ConfigError, TrialConfig, valid_keys
from contracts.overrides import merge_config, parse_overrides
from pc.trials import TrialFailure, iter_trial_results, provenance

EPILOG = """\
keys (dotted; values are read as YAML by OmegaConf's dotlist parser, as `launch` reads overrides:
0.1, 1e-3, null, true; key=value pairs may come before or after the options):
  {keys}

environment:
  PCSWEEP_DATA          folder with FashionMNIST/MNIST IDX files (after --data-dir)
  PCSWEEP_GROUP_MEM_GB  memory budget of one group's arrays (default: half the accelerator, 4 GB on CPU)
  PCSWEEP_MAX_GROUP     most trials in one compiled group (default 32 on CPU, where larger groups round
                        differently by a few ulps; 4096 on a GPU)
  PCSWEEP_TRANSPOSED_W  auto|on|off: multiply the state steps by transposed weight copies (auto: measured
                        once per device and shape)
  XLA_FLAGS             pc adds --xla_cpu_use_thunk_runtime=false unless the flag is already set

examples:
  python -m pc model.width=64 train.epochs=8 --out runs/moons.h5
  python -m pc --out fm.h5 data.dataset=fashion_mnist data.batch_size=128 model.width=1024 \\
      train.w_optimizer=sgd train.w_momentum=0.9 train.h_lr=0.01 --data-dir ~/data
"""


def config_from_overrides(pairs: Sequence[str]) -> TrialConfig:
    """The defaults with `key=value` strings merged in; ConfigError names a bad key or value."""
    return merge_config({}, parse_overrides(pairs))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pc",
        description="Train one predictive-coding (or backprop) trial on this machine and write a one-trial "
                    "shard (HDF5, pcsweep-shard version 2, docs/design.md section 5).",
        epilog=EPILOG.format(keys="\n  ".join(valid_keys())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="trial config keys to change from the defaults (listed below)")
    parser.add_argument("--out", required=True, help="shard file to write (HDF5, pcsweep-shard version 2)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with FashionMNIST/MNIST IDX files (default: $PCSWEEP_DATA, "
                             "then /usr/share/datasets/<dataset>)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def summary_lines(result) -> list[str]:
    """Human summary of one TrialResult."""
    a = result.arrays
    acc = " ".join(f"{x:.4f}" for x in a["test_accuracy"])
    energy = a["energy"][-1, -1]  # last batch of the last epoch: [T+1, L]
    layers = range(energy.shape[-1])
    return [
        f"trial {result.trial_id}  status {result.status}  wall {result.wall_s:.1f} s",
        f"test accuracy per epoch: {acc}",
        "energy norm, last batch, t = T-1: " + " ".join(f"L{k + 1}={energy[-2, k]:.4g}" for k in layers),
        "energy norm, last batch, t = T:   " + " ".join(f"L{k + 1}={energy[-1, k]:.4g}" for k in layers),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 on a result (ok or diverged), 1 if the trial raised, 2 on bad input."""
    args = build_parser().parse_intermixed_args(argv)
    try:
        cfg = config_from_overrides(args.overrides)
    except ConfigError as e:
        print(f"python -m pc: {e}", file=sys.stderr)
        return 2
    unwritable = writable_file_target(args.out, "--out")
    if unwritable:
        print(f"python -m pc: {unwritable}", file=sys.stderr)
        return 2
    from contracts.shard import write_shard  # h5py: only once the arguments are known good
    from pc.backend import backend_problem, environment_problem

    problem = environment_problem() or backend_problem()
    if problem:
        print(f"python -m pc: {problem}", file=sys.stderr)
        return 2

    (result,) = list(iter_trial_results([cfg], data_dir=args.data_dir, progress=not args.no_progress))
    if isinstance(result, TrialFailure):
        print(f"python -m pc: trial {result.trial_id} failed: {result.error}", file=sys.stderr)
        return 1
    with errors_name(args.out):  # the disk filled or went read-only while training: say which file
        path = write_shard(args.out, [result], attrs=provenance())
    print("\n".join(summary_lines(result)))
    print(f"wrote {path}")
    return 0
