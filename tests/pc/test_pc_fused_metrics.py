"""The per-batch metrics computed in fused fixed-order passes give the values their definitions give.

`pc.train` sums the weight statistics (`_norm`, `_norm_and_var`) and the squared-error energies
(`_layer_energies`) as fixed trees instead of `jnp.linalg.norm`, `jnp.var` and pcx's `vode.energy()`,
because XLA on CPU ran those as separate, partly materialized passes (docs/pc.md, "Metrics in fused
passes"). Here each is checked against an independent float64 numpy computation, and the energies against
pcx's own `vode.energy()`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pcx.functional as pxf
import pcx.predictive_coding as pxc
import pcx.utils as pxu
import pytest

from pc.model import build_model
from pc.train import _layer_energies, _norm, _norm_and_var

SHAPES = [(1024, 784), (10, 1024), (1024, 1024), (7, 5), (3,), (1, 9)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_norm_and_variance_equal_their_float64_definitions(shape):
    rng = np.random.default_rng(sum(shape))
    # a non-zero mean, so that the norm's n * mean^2 term matters
    x = (rng.standard_normal(shape) * 0.05 + 0.3).astype(np.float32)
    norm, var = jax.jit(_norm_and_var)(jnp.asarray(x))
    want = x.astype(np.float64)
    assert float(norm) == pytest.approx(np.linalg.norm(want), rel=2e-6)
    assert float(var) == pytest.approx(want.var(), rel=2e-5)
    assert float(jax.jit(_norm)(jnp.asarray(x))) == pytest.approx(np.linalg.norm(want), rel=2e-6)


def test_statistics_of_a_constant_array_are_exact():
    x = jnp.full((1024, 784), 0.5, jnp.float32)
    norm, var = _norm_and_var(x)
    assert float(var) == 0.0
    assert float(norm) == pytest.approx(0.5 * np.sqrt(1024 * 784), rel=1e-7)
    assert float(_norm(x)) == pytest.approx(0.5 * np.sqrt(1024 * 784), rel=1e-7)


def test_statistics_are_the_same_bits_for_each_trial_in_any_group_size():
    """The trees are elementwise adds, so a trial's statistics cannot depend on how many trials run beside it."""
    rng = np.random.default_rng(3)
    stack = jnp.asarray(rng.standard_normal((8, 1024, 784)).astype(np.float32))
    per_group = {n: jax.jit(jax.vmap(_norm_and_var))(stack[:n]) for n in (2, 8)}
    for got, want in zip(per_group[2], per_group[8]):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want)[:2])
    alone = jax.jit(_norm_and_var)(stack[1])
    assert float(alone[1]) == pytest.approx(float(per_group[8][1][1]), rel=1e-6)


_VODES = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))


@pxf.vmap(_VODES, in_axes=(0, 0), out_axes=0)
def _forward(x, y, *, model):
    return model(x, y)


@pxf.vmap(_VODES, in_axes=(0,), out_axes=(0, 0, 0, 0))
def _energies(x, *, model):
    model(x)
    first = model.vodes[0]
    return _layer_energies(model), jnp.stack([vode.energy() for vode in model.vodes]), first.get("h"), first.get("u")


def test_layer_energies_equal_pcx_vode_energies():
    dims = (6, 64, 64, 4)
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((9, dims[0])), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(9) % 4, 4)
    model = build_model("pc", dims, "leaky_relu", 2)
    # the hidden Vodes take the fused squared-error branch, the output Vode pcx's own energy
    assert [v.energy_fn.get() is pxc.se_energy for v in model.vodes] == [True, True, False]
    with pxu.step(model, (pxc.STATUS.INIT, None), clear_params=pxc.VodeParam.Cache):
        _forward(x, y, model=model)
    for k, vode in enumerate(model.vodes[:-1]):  # states off their forward values: every error non-zero
        vode.h.set(vode.h.get() + 0.1 * (k + 1))
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        ours, theirs, h, u = _energies(x, model=model)
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape == (9, 3)
    assert np.all(ours[:, :2] > 0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    # the squared-error layers by hand: 0.5 * sum((h - u)^2)
    error = np.asarray(h, np.float64) - np.asarray(u, np.float64)
    np.testing.assert_allclose(ours[:, 0], 0.5 * (error**2).sum(axis=1), rtol=1e-5)
