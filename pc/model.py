"""The PC and BP networks of Section 5.1 on pcx 0.6.3 (the paper's `utils/models.py`, ported).

PC: dims [in, h, h, out]; u_l = f(W_l h_{l-1} + b_l) for the two hidden layers, each followed by a
squared-error Vode; the output is linear, followed by a cross-entropy Vode whose state is clamped to
the one-hot label (`frozen`). BP: the same three layers with the activation applied to *every*
layer, the logits included (the paper's code did this: docs/paper-notes.md Q13), and one cross-entropy Vode.
Weights: one key per layer from `px.RandomKeyGenerator(seed)`, input to output, exactly as
`pxnn.Linear(..., rkg=rkg)` draws them; so seed 0 gives the paper's initial weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import pcx as px
import pcx.nn as pxnn
import pcx.predictive_coding as pxc

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "leaky_relu": jax.nn.leaky_relu,  # slope 0.01, as the paper
    "hard_tanh": jax.nn.hard_tanh,
    "relu": jax.nn.relu,
    "tanh": jax.nn.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,  # tanh approximation (jax's default), as the study's getattr(jax.nn, "gelu")
}
OUTPUT_ENERGIES = {"ce": pxc.ce_energy, "se": pxc.se_energy}


class PCModel(pxc.EnergyModule):
    """Predictive-coding MLP: two se-energy hidden Vodes, a frozen output Vode (ce, or se in the state-init study)."""

    def __init__(self, dims: Sequence[int], act_fn: Callable, *, rkg: px.RandomKeyGenerator,
                 output_energy: str = "ce") -> None:
        super().__init__()
        self.act_fn = px.static(act_fn)
        self.layers = [pxnn.Linear(dims[i], dims[i + 1], rkg=rkg) for i in range(len(dims) - 1)]
        self.vodes = [pxc.Vode() for _ in range(len(dims) - 2)] + [pxc.Vode(OUTPUT_ENERGIES[output_energy])]
        self.vodes[-1].h.frozen = True

    def __call__(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """Forward pass; with `y`, the output state is clamped to it (training)."""
        last = len(self.layers) - 1
        for i, (layer, vode) in enumerate(zip(self.layers, self.vodes)):
            z = layer(x)
            x = vode(z if i == last else self.act_fn(z))
        if y is not None:
            self.vodes[-1].set("h", y)
        return self.vodes[-1].get("u")


class BPModel(pxc.EnergyModule):
    """Backprop MLP as the paper ran it: activation after every layer (logits too), one ce Vode."""

    def __init__(self, dims: Sequence[int], act_fn: Callable, *, rkg: px.RandomKeyGenerator,
                 output_energy: str = "ce") -> None:
        super().__init__()
        if output_energy != "ce":
            raise ValueError(f"model.output_energy: backprop trains on ce, got {output_energy!r}")
        self.act_fn = px.static(act_fn)
        self.layers = [pxnn.Linear(dims[i], dims[i + 1], rkg=rkg) for i in range(len(dims) - 1)]
        self.vodes = [pxc.Vode(pxc.ce_energy)]
        self.vodes[-1].h.frozen = True

    def __call__(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        for layer in self.layers:
            x = self.act_fn(layer(x))
        self.vodes[-1](x)
        if y is not None:
            self.vodes[-1].set("h", y)
        return self.vodes[-1].get("u")


def build_model(kind: str, dims: Sequence[int], activation: str, seed: int | jax.Array = 0,
                output_energy: str = "ce"):
    """A fresh PC or BP model whose weights come from `px.RandomKeyGenerator(seed)` (the output energy
    does not change them)."""
    cls = {"pc": PCModel, "bp": BPModel}[kind]
    return cls(dims, ACTIVATIONS[activation], rkg=px.RandomKeyGenerator(seed), output_energy=output_energy)


def weights(model: pxc.EnergyModule) -> list[jax.Array]:
    """[W_1, b_1, W_2, b_2, W_3, b_3] (W of shape (out, in)), input to output."""
    return [p for layer in model.layers for p in (layer.nn.weight.get(), layer.nn.bias.get())]


def set_weights(model: pxc.EnergyModule, values: Sequence[jax.Array]) -> None:
    """Inverse of `weights` (values may carry a leading trial axis)."""
    for k, layer in enumerate(model.layers):
        layer.nn.weight.set(values[2 * k])
        layer.nn.bias.set(values[2 * k + 1])


def init_weights(kind: str, dims: Sequence[int], activation: str, seeds: Sequence[int]) -> list[jax.Array]:
    """Initial weights of many trials, stacked on a leading trial axis, one trial per seed.

    Each trial's weights are exactly those of `build_model(kind, dims, activation, seed)`: the
    same `pxnn.Linear` code run under `jax.vmap` over the seeds (the threefry bits and the uniform
    transform are the same eagerly and traced; tests/pc check it bit for bit).
    """
    fn = _init_fn(kind, tuple(dims), activation)
    return list(fn(jnp.asarray(seeds, dtype=jnp.uint32)))


_INIT_CACHE: dict = {}


def _init_fn(kind: str, dims: tuple[int, ...], activation: str):
    key = (kind, dims, activation)
    if key not in _INIT_CACHE:
        _INIT_CACHE[key] = jax.jit(jax.vmap(lambda s: weights(build_model(kind, dims, activation, s))))
    return _INIT_CACHE[key]


__all__ = [
    "ACTIVATIONS", "OUTPUT_ENERGIES", "BPModel", "PCModel", "build_model", "init_weights", "set_weights", "weights",
]
