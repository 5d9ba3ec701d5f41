"""Trial config and trial id: the contract every stage shares (docs/design.md section 2).

Pure Python (no jax, no numpy) so that `launch` and `collect` can import it on a login node.
A trial config is a nested mapping with the sections `data`, `model`, `train` and `seed`; the
frozen dataclasses below are its typed schema and hold the defaults. `TrialConfig.from_mapping` is
the one validation path every value goes through (grid files, overrides, `python -m pc`, shards read
back): strict types, finite numbers, and the ranges in `contracts.limits`. Merging defaults with
`key=value` overrides is OmegaConf's job (`contracts.overrides`). `trial_id` hashes the canonical JSON
of the mapping, so the same config has the same id on every machine.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.labels import round12
from contracts.limits import LIMITS, check_limits, describe, in_range

DATASETS = ("two_moons", "two_circles", "fashion_mnist", "mnist")
MODEL_KINDS = ("pc", "bp")
ACTIVATIONS = ("leaky_relu", "hard_tanh", "relu", "tanh", "sigmoid", "gelu")
W_OPTIMIZERS = ("sgd", "adamw")
H_OPTIMIZERS = ("sgd",)
INIT_H = ("forward", "zero", "normal")
OUTPUT_ENERGIES = ("ce", "se")
INIT_W = ("default",)
RESIZE_METHODS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")
MATMUL_PRECISIONS = ("default", "high", "highest")  # jax.default_matmul_precision names


class ConfigError(ValueError):
    """A trial config with an unknown key, a wrong type or a value out of range."""


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "two_moons"  # one of DATASETS
    n_samples: int = 1024  # two_moons/two_circles train size before cutting to whole batches
    batch_size: int = 32
    resize: int | None = None  # image side after a PIL resize (images only); None keeps 28
    resize_method: str = "bilinear"  # PIL Image.Resampling name
    n_classes: int | None = None  # one-hot width; None = the dataset's classes (2 or 10)
    noise: float | None = None  # sklearn noise; None = the paper's (moons 0.2, circles 0.02)
    seed: int = 42  # sklearn random_state of the train set (the test set uses 0, as the paper)
    normalize: bool = True  # images: (x/255 - mean) / std with the paper's constants; False keeps x/255 in [0, 1]
    train_subset: int | None = None  # images: train on the first N training images only (cut to whole batches)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "pc"  # pc | bp
    width: int = 128  # hidden width h; dims are [in, h, h, out]
    n_layers: int = 4  # layers of neurons including input and output
    activation: str = "leaky_relu"
    init_w: str = "default"  # W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as pxnn.Linear
    init_h: str = "forward"  # hidden states before inference: forward (h <- u) | zero | normal (N(0, init_h_sd^2))
    init_h_sd: float = 0.1  # standard deviation of the normal init
    output_energy: str = "ce"  # PC output Vode: ce (Section 5.1) | se (squared error to the one-hot label)
    constant_width: bool = False  # ablation: in = h = out (data.resize^2 = n_classes = width)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    T: int = 8  # inference steps per batch (BP uses 1)
    h_lr: float = 0.1  # gamma: state learning rate, per sample h_i -= gamma * dE_i/dh_i
    h_optimizer: str = "sgd"
    h_momentum: float = 0.0  # state SGD momentum, its trace reset every batch (the state-init study)
    w_optimizer: str = "adamw"  # sgd | adamw
    w_lr: float = 0.01
    w_momentum: float = 0.9  # SGD momentum; a label only for AdamW (docs/paper-notes.md Q16)
    w_weight_decay: float = 1e-4  # AdamW only (optax default, as the paper)
    matmul_precision: str = "default"  # float32 matmuls: default (TF32 allowed on GPUs) | high | highest
    early_stop: bool = False  # the state-init study's rule (pc.early_stop): later epochs are NaN, status ok


@dataclass(frozen=True)
class TrialConfig:
    """One training: everything that can change its result."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0  # weight init (px.RandomKeyGenerator(seed)) and batch order (random.Random(seed))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> TrialConfig:
        """Build and validate from a (possibly partial) nested mapping; missing keys take defaults."""
        return _validate(_from_mapping(cls, mapping, prefix=""))

    def to_mapping(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def trial_id(self) -> str:
        return trial_id(self.to_mapping())

    def get(self, key: str) -> Any:
        """The value of a dotted key, e.g. `cfg.get("train.h_lr")` (AttributeError for a key it does not have)."""
        value: Any = self
        for part in key.split("."):
            value = getattr(value, part)
        return value

    def replace(self, **dotted: Any) -> TrialConfig:
        """A copy with dotted keys set, e.g. `cfg.replace(**{"train.epochs": 1})`."""
        mapping = self.to_mapping()
        for key, value in dotted.items():
            set_dotted(mapping, key, value)
        return TrialConfig.from_mapping(mapping)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def valid_keys() -> list[str]:
    """Every dotted key a trial config accepts, for error messages and grid validation."""
    keys = [f"{s}.{f.name}" for s, c in _SECTIONS.items() for f in dataclasses.fields(c)]
    return keys + ["seed"]


@functools.cache
def _field_types(cls: type) -> dict[str, tuple[type, ...]]:
    """Field name -> the Python types its values may have (from the resolved annotations)."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        out[name] = tuple(type(None) if a is None else a for a in args)
    return out


def field_types(key: str) -> tuple[type, ...]:
    """The types a dotted key's value may have, e.g. `field_types("data.resize") == (int, NoneType)`."""
    *section, name = key.split(".")
    cls = _SECTIONS[section[0]] if section else TrialConfig
    return _field_types(cls)[name]


def _type_name(allowed: tuple[type, ...]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in allowed)


def check_value(key: str, value: Any, allowed: tuple[type, ...]) -> Any:
    """`value` converted to the field's type (an int where a float is due), or ConfigError.

    Strict on purpose: a bool is not an int, a string is never a number, floats must be finite, and
    `${...}` (an OmegaConf interpolation) is refused so that no value is read from the environment.
    """
    if isinstance(value, bool):
        ok = bool in allowed
    elif isinstance(value, int):
        ok = int in allowed or float in allowed
        if ok and int not in allowed:
            value = float(value)
    elif isinstance(value, float):
        ok = float in allowed
        if ok and not math.isfinite(value):
            raise ConfigError(f"{key}: got {value!r}; expected a finite number")
    elif value is None:
        ok = type(None) in allowed
    elif isinstance(value, str):
        ok = str in allowed
        if ok and "${" in value:
            raise ConfigError(f"{key}: got {value!r}; interpolations (${{...}}) are not supported, write the value")
    else:
        ok = False
    if not ok:
        raise ConfigError(f"{key}: got {value!r}; expected {_type_name(allowed)}")
    return value


def _from_mapping(cls: type, mapping: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: got {mapping!r}; expected a mapping")
    fields = _field_types(cls)
    unknown = sorted((str(k) for k in set(mapping) - set(fields)), key=str)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; valid keys are {', '.join(valid_keys())}")
    kwargs = {}
    for name, value in mapping.items():
        if name in _SECTIONS and cls is TrialConfig:
            kwargs[name] = _from_mapping(_SECTIONS[name], value, prefix=f"{name}.")
        else:
            kwargs[name] = check_value(f"{prefix}{name}", value, fields[name])
    return cls(**kwargs)


# The string keys with a fixed set of values (checked alone, before cross-key rules).
CHOICES: dict[str, tuple[str, ...]] = {
    "data.dataset": DATASETS,
    "data.resize_method": RESIZE_METHODS,
    "model.kind": MODEL_KINDS,
    "model.activation": ACTIVATIONS,
    "model.init_w": INIT_W,
    "model.init_h": INIT_H,
    "model.output_energy": OUTPUT_ENERGIES,
    "train.w_optimizer": W_OPTIMIZERS,
    "train.h_optimizer": H_OPTIMIZERS,
    "train.matmul_precision": MATMUL_PRECISIONS,
}


def check_single(key: str, value: Any) -> Any:
    """Type, choice and range check of one value alone (cross-key rules need the whole config).

    Returns the value as the config stores it (an int given for a float field becomes a float).
    Fast on purpose: grids check every axis value with it, and an axis may hold 100,000 seeds.
    """
    value = check_value(key, value, field_types(key))
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key}: got {value!r}; expected one of {', '.join(CHOICES[key])}")
    if key in LIMITS and value is not None and not in_range(key, value):
        raise ConfigError(f"{key}: got {value!r}; expected {describe(key)}")
    return value


def _validate(cfg: TrialConfig) -> TrialConfig:
    d, m, t = cfg.data, cfg.model, cfg.train
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ConfigError(f"{key}: got {value!r}; expected one of {', '.join(allowed)}")
    problem = check_limits(cfg)
    if problem:
        raise ConfigError(problem)
    if m.n_layers != 4:
        raise ConfigError(f"model.n_layers: got {m.n_layers}; only 4 ([in, h, h, out]) is supported")
    if m.kind == "bp" and t.T != 1:
        raise ConfigError(f"train.T: got {t.T} for model.kind=bp; backprop runs T=1")
    if d.dataset in ("two_moons", "two_circles"):
        if d.resize is not None:
            raise ConfigError("data.resize: only image datasets can be resized")
        n_batches = d.n_samples // d.batch_size
        if n_batches < 2 or n_batches % 2:
            raise ConfigError(
                f"data.n_samples // data.batch_size = {n_batches}: must be even and >= 2 "
                "(the half-size test set is cut into whole batches, docs/paper-notes.md Q23)"
            )
    if d.dataset not in ("fashion_mnist", "mnist"):
        if not d.normalize:
            raise ConfigError("data.normalize: only image datasets are normalised; leave it true")
        if d.train_subset is not None:
            raise ConfigError("data.train_subset: only image datasets take a subset; set data.n_samples")
    elif d.train_subset is not None and d.train_subset < d.batch_size:
        raise ConfigError(f"data.train_subset: got {d.train_subset}; expected at least data.batch_size "
                          f"({d.batch_size}), one whole batch")
    if m.kind == "bp" and (m.output_energy != "ce" or m.init_h != "forward" or t.h_momentum != 0):
        raise ConfigError("model.output_energy, model.init_h and train.h_momentum: backprop has no states to "
                          "initialise or move and a cross-entropy loss; leave them at ce, forward and 0.0")
    if m.constant_width and (d.n_classes != m.width or (d.resize or 28) ** 2 != m.width):
        raise ConfigError(
            f"model.constant_width: needs data.n_classes = model.width = data.resize**2; "
            f"got n_classes={d.n_classes}, width={m.width}, resize={d.resize}"
        )
    return cfg


def set_dotted(mapping: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b` in a nested dict in place, creating sections as needed."""
    *parents, leaf = key.split(".")
    node = mapping
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _round_floats(value: Any) -> Any:
    if isinstance(value, float):
        return round12(value)
    if isinstance(value, Mapping):
        return {k: _round_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round_floats(v) for v in value]
    return value


def canonical_json(mapping: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, floats rounded to 12 significant digits (docs/design.md section 2)."""
    return json.dumps(_round_floats(mapping), sort_keys=True, separators=(",", ":"))


# Section keys added after the trial id contract was fixed, with the value every older trial ran at.
# While a key holds that value it is left out of the id, so that no existing trial id changes
# (docs/design.md section 2); any other value enters the id as usual.
ID_NEUTRAL_DEFAULTS: dict[str, Any] = {
    "train.matmul_precision": "default",
    "train.h_momentum": 0.0,
    "train.early_stop": False,
    "model.output_energy": "ce",
    "data.normalize": True,
    "data.train_subset": None,
}
_NO_VALUE = object()
# The keys the state-initialisation study added (docs/paper-notes.md section 9).
STATE_INIT_KEYS = ("train.h_momentum", "train.early_stop", "model.output_energy", "data.normalize",
                   "data.train_subset")


def id_section(name: str, section: Mapping[str, Any]) -> dict[str, Any]:
    """One config section as the trial id sees it: ID_NEUTRAL_DEFAULTS keys at their value left out."""
    return {k: v for k, v in section.items() if ID_NEUTRAL_DEFAULTS.get(f"{name}.{k}", _NO_VALUE) != v}


def trial_id(mapping: Mapping[str, Any]) -> str:
    """First 16 hex digits of sha256 of the canonical JSON of a full trial config mapping.

    Keys of `ID_NEUTRAL_DEFAULTS` at their neutral value are left out before hashing.
    """
    view = {k: id_section(k, v) if isinstance(v, Mapping) else v for k, v in mapping.items()}
    return hashlib.sha256(canonical_json(view).encode()).hexdigest()[:16]


# Keys that may differ between trials of one compiled group program (they become per-trial
# arrays with a leading trial axis). Every other key changes the program's shapes or structure.
# train.h_momentum is per trial too, but whether it is zero is not: a program with momentum carries a
# velocity per state, one without is the plain SGD step (`static_key` keeps that bit).
PER_TRIAL_KEYS = ("seed", "train.h_lr", "train.w_lr", "train.w_momentum", "train.w_weight_decay",
                  "train.h_momentum", "train.early_stop")


def static_key(config: TrialConfig | Mapping[str, Any]) -> str:
    """The part of a config that fixes the compiled program: trials with equal keys train together.

    Pure (no jax), so `launch` groups trials on a login node exactly as `pc` will.
    """
    mapping = config.to_mapping() if isinstance(config, TrialConfig) else dict(config)
    mapping = json.loads(json.dumps(mapping))
    train = mapping.get("train", {})
    momentum_on = bool(train.get("h_momentum", 0.0))
    for key in PER_TRIAL_KEYS:
        *parents, leaf = key.split(".")
        node = mapping
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    if momentum_on:
        train["h_momentum"] = "per-trial"
    # keys added with the state-init study leave the program's key as it was while they hold their old value,
    # so calibrations measured before them (`contracts.calibration.program_key`) still match
    for key in STATE_INIT_KEYS:
        section, leaf = key.split(".")
        if leaf in mapping.get(section, {}) and mapping[section][leaf] == ID_NEUTRAL_DEFAULTS[key]:
            del mapping[section][leaf]
    return canonical_json(mapping)
