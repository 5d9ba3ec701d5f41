"""Oracle: the group program (pcx) against docs/paper-notes.md section 3 in plain JAX + optax.

The reference below never touches pcx: closed-form energies, per-sample state gradients
h_i <- h_i - gamma * dE_i/dh_i from jax.grad of the summed energies, weight gradients of the batch
mean energy, the same optax optimizer, the same batch order and initial weights. It would catch
docs/paper-notes.md trap (a) (gamma divided by B), trap (b) (states that never move), a wrong BP head, metrics
taken after instead of before the optimizer step, and the t indexing of the energies.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from pc_cases import ADAM_A, BP_A, SGD_A

from pc.datasets import load_data
from pc.model import ACTIVATIONS, init_weights
from pc.trials import batch_orders


def _energies(params, hs, x, y, act, kind):
    """Per-sample per-layer energies [bs, L]."""
    w1, b1, w2, b2, w3, b3 = params
    if kind == "bp":
        logits = act(act(act(x @ w1.T + b1) @ w2.T + b2) @ w3.T + b3)
        return -jnp.sum(y * jax.nn.log_softmax(logits), axis=-1)[:, None]
    h1, h2 = hs
    e1 = 0.5 * jnp.sum((h1 - act(x @ w1.T + b1)) ** 2, axis=-1)
    e2 = 0.5 * jnp.sum((h2 - act(h1 @ w2.T + b2)) ** 2, axis=-1)
    e3 = -jnp.sum(y * jax.nn.log_softmax(h2 @ w3.T + b3), axis=-1)
    return jnp.stack([e1, e2, e3], axis=-1)


def reference_trial(cfg):
    """One trial of docs/paper-notes.md section 3 in plain JAX; returns the docs/design.md section 5 arrays."""
    ds = load_data(cfg.data)
    act, kind, T = ACTIVATIONS[cfg.model.activation], cfg.model.kind, cfg.train.T
    dims = (ds.d_in, cfg.model.width, cfg.model.width, ds.n_classes)
    params = [w[0] for w in init_weights(kind, dims, cfg.model.activation, [cfg.seed])]
    t = cfg.train
    opt = (optax.sgd(t.w_lr, momentum=t.w_momentum) if t.w_optimizer == "sgd"
           else optax.adamw(t.w_lr, weight_decay=t.w_weight_decay))
    state = opt.init(params)
    orders = batch_orders(cfg.seed, ds.train_x.shape[0], t.epochs)
    out = {k: [] for k in ("energy", "energy_var", "w_norm", "w_grad_norm", "w_grad_var")}
    acc = []
    for order in orders:
        for idx in order:
            x, y = jnp.asarray(ds.train_x[idx]), jnp.asarray(ds.train_y[idx])
            w1, b1, w2, b2 = params[:4]
            h1 = act(x @ w1.T + b1)
            hs = [h1, act(h1 @ w2.T + b2)]  # forward init
            recs = []
            for _ in range(T if kind == "pc" else 0):
                recs.append(_energies(params, hs, x, y, act, kind))
                g = jax.grad(lambda h, p=params, x=x, y=y: _energies(p, h, x, y, act, kind).sum())(hs)
                hs = [h - t.h_lr * gh for h, gh in zip(hs, g)]
            recs.append(_energies(params, hs, x, y, act, kind))
            if kind == "bp":
                recs.insert(0, recs[0])
            gw = jax.grad(lambda p, hs=hs, x=x, y=y: _energies(p, hs, x, y, act, kind).sum(-1).mean())(params)
            e = jnp.stack(recs)  # [T+1, bs, L]
            out["energy"].append(jnp.sqrt(jnp.sum(e**2, axis=1)))
            out["energy_var"].append(jnp.var(e, axis=1))
            out["w_grad_norm"].append(jnp.stack([jnp.linalg.norm(gw[k]) for k in (0, 2, 4)]))
            out["w_grad_var"].append(jnp.stack([jnp.var(gw[k]) for k in (0, 2, 4)]))
            updates, state = opt.update(gw, state, params)
            params = optax.apply_updates(params, updates)
            out["w_norm"].append(jnp.stack([jnp.linalg.norm(params[k]) for k in (0, 2, 4)]))
        w1, b1, w2, b2, w3, b3 = params
        tx = jnp.asarray(ds.test_x.reshape(-1, ds.d_in))
        logits = act(tx @ w1.T + b1) @ w2.T + b2
        logits = act(act(logits) @ w3.T + b3) if kind == "bp" else act(logits) @ w3.T + b3
        acc.append(np.mean(np.argmax(logits, -1) == np.argmax(ds.test_y.reshape(len(tx), -1), -1)))
    n_b = ds.train_x.shape[0]
    arrays = {k: np.asarray(jnp.stack(v)).reshape(t.epochs, n_b, *v[0].shape) for k, v in out.items()}
    arrays["test_accuracy"] = np.asarray(acc)
    return arrays


@pytest.mark.parametrize("which", ["sgd", "adamw", "bp"])
def test_group_program_matches_plain_jax_reference(which, sgd_alone, adam_alone, bp_alone):
    result, cfg = {"sgd": (sgd_alone, SGD_A), "adamw": (adam_alone, ADAM_A), "bp": (bp_alone, BP_A)}[which]
    ref = reference_trial(cfg)
    assert result.status == "ok"
    for name, expected in ref.items():
        got = result.arrays[name]
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, rtol=2e-4, atol=1e-6, err_msg=name)
