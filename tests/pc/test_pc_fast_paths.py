"""The speed measures inside the training keep its math: `linear_t`, the hoisted u1, the FLOP count."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pcx as px
import pcx.functional as pxf
import pcx.predictive_coding as pxc
import pcx.utils as pxu
import pytest
from pc_cases import BASE, BP_A

from pc.model import build_model, linear_t
from pc.train import GroupProgram, flops_per_trial_epoch, transposed_weights_pay
from pc.trials import batch_orders


def test_linear_t_equals_the_linear_layer_and_its_gradients():
    rng = np.random.default_rng(0)
    w, b = jnp.asarray(rng.standard_normal((5, 3)), jnp.float32), jnp.asarray(rng.standard_normal(5), jnp.float32)
    xs = jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)  # a batch of 4 samples

    def loss(fn):
        return lambda w, b, x: jnp.sum(jnp.tanh(jax.vmap(lambda xi: fn(w, b, xi))(x)) ** 2)

    plain = loss(lambda w, b, x: w @ x + b)
    cached = loss(lambda w, b, x: linear_t(w, b, w.T, x))
    np.testing.assert_array_equal(cached(w, b, xs), plain(w, b, xs))  # the forward is the same product
    for got, want in zip(jax.grad(cached, argnums=(0, 1, 2))(w, b, xs), jax.grad(plain, argnums=(0, 1, 2))(w, b, xs)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


_VODES = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))


@pxf.vmap(_VODES, in_axes=(0, 0), out_axes=0)
def _forward(x, y, *, model):
    return model(x, y)


@pxf.vmap(_VODES, in_axes=(0, None), out_axes=None, axis_name="batch")
def _energy(x, unused, *, model):
    model(x)
    return jax.lax.pmean(model.energy(), "batch")


@pxf.vmap(_VODES, in_axes=(0, None), out_axes=None, axis_name="batch")
def _energy_fast(u1, w_t, *, model):
    model(None, u1=u1, w_t=w_t)
    return jax.lax.pmean(model.energy(), "batch")


def _state_energy_and_grads(model, x, y, energy_fn, *energy_args):
    """Forward init on x, then the batch-mean energy and its state gradients (one state step)."""
    with pxu.step(model, (pxc.STATUS.INIT, None), clear_params=pxc.VodeParam.Cache):
        _forward(x, y, model=model)
    # Move the states off the forward values so that every layer's error (and gradient) is non-zero.
    for vode in model.vodes[:-1]:
        vode.h.set(vode.h.get() + 0.1)
    hidden = pxu.M_hasnot(pxc.VodeParam, frozen=True)
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        e, g = pxf.value_and_grad(hidden.to([False, True]))(energy_fn)(*energy_args, model=model)
    return float(e), [np.asarray(v.h.get()) for v in g["model"].vodes[:-1]]


def test_state_step_with_u1_and_w_t_equals_the_plain_model():
    dims = (6, 8, 8, 3)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((5, dims[0])), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(5) % 3, 3)
    e_plain, g_plain = _state_energy_and_grads(build_model("pc", dims, "tanh", 3), x, y, _energy, x, None)
    model = build_model("pc", dims, "tanh", 3)
    w_t = [layer.nn.weight.get().T for layer in model.layers[1:]]
    u1 = jax.nn.tanh(x @ model.layers[0].nn.weight.get().T + model.layers[0].nn.bias.get())
    e_fast, g_fast = _state_energy_and_grads(model, x, y, _energy_fast, u1, w_t)
    assert e_plain > 0
    assert e_fast == pytest.approx(e_plain, rel=1e-6)
    for got, want in zip(g_fast, g_plain):
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_group_program_with_transposed_weights_trains_the_same():
    cfgs = [BASE, BASE.replace(**{"seed": 1, "train.h_lr": 0.3})]
    d_in, n_classes, n_batches = 2, 2, 4
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n_batches + 1, BASE.data.batch_size, d_in)), jnp.float32)
    y = jax.nn.one_hot(jnp.asarray(rng.integers(0, 2, (n_batches + 1, BASE.data.batch_size))), 2)
    data = {"train_x": x[:n_batches], "train_y": y[:n_batches], "test_x": x[n_batches:], "test_y": y[n_batches:]}
    orders = np.stack([batch_orders(c.seed, n_batches, 2) for c in cfgs], axis=1)
    runs = []
    for transpose_w in (False, True):
        program = GroupProgram(BASE, d_in, n_classes, 2, transpose_w=transpose_w)
        program.start(cfgs)
        runs.append([program.epoch(orders[e], data) for e in range(2)])
    for (m_plain, acc_plain), (m_fast, acc_fast) in zip(*runs):
        np.testing.assert_array_equal(acc_fast, acc_plain)
        for name in m_plain:
            np.testing.assert_allclose(m_fast[name], m_plain[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_transposed_weights_only_for_shapes_where_they_pay():
    assert transposed_weights_pay((784, 1024, 1024, 10), 128)
    assert transposed_weights_pay((784, 4096, 4096, 10), 256)
    assert not transposed_weights_pay((784, 512, 512, 10), 128)
    assert not transposed_weights_pay((2, 1024, 1024, 2), 32)


_DOT = re.compile(r"= \w+\[([\d,]*)\]\S* dot\(\w+\[([\d,]*)\]\S* %\S+, \w+\[[\d,]*\]\S* %\S+\), "
                  r"(?:lhs_batch_dims=\{[\d,]*\}, )?lhs_contracting_dims=\{([\d,]*)\}")


def _dot_flops(hlo_text: str) -> int:
    """2 x output size x contracted size, summed over the dot instructions of an optimized HLO module."""
    def ints(text: str) -> list[int]:
        return [int(d) for d in text.split(",") if d]

    return sum(2 * int(np.prod(ints(out))) * int(np.prod([ints(lhs)[i] for i in ints(con)]))
               for out, lhs, con in _DOT.findall(hlo_text))


@pytest.mark.parametrize(("cfg", "transpose_w"), [(BASE, False), (BASE, True), (BP_A, False)],
                         ids=["pc", "pc-transposed-w", "bp"])
def test_flop_count_equals_the_dots_xla_runs(cfg, transpose_w):
    # One training batch and one test batch (loops of one trip), small widths so that XLA emits
    # plain `dot` instructions; their FLOPs after XLA's optimizations (CSE included) are what the
    # benchmark's GFLOP/s must count.
    cfg = cfg.replace(**{"model.width": 12})
    d_in, n_classes, b = 2, 2, cfg.data.batch_size
    program = GroupProgram(cfg, d_in, n_classes, 2, transpose_w=transpose_w)
    program.start([cfg, cfg.replace(seed=1)])
    data = [jnp.zeros((1, b, d_in)), jnp.zeros((1, b, n_classes))]
    kwargs = px.tree_ref({"model": program.model, "optim_w": program.optim_w, "__RKG": px.RKG})
    hlo = program._epoch.wrap_fn.lower(jnp.zeros((2, 1), jnp.int32), program._h_lr, *data, *data,
                                       **kwargs).compile().as_text()
    assert 0 < len(_DOT.findall(hlo)) == hlo.count(" dot(")  # every dot parsed
    assert _dot_flops(hlo) == 2 * flops_per_trial_epoch(cfg, d_in, n_classes, 1, b)
