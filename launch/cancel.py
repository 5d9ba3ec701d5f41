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
from pathlib import Path

from contracts.paths import RunPaths
from launch.manifest import ArrayRecord, array_records
from launch.trial_states import SCHEDULER_TIMEOUT_S, LocalProcess, live_processes, read_local_marker, squeue


class CancelError(RuntimeError):
    """scancel or squeue failed (the message names the command and its error)."""


def _cancel_slurm(grid: str, records: list[ArrayRecord]) -> list[str]:
    slurm_ids = sorted({r.job_id for r in records if r.executor == "slurm"}, key=int)
    if not slurm_ids:
        return []
    queue = squeue(grid)
    if queue is None:
        raise CancelError(f"squeue did not answer within {SCHEDULER_TIMEOUT_S:.0f} s; cannot tell which of "
                          f"{', '.join(slurm_ids)} are still queued. Retry, or scancel them by hand.")
    live = [j for j in slurm_ids if any(q == j or q.startswith(f"{j}_") for q in queue)]
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
    for stamp, job_id in sorted({(r.stamp, r.job_id) for r in records if r.executor in ("local", "debug")}):
        live, _ = live_processes(paths, stamp, job_id)
        if not live:
            continue
        marker = read_local_marker(paths, stamp)
        launcher = marker.launcher if marker else None
        for process in live:
            _signal(process, group=process != launcher)
        cancelled.append(job_id)
    return cancelled


def cancel(grid: str, root: Path) -> list[str]:
    """Cancel the grid's queued and running arrays; returns the cancelled job ids."""
    paths = RunPaths.of(grid, root)
    records = array_records(paths)
    return _cancel_slurm(grid, records) + _cancel_local(paths, records)
