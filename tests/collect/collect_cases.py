"""Shared helpers of the collect tests (a module of its own: `from conftest import` would pick up
whichever tests/*/conftest.py pytest loaded first)."""

from __future__ import annotations

import numpy as np

from contracts.config import TrialConfig
from contracts.shard import TrialResult

GRID = "g"


def synthetic_trial(seed: int, *, kind: str = "pc", E: int = 2, B: int = 4, T: int = 3, status: str = "ok",
                    offset: float = 0.0, diverge_at: tuple[int, int] | None = None, **dotted) -> TrialResult:
    """A trial whose every array element is distinct (value = its flat index + offset + 1), so an
    off-by-one in epoch, batch or t picks a different number. BP has T = 1 and one energy layer;
    w_* always have 3 layers. `diverge_at=(e, b)` NaN-pads from that batch on, as pc does."""
    if kind == "bp":
        T = 1
    cfg = TrialConfig.from_mapping({}).replace(**{"seed": seed, "model.kind": kind, "train.T": T,
                                                  "train.epochs": E, **dotted})
    L = 3 if kind == "pc" else 1

    def arr(shape: tuple[int, ...], scale: float) -> np.ndarray:
        return ((np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + 1 + offset) * scale).astype(np.float32)

    arrays = {
        "test_accuracy": (np.arange(E, dtype=np.float32) + 1 + offset) / (E + 10 + offset),
        "energy": arr((E, B, T + 1, L), 1.0),
        "energy_var": arr((E, B, T + 1, L), 0.5),
        "w_norm": arr((E, B, 3), 2.0),
        "w_grad_norm": arr((E, B, 3), 3.0),
        "w_grad_var": arr((E, B, 3), 0.25),
    }
    if diverge_at is not None:
        e, b = diverge_at
        for a in arrays.values():
            if a.ndim > 1:
                a[e, b:] = np.nan
                a[e + 1:] = np.nan
            else:
                a[e:] = np.nan
        status = "diverged"
    return TrialResult(cfg.trial_id, cfg.to_mapping(), status, 1.5 + seed, arrays)
