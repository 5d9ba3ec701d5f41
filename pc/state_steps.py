"""The T inference steps of one trial's mini-batch as plain JAX: the same math, and bits, as pcx's autodiff.

Per sample i and hidden layer l (states h_1..h_{L-1}; u_1 = f(W_1 x + b_1) is fixed because x is clamped;
u_{l+1} = f(W_{l+1} h_l + b_{l+1}); logits = W_L h_{L-1} + b_L; the output state is clamped to the label y):

    E_i  = sum_l 0.5 |h_l - u_l|^2 + CE(y, logits)
    e_l  = h_l - u_l
    dE_i/dh_l = e_l - (e_{l+1} * f'(z_{l+1})) W_{l+1}        (l < L-1)
    dE_i/dh_{L-1} = e_{L-1} + (softmax(logits) sum(y) - y) W_L     (cross-entropy output, Section 5.1)
    dE_i/dh_{L-1} = e_{L-1} + (logits - y) W_L                        (squared-error output, `model.output_energy=se`)
    h_l <- h_l - gamma * dE_i/dh_l                                    (with `train.h_momentum`: optax.sgd's trace)

This is what `pxf.value_and_grad` of pcx's batch-mean energy followed by `pxu.Optim(sgd(gamma)).step(...,
scale_by=B)` computes (docs/paper-notes.md trap (a): each sample moves by gamma * dE_i/dh_i); a group epoch gives
the same bits either way (A/B in one process, two moons w128 and FashionMNIST-shaped w1024), and XLA ran both at
the same speed. Why write it out: the state step is the hot loop, and here its math is on the page, with the
layout of each product chosen in one place (`_back`, the transposed copies of `pc.transposed`) instead of through
a custom VJP on pcx's layer. The weight step stays pcx's (`pc.train.train_on_batch`). The activation's
derivative and the cross-entropy's gradient come from `jax.vjp` of the same functions pcx uses, so every
activation of `pc.model.ACTIVATIONS` works unchanged. (The speed and compile gains of 2026-12-07 came from
elsewhere: `tree_sum` below, and the random key in `pc.train._make_epoch`.)

The per-sample energies [B, L] are the metrics' values (`energy_i` of each Vode): squared errors summed as a
fixed tree (`tree_sum`, so a trial gives the same bits in every group size), the cross-entropy as pcx's
`ce_energy` summed over classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

Arrays = Sequence[jax.Array]  # one [B, width] array per hidden layer (or one W^T per later layer)
Weights = Sequence[tuple[jax.Array, jax.Array]]  # (W, b) of layers 2..L, W of shape (out, in)
Activation = Callable[[jax.Array], jax.Array]


def tree_sum(x: jax.Array, axis: int) -> jax.Array:
    """Sum over `axis` as a fixed binary tree of elementwise adds (zero-padded to a power of two).

    Why: XLA may reduce a `jnp.sum` in a different order for different trial-axis sizes; elementwise adds in a
    fixed tree round the same way in every group size, and fuse with the square that produces them. The halves
    are sliced in place (no transpose first), so each level reads whole contiguous rows.
    """
    axis = axis % x.ndim
    size = 1 << (x.shape[axis] - 1).bit_length()
    if size != x.shape[axis]:
        pad = [(0, 0)] * x.ndim
        pad[axis] = (0, size - x.shape[axis])
        x = jnp.pad(x, pad)
    while x.shape[axis] > 1:
        half = x.shape[axis] // 2
        x = jax.lax.slice_in_dim(x, 0, half, axis=axis) + jax.lax.slice_in_dim(x, half, 2 * half, axis=axis)
    return jnp.squeeze(x, axis)


def _ce(y: jax.Array, logits: jax.Array) -> jax.Array:
    """pcx's `ce_energy` of the clamped output, summed over classes: [B]."""
    return jnp.sum(-(y * jax.nn.log_softmax(logits)), axis=-1)


def _se(y: jax.Array, logits: jax.Array) -> jax.Array:
    """pcx's `se_energy` of the output clamped to the one-hot label, 0.5 |y - logits|^2 summed as a fixed tree:
    [B] (the state-initialisation study's output, `model.output_energy=se`)."""
    error = y - logits
    return 0.5 * tree_sum(error * error, axis=-1)


OUTPUT_ENERGY = {"ce": _ce, "se": _se}


def _back(delta: jax.Array, w: jax.Array, w_t: jax.Array | None) -> jax.Array:
    """delta @ W ([B, out] x [out, in]); with `w_t` = W^T as the faster NT product (`pc.transposed`)."""
    return delta @ w if w_t is None else delta @ w_t.T


def energies_and_grads(hs: Arrays, u1: jax.Array, weights: Weights, y: jax.Array, act: Activation,
                       w_t: Arrays | None = None, output: str = "ce") -> tuple[jax.Array, list[jax.Array]]:
    """Per-sample energies [B, L] and dE_i/dh_l of every hidden state, at states `hs` ([B, width] each).

    weights: [(W_l, b_l)] of layers 2..L (W of shape (out, in)); w_t: their transposes, or None;
    output: the output Vode's energy, ce (softmax cross-entropy) or se (squared error).
    """
    out_energy = OUTPUT_ENERGY[output]
    n_hidden = len(hs)
    us, act_vjps = [u1], []
    for layer in range(n_hidden - 1):
        w, b = weights[layer]
        u, vjp = jax.vjp(act, hs[layer] @ w.T + b)
        us.append(u)
        act_vjps.append(vjp)
    w_out, b_out = weights[-1]
    e_out, out_vjp = jax.vjp(lambda logits: out_energy(y, logits), hs[-1] @ w_out.T + b_out)
    errors = [h - u for h, u in zip(hs, us)]
    energies = [0.5 * tree_sum(e * e, axis=-1) for e in errors] + [e_out]
    grads = []
    for layer, error in enumerate(errors):
        w_back = None if w_t is None else w_t[layer]
        if layer < n_hidden - 1:
            (delta,) = act_vjps[layer](errors[layer + 1])
            grads.append(error - _back(delta, weights[layer][0], w_back))
        else:
            (delta,) = out_vjp(jnp.ones_like(e_out))
            grads.append(error + _back(delta, w_out, w_back))
    return jnp.stack(energies, axis=-1), grads


def inference(hs: Arrays, u1: jax.Array, weights: Weights, y: jax.Array, act: Activation, h_lr: jax.Array, T: int,
              w_t: Arrays | None = None, output: str = "ce",
              h_momentum: jax.Array | None = None) -> tuple[list[jax.Array], jax.Array]:
    """T SGD steps on the hidden states; returns the final states and the energies [T, B, L] each step
    started from (t = 0 .. T-1). T is small and static: a Python loop, unrolled in the trace.

    h_momentum: None for plain SGD (Section 5.1), else optax.sgd's momentum: v <- g + m v (v = 0 at the
    batch's start, the study's per-batch `optim_h.init`), h <- h - gamma v.
    """
    hs, records = list(hs), []
    velocity = None
    for _ in range(T):
        energies, grads = energies_and_grads(hs, u1, weights, y, act, w_t, output)
        if h_momentum is not None:
            grads = grads if velocity is None else [g + h_momentum * v for g, v in zip(grads, velocity)]
            velocity = grads
        hs = [h - h_lr * g for h, g in zip(hs, grads)]
        records.append(energies)
    return hs, jnp.stack(records)


__all__ = ["OUTPUT_ENERGY", "energies_and_grads", "inference", "tree_sum"]
