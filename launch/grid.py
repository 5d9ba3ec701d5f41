"""Grid files (DESIGN.md section 3): a YAML sweep -> validated, de-duplicated trial configs.

Imports only yaml and `pc.config` (no jax), so it runs on a login node. The format is documented
in grids/README.md; in short a grid is `name`, `description`, `defaults` (a nested trial config)
and `sweep`, a list of blocks. Each block is the cartesian product of its axes: `axes` (one dotted
key -> a list of values), `joint` (several keys varying together), `set` (one value), `by`
(per-value axes and sets, e.g. per dataset, without copying the block) and `exclude` rules.
Everything is validated before a single trial is returned; errors name the file and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pc.config import PER_TRIAL_KEYS, ConfigError, TrialConfig, canonical_json, set_dotted, valid_keys

GRID_KEYS = ("name", "description", "defaults", "sweep", "exclude")
BLOCK_KEYS = ("name", "description", "set", "axes", "joint", "by", "exclude")
CASE_KEYS = ("set", "axes", "joint")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SECTIONS = tuple(
    f.name for f in dataclasses.fields(TrialConfig) if dataclasses.is_dataclass(getattr(TrialConfig(), f.name))
)
_TOP_KEYS = tuple(f.name for f in dataclasses.fields(TrialConfig) if f.name not in _SECTIONS)


class GridError(ValueError):
    """An invalid grid file or override; the message names the file, the dotted key and the fix."""


@dataclass(frozen=True)
class Grid:
    """A loaded grid: its trials in a deterministic order, each trial once."""

    name: str  # experiment name: runs/<name>/
    path: Path | None  # the file it came from (None for a mapping)
    defaults: dict  # full default trial mapping after overrides
    trials: tuple[TrialConfig, ...]  # unique, in sweep order (blocks, then axes as written)
    raw: dict  # the document with overrides folded into `defaults` (stored as runs/<grid>/grid.yaml)
    description: str = ""
    trial_ids: tuple[str, ...] = ()  # trial_ids[i] is trials[i].trial_id
    duplicates: int = 0  # generated trials dropped because an earlier one had the same trial_id
    swept: tuple[str, ...] = ()  # dotted keys the sweep sets (axes, joint, set, by)


# ---------------------------------------------------------------- YAML with 1e-3 floats


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`), refuses duplicate keys
    and accepts a flow sequence as a mapping key (`[a, b]: [[1, 2]]` for joint axes)."""


_Loader.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:float"] for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, list):
            key = tuple(key)
        if key in out:
            raise GridError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}; each key may appear once")
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_value(text: str) -> Any:
    """A command-line or YAML scalar: `1` int, `1e-3` float, `true` bool, `null` None, else str."""
    return yaml.load(text, Loader=_Loader)


# ---------------------------------------------------------------- fast, exact trial ids

_SECTION_JSON: dict[Any, str] = {}


def _section_json(section: Any) -> str:
    """Canonical JSON of one config section, cached (sections are frozen, hashable dataclasses)."""
    text = _SECTION_JSON.get(section)
    if text is None:
        if len(_SECTION_JSON) > 200_000:
            _SECTION_JSON.clear()
        text = _SECTION_JSON[section] = canonical_json(dataclasses.asdict(section))
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


class _Parser:
    """Checks a grid document piece by piece, so errors point at the line the user wrote."""

    def __init__(self, source: str, defaults: Mapping[str, Any]):
        self.source = source
        self.defaults = defaults
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
        """Type and range check of one value alone (cross-key rules are checked per trial)."""
        if isinstance(value, (list, dict, tuple)):
            raise self.fail(where, f"got {value!r}; expected a single value for {key}")
        mapping = copy.deepcopy(dict(self.defaults))
        set_dotted(mapping, key, value)
        try:
            TrialConfig.from_mapping(mapping)
        except ConfigError as e:
            if str(e).startswith(f"{key}:"):
                raise self.fail(where, f"{e}. Fix this value in the grid file") from e
        return value

    def values(self, key: str, spec: Any, where: str) -> list:
        if isinstance(spec, Mapping) and set(spec) == {"range"}:
            r = spec["range"]
            args = [r] if isinstance(r, int) else r
            if not (isinstance(args, list) and 1 <= len(args) <= 3 and all(type(a) is int for a in args)):
                raise self.fail(where, f"got range {r!r}; expected N, [start, stop] or [start, stop, step] of ints")
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
                    raise self.fail(f"{where}.{k}" if where else str(k), f"unknown key; expected one of {', '.join(allowed)}")
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
                    raise self.fail(f"{w}[{i}]", f"got {row!r}; expected a list of {len(keys)} values ({', '.join(keys)})")
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
            raise self.fail(where, f"got {spec!r}; expected a list of rules like {{model.kind: bp, train.w_optimizer: adamw}}")
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
    return float(f"{value:.12g}") if isinstance(value, float) else value


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


def _get(cfg: TrialConfig, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _excluded(cfg: TrialConfig, rules: list) -> bool:
    return any(all(_canon(_get(cfg, k)) in vals for k, vals, _ in rule) for rule in rules)


# Keys validated one value at a time: `seed` and the per-trial knobs that become arrays with a
# trial axis in pc's compiled program (pc.config.PER_TRIAL_KEYS); pc.config checks each of them
# on its own (positive, >= 0, int), never against another key.
_LIGHT = {k: (tuple(k.split(".", 1)) if "." in k else (None, k)) for k in (*PER_TRIAL_KEYS, *_TOP_KEYS)}


def _expand(blocks: list[_Block], top_rules: list, defaults: Mapping[str, Any], source: str):
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
            mapping = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in defaults.items()}
            set_dotted(mapping, key, value)
            try:
                light_cache[tk] = _get(TrialConfig.from_mapping(mapping), key)
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


def _parse_overrides(overrides: Sequence[str], parser: _Parser) -> dict[str, Any]:
    out = {}
    for text in overrides:
        if "=" not in text:
            raise GridError(f"override {text!r}: expected KEY=VALUE, e.g. train.epochs=1")
        key, raw = text.split("=", 1)
        key = parser.key(key.strip(), f"override {text!r}")
        if not raw.strip():
            raise GridError(f"override {text!r}: empty value; write e.g. {key}=null for None")
        out[key] = parse_value(raw)
    return out


def _nest(mapping: Mapping[str, Any]) -> dict:
    """Nested copy of a defaults mapping that may use dotted keys (`train.epochs: 1`)."""
    out: dict = {}
    for k, v in mapping.items():
        if isinstance(v, Mapping):
            for kk, vv in _nest(v).items():
                set_dotted(out, f"{k}.{kk}", vv)
        else:
            set_dotted(out, str(k), v)
    return out


def grid_from_mapping(doc: Mapping, *, source: str = "<grid>", overrides: Sequence[str] = (), path: Path | None = None) -> Grid:
    """Validate a grid document and expand it into unique trials (see the module docstring).

    Args:
        doc: the parsed YAML document.
        source: how errors name the document (the file path).
        overrides: `dotted.key=value` strings applied to every trial (folded into the defaults);
            a key the sweep varies is refused, since the override would collapse that axis.

    Raises:
        GridError: naming the file, the dotted key, what was found and how to fix it.
    """
    if not isinstance(doc, Mapping):
        raise GridError(f"{source}: got {type(doc).__name__}; a grid file is a mapping with {', '.join(GRID_KEYS)}")
    probe = _Parser(source, {})
    probe.mapping(doc, "", GRID_KEYS)
    name = doc.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise GridError(f"{source}: name: got {name!r}; expected a folder name of letters, digits, '_', '-', '.'")
    description = doc.get("description") or ""
    defaults = _nest(probe.mapping(doc.get("defaults"), "defaults"))
    for k in _flat_keys(defaults):
        probe.key(k, f"defaults.{k}")
    try:
        full = TrialConfig.from_mapping(defaults).to_mapping()
    except ConfigError as e:
        raise GridError(f"{source}: defaults: {e}") from e
    parser = _Parser(source, full)
    sweep = doc.get("sweep")
    if sweep is None:
        sweep = [{}]
    if not isinstance(sweep, list) or not sweep:
        raise GridError(f"{source}: sweep: got {sweep!r}; expected a non-empty list of blocks")
    blocks = [parser.block(b, i) for i, b in enumerate(sweep)]
    top_rules = parser.rules(doc.get("exclude"), "exclude")
    swept: dict[str, str] = {}
    for b in blocks:
        for g in b.groups:
            swept.update({k: g.where for k in g.keys})
        for key, cases, w in b.by:
            swept[key] = w
            for groups in cases.values():
                swept.update({k: g.where for g in groups for k in g.keys})
    over = _parse_overrides(overrides, parser)
    for key, value in over.items():
        if key in swept:
            raise GridError(
                f"{source}: override {key}={value!r}: {key} is varied by the sweep ({swept[key]}); an override "
                "applies to every trial and would collapse it. Edit the grid file, or pick trials with --only"
            )
        set_dotted(defaults, key, value)
    if over:
        try:
            full = TrialConfig.from_mapping(defaults).to_mapping()
        except ConfigError as e:
            raise GridError(f"{source}: override: {e}") from e
        parser = _Parser(source, full)
        blocks = [parser.block(b, i) for i, b in enumerate(sweep)]
    seen: dict[str, TrialConfig] = {}
    generated = 0
    for tid, cfg in _expand(blocks, top_rules, full, source):
        generated += 1
        if tid not in seen:
            seen[tid] = cfg
    if not seen:
        raise GridError(f"{source}: exclude: every trial is excluded; the grid is empty")
    raw = copy.deepcopy(dict(doc))
    raw["defaults"] = defaults
    return Grid(
        name=name,
        path=path,
        defaults=full,
        trials=tuple(seen.values()),
        raw=_plain(raw),
        description=str(description),
        trial_ids=tuple(seen),
        duplicates=generated - len(seen),
        swept=tuple(sorted(swept)),
    )


def _flat_keys(mapping: Mapping, prefix: str = "") -> list[str]:
    out = []
    for k, v in mapping.items():
        if isinstance(v, Mapping):
            out += _flat_keys(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}")
    return out


def _plain(obj: Any) -> Any:
    """The document with tuple keys (`[a, b]:` joint axes) written back as `a, b` strings."""
    if isinstance(obj, Mapping):
        return {(", ".join(k) if isinstance(k, tuple) else k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def read_grid_document(path: str | os.PathLike) -> dict:
    """Parse a grid YAML file (floats like 1e-3 included); errors name the file and line."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise GridError(f"{p}: cannot read the grid file ({e.strerror}); check the path") from e
    try:
        return yaml.load(text, Loader=_Loader)
    except GridError as e:
        raise GridError(f"{p}: {e}") from e
    except yaml.YAMLError as e:
        raise GridError(f"{p}: not valid YAML: {e}".replace("\n", " ")) from e


def load_grid(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Grid:
    """Read, validate and expand a grid file; nothing runs on an invalid grid.

    Args:
        path: a grids/*.yaml file.
        overrides: `dotted.key=value` strings, e.g. `train.epochs=1`, applied to every trial.
    """
    doc = read_grid_document(path)
    return grid_from_mapping(doc, source=str(path), overrides=overrides, path=Path(path))


def dump_grid(grid: Grid) -> str:
    """The grid's `raw` document as YAML text (what launch stores as runs/<grid>/grid.yaml)."""
    return yaml.safe_dump(grid.raw, sort_keys=False, default_flow_style=None, width=120)
