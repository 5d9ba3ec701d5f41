"""`key=value` overrides and their merge into trial defaults, with OmegaConf (a Hydra user's habits).

Every command that takes overrides (`python -m launch GRID key=value`, `python -m pc key=value`) parses
them here, so `train.h_lr=1e-3` means the same everywhere: values are read by OmegaConf's dotlist parser
(YAML: `1e-3` is a float, `null` is None, `true` a bool). Defaults and overrides are merged onto the
structured config `OmegaConf.structured(TrialConfig)`; pcsweep's own checks (`TrialConfig.from_mapping`:
strict types, finite values, ranges) then validate the result, and OmegaConf's errors are rewrapped into
one-line `ConfigError`s that name the key.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from contracts.config import ConfigError, TrialConfig, check_value, field_types, valid_keys


def _unknown_key(key: str, text: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid_keys(), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return ConfigError(f"{key}: unknown key (override {text!r}); {hint}valid keys are {', '.join(valid_keys())}")


MAX_VALUE_CHARS = 1000  # one value: a rate, a name; anything longer is a paste gone wrong


def parse_overrides(texts: Sequence[str]) -> dict[str, Any]:
    """`["train.epochs=1", ...]` -> `{"train.epochs": 1, ...}`; ConfigError names the bad override."""
    out: dict[str, Any] = {}
    for text in texts:
        where = f"override {text!r}"
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{where}: expected KEY=VALUE, e.g. train.epochs=1")
        if key not in valid_keys():
            raise _unknown_key(key, text)
        if not raw.strip():
            raise ConfigError(f"{where}: empty value; write e.g. {key}=null for None")
        if len(raw) > MAX_VALUE_CHARS or raw.count("[") + raw.count("{") > 1:
            raise ConfigError(f"{where[:80]}...: expected a single value for {key} (a number, a word, true/false "
                              f"or null), not a list, a mapping or {MAX_VALUE_CHARS}+ characters")
        try:
            value = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={raw}"]), resolve=False)["value"]
        except (OmegaConfBaseException, ValueError, yaml.YAMLError, RecursionError) as e:
            first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ConfigError(f"{where}: cannot parse the value ({first}); write a plain value, e.g. "
                              f"{key}=1 (YAML tags such as !!python/... and aliases are not read)") from e
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: got {value!r}; expected a single value for {key}")
        if key in out and out[key] != value:
            raise ConfigError(f"{where}: {key} is given twice with different values; give it once")
        out[key] = value
    return out


def nest(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """`{"train.epochs": 1}` -> `{"train": {"epochs": 1}}`."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def merge_config(defaults: Mapping[str, Any], overrides: Mapping[str, Any] = ()) -> TrialConfig:
    """Schema defaults <- `defaults` (nested) <- `overrides` (dotted), merged by OmegaConf, then validated.

    Each layer is checked strictly on its own first (OmegaConf would turn the string "12" into 12), so a
    wrong type names the layer's key, not a converted value.
    """
    TrialConfig.from_mapping(defaults)  # strict check of the defaults alone, with pcsweep's messages
    overrides = {key: check_value(key, value, field_types(key)) for key, value in dict(overrides).items()}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(TrialConfig), dict(defaults), nest(overrides))
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", "") or "config"
        raise ConfigError(f"{key}: {str(e).splitlines()[0]}") from e
    return TrialConfig.from_mapping(OmegaConf.to_container(merged, resolve=False))
