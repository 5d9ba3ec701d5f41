"""TrialConfig.get: the one reader of a dotted key (grids.sweep's rules and grids.search's study cells use it)."""

from __future__ import annotations

import pytest

from contracts.config import TrialConfig


def test_get_reads_top_level_and_nested_keys_as_replace_writes_them():
    cfg = TrialConfig.from_mapping({}).replace(**{"train.h_lr": 0.25, "model.width": 7, "seed": 3})
    assert (cfg.get("train.h_lr"), cfg.get("model.width"), cfg.get("seed")) == (0.25, 7, 3)
    assert cfg.get("data") == cfg.data


def test_get_of_a_key_the_config_lacks_raises():
    with pytest.raises(AttributeError, match="no_such"):
        TrialConfig.from_mapping({}).get("train.no_such")
