"""How much memory a group may use, and how much one trial of it needs (an upper bound).

The estimate is checked against XLA's own buffer assignment of the compiled group program (arguments +
outputs + temporaries, `Compiled.memory_analysis()`): tests/pc/test_pc_memory.py requires it to be an
upper bound and at most 5x too high; on the shapes measured it is 2.4-3.5x. On a GPU, jax's allocator also
reports `peak_bytes_in_use`, which `scripts/gpu-check` (section 6) compares with this estimate (it has not run
on a GPU yet).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from contracts.shapes import MAX_GROUP

DEFAULT_MEM_GB = 4.0  # CPU budget of one group's arrays; env PCSWEEP_GROUP_MEM_GB overrides
MEM_ENV = "PCSWEEP_GROUP_MEM_GB"
ACCELERATOR_FRACTION = 0.5  # of the device's memory, before what is already in use is subtracted
MAX_GROUP_ENV = "PCSWEEP_MAX_GROUP"
CPU_EXACT_MAX_GROUP = MAX_GROUP["cpu"]  # groups of 2..32 give bit-identical trials (contracts.shapes.MAX_GROUP)
ACCELERATOR_MAX_GROUP = MAX_GROUP["cuda"]


def per_trial_bytes(dims: Sequence[int], batch_size: int, T: int, n_batches: int = 0) -> int:
    """Estimated bytes of one trial in a group program (float32).

    8 copies of the parameters (weights, gradients, optimizer moments, the scan carry and its update,
    the transposed copies), 4 copies of the activations of one batch at each of T + 4 passes (states,
    errors, gradients, the unrolled steps XLA keeps alive), and the per-batch metrics the epoch returns.
    """
    n_params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    acts = batch_size * sum(dims) * (T + 4)
    n_linear = n_vodes = len(dims) - 1  # PC: hidden Vodes + the output Vode
    metrics = n_batches * (2 * (T + 1) * n_vodes + 3 * n_linear)
    return 4 * (8 * n_params + 4 * acts + metrics)


def live_bytes() -> int:
    """Bytes of the jax arrays alive in this process (all devices)."""
    import jax  # lazy: keeps this module importable without starting jax

    return sum(a.nbytes for a in jax.live_arrays())


def env_mem_gb() -> float:
    """$PCSWEEP_GROUP_MEM_GB, checked (ValueError naming the variable): a finite number of GiB > 0."""
    text = os.environ.get(MEM_ENV, "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"${MEM_ENV}: got {os.environ.get(MEM_ENV)!r}; expected a number of GiB > 0, e.g. 8")
    return value


def memory_budget() -> float:
    """Bytes one group may use now.

    $PCSWEEP_GROUP_MEM_GB (GiB) when set, as given. Otherwise, on an accelerator, half its memory
    (`bytes_limit`) less what is already in use (`bytes_in_use`: the data set, programs, other groups'
    leftovers); on CPU, where jax reports no memory statistics, 4 GiB less the live jax arrays. Never
    below 0 (then every trial runs alone, see `pc.train.group_sizes`).
    """
    if os.environ.get(MEM_ENV, "").strip():
        return env_mem_gb() * 2**30
    import jax  # lazy, as above

    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    if device.platform != "cpu" and stats.get("bytes_limit"):
        return max(0.0, ACCELERATOR_FRACTION * stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return max(0.0, DEFAULT_MEM_GB * 2**30 - live_bytes())


def env_max_group() -> int | None:
    """$PCSWEEP_MAX_GROUP, checked (ValueError naming the variable when it is not an integer >= 1); None unset."""
    value = os.environ.get(MAX_GROUP_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${MAX_GROUP_ENV}: got {value!r}; expected an integer >= 1 (e.g. 4096)")
    return int(value)


def max_group_size() -> int:
    """The largest group: $PCSWEEP_MAX_GROUP, else 32 on CPU (bit-identical trials) and 4096 on accelerators.

    Raises ValueError naming the variable when it is not an integer >= 1.
    """
    value = env_max_group()
    if value is not None:
        return value
    import jax  # lazy, as above

    return CPU_EXACT_MAX_GROUP if jax.devices()[0].platform == "cpu" else ACCELERATOR_MAX_GROUP


__all__ = [
    "DEFAULT_MEM_GB", "MAX_GROUP_ENV", "MEM_ENV", "env_max_group", "env_mem_gb", "live_bytes", "max_group_size",
    "memory_budget", "per_trial_bytes",
]
