"""Grid files (docs/design.md section 3): a YAML sweep -> validated, de-duplicated trial configs.

Imports only yaml and `contracts.config` (no jax), so it runs on a login node. The format is documented
in grids/README.md; in short a grid is `name`, `description`, `defaults` (a nested trial config)
and `sweep`, a list of blocks. Each block is the cartesian product of its axes: `axes` (one dotted
key -> a list of values), `joint` (several keys varying together), `set` (one value), `by`
(per-value axes and sets, e.g. per dataset, without copying the block) and `exclude` rules. An optional
`search` section (grids/search.py) makes each expanded config the cell of an adaptive (Optuna) study.
Everything is validated before a single trial is returned; errors name the file and the key.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.config import ConfigError, TrialConfig, set_dotted
from contracts.overrides import merge_config, parse_overrides
from contracts.paths import RunFolderError, check_grid_name
from grids.document import GridError, dump_yaml, parse_value, read_grid_document
from grids.search import SearchSpec, parse_search, plan_studies
from grids.sweep import MAX_TRIALS, Parser, count_trials, expand, fast_trial_id

__all__ = ["Grid", "GridError", "dump_grid", "fast_trial_id", "grid_from_mapping", "load_grid", "parse_value",
           "read_grid_document"]

GRID_KEYS = ("name", "description", "defaults", "sweep", "exclude", "search")
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
    search: SearchSpec | None = None  # the `search:` section (grids/search.py): one study per trial above


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


def grid_from_mapping(
    doc: Any, *, source: str = "<grid>", overrides: Sequence[str] = (), path: Path | None = None
) -> Grid:
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
    parser = Parser(source)  # checks each piece alone: the defaults play no part until the trials are built
    parser.mapping(doc, "", GRID_KEYS)
    name = doc.get("name")
    try:
        check_grid_name(name, f"{source}: name")
    except RunFolderError as e:
        raise GridError(str(e)) from e
    description = doc.get("description") or ""
    if not isinstance(description, str):
        raise GridError(f"{source}: description: got {type(description).__name__}; expected text")
    defaults = _nest(parser.mapping(doc.get("defaults"), "defaults"))
    for k in _flat_keys(defaults):
        parser.key(k, f"defaults.{k}")
    full = _full_defaults(defaults, source, "defaults")
    sweep = doc.get("sweep")
    if sweep is None:
        sweep = [{}]
    if not isinstance(sweep, list) or not sweep:
        raise GridError(f"{source}: sweep: got {sweep!r}; expected a non-empty list of blocks")
    blocks = [parser.block(b, i) for i, b in enumerate(sweep)]
    swept = _swept_keys(blocks)
    search = parse_search(doc["search"], source=source, swept=swept) if "search" in doc else None
    over = _overrides(overrides, swept, source)
    for key, value in over.items():
        if search is not None and key in {p.key for p in search.params}:
            raise GridError(f"{source}: override {key}={value!r}: {key} is searched (search.params.{key}); every "
                            "trial sets its own value. Remove the override, or the key from search.params")
    if over:
        full = _full_defaults(defaults, source, "override", over)
        for key, value in over.items():
            set_dotted(defaults, key, value)  # the stored grid.yaml holds them as defaults
    top_rules = parser.rules(doc.get("exclude"), "exclude")
    n = count_trials(blocks, source)
    if n > MAX_TRIALS:
        raise GridError(f"{source}: sweep: {n:,} trials before exclusions, more than the {MAX_TRIALS:,} a grid may "
                        "hold; split it into several grid files")
    seen: dict[str, TrialConfig] = {}
    generated = 0
    for tid, cfg in expand(blocks, top_rules, full, source):
        generated += 1
        seen.setdefault(tid, cfg)
    if not seen:
        raise GridError(f"{source}: exclude: every trial is excluded; the grid is empty")
    if search is not None:
        search = plan_studies(search, tuple(seen.values()), tuple(seen), tuple(swept), source=source)
    raw = copy.deepcopy(dict(doc))
    raw["defaults"] = defaults
    return Grid(name=name, path=path, defaults=full, trials=tuple(seen.values()), raw=_plain(raw),
                description=description, trial_ids=tuple(seen), duplicates=generated - len(seen),
                swept=tuple(sorted(swept)), search=search)


def _full_defaults(
    defaults: Mapping[str, Any], source: str, where: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Schema <- grid defaults <- overrides, merged by OmegaConf and validated: every key, or GridError."""
    try:
        return merge_config(defaults, overrides or {}).to_mapping()
    except ConfigError as e:
        raise GridError(f"{source}: {where}: {e}") from e


def _swept_keys(blocks: Sequence[Any]) -> dict[str, str]:
    """Dotted key -> where the sweep varies it (axes, joint, set, by), for the override rule."""
    swept: dict[str, str] = {}
    for b in blocks:
        for g in b.groups:
            swept.update({k: g.where for k in g.keys})
        for key, cases, w in b.by:
            swept[key] = w
            for groups in cases.values():
                swept.update({k: g.where for g in groups for k in g.keys})
    return swept


def _overrides(texts: Sequence[str], swept: Mapping[str, str], source: str) -> dict[str, Any]:
    """Parsed `key=value` overrides (contracts.overrides: the parser every command shares)."""
    try:
        over = parse_overrides(texts)
    except ConfigError as e:
        raise GridError(f"{source}: {e}") from e
    for key, value in over.items():
        if key in swept:
            raise GridError(
                f"{source}: override {key}={value!r}: {key} is varied by the sweep ({swept[key]}); an override "
                "applies to every trial and would collapse it. Edit the grid file, or pick trials with --only"
            )
    return over


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
    return dump_yaml(grid.raw)
