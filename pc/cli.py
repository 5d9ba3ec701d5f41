"""`python -m pc key=value ... --out SHARD.h5`: train one trial here and write its shard.

A thin command line over `pc.trials.iter_trial_results`: it builds the trial config from dotted
keys (validated by `contracts.config`), shows a progress bar over epochs, prints a summary (test accuracy
per epoch, per-layer energies of the last batch, status) and writes a one-trial shard.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import yaml

from contracts.config import ConfigError, TrialConfig, valid_keys

EPILOG = """\
keys (dotted, value parsed as YAML: 0.1, 1e-3, null, true):
  {keys}

examples:
  python -m pc model.width=64 train.epochs=8 --out runs/moons.h5
  python -m pc data.dataset=fashion_mnist data.batch_size=128 model.width=1024 \\
      train.w_optimizer=sgd train.w_momentum=0.9 train.h_lr=0.01 --data-dir ~/data --out fm.h5
"""


def parse_overrides(pairs: Sequence[str]) -> TrialConfig:
    """Build a TrialConfig from `key=value` strings; raise ConfigError naming a bad key or value."""
    cfg = TrialConfig()
    updates = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{pair!r}: expected key=value, e.g. model.width=64")
        try:
            updates[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: cannot parse value {raw!r} ({e})") from e
    return cfg.replace(**updates) if updates else cfg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pc",
        description="Train one predictive-coding (or backprop) trial on this machine and write a shard.",
        epilog=EPILOG.format(keys="\n  ".join(valid_keys())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="trial config keys to change from the defaults (listed below)")
    parser.add_argument("--out", required=True, help="shard file to write (HDF5, pcsweep-shard v1)")
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
    args = build_parser().parse_args(argv)
    try:
        cfg = parse_overrides(args.overrides)
    except ConfigError as e:
        print(f"python -m pc: {e}", file=sys.stderr)
        return 2
    from contracts.shard import write_shard
    from pc.trials import TrialFailure, iter_trial_results, provenance

    (result,) = list(iter_trial_results([cfg], data_dir=args.data_dir, progress=not args.no_progress))
    if isinstance(result, TrialFailure):
        print(f"python -m pc: trial {result.trial_id} failed: {result.error}", file=sys.stderr)
        return 1
    path = write_shard(args.out, [result], attrs=provenance())
    print("\n".join(summary_lines(result)))
    print(f"wrote {path}")
    return 0
