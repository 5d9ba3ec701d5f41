"""The environment every task runs with, written once for SLURM scripts, local subprocesses and debug runs.

Imports only `contracts.paths`, so the task side (launch/task.py) and the submit side share it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from contracts.paths import RunPaths


def task_platform(executor: str, platform: str | None) -> str | None:
    """JAX_PLATFORMS for tasks: `--platform` if given, `cuda` on SLURM (a GPU-less node fails loudly instead
    of training on CPU), else None (unset: jax picks)."""
    return platform or ("cuda" if executor == "slurm" else None)


def task_environment(paths: RunPaths, platform: str | None) -> dict[str, str]:
    """Environment variables of a task; the persistent compilation cache under the run root lets tasks of
    one shape compile once, and HDF5 file locking is off because shared file systems break it."""
    env: dict[str, str] = {}
    if platform:
        env["JAX_PLATFORMS"] = platform
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    env["JAX_COMPILATION_CACHE_DIR"] = os.path.abspath(paths.jax_cache_dir)
    env["HDF5_USE_FILE_LOCKING"] = "FALSE"
    return env


def apply_task_environment(paths: RunPaths, platform: str | None,
                           environ: MutableMapping[str, str] = os.environ) -> None:
    """Fill `environ` with the task environment where the launcher did not already export it (a debug run,
    a task started by hand); an explicit `platform` always wins."""
    for key, value in task_environment(paths, platform).items():
        if key == "JAX_PLATFORMS":
            environ[key] = value
        else:
            environ.setdefault(key, value)
