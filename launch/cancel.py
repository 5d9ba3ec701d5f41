"""`python -m launch cancel GRID`: cancel every array of the grid that SLURM still lists.

The array ids come from the grid's submission manifests, checked against `squeue`, so other jobs
(also other grids' with the same user) are never touched. Local runs still alive on this host get
SIGTERM. Finished trials keep their shards; cancelled ones show as lost and a relaunch reruns them.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from contracts.paths import RunPaths
from launch.manifest import array_records
from launch.state import SCHEDULER_TIMEOUT_S, local_running, squeue


class CancelError(RuntimeError):
    """scancel or squeue failed (the message names the command and its error)."""


def cancel(grid: str, root: Path) -> list[str]:
    """Cancel the grid's queued and running arrays; returns the cancelled job ids."""
    paths = RunPaths.of(grid, root)
    records = array_records(paths)
    cancelled: list[str] = []
    slurm_ids = sorted({r.job_id for r in records if r.executor == "slurm"})
    if slurm_ids:
        queue = squeue(grid)
        if queue is None:
            raise CancelError(f"squeue did not answer within {SCHEDULER_TIMEOUT_S:.0f} s; cannot tell which of "
                              f"{', '.join(slurm_ids)} are still queued. Retry, or scancel them by hand.")
        live = sorted({j for j in slurm_ids if any(q == j or q.startswith(f"{j}_") for q in queue)}, key=int)
        if live:
            try:
                r = subprocess.run(["scancel", *live], capture_output=True, text=True, timeout=SCHEDULER_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise CancelError(f"scancel {' '.join(live)}: {e}") from e
            if r.returncode != 0:
                raise CancelError(f"scancel {' '.join(live)} exited {r.returncode}: {r.stderr.strip()}")
            cancelled += live
    local = sorted({(r.stamp, r.job_id) for r in records if r.executor in ("local", "debug")})
    for stamp, job_id in local:
        if local_running(paths, stamp, job_id) and job_id not in cancelled:
            os.kill(int(job_id.rsplit(":", 1)[1]), signal.SIGTERM)
            cancelled.append(job_id)
    return cancelled
