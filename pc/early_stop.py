"""The state-initialisation study's early-stopping rule (`train.early_stop`), as a pure function.

After each epoch e (from 0) the study's `main` compared that epoch's test accuracy a with the best so far and
stopped training when either count reached 5 (the paper's repository,
examples/s5_analysis_and_metrics/energy_and_stability/pcn_initialization/EP_adam.py at 5e0f9a7):

- `below`: consecutive epochs with a < 0.15, or a < 0.5 once e > 10 (a trial that is not learning);
- `stale`: epochs since the best accuracy last rose (strictly), counted only from e >= 25.

The epoch that triggers the stop is kept; later epochs are not trained (pcsweep stores them as NaN, with
status ok). The study reported the best accuracy over the epochs trained.
"""

from __future__ import annotations

from collections.abc import Sequence

PATIENCE = 5  # epochs
CHANCE_LEVEL = 0.15  # "not learning at all" threshold
LATE_LEVEL, LATE_FROM = 0.5, 10  # after epoch 10 (e > 10), below this counts too
STALE_FROM = 25  # from epoch 25 (e >= 25) on, 5 epochs without a new best stop the run


def epochs_to_train(accuracies: Sequence[float]) -> int | None:
    """How many epochs the rule trains given the accuracies so far: the 1-based epoch that stopped it, or None
    when the run goes on (also when it reaches its last epoch without a stop)."""
    best, stale, below = 0.0, 0, 0
    for e, a in enumerate(accuracies):
        a = float(a)
        if a > best:
            best, stale = a, 0
        else:
            stale += 1
        if a < CHANCE_LEVEL or (e > LATE_FROM and a < LATE_LEVEL):
            below += 1
        else:
            below = 0
        if below >= PATIENCE or (e >= STALE_FROM and stale >= PATIENCE):
            return e + 1
    return None


__all__ = ["epochs_to_train"]
