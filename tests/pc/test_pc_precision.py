"""train.matmul_precision: ids unchanged at the default, the precision in every dot, recorded in the shard."""

from __future__ import annotations

import json
import re

import jax.numpy as jnp
import numpy as np
import pytest
from pc_cases import BASE

from contracts.config import ID_NEUTRAL_DEFAULTS, ConfigError, TrialConfig, trial_id
from contracts.shard import open_shard
from grids.sweep import fast_trial_id
from pc.train import GroupProgram
from pc.trials import iter_trial_results, run_trials

TINY = BASE.replace(**{"model.width": 4, "train.T": 1, "train.epochs": 1, "data.n_samples": 64})


def test_the_default_precision_leaves_every_trial_id_unchanged():
    mapping = BASE.to_mapping()
    assert mapping["train"]["matmul_precision"] == "default" == ID_NEUTRAL_DEFAULTS["train.matmul_precision"]
    before = json.loads(json.dumps(mapping))
    del before["train"]["matmul_precision"]  # the config as it was before the key existed
    assert trial_id(mapping) == trial_id(before) == BASE.trial_id == fast_trial_id(BASE)
    for value in ("high", "highest"):
        cfg = BASE.replace(**{"train.matmul_precision": value})
        assert cfg.trial_id != BASE.trial_id
        assert cfg.trial_id == fast_trial_id(cfg)


def test_an_unknown_precision_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"train\.matmul_precision: got 'tf32'; expected one of default, high"):
        TrialConfig.from_mapping({"train": {"matmul_precision": "tf32"}})


@pytest.mark.parametrize(("precision", "expected"), [("default", "DEFAULT"), ("highest", "HIGHEST")])
def test_every_dot_of_the_program_carries_the_precision(precision, expected):
    cfg = TINY.replace(**{"train.matmul_precision": precision})
    program = GroupProgram(cfg, 2, 2, 2)
    with program.loaded([cfg, cfg.replace(seed=1)]):
        data = [jnp.zeros((1, 32, 2)), jnp.zeros((1, 32, 2))]
        text = program.lower(jnp.zeros((2, 1), jnp.int32), *data, *data).as_text()
    dots = text.count("stablehlo.dot_general")
    assert dots > 0
    assert re.findall(r"precision = \[(\w+), (\w+)\]", text) == [(expected, expected)] * dots


def test_precision_is_recorded_and_changes_no_bit_on_cpu(tmp_path):
    path = tmp_path / "highest.h5"
    run_trials([TINY.replace(**{"train.matmul_precision": "highest"})], path, progress=False)
    (default,) = iter_trial_results([TINY])
    with open_shard(path) as shard:
        attrs = shard.attrs
        (trial,) = shard.trials()
    assert attrs["matmul_precision"] == "highest"
    assert attrs["jax_default_matmul_precision"] == "unset"
    assert "--xla_cpu_use_thunk_runtime=false" in attrs["xla_flags"]
    programs = json.loads(attrs["programs"])
    assert [(p["n"], p["trials"], p["matmul_precision"]) for p in programs] == [(2, 1, "highest")]
    assert attrs["compile_s"] == pytest.approx(programs[0]["compile_s"]) and attrs["compile_s"] > 0
    assert programs[0]["compile_s"] <= programs[0]["train_s"]
    # On CPU XLA computes float32 dots in float32 at every precision: the same bits (not so on GPUs).
    for name, value in default.arrays.items():
        np.testing.assert_array_equal(trial.arrays[name], value, err_msg=name)
