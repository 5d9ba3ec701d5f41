"""Shape and cost facts of a trial, written once: what the launcher, the calibration and the trainer agree on.

The classes and input width of each data set, a config's layer widths, its training batches per epoch, the
matmul FLOPs its training performs and the most trials one compiled program runs at once. Pure Python (no JAX,
no data loaded), so the launcher reads them on a login node; `pc` checks the FLOP count against the dot
instructions of the compiled program (tests/pc/test_pc_fast_paths.py), so the planner's FLOP model, the
calibration's scaling between shapes and the trainer count the same products.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.config import TrialConfig

N_CLASSES = {"two_moons": 2, "two_circles": 2, "fashion_mnist": 10, "mnist": 10}
FAMILIES = {"two_moons": "toy", "two_circles": "toy", "fashion_mnist": "images", "mnist": "images"}
IMAGE_TRAIN_SIZE = 60_000  # fashion_mnist and mnist train sets
IMAGE_SIDE = 28  # pixels per side before data.resize
TOY_INPUT_WIDTH = 2  # two moons, two circles: points in the plane
# The most trials one compiled program runs at once (`pc.memory.max_group_size`; $PCSWEEP_MAX_GROUP overrides):
# on CPU groups of 2..32 give bit-identical trials, from 64 on XLA vectorizes over the trial axis and the metrics
# can differ by a few ulps (docs/pc.md); accelerators are bounded by memory long before 4096.
MAX_GROUP = {"cpu": 32, "cuda": 4096}


def input_width(cfg: TrialConfig) -> int:
    """Features per sample: 784 for 28x28 images (data.resize**2 when resized), 2 for the toy sets."""
    d = cfg.data
    return (d.resize or IMAGE_SIDE) ** 2 if FAMILIES[d.dataset] == "images" else TOY_INPUT_WIDTH


def output_width(cfg: TrialConfig) -> int:
    """Output units: data.n_classes when given (it may exceed the set's classes), else the set's classes."""
    return cfg.data.n_classes or N_CLASSES[cfg.data.dataset]


def layer_dims(cfg: TrialConfig, d_in: int | None = None, n_out: int | None = None) -> tuple[int, ...]:
    """Layer widths [in, h, ..., h, out] (n_layers entries). `d_in`/`n_out` override what the config implies
    (the trainer passes what it loaded); the constant-width ablation gets in = h = out from data.resize and
    data.n_classes."""
    m = cfg.model
    d_in = input_width(cfg) if d_in is None else d_in
    n_out = output_width(cfg) if n_out is None else n_out
    return (d_in, *([m.width] * (m.n_layers - 2)), n_out)


def train_batches(cfg: TrialConfig) -> int:
    """Train batches per epoch (whole batches only, as `pc.datasets` cuts them)."""
    if FAMILIES[cfg.data.dataset] == "images":
        samples = min(IMAGE_TRAIN_SIZE, cfg.data.train_subset or IMAGE_TRAIN_SIZE)  # the first N (data.train_subset)
    else:
        samples = cfg.data.n_samples
    return max(1, samples // cfg.data.batch_size)


def forward_flops(dims: Sequence[int]) -> float:
    """Matmul FLOPs of one forward pass of one sample (2 per multiply-add)."""
    return float(sum(2 * a * b for a, b in zip(dims[:-1], dims[1:])))


def batch_flops(dims: Sequence[int], kind: str, T: int, batch_size: int) -> float:
    """Matmul FLOPs of one training batch of one trial: the products XLA runs after merging repeated ones.

    With m = the layers' matmuls (2*in*out each) and m' = those after the first:
    PC: the first layer once (the forward init, the hoisted first-layer product and the weight pass share it),
    the later layers forward at h(0), ..., h(T) (T + 1 times) and their input gradients in the T state steps,
    then the weight gradients (m). BP: the forward once, the weight gradients (m), the input gradients (m').
    Elementwise work is not counted.
    """
    m = [2 * a * b for a, b in zip(dims[:-1], dims[1:])]
    fwd, later = sum(m), sum(m[1:])
    per_sample = m[0] + (2 * T + 1) * later + fwd if kind == "pc" else 2 * fwd + later
    return float(per_sample * batch_size)


def trial_flops(cfg: TrialConfig) -> float:
    """Matmul FLOPs of one whole trial's training: epochs x batches x `batch_flops` (the test pass, one forward
    per test sample per epoch, is a few per cent and left out)."""
    dims = layer_dims(cfg)
    return cfg.train.epochs * train_batches(cfg) * batch_flops(dims, cfg.model.kind, cfg.train.T, cfg.data.batch_size)


__all__ = [
    "FAMILIES", "IMAGE_TRAIN_SIZE", "MAX_GROUP", "N_CLASSES", "batch_flops", "forward_flops", "input_width",
    "layer_dims", "output_width", "train_batches", "trial_flops",
]
