"""Trial configs shared by the pc tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

from contracts.config import TrialConfig

# Small but real: two moons, 8 batches of 32, width 16, T = 4, 2 epochs.
BASE = TrialConfig.from_mapping({
    "data": {"dataset": "two_moons", "n_samples": 256, "batch_size": 32},
    "model": {"kind": "pc", "width": 16, "activation": "leaky_relu"},
    "train": {"epochs": 2, "T": 4, "h_lr": 0.1, "w_optimizer": "sgd", "w_lr": 0.05, "w_momentum": 0.9},
    "seed": 0,
})
SGD_A = BASE
SGD_B = BASE.replace(**{"seed": 1, "train.w_lr": 0.02, "train.w_momentum": 0.5})
SGD_SMALL_GAMMA = BASE.replace(**{"seed": 2, "train.h_lr": 0.01})
SGD_DIVERGE = BASE.replace(**{"seed": 3, "train.h_lr": 1.0e4, "train.w_lr": 1.0e3})
ADAM_A = BASE.replace(**{"train.w_optimizer": "adamw", "train.w_lr": 0.01})
ADAM_B = ADAM_A.replace(**{"seed": 5, "train.w_lr": 0.003, "train.w_weight_decay": 0.01, "train.h_lr": 0.3})
BP_A = BASE.replace(**{"model.kind": "bp", "train.T": 1, "model.activation": "hard_tanh"})

