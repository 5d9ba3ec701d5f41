"""The speed measures inside the training keep its math: `pc.state_steps` against pcx's autodiff, the transposed
weight copies, the FLOP count."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pcx.functional as pxf
import pcx.predictive_coding as pxc
import pcx.utils as pxu
import pytest
from pc_cases import BASE, BP_A

from pc import state_steps
from pc.model import ACTIVATIONS, build_model
from pc.train import GroupProgram, flops_per_trial_epoch, transposed_weights_pay
from pc.trials import batch_orders

_VODES = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))


@pxf.vmap(_VODES, in_axes=(0, 0), out_axes=0)
def _forward(x, y, *, model):
    return model(x, y)


@pxf.vmap(_VODES, in_axes=(0, None), out_axes=None, axis_name="batch")
def _energy(x, unused, *, model):
    model(x)
    return jax.lax.pmean(model.energy(), "batch")


def _pcx_state_step(model, x, y):
    """Forward init on x, states moved off the forward values (so every error is non-zero), then pcx's
    per-sample energies and the state gradients of its batch-mean energy, scaled back by B as the training
    does: the oracle for `pc.state_steps`."""
    with pxu.step(model, (pxc.STATUS.INIT, None), clear_params=pxc.VodeParam.Cache):
        _forward(x, y, model=model)
    u1 = model.vodes[0].get("h")
    for k, vode in enumerate(model.vodes[:-1]):
        vode.h.set(vode.h.get() + 0.1 * (k + 1))
    hs = [vode.get("h") for vode in model.vodes[:-1]]
    hidden = pxu.M_hasnot(pxc.VodeParam, frozen=True)
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        e, g = pxf.value_and_grad(hidden.to([False, True]))(_energy)(x, None, model=model)
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        _forward(x, None, model=model)
        per_sample = jnp.stack([v.energy() for v in model.vodes], axis=-1)  # [B, L], pcx's own sums
    grads = [np.asarray(v.h.get()) * x.shape[0] for v in g["model"].vodes[:-1]]
    return hs, u1, float(e), np.asarray(per_sample), grads


@pytest.mark.parametrize("dims", [(6, 8, 8, 3), (6, 8, 5, 7, 3)], ids=["4-layer", "5-layer"])
@pytest.mark.parametrize("activation", ["tanh", "leaky_relu", "hard_tanh", "sigmoid"])
@pytest.mark.parametrize("transposed", [False, True], ids=["W", "W_t"])
def test_state_steps_equal_pcx_autodiff(dims, activation, transposed):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((5, dims[0])), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(5) % dims[-1], dims[-1])
    model = build_model("pc", dims, activation, 3)
    hs, u1, e_mean, e_pcx, g_pcx = _pcx_state_step(model, x, y)
    weights = [(layer.nn.weight.get(), layer.nn.bias.get()) for layer in model.layers[1:]]
    w_t = [w.T for w, _ in weights] if transposed else None
    energies, grads = state_steps.energies_and_grads(hs, u1, weights, y, ACTIVATIONS[activation], w_t)
    assert energies.shape == (5, len(dims) - 1)
    np.testing.assert_allclose(np.asarray(energies), e_pcx, rtol=1e-6, atol=1e-7)
    assert float(jnp.mean(jnp.sum(energies, axis=-1))) == pytest.approx(e_mean, rel=1e-6)
    assert len(grads) == len(g_pcx) == len(dims) - 2
    for got, want in zip(grads, g_pcx):
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def test_inference_moves_each_sample_by_gamma_times_its_own_gradient():
    dims = (4, 6, 6, 2)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((3, dims[0])), jnp.float32)
    y = jax.nn.one_hot(jnp.array([0, 1, 1]), 2)
    model = build_model("pc", dims, "tanh", 0)
    hs, u1, _, _, _ = _pcx_state_step(model, x, y)
    weights = [(layer.nn.weight.get(), layer.nn.bias.get()) for layer in model.layers[1:]]
    act, gamma = ACTIVATIONS["tanh"], jnp.float32(0.3)
    final, records = state_steps.inference(hs, u1, weights, y, act, gamma, 2)
    assert records.shape == (2, 3, 3)
    e0, g0 = state_steps.energies_and_grads(hs, u1, weights, y, act)
    h1 = [h - gamma * g for h, g in zip(hs, g0)]
    e1, g1 = state_steps.energies_and_grads(h1, u1, weights, y, act)
    np.testing.assert_array_equal(records[0], e0)
    np.testing.assert_array_equal(records[1], e1)
    for got, h, g in zip(final, h1, g1):
        np.testing.assert_array_equal(got, h - gamma * g)
    assert float(records[1].sum()) < float(records[0].sum())  # a small step lowers the energy
    # Sample 0 alone moves exactly as it does in the batch: no batch mean leaks into the per-sample step.
    alone, _ = state_steps.inference([h[:1] for h in hs], u1[:1], weights, y[:1], act, gamma, 2)
    for got, want in zip(alone, final):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want[:1]), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("shape", "axis"), [((5, 7), -1), ((6, 3), 0), ((2, 8, 3), 1), ((4, 1), 1)])
def test_tree_sum_adds_in_a_fixed_halving_order(shape, axis):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    moved = np.moveaxis(x, axis, 0)
    size = 1 << (moved.shape[0] - 1).bit_length()
    tree = np.concatenate([moved, np.zeros((size - moved.shape[0], *moved.shape[1:]), np.float32)])
    while tree.shape[0] > 1:  # element i is added to element i + half, level by level, in float32
        tree = tree[: tree.shape[0] // 2] + tree[tree.shape[0] // 2:]
    got = np.asarray(state_steps.tree_sum(jnp.asarray(x), axis))
    np.testing.assert_array_equal(got, tree[0])
    np.testing.assert_allclose(got, x.astype(np.float64).sum(axis=axis), rtol=1e-5)


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
    hlo = program.lower(jnp.zeros((2, 1), jnp.int32), *data, *data).compile().as_text()
    assert 0 < len(_DOT.findall(hlo)) == hlo.count(" dot(")  # every dot parsed
    assert _dot_flops(hlo) == 2 * flops_per_trial_epoch(cfg, d_in, n_classes, 1, b)
    # pcx's vmaps split a random key that nothing here uses; it must not reach the program's outputs, where
    # XLA could not drop its threefry loops (they tripled the compile time at two moons width 128).
    assert "threefry" not in hlo
