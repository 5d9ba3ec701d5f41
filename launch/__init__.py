"""launch: grid files -> trials -> array tasks -> submitit; status, cancel, local and debug modes.

Light on purpose (DESIGN.md section 1): importing `launch` loads yaml and `contracts.config`, never
submitit, jax or pandas, so it runs on a login node. Submission lives in `launch.submit`.
"""

from grids import Grid, GridError, grid_from_mapping, load_grid
from launch.options import LaunchOptions, OptionsError
from launch.plan import Plan, Task, make_plan, read_max_array_size

__all__ = [
    "Grid",
    "GridError",
    "LaunchOptions",
    "OptionsError",
    "Plan",
    "Task",
    "grid_from_mapping",
    "load_grid",
    "make_plan",
    "read_max_array_size",
]
