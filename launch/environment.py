"""The environment every task runs with, written once for SLURM scripts, local subprocesses and debug runs.

Imports only `contracts.paths`, so the task side (launch/task.py) and the submit side share it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

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


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Thread counts from the allocation, not the whole node: with SLURM_CPUS_PER_TASK=N, OpenMP, MKL and
    OpenBLAS get N threads. Values the user already set are kept; {} outside SLURM or for a malformed count.

    XLA_FLAGS is left alone: XLA's CPU client sizes its thread pool from the CPUs the process may run on,
    which SLURM already limits to the allocation. (An earlier version appended
    `--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=N`; the second word is not an XLA flag,
    XLA stopped reading XLA_FLAGS there and dropped the `--xla_cpu_use_thunk_runtime=false` that `pc`
    appends, so SLURM tasks trained on the 3-5x slower thunk runtime; bench/plan_accuracy.py found it.)
    """
    cpus = environ.get("SLURM_CPUS_PER_TASK", "")
    if not (cpus.isascii() and cpus.isdigit()) or int(cpus) < 1:
        return {}
    return {var: cpus for var in THREAD_VARS if not environ.get(var)}


def apply_task_environment(paths: RunPaths, platform: str | None,
                           environ: MutableMapping[str, str] = os.environ) -> None:
    """Fill `environ` with the task environment where the launcher did not already export it (a debug run,
    a task started by hand), and the thread counts of the allocation; an explicit `platform` always wins.
    Runs in the task before jax is imported, so XLA reads the flags."""
    for key, value in task_environment(paths, platform).items():
        if key == "JAX_PLATFORMS":
            environ[key] = value
        else:
            environ.setdefault(key, value)
    environ.update(thread_environment(environ))
