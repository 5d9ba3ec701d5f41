"""Reading a grid file into a plain document, bounded: no hang, no memory blow-up, no traceback.

A grid file is small, UTF-8 text YAML. Before parsing, the reader refuses files over `MAX_BYTES`,
binary files and text that is not UTF-8. While parsing, it refuses documents nested deeper than
`MAX_DEPTH`, with more than `MAX_ALIASES` alias uses, whose aliases expand to more than
`MAX_NODES` values (a "billion laughs" alias bomb of nine levels expands to 10^8 values when walked),
or with a recursive alias. The loader reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`), refuses
duplicate keys, and accepts a flow sequence as a mapping key (`[a, b]: [[1, 2]]` for joint axes).
Every error is a `GridError` naming the file (and the line where YAML gives one).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # 1 MiB: the paper's largest grid file is under 4 KiB
MAX_DEPTH = 32
MAX_ALIASES = 100
MAX_NODES = 100_000  # values after aliases are expanded; the paper's largest grid has a few hundred


class GridError(ValueError):
    """An invalid grid file or override; the message names the file, the dotted key and the fix."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with 1e-3 floats, no duplicate keys, tuple keys, and bounded depth and aliases."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise GridError(f"line {mark.line + 1}: more than {MAX_ALIASES} YAML aliases (*name); "
                                "write the values out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise GridError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels; a grid is shallow")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


    def construct_document(self, node: yaml.Node) -> Any:
        size = _expanded_size(node, {})
        if size > MAX_NODES:
            raise GridError(f"its aliases (*name) expand to {size:,} values, more than {MAX_NODES:,}; "
                            "write the values out")
        return super().construct_document(node)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Values in the document once every alias is replaced by a copy (shared nodes counted each time).

    A node reached again while it is still being counted contains itself (`a: &x [1, *x]`): refused,
    since walking it never ends.
    """
    key = id(node)
    if key in memo:
        if memo[key] < 0:
            raise GridError(f"line {node.start_mark.line + 1}: a recursive alias (a value that contains itself)")
        return memo[key]
    memo[key] = -1
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[key] = size
    return size


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
        try:
            hash(key)
        except TypeError:
            raise GridError(f"line {key_node.start_mark.line + 1}: a mapping key must be a name, "
                            f"got {type(key).__name__}") from None
        if key in out:
            raise GridError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}; each key may appear once")
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str) -> Any:
    """Parse grid YAML text with the bounded loader (GridError on any problem, never a traceback)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except GridError:
        raise
    except yaml.YAMLError as e:
        raise GridError(f"not valid YAML: {e}".replace("\n", " ")) from e
    except RecursionError as e:
        raise GridError(f"nested deeper than {MAX_DEPTH} levels; a grid is shallow") from e


def read_text(path: Path) -> str:
    """The file's text if it is a small UTF-8 text file; GridError naming the file and the fix otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise GridError(f"{path}: cannot read the grid file ({e.strerror or e}); check the path") from e
    if len(data) > MAX_BYTES:
        raise GridError(f"{path}: larger than {MAX_BYTES // 1024} KiB; a grid file is a short YAML text")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise GridError(f"{path}: UTF-16 text, not UTF-8; save the grid file as UTF-8")
    if b"\0" in data:
        raise GridError(f"{path}: a binary file (NUL bytes), not UTF-8 YAML text; pass a grids/*.yaml file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise GridError(f"{path}: not UTF-8 text (byte {e.start}); save the grid file as UTF-8") from e


def read_grid_document(path: str | os.PathLike) -> Any:
    """Parse a grid YAML file (floats like 1e-3 included); errors name the file and line."""
    p = Path(path)
    try:
        return parse_yaml(read_text(p))
    except GridError as e:
        if str(e).startswith(f"{p}:"):
            raise
        raise GridError(f"{p}: {e}") from e


def parse_value(text: str) -> Any:
    """A YAML scalar as a grid file reads it: `1` int, `1e-3` float, `true` bool, `null` None, else str."""
    return parse_yaml(text)


def dump_yaml(document: Any) -> str:
    """YAML text of a plain document (what launch stores as runs/<grid>/grid.yaml)."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120)
