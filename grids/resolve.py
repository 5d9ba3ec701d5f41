"""GRID on any command line -> (grid name, grid file): one rule for launch, status, cancel, collect, plots.

GRID is a grid file (`grids/x.yaml`, any path) or a bare grid name. A file's grid name is its `name:`
entry. A bare name is looked up as `grids/NAME.yaml` beside this package, then as the run folder's
`ROOT/NAME/grid.yaml` (the grid as launched). Every name is checked by `contracts.paths.check_grid_name`,
so no command can be pointed outside the run root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from contracts.paths import RunFolderError, RunPaths, check_grid_name
from grids.grid import GridError, read_grid_document

GRIDS_DIR = Path(__file__).resolve().parent
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class GridRef:
    """What a GRID argument names: the grid (run folder) name and the file that defines it, if any."""

    name: str
    path: Path | None  # the grid file given or found; None for a bare name with no file anywhere
    paths: RunPaths  # the run folder under the root the command was given

    def require_file(self) -> Path:
        """The grid file, or GridError saying where it was looked for."""
        if self.path is None:
            raise GridError(
                f"{self.name}: no such grid file (looked for {GRIDS_DIR / (self.name + '.yaml')} and "
                f"{self.paths.grid_yaml}); give a path like grids/demo.yaml")
        return self.path

    @property
    def launched_yaml(self) -> Path | None:
        """`ROOT/NAME/grid.yaml` (the grid as first launched, overrides folded in) if it exists."""
        return self.paths.grid_yaml if self.paths.grid_yaml.is_file() else None


def grid_file_name(path: Path) -> str:
    """The checked `name:` entry of a grid file (GridError if the file cannot be read or has none)."""
    doc = read_grid_document(path)
    if not isinstance(doc, dict):
        raise GridError(f"{path}: got {type(doc).__name__}; a grid file is a mapping with name, description, "
                        "defaults, sweep")
    name = doc.get("name")
    if name is None:
        raise GridError(f"{path}: name: missing; a grid file names its experiment (e.g. name: demo)")
    try:
        return check_grid_name(name, f"{path}: name")
    except RunFolderError as e:
        raise GridError(str(e)) from e


def resolve(arg: str, root: str | os.PathLike | None = None) -> GridRef:
    """Turn a GRID argument into a `GridRef` (see the module docstring); GridError names the fix."""
    path = Path(arg)
    if path.is_file():
        name = grid_file_name(path)
        return GridRef(name, path, RunPaths.of(name, root))
    if path.suffix in YAML_SUFFIXES or len(path.parts) != 1:
        raise GridError(f"{arg}: no such grid file; give an existing path like grids/demo.yaml, or a grid name")
    try:
        name = check_grid_name(arg, "GRID")
    except RunFolderError as e:
        raise GridError(str(e)) from e
    paths = RunPaths.of(name, root)
    for candidate in (GRIDS_DIR / f"{name}.yaml", paths.grid_yaml):
        if candidate.is_file():
            return GridRef(name, candidate, paths)
    return GridRef(name, None, paths)
