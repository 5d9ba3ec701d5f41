"""`python -m launch cancel GRID`: cancel every array of the grid that is still queued or running.

The array ids come from the grid's submission manifests, checked against `squeue`, so other jobs
(also other grids' with the same user) are never touched. A local or debug launch is signalled only
when its `.running` marker names processes that are verifiably still the ones pcsweep started (host,
pid and process start time all match; never a pid <= 1): the launcher gets SIGTERM (it stops its tasks)
and each task's own process group gets SIGTERM too (tasks outlive a launcher killed with SIGKILL).
Finished trials keep their shards; cancelled ones show as lost and a relaunch reruns them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from contracts.paths import RunPaths
from launch.manifest import ArrayRecord, array_records
from launch.trial_states import SCHEDULER_TIMEOUT_S, LocalProcess, live_processes, read_local_marker, squeue


class CancelError(RuntimeError):
    """scancel or squeue failed (the message names the command and its error)."""


def slurm_job_ids(records: Iterable[ArrayRecord]) -> list[str]:
    """The grid's submitted SLURM arrays (each once, numerically ordered); local and debug launches are not SLURM's."""
    return sorted({r.job_id for r in records if r.executor == "slurm"}, key=int)


def still_queued(job_ids: Sequence[str], queued: Iterable[str]) -> list[str]:
    """Those of `job_ids` that squeue still lists, as array elements `<id>_<n>` or as the plain `<id>` of a one-task
    launch (submitit submits a single task as a plain job): only these are scancelled, never another job
    (`7` is not `71` nor `71_0`)."""
    queued = list(queued)
    return [j for j in job_ids if any(q == j or q.startswith(f"{j}_") for q in queued)]


def local_launches(records: Iterable[ArrayRecord]) -> list[tuple[str, str]]:
    """(stamp, job id) of each local and debug launch (both run under a `.running` marker), each once, in order."""
    return sorted({(r.stamp, r.job_id) for r in records if r.executor in ("local", "debug")})


def signal_plan(live: Sequence[LocalProcess], launcher: LocalProcess | None) -> list[tuple[LocalProcess, bool]]:
    """(process, whether to its whole process group) for each verified live process of one local/debug launch.

    Each task leads a process group of its own, whose children (as under apptainer) must stop with it even when
    the launcher is gone; the launcher is signalled alone (its group may be the user's shell's).
    """
    return [(process, process != launcher) for process in live]


def _cancel_slurm(grid: str, records: list[ArrayRecord]) -> list[str]:
    slurm_ids = slurm_job_ids(records)
    if not slurm_ids:
        return []
    queue = squeue(grid)
    if queue is None:
        raise CancelError(f"squeue did not answer within {SCHEDULER_TIMEOUT_S:.0f} s; cannot tell which of "
                          f"{', '.join(slurm_ids)} are still queued. Retry, or scancel them by hand.")
    live = still_queued(slurm_ids, queue)
    if not live:
        return []
    try:
        r = subprocess.run(["scancel", *live], capture_output=True, text=True, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CancelError(f"scancel {' '.join(live)}: {e}") from e
    if r.returncode != 0:
        raise CancelError(f"scancel {' '.join(live)} exited {r.returncode}: {r.stderr.strip()}")
    return live


def _signal(process: LocalProcess, group: bool) -> None:
    """SIGTERM to a verified live process (or the process group it leads); never to pid <= 1."""
    if process.pid <= 1:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group and os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            os.kill(process.pid, signal.SIGTERM)


def _cancel_local(paths: RunPaths, records: list[ArrayRecord]) -> list[str]:
    cancelled = []
    for stamp, job_id in local_launches(records):
        live, _ = live_processes(paths, stamp, job_id)
        if not live:
            continue
        marker = read_local_marker(paths, stamp)
        for process, group in signal_plan(live, marker.launcher if marker else None):
            _signal(process, group=group)
        cancelled.append(job_id)
    return cancelled


def cancel(grid: str, root: Path) -> list[str]:
    """Cancel the grid's queued and running arrays; returns the cancelled job ids."""
    paths = RunPaths.of(grid, root)
    records = array_records(paths)
    return _cancel_slurm(grid, records) + _cancel_local(paths, records)
