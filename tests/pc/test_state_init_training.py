"""The state-initialisation study's training options in the group program (not the pcx oracle: that is
test_state_init_parity.py): one trial's bits alone and in a group, the early-stopping rule, the config keys that
must not change old trial ids, and the data options."""

from __future__ import annotations

import numpy as np
import pytest
from pc_cases import BASE

from contracts.config import ID_NEUTRAL_DEFAULTS, ConfigError, TrialConfig, static_key, trial_id
from pc.early_stop import epochs_to_train
from pc.trials import TrialFailure, _mark_divergence, iter_trial_results

STUDY = BASE.replace(**{"model.output_energy": "se", "model.activation": "gelu", "train.w_optimizer": "adamw",
                        "train.w_lr": 0.01, "train.h_lr": 0.2})


def _run(configs):
    results = list(iter_trial_results(configs))
    failures = [r for r in results if isinstance(r, TrialFailure)]
    assert not failures, failures[0].error if failures else ""
    return {r.trial_id: r for r in results}


@pytest.fixture(scope="module")
def normal_runs():
    """A normal-init trial with momentum alone (padded to 2) and in a group of 3 with other seeds and values."""
    a = STUDY.replace(**{"model.init_h": "normal", "train.h_momentum": 0.5})
    b = a.replace(**{"seed": 7, "train.h_momentum": 0.25, "train.h_lr": 0.05})
    c = a.replace(**{"seed": 8, "train.w_lr": 0.003})
    return a, _run([a])[a.trial_id], _run([b, a, c])


def test_normal_init_gives_the_same_bits_alone_and_in_a_group(normal_runs):
    a, alone, group = normal_runs
    for name, value in alone.arrays.items():
        np.testing.assert_array_equal(group[a.trial_id].arrays[name], value, err_msg=name)


def test_normal_draws_differ_between_trials_and_batches(normal_runs):
    a, alone, group = normal_runs
    e0 = alone.arrays["energy"][:, :, 0, 0]  # [E, B] energy of layer 1 at t = 0 (the draw against u_1)
    assert len(np.unique(e0)) == e0.size  # a fresh draw every batch and epoch
    other = group[a.replace(**{"seed": 8, "train.w_lr": 0.003}).trial_id].arrays["energy"][0, 0, 0, 0]
    assert other != e0[0, 0]


def test_init_rules_change_the_first_energies_and_momentum_changes_later_steps():
    rules = {r: STUDY.replace(**{"model.init_h": r}) for r in ("forward", "zero")}
    mom = rules["zero"].replace(**{"train.h_momentum": 0.5})
    out = _run([*rules.values(), mom])
    fwd, zero, zero_mom = (out[c.trial_id].arrays["energy"][0, 0] for c in (*rules.values(), mom))  # [T+1, L]
    assert fwd[0, 0] == 0 and fwd[0, 1] == 0  # forward: h = u at t = 0
    assert zero[0, 0] > 0 and zero[0, 1] > 0  # zero: h = 0 is far from u
    np.testing.assert_array_equal(zero_mom[:2], zero[:2])  # the first step has no velocity yet
    assert not np.array_equal(zero_mom[2:], zero[2:])


def test_early_stop_rule_counts_stale_epochs_from_25_and_low_accuracy_anywhere():
    assert epochs_to_train([0.5] * 40) == 26  # best at epoch 0, stale >= 5 first checked at e = 25
    assert epochs_to_train([0.5] * 25) is None
    assert epochs_to_train([0.1] * 5) == 5  # five epochs below 0.15
    assert epochs_to_train([0.1, 0.1, 0.2, 0.1, 0.1, 0.1, 0.1]) is None  # the count restarts
    assert epochs_to_train([0.6] * 11 + [0.4] * 5) == 16  # below 0.5 counts from e > 10 only
    assert epochs_to_train([0.4] * 11) is None
    rising = [0.5 + 0.01 * e for e in range(32)]
    assert epochs_to_train(rising) is None
    assert epochs_to_train([0.5 + 0.01 * e for e in range(25)] + [0.7] * 7) == 30  # best at e = 24: stale 5 at 29
    assert epochs_to_train([0.5 + 0.01 * e for e in range(25)] + [0.74] * 7) == 30  # equal is not a new best


def test_early_stopped_trial_keeps_its_epochs_and_status_ok():
    stall = STUDY.replace(**{"train.epochs": 28, "train.w_lr": 1e-12, "train.early_stop": True})
    keep = stall.replace(**{"train.early_stop": False})
    out = _run([stall, keep])
    stopped, full = out[stall.trial_id], out[keep.trial_id]
    assert stopped.status == full.status == "ok"
    acc = stopped.arrays["test_accuracy"]
    assert np.isfinite(acc[:26]).all() and np.isnan(acc[26:]).all()
    assert np.isnan(stopped.arrays["energy"][26:]).all() and np.isfinite(stopped.arrays["energy"][:26]).all()
    assert np.isfinite(full.arrays["test_accuracy"]).all()  # its group-mate trained every epoch
    np.testing.assert_array_equal(full.arrays["energy"][:26], stopped.arrays["energy"][:26])


def test_mark_divergence_ignores_the_epochs_after_an_early_stop():
    arrays = {k: np.ones((4, 2, 3, 2), np.float32) for k in ("energy", "energy_var")}
    arrays |= {k: np.ones((4, 2, 3), np.float32) for k in ("w_norm", "w_grad_norm", "w_grad_var")}
    arrays["test_accuracy"] = np.ones(4, np.float32)
    arrays["energy"][1, 1, 0, 0] = np.inf
    assert _mark_divergence({k: v.copy() for k, v in arrays.items()}, 1) == "ok"
    copy = {k: v.copy() for k, v in arrays.items()}
    assert _mark_divergence(copy, 2) == "diverged"
    assert np.isnan(copy["test_accuracy"][1:]).all() and copy["test_accuracy"][0] == 1


def test_new_keys_at_their_defaults_keep_old_ids_and_program_keys():
    cfg = TrialConfig()
    old = cfg.to_mapping()
    for key in ("train.h_momentum", "train.early_stop", "model.output_energy", "data.normalize",
                "data.train_subset", "train.matmul_precision"):
        section, leaf = key.split(".")
        assert old[section][leaf] == ID_NEUTRAL_DEFAULTS[key]
        if key != "train.matmul_precision":
            del old[section][leaf]
    assert trial_id(old) == cfg.trial_id == "fc729e1c06df943a"  # the id before these keys existed
    assert static_key(cfg) == static_key(old)
    assert cfg.replace(**{"train.h_momentum": 0.5}).trial_id != cfg.trial_id
    # momentum values share a program; momentum on or off does not
    assert static_key(cfg.replace(**{"train.h_momentum": 0.5})) == static_key(cfg.replace(**{"train.h_momentum": 0.2}))
    assert static_key(cfg.replace(**{"train.h_momentum": 0.5})) != static_key(cfg)
    assert static_key(cfg.replace(**{"train.early_stop": True})) == static_key(cfg)


@pytest.mark.parametrize(("override", "message"), [
    ({"data.normalize": False}, "data.normalize: only image datasets"),
    ({"data.train_subset": 64}, "data.train_subset: only image datasets"),
    ({"data.dataset": "fashion_mnist", "data.batch_size": 128, "data.train_subset": 100},
     "data.train_subset: got 100; expected at least data.batch_size (128)"),
    ({"model.kind": "bp", "train.T": 1, "model.output_energy": "se"}, "backprop has no states"),
    ({"model.kind": "bp", "train.T": 1, "model.init_h": "zero"}, "backprop has no states"),
    ({"model.kind": "bp", "train.T": 1, "train.h_momentum": 0.5}, "backprop has no states"),
    ({"train.h_momentum": 1.5}, "train.h_momentum: got 1.5; expected a value in [0, 1]"),
    ({"train.h_momentum": -0.1}, "train.h_momentum: got -0.1"),
    ({"model.output_energy": "mse"}, "model.output_energy: got 'mse'; expected one of ce, se"),
    ({"model.init_h": "randn"}, "model.init_h: got 'randn'; expected one of forward, zero, normal"),
    ({"train.early_stop": 1}, "train.early_stop: got 1; expected bool"),
])
def test_bad_study_keys_are_refused_with_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as info:
        BASE.replace(**override)
    assert message in str(info.value)


def test_unnormalised_images_and_subset():
    from pc.datasets import load_data

    cfg = TrialConfig.from_mapping({"data": {"dataset": "fashion_mnist", "batch_size": 128, "normalize": False,
                                             "train_subset": 300}})
    ds = load_data(cfg.data)
    assert ds.train_x.shape == (2, 128, 784)  # 300 images cut to whole batches
    assert ds.test_x.shape == (78, 128, 784)  # the test set stays whole (9,984 of 10,000)
    assert ds.train_x.min() == 0 and ds.train_x.max() == 1
    normalised = load_data(cfg.data.__class__(dataset="fashion_mnist", batch_size=128))
    np.testing.assert_allclose(normalised.train_x[0], (ds.train_x[0] - 0.28604) / 0.35302, rtol=1e-5, atol=1e-5)
