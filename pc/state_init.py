"""How the hidden states start before inference (`model.init_h`), as pure JAX functions.

- `forward`: h_l <- u_l, the feed-forward prediction (Section 5.1 and the paper's default).
- `zero`: h_l <- 0 (the state-initialisation study's `to_zero`).
- `normal`: h_l <- init_h_sd * N(0, 1), a fresh draw per sample, batch, epoch and trial (the study's `to_norm`,
  sd 0.1).

The study seeded its draws from the wall clock; here they come from the trial's own key, `trial_key(seed)`,
folded with the epoch and the batch's position in that epoch, so a trial gives the same draws alone or in a
group of any size, on any machine. The key is independent of the weights' keys (`px.RandomKeyGenerator(seed)`
splits `PRNGKey(seed)`; this folds a constant into it first).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

INIT_KEY_TAG = 0x1417  # folded into PRNGKey(seed): the state draws never reuse the weights' key stream


def trial_key(seed: int | jax.Array) -> jax.Array:
    """The key of a trial's state draws (raw uint32[2]); vmaps over an array of seeds."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), INIT_KEY_TAG)


def normal_draws(key: jax.Array, epoch: int | jax.Array, position: int | jax.Array,
                 shapes: Sequence[tuple[int, ...]], sd: float) -> list[jax.Array]:
    """One N(0, sd^2) array per hidden layer for the batch trained `position`-th in `epoch` (both from 0)."""
    batch_key = jax.random.fold_in(jax.random.fold_in(key, epoch), position)
    keys = jax.random.split(batch_key, len(shapes))
    return [sd * jax.random.normal(k, shape, jnp.float32) for k, shape in zip(keys, shapes)]


def initial_states(rule: str, forward_states: Sequence[jax.Array], key: jax.Array | None = None,
                   epoch: int | jax.Array = 0, position: int | jax.Array = 0, sd: float = 0.1) -> list[jax.Array]:
    """The hidden states inference starts from, given those of the forward pass ([B, width] each)."""
    if rule == "forward":
        return list(forward_states)
    if rule == "zero":
        return [jnp.zeros_like(h) for h in forward_states]
    if rule == "normal":
        if key is None:
            raise ValueError("model.init_h=normal needs the trial's key")
        return normal_draws(key, epoch, position, [h.shape for h in forward_states], sd)
    raise ValueError(f"model.init_h: got {rule!r}; expected forward, zero or normal")


__all__ = ["INIT_KEY_TAG", "initial_states", "normal_draws", "trial_key"]
