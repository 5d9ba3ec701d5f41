"""launch: grid -> trials -> array tasks -> submitit; status, cancel, local and debug modes.

Light on purpose (docs/design.md section 1): importing `launch` loads `contracts` and the planner, never
submitit, jax or pandas, so it runs on a login node. Grids (Grid, load_grid, ...) live in `grids`;
`launch.prepare` computes what a launch sends and `launch.submit` sends it.
"""

from launch.options import LaunchOptions, OptionsError
from launch.plan import Task, TaskPacking, pack_tasks, read_max_array_size

__all__ = ["LaunchOptions", "OptionsError", "TaskPacking", "Task", "pack_tasks", "read_max_array_size"]
