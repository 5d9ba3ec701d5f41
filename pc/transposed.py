"""Whether the T state steps use transposed weight copies (`pc.state_steps`): measured, not assumed.

The state gradient multiplies each error by W (`e @ W`, "NN"); with a copy W^T made once per mini-batch
it becomes `e @ (W^T).T` ("NT", the forward's layout). Which is faster depends on the machine: on the
development CPU NN ran 1.7x slower than NT at B = 128, 1024^2, on another 2-core machine NN was the faster
one, and GPU libraries run both alike. So the choice is a short measurement, once per process, device
kind and shape: T products of each later layer in either layout plus one transpose per layer; the copies
are used when they save at least 5% (`MARGIN`). `transposed_weights_pay` (the rule tuned on the
development CPU) pre-selects the shapes worth measuring: below batch 128 or width 1024 the per-batch
transpose is not paid back anywhere we measured, and a measurement there would only cost time.

$PCSWEEP_TRANSPOSED_W overrides: `auto` (default: the above), `on`, `off`. The choice changes the last bits
of a trial's results, never its math; it is the same for every group size in a process, and every shard
records it (attribute `transposed_w`), so a run can be repeated with the same choice by setting `on`/`off`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

ENV = "PCSWEEP_TRANSPOSED_W"
MODES = ("auto", "on", "off")
MARGIN = 0.95  # use the copies when they take at most this fraction of the plain products' time
_REPEATS = 5


@dataclass(frozen=True)
class TransposeChoice:
    """One shape's decision and why: mode, and the measured seconds when it was measured."""

    shape: str  # "B128 784x1024x1024x10 T8 cpu:cpu"
    use: bool
    mode: str  # auto | on | off
    reason: str  # env | below-rule | measured
    nn_s: float | None = None  # T x sum over later layers of e @ W
    nt_s: float | None = None  # T x sum of e @ W_t.T, plus one transpose per layer
    transpose_s: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def transposed_weights_pay(dims: Sequence[int], batch_size: int) -> bool:
    """The development CPU's rule: batch >= 128 and every hidden width >= 1024 (measured there, group epochs
    with against without: 14-16% faster at batch 128 and width 1024 or 2048, 6-10% at batch 256 x 1024, no
    gain or a loss at batch <= 64 or width <= 512). Now only pre-selects the shapes `choose` measures.
    """
    return batch_size >= 128 and min(dims[1:-1]) >= 1024


def env_mode() -> str:
    """$PCSWEEP_TRANSPOSED_W, checked (ValueError naming the variable and the valid values)."""
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"${ENV}: got {os.environ.get(ENV)!r}; expected one of {', '.join(MODES)}")
    return mode


_CHOICES: dict[tuple, TransposeChoice] = {}


def choose(dims: Sequence[int], batch_size: int, T: int) -> TransposeChoice:
    """The decision for this shape on this process's device (cached per process)."""
    import jax  # lazy: keeps `import pc.transposed` light for the docs and tests of the rule

    device = jax.devices()[0]
    mode = env_mode()
    shape = f"B{batch_size} {'x'.join(map(str, dims))} T{T} {device.platform}:{device.device_kind}"
    key = (mode, shape)
    if key not in _CHOICES:
        if mode != "auto":
            _CHOICES[key] = TransposeChoice(shape, mode == "on", mode, "env")
        elif not transposed_weights_pay(dims, batch_size):
            _CHOICES[key] = TransposeChoice(shape, False, mode, "below-rule")
        else:
            nn_s, nt_s, tr_s = _measure(dims, batch_size)
            plain, copies = T * nn_s, T * nt_s + tr_s
            _CHOICES[key] = TransposeChoice(shape, copies <= MARGIN * plain, mode, "measured", plain, copies, tr_s)
    return _CHOICES[key]


def _best_seconds(fn, *args) -> float:
    import jax  # lazy, as above

    jax.block_until_ready(fn(*args))  # compile and warm up
    best = float("inf")
    for _ in range(_REPEATS):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def _measure(dims: Sequence[int], batch_size: int) -> tuple[float, float, float]:
    """Best-of-5 seconds, summed over the layers after the first: e @ W, e @ W_t.T, and W.T (copied)."""
    import jax  # lazy, as above
    import jax.numpy as jnp

    nn = jax.jit(lambda e, w: e @ w)
    nt = jax.jit(lambda e, w_t: e @ w_t.T)
    tr = jax.jit(lambda w: jax.lax.optimization_barrier(w.T))
    total = [0.0, 0.0, 0.0]
    key = jax.random.PRNGKey(0)
    for n_in, n_out in zip(dims[1:-1], dims[2:]):
        w = jax.random.normal(key, (n_out, n_in), jnp.float32)
        e = jax.random.normal(key, (batch_size, n_out), jnp.float32)
        w_t = tr(w)
        for i, seconds in enumerate((_best_seconds(nn, e, w), _best_seconds(nt, e, w_t), _best_seconds(tr, w))):
            total[i] += seconds
    return total[0], total[1], total[2]


__all__ = ["ENV", "MODES", "TransposeChoice", "choose", "env_mode", "transposed_weights_pay"]
