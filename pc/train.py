"""The group program: many trials of one shape trained together, one compiled call per epoch.

Per trial and mini-batch this is the paper's `train_on_batch` on pcx 0.6.3 (docs/paper-notes.md section 3):
forward init (h <- u, output clamped to the label); T plain-SGD steps on the hidden states, each
sample moving by gamma * dE_i/dh_i (its own energy's gradient, not the batch mean's: docs/paper-notes.md trap (a)),
the clamped output state never moving (docs/paper-notes.md trap (b)); then one weight step at the final states.
The forward init and the weight step are pcx's (`pxf.value_and_grad` of the model's energy, `pxu.Optim`); the T
state steps are the same formulas written out in plain JAX (`pc.state_steps`, bit for bit the results pcx's
autodiff gave here). The program is

    pxf.jit( pxf.vmap(over trials)( pxf.scan(over batches)(train_on_batch) ; test accuracy ) )

with per-trial arrays for seed-derived weights, gamma, w_lr, momentum and weight decay (the last
three live in an `optax.inject_hyperparams` state with a trial axis). One `GroupProgram` exists per
(static config, group size) and is reused, so new values and seeds never recompile. For large
shapes the state steps may multiply by transposed weight copies (`pc.transposed.choose`, measured
per device and shape): same math, faster matmuls where NN products are slow. Every dot is traced at the
trials' `train.matmul_precision` (`pc.precision`). Between groups a program keeps its compiled
executable but drops its arrays (`GroupProgram.loaded`), so device memory stays flat over a task.

Metrics per trial and batch (docs/design.md section 5): energy, energy_var [T+1, L] (t = 0 before the
first state update, t = T at the states of the weight step); w_norm (after the update),
w_grad_norm, w_grad_var [n_linear] (weights only, gradients taken before `Optim.step`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pcx as px
import pcx.functional as pxf
import pcx.nn as pxnn
import pcx.predictive_coding as pxc
import pcx.utils as pxu

from contracts.config import TrialConfig, static_key
from contracts.shapes import batch_flops, forward_flops, layer_dims
from pc import state_init, state_steps
from pc.memory import per_trial_bytes
from pc.model import build_model, init_weights, set_weights
from pc.precision import precision_scope
from pc.transposed import TransposeChoice, choose, transposed_weights_pay

# Group sizes a program is compiled for; a group is padded up to the next one (`chunk_sizes`). No 1:
# XLA compiles a trial axis of size 1 differently (it drops it), which changes float rounding, while
# on CPU every size from 2 to 32 gives bit-identical trials. So a trial run alone is padded to 2 and
# equals itself in any group of up to 32. From 64 on, XLA's CPU code vectorizes over the trial axis and
# the metrics can differ by a few ulps, so tasks on CPU stop at 32 (`pc.memory.max_group_size`); up to
# 4096 on a GPU, which needs that much work per kernel at small shapes. The memory budget caps each shape.
GROUP_SIZES = tuple(2**k for k in range(1, 13))  # 2 .. 4096
PAD_ALWAYS = 128  # pad up to this size whatever the waste (fewer programs to compile)
MAX_PAD_WASTE = 0.25  # above PAD_ALWAYS, pad only when at most this fraction of the program is padding


_VODE_AXES = pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0))


@dataclass(frozen=True)
class StateRule:
    """The static part of how a PC trial's states start and move (one compiled program per rule).

    init_h: forward | zero | normal (`pc.state_init`), init_h_sd: the normal's sd; output_energy: ce | se;
    momentum: whether the state SGD carries a velocity (its per-trial value is an array, `train.h_momentum`).
    The defaults are Section 5.1's rule.
    """

    init_h: str = "forward"
    init_h_sd: float = 0.1
    output_energy: str = "ce"
    momentum: bool = False

    @classmethod
    def of(cls, cfg: TrialConfig) -> StateRule:
        m = cfg.model
        return cls(m.init_h, m.init_h_sd, m.output_energy, cfg.train.h_momentum != 0)


def dims_of(cfg: TrialConfig, d_in: int, n_classes: int) -> tuple[int, ...]:
    """[in, h, h, out] (n_layers = 4) for the data as loaded (`contracts.shapes.layer_dims`)."""
    return layer_dims(cfg, d_in, n_classes)


def w_optimizer_factory(name: str):
    """The weight optimizer with its per-trial numbers held in the optax state (a trial axis).

    sgd: optax.sgd(lr, momentum) (momentum 0.0, not None, so every trial has the same state);
    adamw: optax.adamw(lr, weight_decay=wd) with optax's other defaults, as the paper.
    """
    if name == "sgd":
        return lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=0.0, momentum=0.0)
    if name == "adamw":
        return lambda: optax.inject_hyperparams(optax.adamw)(learning_rate=0.0, weight_decay=0.0)
    raise ValueError(f"train.w_optimizer: got {name!r}; expected sgd or adamw")


def _hyperparams(cfgs: Sequence[TrialConfig]) -> dict[str, np.ndarray]:
    t = [c.train for c in cfgs]
    if cfgs[0].train.w_optimizer == "sgd":
        return {"learning_rate": np.array([x.w_lr for x in t]), "momentum": np.array([x.w_momentum for x in t])}
    return {"learning_rate": np.array([x.w_lr for x in t]), "weight_decay": np.array([x.w_weight_decay for x in t])}


@pxf.vmap(_VODE_AXES, in_axes=(0, 0), out_axes=0)
def _forward(x, y, *, model):
    return model(x, y)


@pxf.vmap(_VODE_AXES, in_axes=(0,), out_axes=(None, 0), axis_name="batch")
def _energy(x, *, model):
    """Batch-mean total energy (the paper's pmean) and per-sample per-layer energies [L]."""
    model(x)
    per_layer = _layer_energies(model)
    return jax.lax.pmean(model.energy(), "batch"), per_layer


def _layer_energies(model) -> jax.Array:
    """Per-sample energy of each Vode [L] (inside the batch vmap), for the metrics only.

    Squared-error Vodes: 0.5 * sum((h - u)^2) summed as a fixed tree (`tree_sum`), the value pcx's
    `se_energy` gives up to rounding. XLA on CPU split pcx's sum into windows of 32 and wrote every squared
    error out first, which took ~10-20% of a FashionMNIST batch; the tree fuses with the square. The
    gradient still comes from pcx's own energy (`model.energy()`), whose value is not used, so not computed.
    Other Vodes (the cross-entropy output) use pcx's `vode.energy()`.
    """
    out = []
    for vode in model.vodes:
        if vode.energy_fn.get() is pxc.se_energy:
            error = vode.get("h") - vode.get("u")
            out.append(0.5 * state_steps.tree_sum(error * error, 0))
        else:
            out.append(vode.energy())
    return jnp.stack(out)


def train_on_batch(
    x, y, h_lr, *, model, optim_w, kind: str, T: int, transpose_w: bool = False, rule: StateRule | None = None,
    h_momentum=None, init_key=None, epoch=0, position=0,
) -> dict[str, jax.Array]:
    """One mini-batch of one trial; returns its metrics (see the module docstring).

    transpose_w: give the state steps W^T copies (see `pc.transposed`); same math.
    rule: how states start and move (`StateRule`; None = Section 5.1's forward init, plain SGD, ce output);
    h_momentum: the trial's state momentum (used when `rule.momentum`); init_key, epoch, position: the trial's
    key and this batch's place, for `init_h=normal` (`pc.state_init`).
    """
    rule = rule or StateRule()
    with pxu.step(model, (pxc.STATUS.INIT, None), clear_params=pxc.VodeParam.Cache):
        _forward(x, y, model=model)
    if kind == "pc":
        # Forward init set every hidden h to its u, so h_1 now holds u_1 = f(W_1 x + b_1), fixed during inference
        # (x is clamped). The weights do not move in the T steps either; for large shapes their transposed copies
        # make the state gradients fast NT products (`pc.transposed`; the barrier keeps XLA from folding the
        # transpose back into W).
        # With init_h zero or normal the states then start elsewhere; u_1 is still the forward h_1.
        forward_states = [vode.get("h") for vode in model.vodes[:-1]]
        hidden = state_init.initial_states(rule.init_h, forward_states, init_key, epoch, position, rule.init_h_sd)
        weights = [(layer.nn.weight.get(), layer.nn.bias.get()) for layer in model.layers[1:]]
        w_t = None
        if transpose_w:
            w_t = jax.lax.optimization_barrier([w.T for w, _ in weights])
        hidden, e_steps = state_steps.inference(hidden, forward_states[0], weights, y, model.act_fn, h_lr, T, w_t,
                                                rule.output_energy, h_momentum if rule.momentum else None)
        for vode, h in zip(model.vodes[:-1], hidden):
            vode.set("h", h)
    with pxu.step(model, clear_params=pxc.VodeParam.Cache):
        (_, (e,)), g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]), has_aux=True)(_energy)(
            x, model=model
        )
    if kind == "pc":
        energies = jnp.concatenate([e_steps, e[None]])  # [T+1, B, L]
    else:  # BP: T = 1 and no state to move, so the loss at t = 0 is the loss at t = T
        energies = jnp.stack([e, e])
    grads = [layer.nn.weight.get() for layer in g["model"].layers]
    stats = [_norm_and_var(gw) for gw in grads]  # before Optim.step
    w_grad_norm = jnp.stack([norm for norm, _ in stats])
    w_grad_var = jnp.stack([var for _, var in stats])
    optim_w.step(model, g["model"])
    w_norm = jnp.stack([_norm(layer.nn.weight.get()) for layer in model.layers])
    model.clear_params(pxc.VodeParam)  # keep the scan carry's structure fixed
    return {
        "energy": jnp.linalg.norm(energies, axis=1),
        "energy_var": _var(energies, axis=1),
        "w_norm": w_norm,
        "w_grad_norm": w_grad_norm,
        "w_grad_var": w_grad_var,
    }


def _sum_all(x: jax.Array) -> jax.Array:
    """Sum of every element as fixed trees, the leading axis first (no flattening, so no padded copy).

    For a weight of shape (out, in) the first halvings add whole rows, which XLA fuses with the
    elementwise work that produced them (a square, a deviation) into one pass over the weight; a flattened
    tree had to materialize a padded copy of every weight whose size is not a power of two (784 x 1024).
    """
    while x.ndim > 1:
        x = state_steps.tree_sum(x, 0)
    return state_steps.tree_sum(x, 0)


def _norm(x: jax.Array) -> jax.Array:
    """Frobenius norm in a fixed order, squaring inside the first halving (one fused pass over the weight;
    squaring first made XLA write the whole squared weight out and read it back)."""
    half = x.shape[0] // 2
    if x.ndim < 2 or x.shape[0] % 2:
        return jnp.sqrt(_sum_all(x * x))
    a, b = x[:half], x[half:]
    return jnp.sqrt(_sum_all(a * a + b * b))


def _norm_and_var(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(Frobenius norm, population variance) of a weight-shaped array in two fused passes, fixed order.

    var = sum((x - mean)^2) / n (two passes, as `jnp.var`); the norm reuses both sums,
    |x|^2 = n var + n mean^2 (exact algebra; both terms are >= 0, so no cancellation), instead of a third
    pass over the array. Why: at FashionMNIST shapes these statistics were separate passes that each
    read (and some wrote) the whole weight, ~15% of a batch at T = 1 on CPU (docs/pc.md).
    """
    n = x.size
    mean = _sum_all(x) / n
    deviation = x - mean
    var = _sum_all(deviation * deviation) / n
    return jnp.sqrt(n * (var + mean * mean)), var


def _var(x: jax.Array, axis: int) -> jax.Array:
    """`jnp.var` along `axis` (population variance, two passes), summed in an order XLA cannot change.

    With `jnp.var`, XLA on CPU reduced in a different order for some trial-axis sizes (64-4096 against
    2-32), changing the last bits; elementwise adds in a fixed tree round the same in every group size.
    (The weight statistics use `_norm_and_var`, the same rule over a whole array.)
    """
    n = x.shape[axis]
    deviation = x - jnp.expand_dims(state_steps.tree_sum(x, axis) / n, axis)
    return state_steps.tree_sum(deviation * deviation, axis) / n


def _correct(x, y, *, model):
    """Correct predictions of one test batch: forward init without a label, argmax of logits."""
    with pxu.step(model, (pxc.STATUS.INIT, None), clear_params=pxc.VodeParam.Cache):
        logits = _forward(x, None, model=model)
    model.clear_params(pxc.VodeParam)
    return jnp.sum(jnp.argmax(logits, axis=-1) == jnp.argmax(y, axis=-1))


def _make_epoch(kind: str, T: int, transpose_w: bool, precision: str = "default", rule: StateRule | None = None):
    """Compiled epoch: (perm [N, B], h_lr [N], h_momentum [N], init_key [N, 2], epoch, data)
    -> (metrics [N, B, ...], accuracy [N]).

    precision: `train.matmul_precision`, in effect while the program is traced (so in every dot).
    rule: the static state rule (`StateRule`); the per-trial momentum and key enter as arrays.
    """

    def per_trial(perm, h_lr, h_momentum, init_key, epoch, xs, ys, test_x, test_y, *, model, optim_w):
        def batch_step(idx_pos, *, model, optim_w):
            idx, position = idx_pos
            return (), train_on_batch(xs[idx], ys[idx], h_lr, model=model, optim_w=optim_w, kind=kind, T=T,
                                      transpose_w=transpose_w, rule=rule, h_momentum=h_momentum,
                                      init_key=init_key, epoch=epoch, position=position)

        positions = jnp.arange(perm.shape[0], dtype=jnp.int32)
        _, metrics = pxf.scan(batch_step, xs=(perm, positions))(model=model, optim_w=optim_w)

        def test_step(xy, *, model):
            return (), _correct(*xy, model=model)

        _, correct = pxf.scan(test_step, xs=(test_x, test_y))(model=model)
        n_test = test_x.shape[0] * test_x.shape[1]
        return metrics, correct.sum() / n_test

    trials = pxf.vmap(
        {"model": pxu.M(pxnn.LayerParam).to((None, 0)), "optim_w": 0},
        in_axes=(0, 0, 0, 0, None, None, None, None, None),
        out_axes=0,
    )(per_trial)

    def traced(*args, **kwargs):
        # Every `pxf.vmap` splits the random key it is given (pcx's global RKG by default) into one key per
        # vmapped element and hands key[0] back out; nothing here draws random numbers, but through the global
        # key those splits were threaded out of the program, 11 threefry loops per batch that XLA could not
        # drop (compile 6.3 s -> 2.1 s at two moons width 128, no change in any result). A local generator
        # whose key is never returned makes them dead code.
        with precision_scope(precision):
            return trials(*args, **kwargs, **{"__RKG": px.RandomKeyGenerator(0)})

    return pxf.jit()(traced)


class GroupProgram:
    """One compiled program for trials sharing `static_key` (same shapes), `n` trials at a time.

    Holds one pcx model and one weight optimizer whose arrays carry a leading trial axis; `start`
    loads new trials into them, `epoch` trains one epoch, `release` drops the arrays again (use
    `loaded`, which does both). Reusing the same objects is what keeps the jit cache warm (a new pcx
    model or `Optim.init` would recompile). `transpose_w` defaults to `pc.transposed.choose` for the
    shape (tests force either path); `transpose_choice` says what was chosen and why.
    """

    def __init__(
        self, cfg: TrialConfig, d_in: int, n_classes: int, n: int, *, transpose_w: bool | None = None
    ) -> None:
        self.kind, self.T, self.n = cfg.model.kind, cfg.train.T, n
        self.dims = dims_of(cfg, d_in, n_classes)
        self.activation = cfg.model.activation
        self.w_optimizer = cfg.train.w_optimizer
        self.rule = StateRule.of(cfg)
        self.model = build_model(self.kind, self.dims, self.activation, 0, cfg.model.output_energy)
        self.model.train()
        for vode, width in zip(self.model.vodes, self.dims[-len(self.model.vodes):]):
            vode.shape.set((width,))  # what the first forward call would record
        self.optim_w = pxu.Optim(w_optimizer_factory(self.w_optimizer), pxu.M(pxnn.LayerParam)(self.model))
        self.precision = cfg.train.matmul_precision
        shape = f"B{cfg.data.batch_size} {'x'.join(map(str, self.dims))} T{self.T}"
        if transpose_w is not None:
            self.transpose_choice = TransposeChoice(shape, transpose_w, "forced", "argument")
        elif self.kind != "pc":
            self.transpose_choice = TransposeChoice(shape, False, "auto", "bp-has-no-state-steps")
        else:
            self.transpose_choice = choose(self.dims, cfg.data.batch_size, self.T)
        self._epoch = _make_epoch(self.kind, self.T, self.transpose_choice.use, self.precision, self.rule)
        self._h_lr = self._h_momentum = self._init_keys = None
        self.release()

    def start(self, cfgs: Sequence[TrialConfig]) -> None:
        """Load the initial weights, optimizer states and per-trial numbers of `n` trials."""
        if len(cfgs) != self.n:
            raise ValueError(f"GroupProgram of size {self.n} got {len(cfgs)} trials")
        set_weights(self.model, init_weights(self.kind, self.dims, self.activation, [c.seed for c in cfgs]))
        state = jax.vmap(self.optim_w.optax_opt.init)(pxu.M(pxnn.LayerParam)(self.model))
        hyper = dict(state.hyperparams)
        for name, values in _hyperparams(cfgs).items():
            hyper[name] = jnp.asarray(values, dtype=hyper[name].dtype)
        self.optim_w.state.set(state._replace(hyperparams=hyper))
        self._h_lr = jnp.asarray([c.train.h_lr for c in cfgs], dtype=jnp.float32)
        self._h_momentum = jnp.asarray([c.train.h_momentum for c in cfgs], dtype=jnp.float32)
        self._init_keys = _trial_keys(jnp.asarray([c.seed for c in cfgs], dtype=jnp.uint32))

    def release(self) -> None:
        """Drop the group's arrays (weights, optimizer state, per-trial numbers); keep the executable.

        The next `start` sets arrays of the same shapes again, so the compiled program is reused.
        """
        set_weights(self.model, [None] * (2 * len(self.model.layers)))
        self.optim_w.state.set(None)
        self.model.clear_params(pxc.VodeParam)
        self._h_lr = self._h_momentum = self._init_keys = None

    @contextlib.contextmanager
    def loaded(self, cfgs: Sequence[TrialConfig]) -> Iterator[GroupProgram]:
        """`start(cfgs)`, and `release()` when the block ends (also on an error)."""
        try:
            self.start(cfgs)
            yield self
        finally:
            self.release()

    def lower(self, perm: jax.Array, train_x: jax.Array, train_y: jax.Array, test_x: jax.Array,
              test_y: jax.Array, epoch: int = 0):
        """The loaded program lowered for these arguments (jax's `Lowered`: `.as_text()`, `.compile()`), for
        tests and benchmarks that read its HLO or memory analysis."""
        kwargs = px.tree_ref({"model": self.model, "optim_w": self.optim_w, "__RKG": px.RKG})
        return self._epoch.wrap_fn.lower(perm, self._h_lr, self._h_momentum, self._init_keys,
                                         jnp.asarray(epoch, dtype=jnp.int32), train_x, train_y, test_x, test_y,
                                         **kwargs)

    def epoch(self, perm: np.ndarray, data: Mapping[str, jax.Array],
              epoch: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Train one epoch (the `epoch`-th, from 0: it seeds the normal state draws); perm [n, B] is each
        trial's batch order. Returns numpy metrics, accuracy."""
        metrics, acc = self._epoch(
            jnp.asarray(perm, dtype=jnp.int32), self._h_lr, self._h_momentum, self._init_keys,
            jnp.asarray(epoch, dtype=jnp.int32), data["train_x"], data["train_y"],
            data["test_x"], data["test_y"], model=self.model, optim_w=self.optim_w,
        )
        return {k: np.asarray(v) for k, v in metrics.items()}, np.asarray(acc)


_trial_keys = jax.jit(jax.vmap(state_init.trial_key))

_PROGRAMS: dict[tuple, GroupProgram] = {}


def group_sizes(
    cfg: TrialConfig, d_in: int, n_classes: int, mem_budget_bytes: float, *, n_batches: int = 0,
    max_size: int = GROUP_SIZES[-1],
) -> tuple[int, ...]:
    """Padded sizes allowed for this shape: those up to `max_size` whose estimated memory fits the budget.

    (1,) when not even two trials fit: then every trial of this shape runs alone, consistently.
    n_batches: training batches per epoch (the per-batch metrics the program returns), if known.
    max_size: `pc.memory.max_group_size()` in a task (32 on CPU, where larger groups are not bit-identical).
    """
    per_trial = per_trial_bytes(dims_of(cfg, d_in, n_classes), cfg.data.batch_size, cfg.train.T, n_batches)
    fits = [n for n in GROUP_SIZES if n <= max_size and n * per_trial <= mem_budget_bytes]
    return tuple(fits) or (1,)


def chunk_sizes(n_trials: int, sizes: Sequence[int]) -> list[tuple[int, int]]:
    """How a group of `n_trials` is cut: [(trials, padded size)], largest first.

    Full chunks of the largest allowed size; the rest is padded up to the next size when that size is at
    most PAD_ALWAYS or at most MAX_PAD_WASTE of it would be padding, and otherwise cut into the largest
    size that fits and what is left. Up to 128 trials this is the old rule (always pad: one program);
    above, a big program is not compiled for a group that would fill half of it.
    """
    out, rest, top = [], n_trials, sizes[-1]
    while rest > 0:
        if rest >= top:
            out.append((top, top))
            rest -= top
            continue
        up = padded_size(rest, sizes)
        if up <= PAD_ALWAYS or up - rest <= MAX_PAD_WASTE * up or up == sizes[0]:
            out.append((rest, up))
            break
        down = max(s for s in sizes if s <= rest)
        out.append((down, down))
        rest -= down
    return out


def get_program(cfg: TrialConfig, d_in: int, n_classes: int, n: int) -> GroupProgram:
    """The cached program for this static config and padded group size (built on first use)."""
    key = (static_key(cfg), d_in, n_classes, n)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = GroupProgram(cfg, d_in, n_classes, n)
    return _PROGRAMS[key]


def drop_program(cfg: TrialConfig, d_in: int, n_classes: int, n: int) -> None:
    """Forget a program whose objects may hold a failed trace's leftovers."""
    _PROGRAMS.pop((static_key(cfg), d_in, n_classes, n), None)


def padded_size(n: int, sizes: Sequence[int]) -> int:
    """Smallest allowed size >= n (n <= max(sizes))."""
    return next(s for s in sizes if s >= n)


def flops_per_trial_epoch(cfg: TrialConfig, d_in: int, n_classes: int, n_batches: int, n_test: int) -> float:
    """Matmul FLOPs one trial-epoch performs (2 per multiply-add): the products XLA actually runs.

    XLA merges repeated identical products (CSE), so each is counted once: `contracts.shapes.batch_flops` per
    training batch (the one count the planner and the calibration use too), plus one forward per test sample.
    tests/pc check this against the dot instructions of the compiled program.
    """
    dims = dims_of(cfg, d_in, n_classes)
    train = batch_flops(dims, cfg.model.kind, cfg.train.T, cfg.data.batch_size) * n_batches
    return train + forward_flops(dims) * n_test


__all__ = [
    "GROUP_SIZES", "GroupProgram", "StateRule", "chunk_sizes", "dims_of", "drop_program", "flops_per_trial_epoch",
    "get_program", "group_sizes", "padded_size", "train_on_batch", "transposed_weights_pay",
    "w_optimizer_factory",
]
