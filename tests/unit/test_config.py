"""Trial config and trial id (docs/design.md section 2)."""

import pytest

from contracts.config import ConfigError, TrialConfig, canonical_json, static_key, trial_id


def test_trial_id_is_stable_and_float_noise_is_one_trial():
    a = TrialConfig.from_mapping({"train": {"h_lr": 0.30000000000000004}})
    b = TrialConfig.from_mapping({"train": {"h_lr": 0.3}})
    assert a.trial_id == b.trial_id
    assert len(a.trial_id) == 16
    assert a.trial_id != TrialConfig.from_mapping({"train": {"h_lr": 0.31}}).trial_id


def test_trial_id_known_value_guards_the_hash_contract():
    # Recorded once; changing the canonical form silently orphans every existing shard.
    assert canonical_json({"b": 1, "a": 0.1 + 0.2}) == '{"a":0.3,"b":1}'
    assert trial_id({"a": 1}) == "015abd7f5cc57a2d"


def test_unknown_key_and_bad_values_are_named():
    with pytest.raises(ConfigError, match="train.wlr: unknown key"):
        TrialConfig.from_mapping({"train": {"wlr": 1}})
    with pytest.raises(ConfigError, match="model.width"):
        TrialConfig.from_mapping({"model": {"width": 1.5}})
    with pytest.raises(ConfigError, match="train.h_lr"):
        TrialConfig.from_mapping({"train": {"h_lr": 0}})
    with pytest.raises(ConfigError, match="data.dataset"):
        TrialConfig.from_mapping({"data": {"dataset": "cifar"}})
    with pytest.raises(ConfigError, match="T=1"):
        TrialConfig.from_mapping({"model": {"kind": "bp"}})


def test_static_key_ignores_per_trial_knobs_only():
    base = TrialConfig()
    assert static_key(base) == static_key(base.replace(**{"seed": 3, "train.h_lr": 0.5, "train.w_lr": 1.0}))
    assert static_key(base) != static_key(base.replace(**{"model.width": 64}))
