"""Grid files (DESIGN.md section 3): a YAML sweep -> validated, de-duplicated trial configs.

Imports only yaml and `contracts.config` (no jax), so it runs on a login node. The format is documented
in grids/README.md; in short a grid is `name`, `description`, `defaults` (a nested trial config)
and `sweep`, a list of blocks. Each block is the cartesian product of its axes: `axes` (one dotted
key -> a list of values), `joint` (several keys varying together), `set` (one value), `by`
(per-value axes and sets, e.g. per dataset, without copying the block) and `exclude` rules.
Everything is validated before a single trial is returned; errors name the file and the key.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contracts.config import ConfigError, TrialConfig, set_dotted
from contracts.paths import RunFolderError, check_grid_name
from grids.sweep import GridError, Parser, expand, fast_trial_id

__all__ = ["Grid", "GridError", "dump_grid", "fast_trial_id", "grid_from_mapping", "load_grid", "parse_value"]

GRID_KEYS = ("name", "description", "defaults", "sweep", "exclude")
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


# ---------------------------------------------------------------- documents and overrides


def _parse_overrides(overrides: Sequence[str], parser: Parser) -> dict[str, Any]:
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
    probe = Parser(source, {})
    probe.mapping(doc, "", GRID_KEYS)
    name = doc.get("name")
    try:
        check_grid_name(name, f"{source}: name")
    except RunFolderError as e:
        raise GridError(str(e)) from e
    description = doc.get("description") or ""
    defaults = _nest(probe.mapping(doc.get("defaults"), "defaults"))
    for k in _flat_keys(defaults):
        probe.key(k, f"defaults.{k}")
    try:
        full = TrialConfig.from_mapping(defaults).to_mapping()
    except ConfigError as e:
        raise GridError(f"{source}: defaults: {e}") from e
    parser = Parser(source, full)
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
        parser = Parser(source, full)
        blocks = [parser.block(b, i) for i, b in enumerate(sweep)]
    seen: dict[str, TrialConfig] = {}
    generated = 0
    for tid, cfg in expand(blocks, top_rules, full, source):
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
