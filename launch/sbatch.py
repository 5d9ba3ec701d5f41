"""What a SLURM task is given: its environment, its python command and its sbatch parameters.

Pure functions of `LaunchOptions` and `RunPaths` (submitit is imported only inside
`render_sbatch`), shared by `--dry-run` (which prints them) and `launch.submit` (which sends them),
so the dry run shows exactly what a launch submits.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contracts.paths import RunPaths
from contracts.provenance import CODE_ROOT  # the checkout whose `launch` and `pc` tasks import
from launch import environment
from launch.options import LaunchOptions


def _abs(path: os.PathLike | str) -> str:
    return os.path.abspath(os.fspath(path))


def submitit_folder(paths: RunPaths) -> Path:
    """submitit's job folder: runs/<grid>/slurm, flat (no %j: SLURM < 23.02 cannot create it)."""
    return Path(_abs(paths.slurm_dir))


def task_environment(options: LaunchOptions, paths: RunPaths) -> dict[str, str]:
    """Environment variables every task of this launch runs with (launch.environment has the rule)."""
    return environment.task_environment(paths, environment.task_platform(options.executor, options.platform))


def python_command(options: LaunchOptions, paths: RunPaths, data_folders: Sequence[str] = ()) -> str | None:
    """The shell words that start the task's python: `apptainer exec ... IMAGE python`, or None
    for the host python (submitit then uses the launching interpreter).

    The run root, the code and the image data folders (`launch.datacheck`) are bound into the container at
    the same paths. No `--cleanenv`:
    submitit passes its job state through environment variables. `--nv` is left out with `--gpus 0`.
    """
    if not options.image or not options.container:
        return None
    words = ["apptainer", "exec"]
    if options.gpu_count > 0:
        words.append("--nv")
    binds = [_abs(paths.root), str(CODE_ROOT), *data_folders]
    words += ["--bind", ",".join(dict.fromkeys(binds)), _abs(options.image), "python"]
    return shlex.join(words)


def setup_lines(options: LaunchOptions, paths: RunPaths, extra_env: Mapping[str, str] | None = None) -> list[str]:
    """sbatch lines run before the task: the task environment (plus `extra_env`, e.g. the data folder of
    `launch.datacheck`) and the code on PYTHONPATH."""
    env = {**task_environment(options, paths), **(extra_env or {})}
    lines = [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append(f"export PYTHONPATH={shlex.quote(str(CODE_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}")
    return lines


def _mem(mem_gb: float) -> str:
    """submitit's own rendering of a memory size (`16GB`, or MB for fractions)."""
    return f"{int(mem_gb)}GB" if mem_gb == int(mem_gb) else f"{int(mem_gb * 1024)}MB"


def executor_parameters(options: LaunchOptions, grid: str, paths: RunPaths,
                        extra_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for `submitit.SlurmExecutor.update_parameters`.

    The job name is `pcsweep-<grid>`, so `squeue --me -n pcsweep-<grid>` lists a grid's jobs;
    `--sbatch KEY=VALUE` extras go to `additional_parameters` verbatim.
    """
    params: dict[str, Any] = {
        "job_name": f"pcsweep-{grid}",
        "time": options.time_min,
        "signal_delay_s": options.signal_delay_s,
        "cpus_per_task": options.cpu_count,
        "setup": setup_lines(options, paths, extra_env),
    }
    if options.partition:
        params["partition"] = options.partition
    if options.gpu_count:
        params["gpus_per_node"] = options.gpu_count
    if options.mem_gb is not None:
        params["mem"] = _mem(options.mem_gb)
    for name, value in (("account", options.account), ("qos", options.qos), ("constraint", options.constraint)):
        if value:
            params[name] = value
    if options.max_parallel is not None:
        params["array_parallelism"] = options.max_parallel
    if options.sbatch:
        params["additional_parameters"] = dict(options.sbatch)
    return params


def submit_command(options: LaunchOptions, paths: RunPaths, python: str | None = None) -> str:
    """The command line submitit puts in the sbatch script for our python (`python`, the plan's command,
    else `python_command`, else this interpreter)."""
    python = python or python_command(options, paths) or shlex.quote(sys.executable)
    return " ".join([python, "-u -m submitit.core._submit", shlex.quote(str(submitit_folder(paths)))])


def render_sbatch(options: LaunchOptions, grid: str, paths: RunPaths, n_tasks: int, *, python: str | None = None,
                  parameters: Mapping[str, Any] | None = None) -> str:
    """The sbatch script submitit would send for an array of `n_tasks` tasks (one job if 1).

    Uses submitit's own `_make_sbatch_string`, so the text is what `launch` submits; `python` and
    `parameters` are a LaunchPlan's (computed from `options` when not given).
    """
    from submitit.slurm.slurm import _make_sbatch_string  # lazy: submitit is only needed to render or submit

    return _make_sbatch_string(
        command=submit_command(options, paths, python),
        folder=submitit_folder(paths),
        map_count=n_tasks if n_tasks > 1 else None,
        **(parameters if parameters is not None else executor_parameters(options, grid, paths)),
    )
