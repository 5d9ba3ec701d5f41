"""Matmul precision of the group program, explicit: the config key `train.matmul_precision`.

jax 0.4.38 leaves `jax_default_matmul_precision` unset, and XLA then chooses per platform: full float32
on CPU, while on A100/H100/H200 float32 matmuls may run as TF32 (10 mantissa bits). `precision_scope`
applies a trial's setting while its program is traced, so every dot of the compiled program carries it;
`default` changes nothing (today's behaviour, and what the paper's runs used), `high` and `highest` are
jax's names (`highest` = full float32 everywhere). The value is part of `static_key`, so trials of one
program always share it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

# jax is imported at the top: only the training imports this module.
import jax

from contracts.config import MATMUL_PRECISIONS


@contextlib.contextmanager
def precision_scope(name: str) -> Iterator[None]:
    """Trace the block's matmuls at `name` (one of MATMUL_PRECISIONS); `default` leaves jax's setting alone."""
    if name not in MATMUL_PRECISIONS:
        raise ValueError(f"train.matmul_precision: got {name!r}; expected one of {', '.join(MATMUL_PRECISIONS)}")
    if name == "default":
        yield
        return
    with jax.default_matmul_precision(name):
        yield


def jax_default_precision() -> str:
    """The process-wide `jax_default_matmul_precision` ("unset" when jax's default is in effect)."""
    return str(jax.config.jax_default_matmul_precision or "unset")


__all__ = ["jax_default_precision", "precision_scope"]
