"""grids: the grid files (grids/*.yaml) and their one reader (docs/design.md section 3).

A grid names an experiment, gives defaults for every trial config key and a sweep; `load` reads,
validates and expands it into unique trial configs. `resolve` turns the GRID argument of any command
(a file path, or a grid name) into a grid name and the file that defines it. Imports only yaml and
`contracts.config`, so `launch`, `collect` and `plots` read grids alike on a login node.
"""

from grids.document import GridError, parse_value, read_grid_document
from grids.grid import Grid, dump_grid, grid_from_mapping, load_grid
from grids.resolve import GRIDS_DIR, GridRef, grid_file_name, resolve
from grids.search import SearchSpec
from grids.sweep import MAX_TRIALS, fast_trial_id

__all__ = [
    "MAX_TRIALS",
    "GRIDS_DIR",
    "GridRef",
    "grid_file_name",
    "resolve",
    "Grid",
    "GridError",
    "dump_grid",
    "fast_trial_id",
    "grid_from_mapping",
    "load_grid",
    "parse_value",
    "read_grid_document",
    "SearchSpec",
]
