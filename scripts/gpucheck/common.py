"""What several sections of scripts/gpu-check share: output, the small config, shard checks, FashionMNIST files."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def say(msg: str) -> None:
    """A top-level line of the check's output."""
    print(f"gpu-check: {msg}", flush=True)


def line(msg: str) -> None:
    """A line inside a section."""
    print(f"  {msg}", flush=True)


def header(number: int, title: str) -> None:
    """The label every section starts with, so a pasted output is easy to scan."""
    print(f"\n==== {number}. {title} ====", flush=True)


def version(pkg: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "not installed"


def small_config(quick: bool) -> dict[str, Any]:
    """The one small trial config of sections 4 (task) and 5 (parity), without its seed: they share it, so the
    parity's `default` program can come from the compilation cache the task filled.

    Full: a paper two-moons shape (width 128, T 8, 1024 samples, 2 epochs, SGD 0.9). --quick: width 32, T 4,
    256 samples, 1 epoch (compiles faster on a CPU)."""
    return {
        "data": {"dataset": "two_moons", "n_samples": 256 if quick else 1024, "batch_size": 32},
        "model": {"kind": "pc", "width": 32 if quick else 128, "activation": "leaky_relu"},
        "train": {"epochs": 1 if quick else 2, "T": 4 if quick else 8, "h_lr": 0.1, "w_optimizer": "sgd",
                  "w_lr": 0.03, "w_momentum": 0.9},
    }


def write_synthetic_fashion_mnist(folder: Path, n_train: int, n_test: int) -> Path:
    """FashionMNIST-shaped IDX files (28x28 uint8, labels 0..9): a class template plus noise."""
    import numpy as np

    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint16)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        noise = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint16)
        images = ((templates[labels] + noise) // 2).astype(np.uint8)
        for kind, arr, magic in (("images-idx3", images, 0x0803), ("labels-idx1", labels, 0x0801)):
            header_bytes = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(header_bytes + arr.tobytes())
    return folder


def prepare_fashion_mnist(data_dir: str | None, out: Path) -> dict[str, Any]:
    """Make FashionMNIST findable through $PCSWEEP_DATA for the calibration (which loads data by the project's
    one rule, contracts.datafiles): the real files where pc.datasets finds them, else full-size synthetic ones
    (60,000 / 10,000 images, so a measured epoch is a real epoch's length)."""
    from contracts.config import DataConfig
    from contracts.datafiles import DATA_ENV, SYSTEM_DIRS, DataError
    from pc.datasets import load_data

    try:
        load_data(DataConfig(dataset="fashion_mnist", batch_size=128), data_dir)
        where = data_dir or os.environ.get(DATA_ENV) or SYSTEM_DIRS["fashion_mnist"]
        if data_dir:
            os.environ[DATA_ENV] = str(data_dir)
        say(f"FashionMNIST: the real files (found by pc.datasets under {where})")
        return {"synthetic": False, "folder": str(where)}
    except DataError as e:
        say(f"FashionMNIST not found ({str(e).split(';')[0]})")
    folder = write_synthetic_fashion_mnist(out / "synthetic-fashion-mnist", 60000, 10000)
    os.environ[DATA_ENV] = str(folder)
    say(f"FashionMNIST: SYNTHETIC FashionMNIST-shaped data (60000 train / 10000 test images, 28x28, 10 classes) "
        f"written to {folder}: timings are real, accuracies are not FashionMNIST's")
    return {"synthetic": True, "folder": str(folder)}


def programs_of(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """The shard's `programs` attribute (pc.record.ProgramRun per group chunk), decoded."""
    value = attrs.get("programs", "[]")
    return json.loads(value) if isinstance(value, str) else list(value)


def validate_shard(path: Path, cfgs: Sequence[Any]) -> dict[str, Any]:
    """Open a shard with contracts.shard.open_shard (which validates the format) and check its trial ids,
    statuses and array shapes against the configs; returns problems, diverged count, median final accuracy."""
    from contracts.shapes import train_batches
    from contracts.shard import STATUSES, open_shard

    want = {c.trial_id: c for c in cfgs}
    problems, final_acc, diverged = [], [], 0
    with open_shard(path) as shard:
        ids = list(shard.trial_ids)
        if set(ids) != set(want):
            problems.append(f"trial ids differ: {len(ids)} in the shard, {len(want)} expected")
        for tid in ids:
            t = shard.trial(tid)
            cfg = want.get(tid)
            if t.status not in STATUSES:
                problems.append(f"{tid}: status {t.status!r}")
            diverged += t.status == "diverged"
            if cfg is not None:
                E, T, B = cfg.train.epochs, cfg.train.T, train_batches(cfg)
                if t.arrays["test_accuracy"].shape != (E,):
                    problems.append(f"{tid}: test_accuracy shape {t.arrays['test_accuracy'].shape}, expected ({E},)")
                if t.arrays["energy"].shape[:3] != (E, B, T + 1):
                    problems.append(f"{tid}: energy shape {t.arrays['energy'].shape}, expected ({E}, {B}, {T + 1}, L)")
                if t.arrays["w_norm"].shape[:2] != (E, B):
                    problems.append(f"{tid}: w_norm shape {t.arrays['w_norm'].shape}, expected ({E}, {B}, 3)")
            if t.status == "ok":
                final_acc.append(float(t.arrays["test_accuracy"][-1]))
    return {"trials": len(ids), "problems": problems, "diverged": diverged,
            "median_final_accuracy": statistics.median(final_acc) if final_acc else None}


__all__ = ["REPO", "header", "line", "prepare_fashion_mnist", "programs_of", "say", "small_config",
           "validate_shard", "version", "write_synthetic_fashion_mnist"]
