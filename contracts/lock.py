"""An exclusive lock on a run folder that works where HDF5 file locking is off (NFS, Lustre).

`collect` and `launch` (and relaunch) hold `runs/<grid>/.lock` while they change the run folder.
The lock is a file created with O_CREAT|O_EXCL (atomic on local file systems and NFSv3+) holding the
holder's host, pid, process start time and purpose. A lock whose holder is on this host and is no
longer running (no such pid, or the pid was reused by a process that started at another time) is
stale and is taken over; so is a record still empty or unreadable a minute after the file was made (its
writer died, or the disk filled before it could write). A lock held from another host is reported, never
broken, with the command that clears it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from contracts.cli import errors_name

UNREADABLE_STALE_S = 60.0  # an empty or unreadable lock record older than this is a dead writer's


class LockHeld(RuntimeError):
    """The run folder is locked by another live pcsweep process; the message names it and the way out."""


def process_start_time(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, from /proc), or None if there is none.

    (host, pid, start time) names one process for good: a reused pid has another start time.
    """
    if pid <= 0:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return start_time_from_stat(stat)


def start_time_from_stat(stat: str) -> str | None:
    """Field 22 (starttime) of a `/proc/<pid>/stat` line, or None when the line is cut short.

    The fields are counted after the command name's closing parenthesis, the last one on the line: the name,
    which the process chooses, may hold spaces and parentheses.
    """
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def is_running(host: str, pid: int, start_time: str | None, *, this_host: str | None = None,
               start_time_of: Callable[[int], str | None] = process_start_time) -> bool | None:
    """True/False when the process can be checked (same host), None when it is on another host.

    `this_host` (default: socket.gethostname()) and `start_time_of` (default: /proc) let tests decide it without
    real processes.
    """
    if host != (socket.gethostname() if this_host is None else this_host):
        return None
    if pid <= 1:
        return False
    now = start_time_of(pid)
    return now is not None and (start_time is None or now == start_time)


def parse_lock_record(text: str) -> dict:
    """The holder a lock file's text names, or {} when the record is empty or damaged (not a JSON object).

    Never "no holder": a record that cannot be read is held by an unknown process (perhaps one still writing it)
    and is judged by its age (`lock_is_stale`); read as released, `acquire` would retry forever at full CPU.
    """
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def lock_is_stale(holder: Mapping, age_s: float, *, this_host: str | None = None,
                  start_time_of: Callable[[int], str | None] = process_start_time) -> bool:
    """Whether a lock with this holder record (`parse_lock_record`), `age_s` seconds old, may be taken over.

    A holder on this host that is gone (no such pid, or the pid reused by a process that started at another
    time) is stale. A record without a usable pid is stale only once older than UNREADABLE_STALE_S: a live
    holder writes its record right after creating the file; a full disk or a kill leaves it empty. A holder
    on another host is never stale (it cannot be checked from here).
    """
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return age_s > UNREADABLE_STALE_S
    return is_running(str(holder.get("host", "")), pid, holder.get("start_time"), this_host=this_host,
                      start_time_of=start_time_of) is False


@dataclass
class RunLock:
    """`with RunLock(paths.lock, "collect"):` holds the lock for the block; `wait_s` > 0 waits for it."""

    path: Path
    purpose: str
    wait_s: float = 0.0
    poll_s: float = 0.5

    def _record(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "start_time": process_start_time(os.getpid()),
                "purpose": self.purpose, "created": datetime.now(UTC).isoformat(timespec="seconds")}

    def _holder(self) -> dict | None:
        """The holder record; None only when there is no lock file (released)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable or not UTF-8: treated as held by an unknown process
        return parse_lock_record(text)

    def _try(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with errors_name(self.path), os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._record(), f)
        except OSError:  # a full or read-only disk: leave no empty lock behind to block the next run
            self.path.unlink(missing_ok=True)
            raise
        return True

    def _age_s(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    def _stale(self, holder: dict) -> bool:
        """`lock_is_stale` for this lock file's holder and age."""
        return lock_is_stale(holder, self._age_s())

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        while True:
            if self._try():
                return
            holder = self._holder()
            if holder is None:
                continue  # released between our open and our read: try again at once
            if self._stale(holder):
                self.path.unlink(missing_ok=True)
                continue
            if time.monotonic() >= deadline:
                if not holder or "pid" not in holder:  # may be a live holder writing its record: never advise removal
                    raise LockHeld(
                        f"{self.path}: the run folder is locked (a lock record {self._age_s():.0f} s old that cannot "
                        f"be read yet); try again in a moment or wait with --wait S: a record still unreadable after "
                        f"{UNREADABLE_STALE_S:.0f} s is taken over")
                who = (f"{holder.get('purpose', '?')} by pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
                       f"since {holder.get('created', '?')}")
                raise LockHeld(
                    f"{self.path}: the run folder is locked ({who}); wait for it to finish (--wait S waits), or, "
                    f"if no such process is running on {holder.get('host', '?')}, remove {self.path}")
            time.sleep(self.poll_s)

    def release(self) -> None:
        holder = self._holder()
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
