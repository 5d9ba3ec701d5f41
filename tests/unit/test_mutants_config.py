"""contracts.config at its edges (fast tier, no JAX): the exact words of every refusal, the conversions a value
goes through, the batch and width rules at their bounds, and the trial id / static key contracts on literal
configs. Kills the mutants of `contracts.config` that the broader tests let through (tests/README.md
"Mutation testing")."""

from __future__ import annotations

import re

import pytest

from contracts.config import (
    PER_TRIAL_KEYS,
    ConfigError,
    TrialConfig,
    canonical_json,
    check_single,
    check_value,
    field_types,
    set_dotted,
    static_key,
    trial_id,
    valid_keys,
)

NONE = type(None)


def refused(message: str) -> pytest.RaisesContext:
    """ConfigError whose whole message is exactly `message`."""
    return pytest.raises(ConfigError, match=f"^{re.escape(message)}$")


# --- one value alone: check_value / check_single --------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "message"), [
    ("train.epochs", True, "train.epochs: got True; expected int"),
    ("model.constant_width", 1, "model.constant_width: got 1; expected bool"),
    ("model.constant_width", None, "model.constant_width: got None; expected bool"),
    ("data.resize", "x", "data.resize: got 'x'; expected int or null"),
    ("data.noise", True, "data.noise: got True; expected float or null"),
    ("data.noise", "0.1", "data.noise: got '0.1'; expected float or null"),
    ("seed", None, "seed: got None; expected int"),
    ("seed", 1.0, "seed: got 1.0; expected int"),
    ("train.h_lr", [1], "train.h_lr: got [1]; expected float"),
    ("train.h_lr", {"a": 1}, "train.h_lr: got {'a': 1}; expected float"),
    ("data.dataset", 3, "data.dataset: got 3; expected str"),
    ("train.h_lr", float("nan"), "train.h_lr: got nan; expected a finite number"),
    ("train.w_lr", float("-inf"), "train.w_lr: got -inf; expected a finite number"),
    ("data.dataset", "${env:X}",
     "data.dataset: got '${env:X}'; interpolations (${...}) are not supported, write the value"),
    ("data.dataset", "cifar",
     "data.dataset: got 'cifar'; expected one of two_moons, two_circles, fashion_mnist, mnist"),
    ("train.matmul_precision", "tf32", "train.matmul_precision: got 'tf32'; expected one of default, high, highest"),
    ("train.h_lr", 0, "train.h_lr: got 0.0; expected a positive number"),
    ("data.n_samples", 0, "data.n_samples: got 0; expected a positive integer <= 100,000,000"),
    ("seed", -1, "seed: got -1; expected a value in [0, 4294967296)"),
])
def test_check_single_refuses_with_the_exact_words(key, value, message):
    with refused(message):
        check_single(key, value)


@pytest.mark.parametrize(("key", "value", "stored"), [
    ("train.h_lr", 1, 1.0),  # an int where a float is due becomes a float
    ("data.noise", 0, 0.0),
    ("data.resize", 8, 8),  # int | None keeps an int
    ("data.resize", None, None),
    ("data.noise", None, None),  # None skips the range check of a LIMITS key
    ("model.constant_width", True, True),
    ("data.dataset", "mnist", "mnist"),
    ("train.w_momentum", 0, 0.0),
    ("seed", 4294967295, 4294967295),
])
def test_check_single_returns_the_value_as_stored(key, value, stored):
    got = check_single(key, value)
    assert got == stored and type(got) is type(stored)


def test_check_value_names_the_key_it_is_given():
    with refused("any.key: got 'a'; expected int or float or null"):
        check_value("any.key", "a", (int, float, NONE))
    with refused("k: got 2; expected bool"):
        check_value("k", 2, (bool,))
    assert check_value("k", False, (bool,)) is False
    assert check_value("k", "$ {x}", (str,)) == "$ {x}"  # only `${` starts an interpolation
    with refused("k: got '${'; interpolations (${...}) are not supported, write the value"):
        check_value("k", "${", (int, str))


def test_field_types_of_top_level_and_section_keys():
    assert field_types("data.resize") == (int, NONE)
    assert field_types("data.noise") == (float, NONE)
    assert field_types("seed") == (int,)
    assert field_types("model.constant_width") == (bool,)
    assert field_types("train.matmul_precision") == (str,)


def test_valid_keys_lists_every_section_key_then_seed():
    keys = valid_keys()
    assert keys[:3] == ["data.dataset", "data.n_samples", "data.batch_size"]
    assert keys[-2:] == ["train.early_stop", "seed"] and len(keys) == len(set(keys)) == 31
    assert "model.init_h_sd" in keys and "train.T" in keys


# --- whole mappings: from_mapping and _validate -------------------------------------------------------------

ALL_KEYS = ", ".join(valid_keys())


@pytest.mark.parametrize(("mapping", "message"), [
    (3, "config: got 3; expected a mapping"),
    ([("seed", 1)], "config: got [('seed', 1)]; expected a mapping"),
    ({"data": 3}, "data: got 3; expected a mapping"),
    ({"train": None}, "train: got None; expected a mapping"),
    ({"zz": 1, "aa": 2}, f"aa: unknown key; valid keys are {ALL_KEYS}"),
    ({"data": {"x": 1, "b": 2}}, f"data.b: unknown key; valid keys are {ALL_KEYS}"),
    ({"model": {"n_layers": 3}}, "model.n_layers: got 3; only 4 ([in, h, h, out]) is supported"),
    ({"model": {"n_layers": 5}}, "model.n_layers: got 5; only 4 ([in, h, h, out]) is supported"),
    ({"model": {"kind": "bp"}, "train": {"T": 2}}, "train.T: got 2 for model.kind=bp; backprop runs T=1"),
    ({"data": {"resize": 5}}, "data.resize: only image datasets can be resized"),
    ({"data": {"dataset": "two_circles", "resize": 28}}, "data.resize: only image datasets can be resized"),
    ({"model": {"kind": "cnn"}}, "model.kind: got 'cnn'; expected one of pc, bp"),
    ({"train": {"h_optimizer": "adamw"}}, "train.h_optimizer: got 'adamw'; expected one of sgd"),
    ({"train": {"w_momentum": 1}}, "train.w_momentum: got 1.0; expected a value in [0, 1)"),
    ({"model": {"constant_width": True}},
     "model.constant_width: needs data.n_classes = model.width = data.resize**2; "
     "got n_classes=None, width=128, resize=None"),
])
def test_from_mapping_refuses_with_the_exact_words(mapping, message):
    with refused(message):
        TrialConfig.from_mapping(mapping)


@pytest.mark.parametrize(("n_samples", "batch_size", "n_batches"), [
    (32, 32, 1), (96, 32, 3), (31, 32, 0), (160, 32, 5),
])
def test_toy_datasets_need_an_even_number_of_at_least_two_batches(n_samples, batch_size, n_batches):
    for dataset in ("two_moons", "two_circles"):
        with refused(f"data.n_samples // data.batch_size = {n_batches}: must be even and >= 2 "
                     "(the half-size test set is cut into whole batches, docs/paper-notes.md Q23)"):
            TrialConfig.from_mapping({"data": {"dataset": dataset, "n_samples": n_samples, "batch_size": batch_size}})


@pytest.mark.parametrize(("n_samples", "batch_size"), [(64, 32), (95, 32), (128, 32), (4, 1)])
def test_even_batch_counts_from_two_are_accepted(n_samples, batch_size):
    cfg = TrialConfig.from_mapping({"data": {"n_samples": n_samples, "batch_size": batch_size}})
    assert (cfg.data.n_samples, cfg.data.batch_size) == (n_samples, batch_size)


def test_image_datasets_skip_the_toy_rules():
    cfg = TrialConfig.from_mapping({"data": {"dataset": "mnist", "resize": 5, "n_samples": 32, "batch_size": 32}})
    assert (cfg.data.resize, cfg.data.n_samples) == (5, 32)
    assert TrialConfig.from_mapping({"data": {"dataset": "fashion_mnist", "n_samples": 96}}).data.n_samples == 96


def test_bp_runs_with_one_step_only():
    assert TrialConfig.from_mapping({"model": {"kind": "bp"}, "train": {"T": 1}}).train.T == 1
    assert TrialConfig.from_mapping({"model": {"kind": "pc"}, "train": {"T": 1}}).model.kind == "pc"


@pytest.mark.parametrize(("data", "width", "ok"), [
    ({"dataset": "mnist", "n_classes": 784}, 784, True),  # resize None means 28 x 28
    ({"dataset": "mnist", "resize": 4, "n_classes": 16}, 16, True),
    ({"dataset": "mnist", "resize": 4, "n_classes": 15}, 16, False),  # n_classes differs
    ({"dataset": "mnist", "resize": 5, "n_classes": 16}, 16, False),  # resize**2 differs
    ({"dataset": "mnist", "n_classes": 16}, 16, False),  # 28**2 != 16
])
def test_constant_width_needs_classes_width_and_pixels_equal(data, width, ok):
    mapping = {"data": data, "model": {"width": width, "constant_width": True}}
    if ok:
        assert TrialConfig.from_mapping(mapping).model.constant_width is True
        return
    words = (f"model.constant_width: needs data.n_classes = model.width = data.resize**2; "
             f"got n_classes={data['n_classes']}, width={width}, resize={data.get('resize')}")
    with refused(words):
        TrialConfig.from_mapping(mapping)


def test_from_mapping_converts_ints_and_keeps_defaults():
    cfg = TrialConfig.from_mapping({"train": {"h_lr": 1}, "seed": 7})
    assert cfg.train.h_lr == 1.0 and type(cfg.train.h_lr) is float
    assert cfg.seed == 7 and cfg.train.epochs == 8 and cfg.data.dataset == "two_moons"
    assert TrialConfig.from_mapping({}) == TrialConfig()


def test_replace_sets_dotted_keys_and_validates():
    cfg = TrialConfig().replace(**{"train.epochs": 2, "seed": 5, "data.noise": 0.3})
    assert (cfg.train.epochs, cfg.seed, cfg.data.noise) == (2, 5, 0.3)
    with refused("train.epochs: got 0; expected a positive integer <= 100,000"):
        TrialConfig().replace(**{"train.epochs": 0})


def test_set_dotted_creates_missing_sections():
    mapping: dict = {"train": {"epochs": 1}}
    set_dotted(mapping, "train.T", 2)
    set_dotted(mapping, "data.noise", 0.5)
    set_dotted(mapping, "seed", 3)
    set_dotted(mapping, "a.b.c", 4)
    assert mapping == {"train": {"epochs": 1, "T": 2}, "data": {"noise": 0.5}, "seed": 3, "a": {"b": {"c": 4}}}


# --- canonical JSON, trial id, static key -------------------------------------------------------------------

def test_canonical_json_rounds_floats_in_nested_mappings_and_lists():
    assert canonical_json({"z": [0.1 + 0.2, (1.0000000000001, "s")], "a": {"y": 2.0000000000004, "x": None}}) == \
        '{"a":{"x":null,"y":2.0},"z":[0.3,[1.0,"s"]]}'
    assert canonical_json({"b": True, "a": 1}) == '{"a":1,"b":true}'


def test_trial_id_of_the_default_config_is_recorded():
    # recorded once; a change orphans every existing shard (docs/design.md section 2)
    assert TrialConfig().trial_id == "fc729e1c06df943a"
    assert TrialConfig(seed=1).trial_id == trial_id(TrialConfig(seed=1).to_mapping()) != "fc729e1c06df943a"


def test_matmul_precision_enters_the_id_only_away_from_its_neutral_default():
    mapping = TrialConfig().to_mapping()
    without = {**mapping, "train": {k: v for k, v in mapping["train"].items() if k != "matmul_precision"}}
    assert trial_id(without) == trial_id(mapping) == "fc729e1c06df943a"
    high = TrialConfig().replace(**{"train.matmul_precision": "high"})
    assert high.trial_id != trial_id(mapping)
    # the neutral default holds for its own section only: the same key elsewhere enters the id
    other = {**mapping, "data": {**mapping["data"], "matmul_precision": "default"}}
    assert trial_id(other) != trial_id(mapping)
    # a top-level scalar and a section are hashed as given, sorted
    assert trial_id({"seed": 1, "train": {"matmul_precision": "default"}}) == trial_id({"train": {}, "seed": 1})


def test_static_key_drops_exactly_the_per_trial_keys():
    assert PER_TRIAL_KEYS == ("seed", "train.h_lr", "train.w_lr", "train.w_momentum", "train.w_weight_decay",
                              "train.h_momentum", "train.early_stop")
    mapping = {"seed": 1, "data": {"seed": 2}, "train": {"h_lr": 0.1, "w_lr": 0.2, "w_momentum": 0.9,
                                                         "w_weight_decay": 0.0, "epochs": 2}}
    assert static_key(mapping) == '{"data":{"seed":2},"train":{"epochs":2}}'
    assert mapping["seed"] == 1 and mapping["train"]["h_lr"] == 0.1  # the caller's mapping is left as it was
    assert static_key({"train": {"epochs": 3}}) == '{"train":{"epochs":3}}'  # absent per-trial keys are fine
    # momentum's value is per trial, whether it is on is not; early stopping is host-side
    assert static_key({"train": {"h_momentum": 0.3, "early_stop": True}}) == '{"train":{"h_momentum":"per-trial"}}'
    assert static_key({"train": {"h_momentum": 0.0, "early_stop": False}}) == '{"train":{}}'
    # the study's keys at their old values leave the key as it was; other values enter it
    assert static_key({"data": {"normalize": True, "train_subset": None}, "model": {"output_energy": "ce"}}) == (
        '{"data":{},"model":{}}')
    assert static_key({"data": {"normalize": False}}) == '{"data":{"normalize":false}}'


def test_static_key_of_a_config_equals_that_of_its_mapping():
    cfg = TrialConfig().replace(**{"model.width": 64, "train.w_lr": 0.5})
    assert static_key(cfg) == static_key(cfg.to_mapping())
    assert '"width":64' in static_key(cfg) and "w_lr" not in static_key(cfg) and "seed\":0" not in static_key(cfg)
