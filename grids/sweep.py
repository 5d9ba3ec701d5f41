"""The sweep engine behind grid files: blocks of axes -> validated trial configs, fast.

`grids.grid` reads and checks the document; this module turns its `sweep` blocks into product
axes (`Parser`), splits blocks by their `by` cases (`_split_by`) and expands them (`expand`).
Expansion is built for the paper's 54,784 trials: each combination of program-shaping values is
validated once through `TrialConfig.from_mapping`, each per-trial value once on its own, and trial
ids are hashed from cached per-section JSON (identical bytes to `TrialConfig.trial_id`).
Imports only `contracts.config` (no jax).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.config import (
    PER_TRIAL_KEYS,
    ConfigError,
    TrialConfig,
    canonical_json,
    check_single,
    id_section,
    set_dotted,
    valid_keys,
)
from contracts.labels import round12
from grids.document import GridError

# The most trials one grid may expand to (counted from axis lengths before anything is expanded). The
# paper's largest grid holds 50,560; a typo like `seed: {range: 100000000}` is refused at once.
MAX_TRIALS = 250_000

BLOCK_KEYS = ("name", "description", "set", "axes", "joint", "by", "exclude")
CASE_KEYS = ("set", "axes", "joint")
_SECTIONS = tuple(
    f.name for f in dataclasses.fields(TrialConfig) if dataclasses.is_dataclass(getattr(TrialConfig(), f.name))
)
_TOP_KEYS = tuple(f.name for f in dataclasses.fields(TrialConfig) if f.name not in _SECTIONS)
_SECTION_NAMES = {type(getattr(TrialConfig(), name)): name for name in _SECTIONS}


_SECTION_JSON: dict[Any, str] = {}
# Entries the section-JSON cache holds before it starts over: bounds its memory on a long-lived process.
_SECTION_CACHE_MAX = 200_000


def _section_json(section: Any) -> str:
    """Canonical JSON of one config section, cached (sections are frozen, hashable dataclasses)."""
    text = _SECTION_JSON.get(section)
    if text is None:
        if len(_SECTION_JSON) > _SECTION_CACHE_MAX:
            _SECTION_JSON.clear()
        name = _SECTION_NAMES[type(section)]
        text = _SECTION_JSON[section] = canonical_json(id_section(name, dataclasses.asdict(section)))
    return text


def fast_trial_id(cfg: TrialConfig) -> str:
    """`cfg.trial_id`, computed from cached per-section JSON (the same bytes, several times faster).

    `canonical_json` sorts keys and writes no whitespace, so the JSON of a whole config is the
    sorted concatenation of its sections' JSON; tests check equality with `TrialConfig.trial_id`.
    """
    parts = []
    for name in _SORTED_FIELDS:
        value = getattr(cfg, name)
        text = _section_json(value) if name in _SECTIONS else canonical_json(value)
        parts.append(f'"{name}":{text}')
    return hashlib.sha256(("{" + ",".join(parts) + "}").encode()).hexdigest()[:16]


_SORTED_FIELDS = tuple(sorted(_SECTIONS + _TOP_KEYS))


# ---------------------------------------------------------------- the sweep model


@dataclass
class _Group:
    """One product axis: keys varying together, their rows of values, where it was written."""

    keys: tuple[str, ...]
    rows: list[tuple]
    where: str


@dataclass
class _Block:
    where: str
    groups: list[_Group]
    by: list[tuple[str, dict, str]] = field(default_factory=list)  # (key, {value: [groups]}, where)
    exclude: list[list[tuple[str, frozenset, str]]] = field(default_factory=list)


class Parser:
    """Checks a grid document piece by piece, so errors point at the line the user wrote."""

    def __init__(self, source: str):
        self.source = source
        self.keys = set(valid_keys())

    def fail(self, where: str, message: str) -> GridError:
        return GridError(f"{self.source}: {where}: {message}")

    def key(self, key: Any, where: str) -> str:
        if not isinstance(key, str) or key not in self.keys:
            close = difflib.get_close_matches(str(key), sorted(self.keys), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            return_msg = f"unknown key {key!r}; {hint}valid keys are {', '.join(sorted(self.keys))}"
            raise self.fail(where, return_msg)
        return key

    def value(self, key: str, value: Any, where: str) -> Any:
        """Type, choice and range check of one value alone (cross-key rules are checked per trial)."""
        if isinstance(value, (list, dict, tuple)):
            raise self.fail(where, f"got {value!r}; expected a single value for {key}")
        try:
            check_single(key, value)
        except ConfigError as e:
            raise self.fail(where, f"{e}. Fix this value in the grid file") from e
        return value

    def values(self, key: str, spec: Any, where: str) -> list:
        if isinstance(spec, Mapping) and set(spec) == {"range"}:
            r = spec["range"]
            args = [r] if isinstance(r, int) else r
            if not (isinstance(args, list) and 1 <= len(args) <= 3 and all(type(a) is int for a in args)):
                raise self.fail(where, f"got range {r!r}; expected N, [start, stop] or [start, stop, step] of ints")
            if len(args) == 3 and args[2] == 0:
                raise self.fail(where, f"got range {r!r}; the step must not be 0")
            if len(range(*args)) > MAX_TRIALS:
                raise self.fail(where, f"range {r!r} holds {len(range(*args)):,} values, more than the "
                                       f"{MAX_TRIALS:,} trials a grid may hold; split the grid")
            spec = list(range(*args))
        if not isinstance(spec, list):
            raise self.fail(where, f"got {spec!r}; expected a list of values (use `set:` for one value)")
        if not spec:
            raise self.fail(where, "empty axis; give at least one value or remove the axis")
        return [self.value(key, v, f"{where}[{i}]") for i, v in enumerate(spec)]

    def mapping(self, obj: Any, where: str, allowed: Sequence[str] | None = None) -> Mapping:
        if obj is None:
            return {}
        if not isinstance(obj, Mapping):
            raise self.fail(where, f"got {obj!r}; expected a mapping")
        if allowed is not None:
            for k in obj:
                if k not in allowed:
                    raise self.fail(f"{where}.{k}" if where else str(k),
                                    f"unknown key; expected one of {', '.join(allowed)}")
        return obj

    def groups(self, spec: Mapping, where: str) -> list[_Group]:
        """`set`, `axes` and `joint` of a block or a by-case, in that order, as product axes."""
        out: list[_Group] = []
        for k, v in self.mapping(spec.get("set"), f"{where}.set").items():
            k = self.key(k, f"{where}.set.{k}")
            out.append(_Group((k,), [(self.value(k, v, f"{where}.set.{k}"),)], f"{where}.set.{k}"))
        for k, v in self.mapping(spec.get("axes"), f"{where}.axes").items():
            k = self.key(k, f"{where}.axes.{k}")
            out.append(_Group((k,), [(x,) for x in self.values(k, v, f"{where}.axes.{k}")], f"{where}.axes.{k}"))
        for k, rows in self.mapping(spec.get("joint"), f"{where}.joint").items():
            names = k if isinstance(k, tuple) else tuple(s.strip() for s in str(k).split(","))
            w = f"{where}.joint.[{', '.join(map(str, names))}]"
            keys = tuple(self.key(n, w) for n in names)
            if len(keys) < 2 or len(set(keys)) != len(keys):
                raise self.fail(w, "a joint axis needs two or more distinct keys; use `axes:` for one")
            if not isinstance(rows, list) or not rows:
                raise self.fail(w, f"got {rows!r}; expected a non-empty list of rows like [{', '.join(keys)}]")
            checked = []
            for i, row in enumerate(rows):
                if not isinstance(row, list) or len(row) != len(keys):
                    raise self.fail(f"{w}[{i}]",
                                    f"got {row!r}; expected a list of {len(keys)} values ({', '.join(keys)})")
                checked.append(tuple(self.value(key, x, f"{w}[{i}]") for key, x in zip(keys, row)))
            out.append(_Group(keys, checked, w))
        seen: dict[str, str] = {}
        for g in out:
            for k in g.keys:
                if k in seen:
                    raise self.fail(g.where, f"{k} is also given at {seen[k]}; give each key once per block")
                seen[k] = g.where
        return out

    def rules(self, spec: Any, where: str) -> list[list[tuple[str, frozenset, str]]]:
        if spec is None:
            return []
        if not isinstance(spec, list):
            raise self.fail(where,
                            f"got {spec!r}; expected a list of rules like {{model.kind: bp, train.w_optimizer: adamw}}")
        rules = []
        for i, rule in enumerate(spec):
            w = f"{where}[{i}]"
            if not isinstance(rule, Mapping) or not rule:
                raise self.fail(w, f"got {rule!r}; expected a mapping dotted key -> value or list of values")
            conds = []
            for k, v in rule.items():
                k = self.key(k, f"{w}.{k}")
                vals = v if isinstance(v, list) else [v]
                conds.append((k, frozenset(_canon(self.value(k, x, f"{w}.{k}")) for x in vals), f"{w}.{k}"))
            rules.append(conds)
        return rules

    def block(self, spec: Any, index: int) -> _Block:
        where = f"sweep[{index}]"
        spec = self.mapping(spec, where, BLOCK_KEYS)
        if "name" in spec:
            where = f"sweep[{index}] ({spec['name']})"
        block = _Block(where, self.groups(spec, where), exclude=self.rules(spec.get("exclude"), f"{where}.exclude"))
        for k, cases in self.mapping(spec.get("by"), f"{where}.by").items():
            k = self.key(k, f"{where}.by.{k}")
            w = f"{where}.by.{k}"
            cases = self.mapping(cases, w)
            if not cases:
                raise self.fail(w, "no cases; give value: {axes/set/joint} entries or remove `by`")
            parsed = {}
            for value, case in cases.items():
                cw = f"{w}.{value}"
                self.value(k, value, cw)
                parsed[value] = self.groups(self.mapping(case, cw, CASE_KEYS), cw)
            block.by.append((k, parsed, w))
        return block


def _canon(value: Any) -> Any:
    return round12(value)


def _replace_groups(groups: list[_Group], new: list[_Group], source: str) -> list[_Group]:
    """Groups with `new` ones replacing those that set the same keys (a by-case overriding its block)."""
    out = list(groups)
    for g in new:
        hit = [i for i, old in enumerate(out) if set(old.keys) & set(g.keys)]
        for i in hit:
            if not set(out[i].keys) <= set(g.keys):
                raise GridError(
                    f"{source}: {g.where}: replaces part of the joint axis at {out[i].where}; "
                    f"give all of its keys ({', '.join(out[i].keys)}) together"
                )
        pos = hit[0] if hit else len(out)
        out = [old for i, old in enumerate(out) if i not in hit]
        out.insert(min(pos, len(out)), g)
    return out


def _split_by(block: _Block, source: str) -> Iterator[tuple[list[_Group], str]]:
    """The block's plain products: one per combination of its `by` values, in the axis order."""

    def rec(groups: list[_Group], by: list, where: str) -> Iterator[tuple[list[_Group], str]]:
        if not by:
            yield groups, where
            return
        key, cases, bw = by[0]
        mine = [i for i, g in enumerate(groups) if key in g.keys]
        if mine and len(groups[mine[0]].keys) > 1:
            raise GridError(f"{source}: {bw}: {key} is part of a joint axis; `by` needs a single-key axis or set")
        if mine:
            values = [row[0] for row in groups[mine[0]].rows]
        else:
            values = list(cases)
            groups = [_Group((key,), [(values[0],)], bw)] + groups
            mine = [0]
        for case in cases:
            if case not in values:
                raise GridError(f"{source}: {bw}.{case}: {case!r} is not a value of {key} in this block ({values})")
        for v in values:
            fixed = list(groups)
            fixed[mine[0]] = _Group((key,), [(v,)], groups[mine[0]].where)
            yield from rec(_replace_groups(fixed, cases.get(v, []), source), by[1:], f"{where} {key}={v}")

    yield from rec(block.groups, block.by, block.where)


def count_trials(blocks: list[_Block], source: str) -> int:
    """Trials the blocks generate before exclusions and de-duplication, from axis lengths alone."""
    total = 0
    for block in blocks:
        for groups, _ in _split_by(block, source):
            total += math.prod(len(g.rows) for g in groups)
            if total > MAX_TRIALS:
                return total
    return total



def _excluded(cfg: TrialConfig, rules: list) -> bool:
    return any(all(_canon(cfg.get(k)) in vals for k, vals, _ in rule) for rule in rules)


# Keys validated one value at a time: `seed` and the per-trial knobs that become arrays with a
# trial axis in pc's compiled program (contracts.config.PER_TRIAL_KEYS); contracts.config checks each of them
# on its own (positive, >= 0, int), never against another key.
# Per-trial keys checked on their own, value by value. train.h_momentum is per trial in a program but takes part
# in a cross-key rule (backprop has no state momentum), so it is validated with the rest of its trial.
_CROSS_CHECKED = ("train.h_momentum",)
_LIGHT = {k: (tuple(k.split(".", 1)) if "." in k else (None, k))
          for k in (*PER_TRIAL_KEYS, *_TOP_KEYS) if k not in _CROSS_CHECKED}


def expand(blocks: list[_Block], top_rules: list, defaults: Mapping[str, Any], source: str):
    """Generate (trial_id, config) for every block product, validated, excluded rules dropped.

    Built for speed (the paper grids hold 54,784 trials): each combination of the keys that shape
    the program is validated once through `TrialConfig.from_mapping`, each per-trial value once
    on its own; a trial then costs a few cached lookups and one sha256 of cached JSON pieces.
    """
    base_cache: dict[tuple, tuple[dict, dict]] = {}
    light_cache: dict[tuple, Any] = {}
    section_cache: dict[tuple, tuple[Any, str]] = {}
    top_json: dict[tuple, str] = {}

    def light_value(key: str, value: Any, where: str) -> Any:
        tk = (key, value.__class__, value)
        if tk not in light_cache:
            try:
                light_cache[tk] = check_single(key, value)
            except ConfigError as e:
                raise GridError(f"{source}: {where}: {e}; fix the value in the grid file") from e
        return light_cache[tk]

    for block in blocks:
        rules = block.exclude + top_rules
        for groups, where in _split_by(block, source):
            tagged = []
            for g in groups:
                tagged.append([
                    (
                        tuple((k, v.__class__, v) for k, v in zip(g.keys, row) if k not in _LIGHT),
                        tuple((k, light_value(k, v, g.where)) for k, v in zip(g.keys, row) if k in _LIGHT),
                    )
                    for row in g.rows
                ])
            for combo in itertools.product(*tagged):
                ck = tuple(itertools.chain.from_iterable(c[0] for c in combo))
                entry = base_cache.get(ck)
                if entry is None:
                    entry = base_cache[ck] = _base(ck, defaults, source, where)
                kwargs, texts = entry
                kwargs, texts = dict(kwargs), dict(texts)
                by_section: dict[str, list] = {}
                for c in combo:
                    for k, v in c[1]:
                        section, name = _LIGHT[k]
                        if section is None:
                            kwargs[name] = v
                            tk = (v.__class__, v)
                            text = top_json.get(tk)
                            texts[name] = text if text is not None else top_json.setdefault(tk, canonical_json(v))
                        else:
                            by_section.setdefault(section, []).append((name, v))
                for section, items in by_section.items():
                    sk = (id(kwargs[section]), tuple(items))
                    hit = section_cache.get(sk)
                    if hit is None:
                        obj = dataclasses.replace(kwargs[section], **dict(items))
                        hit = section_cache[sk] = (obj, _section_json(obj))
                    kwargs[section], texts[section] = hit
                cfg = TrialConfig(**kwargs)
                if rules and _excluded(cfg, rules):
                    continue
                body = ",".join(f'"{name}":{texts[name]}' for name in _SORTED_FIELDS)
                yield hashlib.sha256(("{" + body + "}").encode()).hexdigest()[:16], cfg


def _base(ck: tuple, defaults: Mapping[str, Any], source: str, where: str) -> tuple[dict, dict]:
    """Validate one combination of program-shaping values; its fields and their canonical JSON."""
    mapping = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in defaults.items()}
    for k, _, v in ck:
        set_dotted(mapping, k, v)
    try:
        base = TrialConfig.from_mapping(mapping)
    except ConfigError as e:
        shown = ", ".join(f"{k}={v!r}" for k, _, v in ck)
        raise GridError(f"{source}: {where}: {e}; the trial with {shown} is invalid; fix the sweep") from e
    kwargs = {f: getattr(base, f) for f in _SORTED_FIELDS}
    return kwargs, {f: (_section_json(v) if f in _SECTIONS else canonical_json(v)) for f, v in kwargs.items()}
