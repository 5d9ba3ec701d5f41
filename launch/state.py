"""What has happened to a grid's trials, from the files first and the scheduler second.

Files are the truth (style.md item 4): a trial is done when a shard with `complete=True` holds it,
failed when `failed/<trial_id>.json` exists. `squeue` only adds "still queued or running" and
`sacct` only adds a reason; both are called with a timeout and their absence is tolerated, because
real clusters may lack accounting (slurm-ci.md) and status must never hang.

No jax, no submitit: runs on a login node.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.paths import RunPaths
from contracts.shard import ShardError, open_shard

SCHEDULER_TIMEOUT_S = 20.0
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING"})
# Anything else squeue still lists (PENDING, REQUEUED, REQUEUE_HOLD, SUSPENDED, PREEMPTED, ...) waits.


@dataclass(frozen=True)
class QueueEntry:
    """One job (array element) that the scheduler still lists."""

    job_id: str  # <A>_<a> for array elements
    state: str  # squeue's %T, e.g. PENDING, RUNNING
    reason: str  # squeue's %r, e.g. Resources, Priority, None

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class Accounting:
    """One finished (or current) job as sacct records it."""

    job_id: str
    state: str  # first word: COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED, NODE_FAIL, ...
    exit_code: str  # "<code>:<signal>"


# path -> ((mtime_ns, size), trial ids or the ShardError text): `status --watch` re-reads only
# shards that changed, so a poll of thousands of shards costs a stat each.
_SHARD_CACHE: dict[Path, tuple[tuple[int, int], list[str] | str]] = {}


def _shard_ids(path: Path) -> list[str] | str:
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _SHARD_CACHE.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    try:
        with open_shard(path) as shard:
            value: list[str] | str = shard.trial_ids
    except ShardError as e:
        value = str(e)
    _SHARD_CACHE[path] = (stamp, value)
    return value


def done_trials(paths: RunPaths) -> tuple[dict[str, Path], list[str]]:
    """Trial id -> newest valid shard holding it, and the shards that are not valid results.

    A shard without `complete` (a killed writer) or an unreadable file counts for nothing; its path
    and the reason are returned so status can name it. Temporary `*.tmp.<pid>` files are ignored.
    """
    done: dict[str, Path] = {}
    bad: list[str] = []
    if not paths.shards_dir.is_dir():
        return done, bad
    shards = []
    for path in paths.shards_dir.glob("*.h5"):
        try:
            shards.append((path.stat().st_mtime_ns, path))
        except FileNotFoundError:  # replaced or moved away meanwhile
            continue
    for _, shard_path in sorted(shards):
        try:
            ids = _shard_ids(shard_path)
        except FileNotFoundError:
            continue
        if isinstance(ids, str):
            bad.append(ids)
            continue
        for trial_id in ids:
            done[trial_id] = shard_path
    return done, bad


def failed_records(paths: RunPaths) -> dict[str, dict[str, Any]]:
    """Trial id -> its `failed/<trial_id>.json` record (an unreadable record still counts as failed)."""
    records: dict[str, dict[str, Any]] = {}
    if not paths.failed_dir.is_dir():
        return records
    for path in paths.failed_dir.glob("*.json"):
        try:
            records[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            records[path.stem] = {"trial_id": path.stem, "error": f"unreadable failure record {path}: {e}"}
    return records


def _run(cmd: list[str], timeout_s: float) -> str | None:
    """stdout of a scheduler command, or None if it is missing, fails or times out."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def squeue(grid: str, timeout_s: float = SCHEDULER_TIMEOUT_S) -> dict[str, QueueEntry] | None:
    """The grid's jobs that SLURM still lists (one line per array element, `squeue -r`), by job id.

    Queries by the job name `pcsweep-<grid>` and the current user, so purged or unknown job ids
    cannot make squeue fail. None when squeue is missing, errors or times out (unknown, not empty).
    """
    out = _run(["squeue", "--me", "-h", "-r", "-n", f"pcsweep-{grid}", "-o", "%i|%T|%r"], timeout_s)
    if out is None:
        return None
    entries = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            entries[parts[0]] = QueueEntry(*parts)
    return entries


def sacct(job_ids: list[str], timeout_s: float = SCHEDULER_TIMEOUT_S) -> dict[str, Accounting] | None:
    """Final states of array jobs from accounting, by `<A>_<a>`; None without accounting or on timeout."""
    if not job_ids:
        return {}
    cmd = ["sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode"]
    for job_id in job_ids:
        cmd += ["-j", job_id]
    out = _run(cmd, timeout_s)
    if out is None:
        return None
    records = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0]:
            records[parts[0]] = Accounting(parts[0], parts[1].split()[0] if parts[1] else "", parts[2])
    return records


def local_job_id(pid: int | None = None) -> str:
    """The job id recorded for local and debug runs: `local:<host>:<pid>`."""
    return f"local:{socket.gethostname()}:{pid if pid is not None else os.getpid()}"


def local_alive(job_id: str) -> bool | None:
    """Whether a `local:<host>:<pid>` run is still alive; None when it ran on another host."""
    try:
        _, host, pid = job_id.split(":")
    except ValueError:
        return False
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def local_marker(paths: RunPaths, stamp: str) -> Path:
    """Exists while a local or debug launch of `stamp` is running its tasks (removed when it returns)."""
    return paths.slurm_dir / "local" / f"{stamp}.running"


def local_running(paths: RunPaths, stamp: str, job_id: str) -> bool | None:
    """Whether a local/debug launch is still running: its marker exists and its process lives.

    None when it runs on another host (we cannot tell); False once it returned, even if the process
    that called it (a notebook, a test) is still alive.
    """
    if not local_marker(paths, stamp).exists():
        return False
    return local_alive(job_id)


def log_tail(path: Path, lines: int = 1, max_bytes: int = 20_000) -> str:
    """The last non-empty lines of a log (read from its end only); "" when absent."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])
