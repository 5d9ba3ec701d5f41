"""Claims of issue 3 about the training itself: states move, energies fall, seeds, init, groups."""

from __future__ import annotations

import random

import numpy as np
import pcx as px
import pcx.nn as pxnn
import pytest
from pc_cases import BASE, SGD_A, SGD_B, SGD_DIVERGE, SGD_SMALL_GAMMA

from pc.model import init_weights, weights
from pc.trials import TrialFailure, batch_orders, iter_trial_results


def _by_id(results):
    return {r.trial_id: r for r in results}


def test_metric_shapes_follow_design_section_5(sgd_alone, bp_alone):
    e, b, t = SGD_A.train.epochs, 8, SGD_A.train.T
    assert sgd_alone.arrays["energy"].shape == (e, b, t + 1, 3)
    assert sgd_alone.arrays["energy_var"].shape == (e, b, t + 1, 3)
    for name in ("w_norm", "w_grad_norm", "w_grad_var"):
        assert sgd_alone.arrays[name].shape == (e, b, 3)
    assert sgd_alone.arrays["test_accuracy"].shape == (e,)
    assert all(v.dtype == np.float32 for v in sgd_alone.arrays.values())


def test_hidden_states_move_with_forward_init(sgd_alone):
    energy = sgd_alone.arrays["energy"]  # [E, B, T+1, L]
    # Forward init: hidden errors are exactly zero before the first state update ...
    assert np.all(energy[:, :, 0, :2] == 0.0)
    # ... the output error reaches hidden layer 2 after one step and layer 1 after two.
    assert np.all(energy[:, :, 1, 1] > 0.0)
    assert np.all(energy[:, :, 2, 0] > 0.0)
    assert np.all(energy[:, :, :, 2] > 0.0)


def test_energies_fall_on_average_over_t_for_small_gamma(sgd_group):
    small = _by_id(sgd_group)[SGD_SMALL_GAMMA.trial_id]
    # Total energy per sample falls under small-step gradient descent on the states; check the
    # output layer (which holds almost all of it) and the sum of the layers, averaged over batches.
    energy = small.arrays["energy"].mean(axis=(0, 1))  # [T+1, L]
    assert np.all(np.diff(energy[:, 2]) < 0)
    assert energy[-1].sum() < energy[0].sum()


def test_bp_has_one_energy_layer_and_T_1(bp_alone):
    energy = bp_alone.arrays["energy"]
    assert energy.shape == (2, 8, 2, 1)
    np.testing.assert_array_equal(energy[:, :, 0], energy[:, :, 1])  # no states to move
    assert bp_alone.arrays["w_norm"].shape == (2, 8, 3)  # three weight matrices still recorded


def test_seed_0_initial_weights_equal_pxnn_linear_layer_by_layer():
    dims = (2, 16, 16, 2)
    stacked = init_weights("pc", dims, "leaky_relu", [0, 7])
    rkg = px.RandomKeyGenerator(0)
    for k in range(3):
        layer = pxnn.Linear(dims[k], dims[k + 1], rkg=rkg)
        np.testing.assert_array_equal(np.asarray(stacked[2 * k][0]), np.asarray(layer.nn.weight.get()))
        np.testing.assert_array_equal(np.asarray(stacked[2 * k + 1][0]), np.asarray(layer.nn.bias.get()))
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and seed 7 differs from seed 0
    assert np.abs(np.asarray(stacked[2])).max() <= 1 / np.sqrt(16)
    assert not np.array_equal(np.asarray(stacked[0][0]), np.asarray(stacked[0][1]))


def test_group_program_starts_from_the_seed_weights():
    from pc.train import get_program

    program = get_program(SGD_A, 2, 2, 4)
    program.start([SGD_A, SGD_B, SGD_A, SGD_B])
    loaded = weights(program.model)
    expected = init_weights("pc", (2, 16, 16, 2), "leaky_relu", [SGD_A.seed, SGD_B.seed])
    for got, want in zip(loaded, expected):
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))
        np.testing.assert_array_equal(np.asarray(got[2]), np.asarray(want[0]))


def test_batch_order_is_a_cumulative_seeded_shuffle():
    rng, order, expected = random.Random(3), list(range(8)), []
    for _ in range(3):
        rng.shuffle(order)
        expected.append(list(order))
    np.testing.assert_array_equal(batch_orders(3, 8, 3), expected)
    assert not np.array_equal(batch_orders(0, 8, 3), batch_orders(1, 8, 3))
    assert sorted(batch_orders(0, 8, 1)[0]) == list(range(8))


def test_same_seed_gives_identical_results_and_other_seeds_differ(sgd_alone):
    (again,) = iter_trial_results([SGD_A])
    for name, value in sgd_alone.arrays.items():
        np.testing.assert_array_equal(again.arrays[name], value, err_msg=name)
    (other,) = iter_trial_results([SGD_A.replace(seed=11)])
    assert not np.array_equal(other.arrays["energy"], sgd_alone.arrays["energy"])


def test_group_equals_single_bit_for_bit_with_sgd(sgd_alone, sgd_group):
    in_group = _by_id(sgd_group)[SGD_A.trial_id]
    for name, value in sgd_alone.arrays.items():
        np.testing.assert_array_equal(in_group.arrays[name], value, err_msg=name)


def test_group_equals_single_with_adamw(adam_alone, adam_group):
    in_group = _by_id(adam_group)[adam_alone.trial_id]
    for name, value in adam_alone.arrays.items():
        np.testing.assert_allclose(in_group.arrays[name], value, rtol=1e-5, atol=1e-7, err_msg=name)


def test_divergence_is_marked_and_isolated(sgd_alone, sgd_group, sgd_diverge_group):
    results = _by_id(sgd_diverge_group)
    bad = results[SGD_DIVERGE.trial_id]
    assert bad.status == "diverged"
    energy = bad.arrays["energy"].reshape(-1, *bad.arrays["energy"].shape[2:])
    nan_rows = np.isnan(energy).all(axis=(1, 2))
    first = int(np.argmax(nan_rows))
    assert nan_rows[first:].all()  # NaN-padded from where it diverged ...
    assert np.isfinite(energy[:first]).all()  # ... and finite before
    assert np.isnan(bad.arrays["test_accuracy"][first // 8 :]).all()
    # The other trials of the same program are bit-identical to their runs without it.
    assert results[SGD_A.trial_id].status == "ok"
    for name, value in sgd_alone.arrays.items():
        np.testing.assert_array_equal(results[SGD_A.trial_id].arrays[name], value, err_msg=name)
    b_before = _by_id(sgd_group)[SGD_B.trial_id]
    for name, value in b_before.arrays.items():
        np.testing.assert_array_equal(results[SGD_B.trial_id].arrays[name], value, err_msg=name)


def test_new_values_reuse_the_compiled_program(sgd_alone):
    from pc.train import get_program

    program = get_program(SGD_A, 2, 2, 2)
    compiled = program._epoch.wrap_fn._cache_size()
    list(iter_trial_results([SGD_A.replace(**{"seed": 9, "train.h_lr": 0.05, "train.w_lr": 0.2})]))
    assert program._epoch.wrap_fn._cache_size() == compiled == 1


def test_a_failing_group_does_not_poison_later_groups(monkeypatch):
    import pc.train as train

    def boom(*args, **kwargs):
        raise RuntimeError("injected failure inside the traced program")

    broken = BASE.replace(**{"model.width": 6, "train.epochs": 1})
    monkeypatch.setattr(train, "_correct", boom)
    results = list(iter_trial_results([broken, broken.replace(seed=1)]))
    assert all(isinstance(r, TrialFailure) for r in results)
    assert "injected failure" in results[0].error and "RuntimeError" in results[0].error
    monkeypatch.undo()
    # A fresh trace after the failure (new shape) works, and so does the same shape again.
    fresh = list(iter_trial_results([BASE.replace(**{"model.width": 5, "train.epochs": 1}), broken]))
    assert [r.status for r in fresh] == ["ok", "ok"]


def test_invalid_mappings_fail_as_trials():
    bad_mapping = {"model": {"width": -1}}
    randn = {**BASE.to_mapping(), "model": {**BASE.to_mapping()["model"], "init_h": "randn"}}  # docs/paper-notes.md Q12
    results = list(iter_trial_results([bad_mapping, randn]))
    assert [type(r) for r in results] == [TrialFailure, TrialFailure]
    assert "model.width" in results[0].error
    assert "model.init_h: got 'randn'; expected one of forward, zero, normal" in results[1].error


@pytest.mark.slow
def test_two_moons_pc_width_64_reaches_085_in_8_epochs():
    from contracts.config import TrialConfig

    # The paper's stability-study moons setting for PC-SGD (w_lr 0.03, momentum 0.9), gamma 0.1.
    cfg = TrialConfig.from_mapping({"model": {"width": 64}, "train": {"w_optimizer": "sgd", "w_lr": 0.03}})
    (result,) = iter_trial_results([cfg])
    assert result.status == "ok"
    assert result.arrays["test_accuracy"].shape == (8,)
    assert result.arrays["test_accuracy"][-1] > 0.85


def test_memory_budget_splits_groups_without_changing_results(sgd_group, monkeypatch):
    from pc.train import GROUP_SIZES, group_sizes

    assert group_sizes(SGD_A, 2, 2, 64 * 2**30) == GROUP_SIZES
    assert group_sizes(SGD_A.replace(**{"model.width": 4096}), 784, 10, 1e6) == (1,)
    two_fit = next(b for b in (2**k for k in range(10, 40)) if group_sizes(SGD_A, 2, 2, b) == (2,))
    monkeypatch.setenv("PCSWEEP_GROUP_MEM_GB", str(two_fit / 2**30))
    chunked = _by_id(iter_trial_results([SGD_A, SGD_B, SGD_SMALL_GAMMA]))  # chunks of 2 and 1 (padded)
    for expected in sgd_group:
        for name, value in expected.arrays.items():
            np.testing.assert_array_equal(chunked[expected.trial_id].arrays[name], value, err_msg=name)
