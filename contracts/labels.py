"""The derived labels of the summary table, written once: `optim` and `condition` (docs/design.md §6).

collect writes them into `summary.csv`; plots and the coverage figure group by them. Both read them
through these functions, so a label cannot drift between the writer and its readers.
"""

from __future__ import annotations

import math
from typing import Any

SIGNIFICANT_DIGITS = 12


def round12(value: Any) -> Any:
    """A float rounded to 12 significant digits, as trial ids are (0.30000000000000004 -> 0.3).

    Non-floats, zero and non-finite floats pass unchanged.
    """
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


def optim_label(w_optimizer: str, w_momentum: float) -> str:
    """The weight optimizer and its momentum, e.g. "sgd-0.9", "adamw-0.9", "sgd-0.0"."""
    return f"{w_optimizer}-{float(w_momentum)}"


def condition_label(kind: str, optim: str) -> str:
    """Model kind and optimizer label, e.g. "pc-adamw-0.9", "bp-sgd-0.0"."""
    return f"{kind}-{optim}"
