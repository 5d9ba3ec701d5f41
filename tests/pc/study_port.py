"""Oracle: the state-initialisation study's own per-batch loop, ported from pcax to pcx 0.6.3.

Source: the paper's repository, examples/s5_analysis_and_metrics/energy_and_stability/pcn_initialization/EP_adam*.py
at commit 5e0f9a7 (EP_adam.py: forward init; EP_adam_zero.py: `to_zero`; EP_adam_norm.py: `to_norm`). `MLP`,
`forward`, `energy`, `train_on_batch` and `eval_on_batch` are kept as the study wrote them (pcx Vodes with rulesets,
pcx autodiff, `pxu.Optim`), so that this file checks pcsweep's group program (plain-JAX state steps, one compiled
program per group) against the study's *code*, not against a second reading of the paper. What had to change for
pcx 0.6.3, and why:

- `pxc.Vode` takes no shape, and `n.shape` is not set yet when the init tform runs: `to_zero` returns
  `zeros_like` of the incoming value instead of `zeros(n.shape)`.
- `to_norm` drew `jax.random.normal(rkg(), n.shape) * 0.1` from pcax's global key (seeded from the wall clock, so
  no run of the study can be reproduced draw for draw). Here the tform returns a draw injected into the Vode's cache
  (key "h0") just before the Vode is called: pcsweep's own draws (`pc.state_init.normal_draws`), so both sides
  start inference from the same states and every later number is comparable.
- `pxu.Optim` takes an optax factory. The state optimiser is created without parameters and `init`-ed on every
  batch (its momentum trace restarts per batch, as the study's `optim_h.init(...)` in `train_on_batch`), over the
  *non-frozen* Vode states: 0.6.3 refuses a step with a missing gradient, and the frozen output state has none.
  The study's optimiser also listed the frozen output state, which never moved there either (no gradient).
- `optim_h.step(model, g, True)` (pcax's scale_by_batch_size: gradients times their leading dimension, B) becomes
  `step(..., scale_by=B)`. With the study's batch-*pmean* energy, dE/dh_i = (1/B) dE_i/dh_i, so times B every sample's
  state moves by h_lr * its own dE_i/dh_i (SGD with momentum on that). B = 128 is a power of two, so dividing and
  multiplying back is exact. The weight step uses the same pmean energy unscaled (`mul=1/beta`, beta = 1): AdamW on
  the batch-mean gradient, as the study.
- Statuses are prefix-matched regexes in 0.6.3 (as in pcax): "init" and "forward" are not prefixes of each other.
- pcx transforms swap the global RKG key without restoring it if the traced function raises; `run_port` puts it back.

Inputs (same as pcsweep's, so that only the training code differs): `pc.datasets.load_data` batches, the initial weights
`pc.model.init_weights`, the batch order `pc.trials.batch_orders`. Evaluation is the study's `eval_on_batch`: a plain
feed-forward pass (INIT status for forward init, the "forward" status whose rule reads h as u for the other two),
accuracy = mean over test batches of the batch accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pcx as px
import pcx.functional as pxf
import pcx.nn as pxnn
import pcx.predictive_coding as pxc
import pcx.utils as pxu

STATUS_FORWARD = "forward"  # the study's eval status for the zero and normal rules


def _to_zero(n, k, v, rkg):
    """The study's `to_zero` (zeros(n.shape)); n.shape is unset in 0.6.3 when this runs, so the shape of u."""
    return jnp.zeros_like(v)


def _to_injected(n, k, v, rkg):
    """The study's `to_norm` with the draw injected (cache key "h0", set by `MLP.__call__`) instead of drawn."""
    return n.get("h0")


def _hidden_vode(rule: str) -> pxc.Vode:
    if rule == "forward":  # EP_adam.py: the default ruleset, INIT "h, u <- u"
        return pxc.Vode(pxc.se_energy)
    if rule == "zero":
        return pxc.Vode(pxc.se_energy, ruleset={pxc.STATUS.INIT: ("h, u <- u:to_zero",), STATUS_FORWARD: ("h -> u",)},
                        tforms={"to_zero": _to_zero})
    if rule == "normal":
        return pxc.Vode(pxc.se_energy, ruleset={pxc.STATUS.INIT: ("h, u <- u:to_norm",), STATUS_FORWARD: ("h -> u",)},
                        tforms={"to_norm": _to_injected})
    raise ValueError(f"rule: got {rule!r}; expected forward, zero or normal")


class MLP(pxc.EnergyModule):
    """The study's MLP: Linear+act, Linear+act, Linear; a squared-error Vode after each; output state frozen."""

    def __init__(self, dims: Sequence[int], act_fn: Callable[[jax.Array], jax.Array], rule: str) -> None:
        super().__init__()
        self.act_fn = px.static(act_fn)
        rkg = px.RandomKeyGenerator(0)  # placeholder weights; `load_weights` overwrites them
        self.layers = [pxnn.Linear(dims[i], dims[i + 1], rkg=rkg) for i in range(len(dims) - 1)]
        output_ruleset = {} if rule == "forward" else {STATUS_FORWARD: ("h -> u",)}
        self.vodes = [_hidden_vode(rule) for _ in range(len(dims) - 2)] + [
            pxc.Vode(pxc.se_energy, ruleset=output_ruleset)
        ]
        self.vodes[-1].h.frozen = True

    def __call__(self, x: jax.Array, y: jax.Array | None, h0: Sequence[jax.Array] | None = None, beta: float = 1.0):
        last = len(self.layers) - 1
        for i, (layer, vode) in enumerate(zip(self.layers, self.vodes)):
            x = layer(x)
            if i < last:
                x = self.act_fn(x)
                if h0 is not None:
                    vode.set("h0", h0[i])  # no rule targets "h0": it lands in the cache, for `_to_injected`
            x = vode(x)
        if y is not None:  # the study's nudge; beta = 1 clamps the output state to the label
            self.vodes[-1].set("h", self.vodes[-1].get("u") + beta * (y - self.vodes[-1].get("u")))
        return self.vodes[-1].get("u")


_VODE_AXES = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))


@pxf.vmap(_VODE_AXES, in_axes=(0, 0, 0), out_axes=0)
def forward(x, y, h0, *, model: MLP):
    return model(x, y, h0)


@pxf.vmap(_VODE_AXES, in_axes=(0,), out_axes=(None, 0), axis_name="batch")
def energy(x, *, model: MLP):
    """The study's batch-pmean total energy; aux: each Vode's per-sample energy [L] (the study returned y_)."""
    model(x, None)
    per_vode = jnp.stack([v.energy() for v in model.vodes])
    return jax.lax.pmean(model.energy().sum(), "batch"), per_vode


@pxf.jit(static_argnums=0)
def train_on_batch(T: int, x, y, h0, *, model: MLP, optim_w: pxu.Optim, optim_h: pxu.Optim):
    """The study's train_on_batch; returns per-sample Vode energies [T+1, B, L] and the weight gradients."""
    model.train()
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(x, y, h0, model=model)
    states = pxu.M_hasnot(pxc.VodeParam, frozen=True)
    optim_h.init(states(model))
    energies = []
    for _ in range(T):
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            (_, (e,)), g = pxf.value_and_grad(states.to([False, True]), has_aux=True)(energy)(x, model=model)
        energies.append(e)
        optim_h.step(model, g["model"], scale_by=x.shape[0])  # pcax's scale_by_batch_size=True
    optim_h.clear()
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        weights = pxu.M(pxnn.LayerParam).to([False, True])
        (_, (e,)), g = pxf.value_and_grad(weights, has_aux=True)(energy)(x, model=model)
    energies.append(e)
    w_grads = [layer.nn.weight.get() for layer in g["model"].layers]
    optim_w.step(model, g["model"])  # mul = 1 / beta = 1
    return jnp.stack(energies), w_grads


@pxf.jit(static_argnums=0)
def eval_on_batch(status, x, y, *, model: MLP):
    """The study's eval_on_batch (y: integer labels); `status` is INIT (forward rule) or "forward" (the others)."""
    model.eval()
    with pxu.step(model, status, clear_params=pxc.VodeParam.Cache):
        y_ = forward(x, None, None, model=model).argmax(axis=-1)
    return (y_ == y).mean()


def load_weights(model: MLP, params: Sequence[jax.Array]) -> None:
    """[W1, b1, W2, b2, W3, b3] (W of shape (out, in), as `pc.model.init_weights`) into the pcx layers."""
    for k, layer in enumerate(model.layers):
        layer.nn.weight.set(jnp.asarray(params[2 * k]))
        layer.nn.bias.set(jnp.asarray(params[2 * k + 1]))


def _metrics(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pcsweep's energy metrics from per-sample energies [T+1, B, L]: L2 norm and population variance over B."""
    e = e.astype(np.float64)
    return np.sqrt(np.sum(e * e, axis=1)), np.var(e, axis=1)


def run_port(cfg) -> dict[str, np.ndarray]:
    """Train one pcsweep trial config with the ported study loop; returns arrays named and shaped as pcsweep's.

    energy, energy_var [E, B, T+1, L]; w_norm, w_grad_norm [E, B, 3] (weights only, norm after / gradient
    before the AdamW step); test_accuracy [E].
    """
    from pc.datasets import load_data
    from pc.model import init_weights
    from pc.state_init import normal_draws, trial_key
    from pc.trials import batch_orders

    m, t = cfg.model, cfg.train
    if t.w_optimizer != "adamw" or m.output_energy != "se" or m.kind != "pc":
        raise ValueError("the study trained a PC MLP with AdamW weights and a squared-error output")
    ds = load_data(cfg.data)
    n_b, bs = ds.train_x.shape[:2]
    dims = (ds.d_in, m.width, m.width, ds.n_classes)
    rkg_state, rkg_value = px.RKG.key, px.RKG.key.get()
    try:
        model = MLP(dims, getattr(jax.nn, m.activation), m.init_h)  # the study's getattr(jax.nn, act_fn)
        load_weights(model, [w[0] for w in init_weights("pc", dims, m.activation, [cfg.seed])])
        optim_h = pxu.Optim(lambda: optax.chain(optax.sgd(t.h_lr, momentum=t.h_momentum)))
        optim_w = pxu.Optim(lambda: optax.adamw(t.w_lr, weight_decay=t.w_weight_decay), pxu.M(pxnn.LayerParam)(model))
        key = trial_key(cfg.seed)
        eval_status = pxc.STATUS.INIT if m.init_h == "forward" else STATUS_FORWARD
        test_labels = np.argmax(ds.test_y, axis=-1)
        out = {k: [] for k in ("energy", "energy_var", "w_norm", "w_grad_norm")}
        acc = []
        for epoch, order in enumerate(batch_orders(cfg.seed, n_b, t.epochs)):
            for position, idx in enumerate(order):
                h0 = None
                if m.init_h == "normal":
                    h0 = normal_draws(key, epoch, position, [(bs, m.width)] * 2, m.init_h_sd)
                e, gw = train_on_batch(t.T, jnp.asarray(ds.train_x[idx]), jnp.asarray(ds.train_y[idx]), h0,
                                       model=model, optim_w=optim_w, optim_h=optim_h)
                norm, var = _metrics(np.asarray(e))
                out["energy"].append(norm)
                out["energy_var"].append(var)
                out["w_grad_norm"].append([np.linalg.norm(np.asarray(g, np.float64)) for g in gw])
                out["w_norm"].append([np.linalg.norm(np.asarray(layer.nn.weight.get(), np.float64))
                                      for layer in model.layers])
            acc.append(np.mean([float(eval_on_batch(eval_status, jnp.asarray(x), jnp.asarray(y), model=model))
                                for x, y in zip(ds.test_x, test_labels)]))
    finally:
        px.RKG.key = rkg_state
        rkg_state.set(rkg_value)
    arrays = {k: np.asarray(v).reshape(t.epochs, n_b, *np.asarray(v[0]).shape) for k, v in out.items()}
    arrays["test_accuracy"] = np.asarray(acc)
    return arrays
