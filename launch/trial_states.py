"""What has happened to a grid's trials, from the files first and the scheduler second.

Files are the truth: a trial is done when a shard with `complete=True` holds it,
failed when `failed/<trial_id>.json` exists. `squeue` only adds "still queued or running" and
`sacct` only adds a reason; both are called with a timeout and their absence is tolerated, because
real clusters may lack accounting and status must never hang.

No jax, no submitit: runs on a login node.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contracts.atomic import write_json_atomic
from contracts.lock import is_running, process_start_time
from contracts.paths import RunPaths
from contracts.shard import ShardError, open_shard
from launch.scheduler_call import run_scheduler

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


def _run(cmd: list[str], timeout_s: float) -> str | None:
    """stdout of a scheduler command, or None if it is missing, fails or times out."""
    r = run_scheduler(cmd, timeout_s, "shown from the run folder's files alone")
    return r.stdout if r is not None and r.returncode == 0 else None


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
    """The job id recorded for local and debug runs: `local:<host>:<pid>` (the launching process)."""
    return f"local:{socket.gethostname()}:{pid if pid is not None else os.getpid()}"


def parse_local_job_id(job_id: str) -> tuple[str, int]:
    """(host, pid) of a `local:<host>:<pid>` job id; ValueError for anything else or a pid < 1 (pid 1 parses
    but is never believed nor signalled: see `LocalProcess.alive`)."""
    kind, _, rest = job_id.partition(":")
    host, _, pid_text = rest.rpartition(":")
    if kind != "local" or not host or not (pid_text.isascii() and pid_text.isdigit()) or int(pid_text) < 1:
        raise ValueError(f"job id {job_id!r} is not local:<host>:<pid> with a positive pid")
    return host, int(pid_text)


def _zombie(pid: int) -> bool:
    """An exited process not yet reaped by its parent: it holds its pid but runs nothing."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@dataclass(frozen=True)
class LocalProcess:
    """One process pcsweep started on this or another host, named for good by (host, pid, start time)."""

    host: str
    pid: int
    start_time: str

    @classmethod
    def of(cls, pid: int) -> LocalProcess | None:
        """This host's process `pid` as it is now; None if there is no such process."""
        start = process_start_time(pid)
        return None if start is None else cls(socket.gethostname(), pid, start)

    @classmethod
    def from_json(cls, obj: Any) -> LocalProcess | None:
        """From a marker entry; None for a malformed one (it is then never believed nor signalled)."""
        if not isinstance(obj, dict):
            return None
        host, pid, start = obj.get("host"), obj.get("pid"), obj.get("start_time")
        if not isinstance(host, str) or isinstance(pid, bool) or not isinstance(pid, int) or not isinstance(start, str):
            return None
        return cls(host, pid, start)

    def alive(self) -> bool | None:
        """Whether this very process still runs: None on another host; False for a pid <= 1, a gone pid,
        a pid reused by a process that started at another time, or a zombie."""
        if self.pid <= 1:
            return False
        running = is_running(self.host, self.pid, self.start_time)
        return running if not running else not _zombie(self.pid)


@dataclass(frozen=True)
class LocalMarker:
    """`slurm/local/<stamp>.running`: the launcher of a local/debug launch and the task processes it
    started (each in its own process group), so status, relaunch and cancel can check them."""

    launcher: LocalProcess | None
    tasks: dict[str, LocalProcess]

    def processes(self) -> list[LocalProcess]:
        return ([self.launcher] if self.launcher else []) + list(self.tasks.values())


def local_marker(paths: RunPaths, stamp: str) -> Path:
    """Exists while a local or debug launch of `stamp` is running its tasks (removed when it returns)."""
    return paths.slurm_dir / "local" / f"{stamp}.running"


def write_local_marker(paths: RunPaths, stamp: str, launcher: LocalProcess,
                       tasks: Mapping[str, LocalProcess] | None = None) -> Path:
    """(Re)write the marker of `stamp` atomically."""
    data = {"launcher": asdict(launcher), "tasks": {k: asdict(p) for k, p in (tasks or {}).items()}}
    return write_json_atomic(local_marker(paths, stamp), data)


def read_local_marker(paths: RunPaths, stamp: str) -> LocalMarker | None:
    """The marker of `stamp`, None when there is none; a malformed one names no process."""
    try:
        data = json.loads(local_marker(paths, stamp).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return LocalMarker(None, {})
    if not isinstance(data, dict):
        return LocalMarker(None, {})
    tasks = data.get("tasks") if isinstance(data.get("tasks"), dict) else {}
    known = {k: LocalProcess.from_json(v) for k, v in tasks.items()}
    return LocalMarker(LocalProcess.from_json(data.get("launcher")), {k: v for k, v in known.items() if v})


def live_processes(paths: RunPaths, stamp: str, job_id: str) -> tuple[list[LocalProcess], bool]:
    """The marker's processes that are verifiably still running (host, pid and start time all match),
    and whether some run on another host (so cannot be checked). The launcher must be the job id's."""
    marker = read_local_marker(paths, stamp)
    if marker is None:
        return [], False
    host, pid = parse_local_job_id(job_id)
    if marker.launcher is not None and (marker.launcher.host, marker.launcher.pid) != (host, pid):
        return [], False  # a marker that is not this job's: believe nothing in it
    states = [(p, p.alive()) for p in marker.processes()]
    return [p for p, alive in states if alive], any(alive is None for _, alive in states)


def local_running(paths: RunPaths, stamp: str, job_id: str) -> bool | None:
    """Whether a local/debug launch still runs: its marker exists and its launcher or one of its tasks is
    that very process still (a reused pid does not count). None when it runs on another host (we cannot
    tell); False once it returned, even if the process that called it (a notebook, a test) is still alive."""
    live, elsewhere = live_processes(paths, stamp, job_id)
    return True if live else (None if elsewhere else False)


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
