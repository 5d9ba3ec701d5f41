"""How to launch a grid: one frozen dataclass shared by the CLI, the planner and the submitter.

Pure Python (no submitit, no jax): the CLI builds it from argparse, tests build it directly.
"""

from __future__ import annotations

import math
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

EXECUTORS = ("slurm", "local", "debug")
PLATFORMS = ("cpu", "cuda")
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize
DEFAULT_CPUS = 4  # --cpus when not given: 4, lowered to the partition's largest node by the preflight
# sbatch options that have their own flag, or that submitit itself must own.
RESERVED_SBATCH = {
    "time": "--time", "partition": "--partition", "gpus-per-node": "--gpus", "gpus": "--gpus",
    "cpus-per-task": "--cpus",
    "mem": "--mem", "account": "--account", "qos": "--qos", "constraint": "--constraint",
    "job-name": "(fixed to pcsweep-<grid>)", "array": "--max-parallel / --max-array-size",
    "output": "(submitit's log files)", "error": "(submitit's log files)", "signal": "(submitit's checkpoint signal)",
}


MAX_INT = 2**31 - 1  # SLURM stores counts and minutes in 32 bits
MAX_ARRAY_SIZE_LIMIT = 4_000_001  # SLURM's largest MaxArraySize
MAX_WAIT_S = 7 * 24 * 3600.0
MAX_MEM_GB = 1024.0 * 1024  # 1 PB per task: anything above is a typo


class OptionsError(ValueError):
    """Launch options that contradict each other or are out of range; the message names the flag."""


def default_executor() -> str:
    """`slurm` where `sbatch` is on PATH, else `local` (a laptop runs the same tasks in processes)."""
    return "slurm" if shutil.which("sbatch") else "local"


@dataclass(frozen=True)
class LaunchOptions:
    """Everything `python -m launch GRID` can be told besides the grid and its overrides."""

    root: Path  # run root (default contracts.paths.default_root())
    executor: str = "slurm"  # slurm | local | debug
    partition: str | None = None
    time_min: int = 60  # per task wall-clock limit (sbatch --time), minutes
    signal_delay_s: int = 90  # USR2 this long before --time: the task saves finished trials, is requeued
    gpus: int | None = None  # per task; None = 1 on cuda, 0 with platform cpu (see gpu_count)
    cpus: int | None = None  # per task; None = DEFAULT_CPUS, lowered to the partition's nodes (launch.preflight)
    mem_gb: float | None = None  # per task; None = the partition's default
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch: dict[str, str] = field(default_factory=dict)  # repeated --sbatch KEY=VALUE
    max_parallel: int | None = None  # array throttle (%N); None = submitit's 256
    trials_per_task: int | None = None
    task_minutes: float | None = None  # target task duration (alternative to trials_per_task)
    max_array_size: int | None = None  # None = MaxArraySize from `scontrol show config`, 1001 if unknown
    image: str | None = None  # Apptainer .sif: tasks run `apptainer exec --nv --bind <root>,<code> IMAGE python`
    container: bool = True  # False with --no-container: the host python
    platform: str | None = None  # JAX_PLATFORMS in tasks; None = "cuda" on slurm, unset (auto) locally
    jobs: int = 1  # --jobs for the local executor
    workers: int = 1  # --workers: search workers a launch of a grid with `search:` submits (docs/search.md)
    only: tuple[str, ...] = ()  # --only trial ids
    rerun_failed: bool = False
    force: bool = False
    wait_s: float = 0.0  # --wait: seconds to wait for the run folder's lock (another launch or collect)
    preflight: bool = True  # False with --no-preflight: submit without checking the partition

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def gpu_count(self) -> int:
        """GPUs per task: --gpus if given, else 0 with `--platform cpu` and 1 otherwise (cuda is the SLURM
        default platform), so a CPU launch never asks a CPU partition for a GPU."""
        if self.gpus is not None:
            return self.gpus
        return 0 if self.platform == "cpu" else 1

    @property
    def cpu_count(self) -> int:
        """CPUs per task: --cpus, or DEFAULT_CPUS before the preflight lowered it to the partition's nodes."""
        return self.cpus if self.cpus is not None else DEFAULT_CPUS

    def task_sizing(self) -> tuple[int | None, float | None]:
        """(trials_per_task, task_minutes) for `pack_tasks`: by default tasks aim at half of --time,
        so a task whose estimate is off by 2x still finishes before its limit."""
        if self.trials_per_task is None and self.task_minutes is None:
            return None, self.time_min / 2
        return self.trials_per_task, self.task_minutes


def control_character(text: str) -> str | None:
    """The first control character in `text`, spelled for a message (e.g. '\\n'), or None."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return repr(ch)[1:-1]
    return None


def _check_text(o: LaunchOptions) -> None:
    """Values rendered into the sbatch script (or into paths) must be one line: a newline would add lines
    to the script."""
    fields = [("--partition", o.partition), ("--account", o.account), ("--qos", o.qos),
              ("--constraint", o.constraint), ("--image", o.image), ("--root", str(o.root))]
    fields += [("--sbatch KEY", key) for key in o.sbatch]
    fields += [(f"--sbatch {key}=VALUE", value) for key, value in o.sbatch.items()]
    fields += [("--only", t) for t in o.only]
    for flag, value in fields:
        bad = control_character(value) if value is not None else None
        if bad:
            raise OptionsError(f"{flag}: got {value!r}, which holds the control character {bad}; "
                               "give it on one line without control characters")


def _check_numbers(o: LaunchOptions) -> None:
    for flag, value, low, high in (
        ("--time", o.time_min, 1, MAX_INT),
        ("--signal-delay", o.signal_delay_s, 1, MAX_INT),
        ("--gpus", o.gpus, 0, 4096),
        ("--cpus", o.cpus, 1, 1_000_000),
        ("--jobs", o.jobs, 1, 4096),
        ("--workers", o.workers, 1, 100_000),
        ("--max-parallel", o.max_parallel, 1, MAX_INT),
        ("--trials-per-task", o.trials_per_task, 1, MAX_INT),
        ("--max-array-size", o.max_array_size, 1, MAX_ARRAY_SIZE_LIMIT),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise OptionsError(f"{flag}: got {value!r}; expected an integer from {low} to {high}")
    for flag, value, low, high in (("--mem", o.mem_gb, 0.001, MAX_MEM_GB),
                                   ("--task-minutes", o.task_minutes, 1 / 60, float(MAX_INT)),
                                   ("--wait", o.wait_s, 0.0, MAX_WAIT_S)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not low <= value <= high:
            raise OptionsError(f"{flag}: got {value!r}; expected a finite number from {low:g} to {high:g}")


def reserved_sbatch_key(key: str) -> tuple[str, str] | None:
    """(reserved option, the flag that owns it) when sbatch could read `--KEY` as a reserved option, else None.

    sbatch, like every getopt_long program, takes any unambiguous prefix of a long option (`--arr` is `--array`,
    `--parti` is `--partition`), so a key that is the start of a reserved name is refused as that name; a prefix
    that could mean several options is refused too (sbatch would reject it, or pick the reserved one).
    """
    name = key.replace("_", "-")
    if name in RESERVED_SBATCH:
        return name, RESERVED_SBATCH[name]
    for reserved, owner in RESERVED_SBATCH.items():
        if reserved.startswith(name):
            return reserved, owner
    return None


def check_options(o: LaunchOptions) -> None:
    """Refuse contradictory, out-of-range or multi-line options, naming the flag to change."""
    if o.executor not in EXECUTORS:
        raise OptionsError(f"--executor: got {o.executor!r}; expected one of {', '.join(EXECUTORS)}")
    if o.platform is not None and o.platform not in PLATFORMS:
        raise OptionsError(f"--platform: got {o.platform!r}; expected one of {', '.join(PLATFORMS)}")
    _check_text(o)
    _check_numbers(o)
    if o.trials_per_task is not None and o.task_minutes is not None:
        raise OptionsError("--trials-per-task and --task-minutes: give one of them, not both")
    if o.signal_delay_s >= o.time_min * 60:
        raise OptionsError(f"--signal-delay: {o.signal_delay_s} s is not shorter than --time {o.time_min} min")
    if o.image is not None and not o.container:
        raise OptionsError("--image and --no-container: give one of them, not both")
    if o.executor == "debug" and len(o.only) != 1:
        raise OptionsError("--executor debug runs one trial in this process: add --only TRIAL_ID (one id)")
    for key, value in o.sbatch.items():
        if not key or not key.replace("-", "").replace("_", "").isalnum() or not key.isascii():
            raise OptionsError(f"--sbatch {key}={value}: KEY must be an sbatch long option name, "
                               "e.g. gres or mail-type")
        reserved = reserved_sbatch_key(key)
        if reserved is not None:
            name, owner = reserved
            reads = "" if name == key.replace("_", "-") else (
                f" (sbatch may read --{key} as --{name}: it accepts any unambiguous prefix of an option)")
            raise OptionsError(f"--sbatch {key}={value}: {name} is set by {owner}{reads}; use that instead")
