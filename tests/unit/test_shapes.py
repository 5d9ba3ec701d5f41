"""contracts.shapes: the shape and cost facts the planner, the calibration and the trainer share."""

from __future__ import annotations

import pytest

from contracts import shapes
from contracts.config import TrialConfig
from launch.plan import FLOPS_PER_S, estimate_trial_seconds


def cfg(**dotted) -> TrialConfig:
    return TrialConfig.from_mapping({}).replace(**dotted)


@pytest.mark.parametrize(("dotted", "dims"), [
    ({"data.dataset": "two_moons", "model.width": 64}, (2, 64, 64, 2)),
    ({"data.dataset": "two_circles", "model.width": 8}, (2, 8, 8, 2)),
    ({"data.dataset": "fashion_mnist", "model.width": 128}, (784, 128, 128, 10)),
    ({"data.dataset": "mnist", "model.width": 32, "data.resize": 14}, (196, 32, 32, 10)),
    # the constant-width ablation: in = h = out from resize and n_classes
    ({"data.dataset": "fashion_mnist", "model.width": 196, "data.resize": 14, "data.n_classes": 196},
     (196, 196, 196, 196)),
])
def test_layer_dims_follow_the_data_set_resize_and_classes(dotted, dims):
    assert shapes.layer_dims(cfg(**dotted)) == dims


def test_layer_dims_take_what_the_trainer_loaded():
    assert shapes.layer_dims(cfg(**{"model.width": 16}), d_in=5, n_out=3) == (5, 16, 16, 3)


def test_train_batches_are_whole_batches_of_the_samples_used():
    assert shapes.train_batches(cfg(**{"data.dataset": "fashion_mnist", "data.batch_size": 128})) == 468
    assert shapes.train_batches(cfg(**{"data.dataset": "fashion_mnist", "data.batch_size": 128,
                                       "data.train_subset": 1000})) == 7
    assert shapes.train_batches(cfg(**{"data.dataset": "two_moons", "data.n_samples": 140,
                                       "data.batch_size": 32})) == 4


def test_batch_flops_count_each_product_once_by_hand():
    dims = (2, 4, 4, 3)  # m = [16, 32, 24]: fwd 72, later 56
    assert shapes.forward_flops(dims) == 72.0
    # PC, T = 5: first layer once (16), later layers 2T + 1 = 11 times (616), weight gradients (72): 704 per sample
    assert shapes.batch_flops(dims, "pc", 5, 10) == 7040.0
    # BP: forward and weight gradients (2 x 72) and the input gradients of the later layers (56): 200 per sample
    assert shapes.batch_flops(dims, "bp", 5, 10) == shapes.batch_flops(dims, "bp", 50, 10) == 2000.0


def test_a_trials_flops_are_epochs_times_batches_times_batch_flops_and_the_planner_uses_them():
    c = cfg(**{"data.dataset": "two_moons", "model.width": 64, "train.T": 8, "train.epochs": 3,
               "data.n_samples": 1024, "data.batch_size": 32})
    per_batch = shapes.batch_flops((2, 64, 64, 2), "pc", 8, 32)
    assert shapes.trial_flops(c) == 3 * 32 * per_batch
    big = c.replace(**{"model.width": 4096})  # over MIN_TRIAL_S, so the estimate is the FLOP count over the rate
    assert estimate_trial_seconds(big, flops_per_s=FLOPS_PER_S["cpu"]) == pytest.approx(
        shapes.trial_flops(big) / FLOPS_PER_S["cpu"])


def test_the_group_cap_is_the_one_pc_memory_applies(monkeypatch):
    from pc import memory

    assert (memory.CPU_EXACT_MAX_GROUP, memory.ACCELERATOR_MAX_GROUP) == (shapes.MAX_GROUP["cpu"],
                                                                         shapes.MAX_GROUP["cuda"]) == (32, 4096)
    monkeypatch.delenv("PCSWEEP_MAX_GROUP", raising=False)
    assert memory.max_group_size() == 32  # this machine's JAX runs on CPU
