"""The allowed range of every numeric trial config key, in one table.

A value outside its range would fail on the node, waste an allocation or be recorded as a fake
`diverged` result (a NaN learning rate). Ranges are checked by `contracts.config` for every way a
value enters: grid files, `launch` overrides, `python -m pc key=value`, and configs read back.
"""

from __future__ import annotations

from typing import Any

UINT32 = 2**32  # seeds feed numpy/jax/sklearn generators, which take 32-bit seeds

# key -> (low, high, low_open, high_open): low <(=) value <(=) high. None = unbounded on that side.
LIMITS: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "data.n_samples": (1, 10**8, False, False),
    "data.batch_size": (1, 2**20, False, False),
    "data.resize": (1, 4096, False, False),
    "data.n_classes": (2, 10**6, False, False),
    "data.noise": (0, None, False, False),
    "data.seed": (0, UINT32, False, True),
    "data.train_subset": (1, 10**8, False, False),
    "model.width": (1, 2**16, False, False),
    "model.n_layers": (1, 64, False, False),
    "model.init_h_sd": (0, None, False, False),
    "train.epochs": (1, 10**5, False, False),
    "train.T": (1, 10**4, False, False),
    "train.h_lr": (0, None, True, False),
    "train.w_lr": (0, None, True, False),
    "train.h_momentum": (0, 1, False, False),  # the study searched [0, 1] (1 is allowed: the trace resets per batch)
    "train.w_momentum": (0, 1, False, True),
    "train.w_weight_decay": (0, None, False, False),
    "seed": (0, UINT32, False, True),
}


def describe(key: str) -> str:
    """The range of `key` in words, e.g. "a number > 0" or "an integer in [0, 4294967296)"."""
    low, high, low_open, high_open = LIMITS[key]
    if high is None:
        if low == 0:
            return "a positive number" if low_open else "a number >= 0"
        return f"a number {'>' if low_open else '>='} {low}"
    if low == 1 and not low_open and not high_open:
        return f"a positive integer <= {high:,}"
    return f"a value in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def in_range(key: str, value: float) -> bool:
    low, high, low_open, high_open = LIMITS[key]
    if low is not None and (value < low or (low_open and value == low)):
        return False
    return high is None or not (value > high or (high_open and value == high))


def check_limits(cfg: Any) -> str | None:
    """The first out-of-range value of a TrialConfig as a one-line message, or None if all are in range."""
    for key in LIMITS:
        node = cfg
        for part in key.split("."):
            node = getattr(node, part)
        if node is not None and not in_range(key, node):
            return f"{key}: got {node!r}; expected {describe(key)}"
    return None
