"""The `search:` section of a grid file: an adaptive (Optuna) search instead of, or on top of, a fixed sweep.

A grid with `search:` describes studies: the grid's sweep expands to the study *cells* (one study per distinct
cell, e.g. `model.init_h` x `train.T`), `defaults:` gives every fixed key as in any grid, and `params:` the keys
each study searches, with Optuna distributions. Pure Python: optuna is imported only by `Distribution.to_optuna`.
"""

from __future__ import annotations

import dataclasses
import decimal
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.config import CHOICES, ConfigError, TrialConfig, check_single, field_types, set_dotted, valid_keys
from contracts.labels import round12
from grids.document import GridError

KINDS = ("float", "int", "categorical")
METRICS = ("accuracy_best", "accuracy")  # summary columns a study can optimise (per trial, from its shard)
DIRECTIONS = ("maximize", "minimize")
DEFAULT_BATCH = 32

SEARCH_KEYS = ("metric", "direction", "budget", "batch", "params")
RANGE_KEYS = ("type", "low", "high", "log", "step")  # float and int distributions
CATEGORICAL_KEYS = ("type", "choices")
MAX_BUDGET = 100_000  # completed trials per study
MAX_BATCH = 4096  # trials a worker asks at once
MAX_STUDIES = 10_000  # study cells (distinct configs of the sweep)
MAX_CHOICES = 100  # values of one categorical distribution
RANGE_PROBES = 32  # values of an int range checked against every study (all of them if it holds no more)
MAX_CHECKS = 100_000  # study x searched-value config checks (about 4 s); more is refused, not waited for
STUDY_NAME_MAX = 100  # characters of a study name (a file name)
SINGLE_STUDY = "study"  # the name of the one study of a grid whose sweep is a single config
_NAME_OK = re.compile(r"^[A-Za-z0-9_.=-]+$")
_NAME_BAD_CHAR = re.compile(r"[^A-Za-z0-9_.=-]")
_EXAMPLE = "{type: float, low: 0.01, high: 0.5, log: true}"


@dataclass(frozen=True)
class Distribution:
    """One searched key and its Optuna distribution."""

    key: str  # dotted trial-config key, e.g. "train.h_lr"
    kind: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    def to_optuna(self) -> Any:
        """The `optuna.distributions` object (imports optuna)."""
        from optuna import distributions as d

        if self.kind == "float":
            return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return d.IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return d.CategoricalDistribution(self.choices)


@dataclass(frozen=True)
class Study:
    """One study: its name (a safe file name) and the fixed part of its trials' configs (the cell)."""

    name: str
    cell: Mapping[str, Any]  # the swept keys' values that define the cell, e.g. {"model.init_h": "zero", ...}
    base: Mapping[str, Any]  # a full trial-config mapping; the searched keys are set per trial

    def config(self, values: Mapping[str, Any]) -> TrialConfig:
        """The validated trial config of one sampled trial: `base` with the searched keys set to `values`.

        Raises:
            contracts.config.ConfigError: a value the config refuses, or a key the cell fixes.
        """
        mapping = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.base.items()}
        for key, value in values.items():
            if key in self.cell:
                raise ConfigError(f"{key}: fixed by the study's cell ({self.name}); it cannot be searched")
            set_dotted(mapping, key, value)
        return TrialConfig.from_mapping(mapping)


@dataclass(frozen=True)
class SearchSpec:
    """A grid's `search:` section, validated."""

    params: tuple[Distribution, ...]
    metric: str = "accuracy_best"
    direction: str = "maximize"
    budget: int = 128  # completed trials per study
    batch: int = DEFAULT_BATCH  # trials one worker asks (and trains as one group) at a time
    studies: tuple[Study, ...] = ()

    def distributions(self) -> dict[str, Any]:
        """Searched key -> its `optuna.distributions` object, in the order the grid file writes them."""
        return {p.key: p.to_optuna() for p in self.params}




# ---------------------------------------------------------------- reading the `search:` section


def _fail(source: str, where: str, message: str) -> GridError:
    return GridError(f"{source}: {where}: {message}")


def _got(value: Any) -> str:
    """`got X`, saying why a bool is refused where a number is due (a bool is never a number here)."""
    return f"got {value!r}" + (" (a bool is not a number)" if isinstance(value, bool) else "")


def _type_names(types: Sequence[type]) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def _choices_example(key: str) -> str:
    shown = CHOICES.get(key, ("a", "b"))[:2]
    return f"choices: [{', '.join(shown)}]"


def _count(value: Any, where: str, cap: int, what: str, source: str) -> int:
    if type(value) is not int or not 1 <= value <= cap:
        raise _fail(source, where, f"{_got(value)}; expected a whole number of {what} from 1 to {cap:,}")
    return value


def parse_search(section: Any, *, source: str, swept: Mapping[str, str]) -> SearchSpec:
    """Validate a grid's `search:` section (grids/README.md, "Adaptive search"); its `studies` are left empty.

    Args:
        section: the section as the YAML reader gave it.
        source: how errors name the grid (the file path).
        swept: dotted key -> where the sweep varies it; a searched key may not be one of them.

    Raises:
        GridError: one line naming the file, the `search.params.KEY.FIELD` key, what was found and the fix.
    """
    if section is None:
        raise _fail(source, "search", "empty; give budget and params (grids/README.md, Adaptive search), or remove "
                                      "the section")
    if not isinstance(section, Mapping):
        raise _fail(source, "search", f"got {section!r}; expected a mapping with {', '.join(SEARCH_KEYS)}")
    for k in section:
        if k not in SEARCH_KEYS:
            close = difflib.get_close_matches(str(k), SEARCH_KEYS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise _fail(source, f"search.{k}", f"unknown key; {hint}expected one of {', '.join(SEARCH_KEYS)}")
    metric = section.get("metric", METRICS[0])
    if not isinstance(metric, str) or metric not in METRICS:
        raise _fail(source, "search.metric", f"{_got(metric)}; expected one of {', '.join(METRICS)}")
    direction = section.get("direction", DIRECTIONS[0])
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise _fail(source, "search.direction", f"{_got(direction)}; expected one of {', '.join(DIRECTIONS)}")
    if "budget" not in section:
        raise _fail(source, "search.budget", "missing; give the completed trials each study runs, e.g. budget: 128")
    budget = _count(section["budget"], "search.budget", MAX_BUDGET, "completed trials per study", source)
    batch = _count(section.get("batch", DEFAULT_BATCH), "search.batch", MAX_BATCH, "trials a worker asks at once",
                   source)
    if "params" not in section:
        raise _fail(source, "search.params", f"missing; give the searched keys, e.g. train.h_lr: {_EXAMPLE}")
    params = section["params"]
    if not isinstance(params, Mapping) or not params:
        raise _fail(source, "search.params", f"got {params!r}; expected a mapping of one or more searched keys, "
                                             f"e.g. train.h_lr: {_EXAMPLE}")
    dists = tuple(_distribution(key, spec, swept, source) for key, spec in params.items())
    return SearchSpec(params=dists, metric=metric, direction=direction, budget=budget, batch=batch)


def _distribution(key: Any, spec: Any, swept: Mapping[str, str], source: str) -> Distribution:
    where = f"search.params.{key}"
    keys = valid_keys()
    if not isinstance(key, str) or key not in keys:
        close = difflib.get_close_matches(str(key), keys, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise _fail(source, where, f"unknown key {key!r}; {hint}a searched key is a trial-config key: "
                                   f"{', '.join(sorted(keys))}")
    if key in swept:
        raise _fail(source, where, f"{key} is varied by the sweep ({swept[key]}), so each study fixes it; search it "
                                   "or sweep it, not both: remove it from search.params or from sweep:")
    if not isinstance(spec, Mapping):
        raise _fail(source, where, f"got {spec!r}; expected a distribution like {_EXAMPLE}")
    if "type" not in spec:
        raise _fail(source, f"{where}.type", f"missing; expected one of {', '.join(KINDS)}")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise _fail(source, f"{where}.type", f"got {kind!r}; expected one of {', '.join(KINDS)}")
    allowed = CATEGORICAL_KEYS if kind == "categorical" else RANGE_KEYS
    for k in spec:
        if k not in allowed:
            raise _fail(source, f"{where}.{k}", f"unknown key for type {kind}; expected one of {', '.join(allowed)}")
    if kind == "categorical":
        return _categorical(key, spec, where, source)
    return _range(key, kind, spec, where, source)


def _categorical(key: str, spec: Mapping, where: str, source: str) -> Distribution:
    w = f"{where}.choices"
    if "choices" not in spec:
        raise _fail(source, w, f"missing; give a list of two or more values, e.g. {_choices_example(key)}")
    choices = spec["choices"]
    if not isinstance(choices, list):
        raise _fail(source, w, f"got {choices!r}; expected a list of two or more values, e.g. {_choices_example(key)}")
    if len(choices) < 2:
        raise _fail(source, w, f"got {choices!r}; a search needs two or more choices (a fixed value belongs in "
                               "defaults:)")
    if len(choices) > MAX_CHOICES:
        raise _fail(source, w, f"{len(choices):,} choices, more than {MAX_CHOICES}; search a range (type: float or "
                               "int) instead")
    out: list[Any] = []
    seen: dict[tuple, int] = {}
    for i, choice in enumerate(choices):
        if isinstance(choice, (list, dict, tuple)):
            raise _fail(source, f"{w}[{i}]", f"got {choice!r}; expected a single value for {key}")
        try:
            value = check_single(key, choice)
        except ConfigError as e:
            raise _fail(source, f"{w}[{i}]", f"{e}; fix or remove this choice") from e
        canon = (type(value), round12(value))
        if canon in seen:
            raise _fail(source, f"{w}[{i}]", f"{value!r} repeats choices[{seen[canon]}]; give each value once")
        seen[canon] = i
        out.append(value)
    return Distribution(key=key, kind="categorical", choices=tuple(out))


def _range(key: str, kind: str, spec: Mapping, where: str, source: str) -> Distribution:
    types = field_types(key)
    if kind == "float" and float not in types:
        fix = "use type: int" if int in types else "use type: categorical with choices"
        raise _fail(source, f"{where}.type", f"{key} takes {_type_names(types)} values, not float; {fix}")
    if kind == "int" and int not in types:
        fix = "use type: float (with step for evenly spaced values)" if float in types else \
            "use type: categorical with choices"
        raise _fail(source, f"{where}.type", f"{key} takes {_type_names(types)} values, not int; {fix}")
    example = "{type: int, low: 1, high: 20}" if kind == "int" else _EXAMPLE
    bounds = []
    for b in ("low", "high"):
        if b not in spec:
            article = "an" if kind == "int" else "a"
            raise _fail(source, f"{where}.{b}", f"missing; {article} {kind} distribution needs low and high, e.g. "
                                              f"{example}")
        v = spec[b]
        if kind == "int" and type(v) is not int:
            raise _fail(source, f"{where}.{b}", f"{_got(v)}; expected an integer for type int")
        if kind == "float" and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise _fail(source, f"{where}.{b}", f"{_got(v)}; expected a number")
        try:
            bounds.append(check_single(key, v))
        except ConfigError as e:
            raise _fail(source, f"{where}.{b}", f"{e}; every value of the range must be valid: fix {b}") from e
    low, high = bounds
    if not low < high:
        raise _fail(source, where, f"low {low!r} >= high {high!r}: an empty range; give low < high (a fixed value "
                                   "belongs in defaults:)")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise _fail(source, f"{where}.log", f"got {log!r}; expected true or false")
    if log and low <= 0:
        raise _fail(source, f"{where}.low", f"got {low!r}; a log scale needs low > 0: raise low or drop log")
    step = None
    if "step" in spec:
        step = _step(spec["step"], kind, low, high, f"{where}.step", source)
        if log:
            raise _fail(source, where, "step and log: true exclude each other (Optuna has no stepped log scale); "
                                       "drop step or log")
    return Distribution(key=key, kind=kind, low=low, high=high, log=log, step=step)


def _step(step: Any, kind: str, low: float, high: float, where: str, source: str) -> float | int:
    """A step > 0 that divides high - low exactly (Optuna would otherwise lower high with a warning)."""
    if kind == "int":
        if type(step) is not int or step <= 0:
            raise _fail(source, where, f"{_got(step)}; expected an integer > 0")
    elif isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0:
        raise _fail(source, where, f"{_got(step)}; expected a number > 0")
    # Optuna's own arithmetic: exact for ints, decimal for floats (0.3 - 0.1 is 0.2 there, not 0.19999999999999998)
    d_low, d_high, d_step = (decimal.Decimal(str(x)) for x in (low, high, step))
    if d_step > d_high - d_low:
        raise _fail(source, where, f"{step!r} is larger than the range (high - low = {d_high - d_low}); give a "
                                   "smaller step")
    if kind == "int":
        fits = low + (high - low) // step * step
    else:
        fits = high if (d_high - d_low) % d_step == 0 else float((d_high - d_low) // d_step * d_step + d_low)
        step = float(step)
    if fits != high:
        raise _fail(source, where, f"high - low is not a multiple of step {step!r} (Optuna would lower high to "
                                   f"{fits!r}); set high: {fits!r} or change the step")
    return step


# ---------------------------------------------------------------- the studies


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(round12(value)).replace("+", "")
    return str(value)


def study_names(cells: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> list[str]:
    """Safe, readable, unique file names for study cells, e.g. `init_h=zero.T=3`.

    The name lists the keys whose values differ between cells (in sweep order; the last part of the dotted key
    unless two keys share it) with their values; `study` if none does. Only letters, digits, `_`, `-`, `.`, `=`,
    at most 100 characters. A name that is too long, holds other characters, or equals another one (in any
    case) is cut and ends with `-` and the cell's trial id (`ids[i]`, unique in a grid) instead.
    """
    keys = list(cells[0]) if cells else []
    varying = [k for k in keys if len({(type(c[k]), round12(c[k])) for c in cells}) > 1]
    leaves = [k.rsplit(".", 1)[-1] for k in varying]
    labels = [leaf if leaves.count(leaf) == 1 else key for key, leaf in zip(varying, leaves)]
    readable = [".".join(f"{lab}={_label(c[k])}" for lab, k in zip(labels, varying)) or SINGLE_STUDY for c in cells]
    clean = [_NAME_BAD_CHAR.sub("_", r) for r in readable]
    folded: dict[str, int] = {}
    for c in clean:
        folded[c.lower()] = folded.get(c.lower(), 0) + 1
    names = []
    for r, c, tid in zip(readable, clean, ids):
        if c != r or len(c) > STUDY_NAME_MAX or folded[c.lower()] > 1:
            prefix = c[:STUDY_NAME_MAX - len(tid) - 1].rstrip("._=-")
            c = f"{prefix}-{tid}" if prefix else tid
        names.append(c)
    if len({n.lower() for n in names}) < len(names):  # a readable name equal to a cut one: trial ids are unique
        names = list(ids)
    assert all(_NAME_OK.match(n) and len(n) <= STUDY_NAME_MAX for n in names), names
    return names


def plan_studies(spec: SearchSpec, trials: Sequence[TrialConfig], ids: Sequence[str], keys: Sequence[str], *,
                 source: str) -> SearchSpec:
    """`spec` with its studies: one per expanded sweep config, in sweep order, each checked with every searched value.

    Args:
        trials: the grid's unique expanded configs; ids: their trial ids.
        keys: the keys the sweep sets, in sweep order (a study's cell).

    Raises:
        GridError: too many studies, or a searched value that makes some study's trial invalid (a rule between
            keys, e.g. backprop needs train.T = 1).
    """
    if len(trials) > MAX_STUDIES:
        raise _fail(source, "search", f"the sweep expands to {len(trials):,} study cells, more than the "
                                      f"{MAX_STUDIES:,} a search may hold; vary fewer keys in sweep: (each distinct "
                                      "config is one study)")
    cells = [{k: cfg.get(k) for k in keys} for cfg in trials]
    names = study_names(cells, ids)
    studies = tuple(Study(name=n, cell=c, base=cfg.to_mapping()) for n, c, cfg in zip(names, cells, trials))
    _check_values(spec, studies, source)
    return dataclasses.replace(spec, studies=studies)


def _probes(dist: Distribution) -> list[tuple[str, Any, str]]:
    """(where, value, what) of the values of a distribution that are tried in every study."""
    w = f"search.params.{dist.key}"
    if dist.kind == "categorical":
        return [(f"{w}.choices[{i}]", v, "") for i, v in enumerate(dist.choices or ())]
    out = [(f"{w}.low", dist.low, ""), (f"{w}.high", dist.high, "")]
    if dist.kind == "int":  # rules such as an even number of batches hold at the bounds but not always between
        values = range(int(dist.low), int(dist.high) + 1, int(dist.step or 1))
        picks = range(len(values)) if len(values) <= RANGE_PROBES else \
            sorted({round(i * (len(values) - 1) / (RANGE_PROBES - 1)) for i in range(RANGE_PROBES)})
        out += [(w, values[i], " (a value inside the range)") for i in picks if 0 < i < len(values) - 1]
    return out


def _check_values(spec: SearchSpec, studies: Sequence[Study], source: str) -> None:
    """Every study's base with each probed value of each searched key must be a valid trial config."""
    probes = [(d.key, p) for d in spec.params for p in _probes(d)]
    checks = len(probes) * len(studies)
    if checks > MAX_CHECKS:
        raise _fail(source, "search", f"{len(probes):,} searched values to check in each of {len(studies):,} studies "
                                      f"({checks:,} config checks), more than {MAX_CHECKS:,}; give fewer choices or "
                                      "narrower int ranges, or vary fewer keys in sweep:")
    for key, (where, value, what) in probes:
        for study in studies:
            mapping = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in study.base.items()}
            set_dotted(mapping, key, value)
            try:
                TrialConfig.from_mapping(mapping)
            except ConfigError as e:
                raise _fail(source, where, f"{key}={value!r}{what} makes study {study.name} invalid: {e}; every "
                                           "sampled trial must be valid: narrow the distribution, or change "
                                           "defaults: or sweep:") from e


__all__ = ["DEFAULT_BATCH", "DIRECTIONS", "Distribution", "KINDS", "MAX_BATCH", "MAX_BUDGET", "MAX_STUDIES", "METRICS",
           "SearchSpec", "Study", "parse_search", "plan_studies", "study_names"]
