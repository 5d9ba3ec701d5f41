"""Trial config and trial id: the contract every stage shares (DESIGN.md section 2).

Pure Python (no jax, no numpy) so that `launch` and `collect` can import it on a login node.
A trial config is a nested mapping with the sections `data`, `model`, `train` and `seed`; the
frozen dataclasses below are its typed schema and hold the defaults. `trial_id` hashes the
canonical JSON of the mapping, so the same config has the same id on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DATASETS = ("two_moons", "two_circles", "fashion_mnist", "mnist")
MODEL_KINDS = ("pc", "bp")
ACTIVATIONS = ("leaky_relu", "hard_tanh", "relu", "tanh", "sigmoid")
W_OPTIMIZERS = ("sgd", "adamw")
H_OPTIMIZERS = ("sgd",)
INIT_H = ("forward", "randn")
INIT_W = ("default",)
RESIZE_METHODS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")


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


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "pc"  # pc | bp
    width: int = 128  # hidden width h; dims are [in, h, h, out]
    n_layers: int = 4  # layers of neurons including input and output
    activation: str = "leaky_relu"
    init_w: str = "default"  # W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as pxnn.Linear
    init_h: str = "forward"  # forward (h <- u) | randn (h <- u + N(0, init_h_sd^2))
    init_h_sd: float = 0.1
    constant_width: bool = False  # ablation: in = h = out (data.resize^2 = n_classes = width)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    T: int = 8  # inference steps per batch (BP uses 1)
    h_lr: float = 0.1  # gamma: state learning rate, per sample h_i -= gamma * dE_i/dh_i
    h_optimizer: str = "sgd"
    w_optimizer: str = "adamw"  # sgd | adamw
    w_lr: float = 0.01
    w_momentum: float = 0.9  # SGD momentum; a label only for AdamW (paper quirk Q16)
    w_weight_decay: float = 1e-4  # AdamW only (optax default, as the paper)


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


def _type_ok(value: Any, annotation: str) -> bool:
    if value is None:
        return "None" in annotation
    if isinstance(value, bool):
        return annotation.startswith("bool")
    if annotation.startswith("int"):
        return isinstance(value, int)
    if annotation.startswith("float"):
        return isinstance(value, (int, float))
    if annotation.startswith("str"):
        return isinstance(value, str)
    if annotation.startswith("bool"):
        return False
    return True


def _from_mapping(cls: type, mapping: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: got {mapping!r}; expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key; valid keys are {', '.join(valid_keys())}"
        )
    kwargs = {}
    for name, value in mapping.items():
        if name in _SECTIONS and cls is TrialConfig:
            kwargs[name] = _from_mapping(_SECTIONS[name], value, prefix=f"{name}.")
            continue
        annotation = str(fields[name].type)
        if not _type_ok(value, annotation):
            raise ConfigError(f"{prefix}{name}: got {value!r}; expected {annotation}")
        if annotation.startswith("float") and value is not None:
            value = float(value)
        kwargs[name] = value
    return cls(**kwargs)


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: got {value!r}; expected one of {', '.join(allowed)}")


def _positive(key: str, value: Any) -> None:
    if value is None or value <= 0:
        raise ConfigError(f"{key}: got {value!r}; expected a positive number")


def _validate(cfg: TrialConfig) -> TrialConfig:
    d, m, t = cfg.data, cfg.model, cfg.train
    _choice("data.dataset", d.dataset, DATASETS)
    _choice("data.resize_method", d.resize_method, RESIZE_METHODS)
    _choice("model.kind", m.kind, MODEL_KINDS)
    _choice("model.activation", m.activation, ACTIVATIONS)
    _choice("model.init_w", m.init_w, INIT_W)
    _choice("model.init_h", m.init_h, INIT_H)
    _choice("train.w_optimizer", t.w_optimizer, W_OPTIMIZERS)
    _choice("train.h_optimizer", t.h_optimizer, H_OPTIMIZERS)
    for key in ("data.n_samples", "data.batch_size", "model.width", "train.epochs", "train.T"):
        section, name = key.split(".")
        _positive(key, getattr(getattr(cfg, section), name))
    for key in ("train.h_lr", "train.w_lr"):
        _positive(key, getattr(t, key.split(".")[1]))
    if m.n_layers != 4:
        raise ConfigError(f"model.n_layers: got {m.n_layers}; only 4 ([in, h, h, out]) is supported")
    if t.w_momentum < 0 or t.w_weight_decay < 0:
        raise ConfigError("train.w_momentum and train.w_weight_decay must be >= 0")
    if d.resize is not None and d.resize <= 0:
        raise ConfigError(f"data.resize: got {d.resize!r}; expected a positive image side or null")
    if d.n_classes is not None and d.n_classes < 2:
        raise ConfigError(f"data.n_classes: got {d.n_classes!r}; expected >= 2 or null")
    if m.kind == "bp" and t.T != 1:
        raise ConfigError(f"train.T: got {t.T} for model.kind=bp; backprop runs T=1")
    if d.dataset in ("two_moons", "two_circles"):
        if d.resize is not None:
            raise ConfigError("data.resize: only image datasets can be resized")
        n_batches = d.n_samples // d.batch_size
        if n_batches < 2 or n_batches % 2:
            raise ConfigError(
                f"data.n_samples // data.batch_size = {n_batches}: must be even and >= 2 "
                "(the half-size test set is cut into whole batches, paper quirk Q23)"
            )
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
        return float(f"{value:.12g}")
    if isinstance(value, Mapping):
        return {k: _round_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round_floats(v) for v in value]
    return value


def canonical_json(mapping: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, floats rounded to 12 significant digits (DESIGN.md section 2)."""
    return json.dumps(_round_floats(mapping), sort_keys=True, separators=(",", ":"))


def trial_id(mapping: Mapping[str, Any]) -> str:
    """First 16 hex digits of sha256 of the canonical JSON of a full trial config mapping."""
    return hashlib.sha256(canonical_json(mapping).encode()).hexdigest()[:16]


# Keys that may differ between trials of one compiled group program (they become per-trial
# arrays with a leading trial axis). Every other key changes the program's shapes or structure.
PER_TRIAL_KEYS = ("seed", "train.h_lr", "train.w_lr", "train.w_momentum", "train.w_weight_decay")


def static_key(config: TrialConfig | Mapping[str, Any]) -> str:
    """The part of a config that fixes the compiled program: trials with equal keys train together.

    Pure (no jax), so `launch` groups trials on a login node exactly as `pc` will.
    """
    mapping = config.to_mapping() if isinstance(config, TrialConfig) else dict(config)
    mapping = json.loads(json.dumps(mapping))
    for key in PER_TRIAL_KEYS:
        *parents, leaf = key.split(".")
        node = mapping
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
    return canonical_json(mapping)
