"""Local and debug executors: the same `PcsweepTask` code, run on this machine.

`run_local` runs each task as `python -m launch.task ...` in its own subprocess and process group, `jobs`
at a time, with a progress bar over tasks (unlike submitit's LocalExecutor, which starts every task at once
and hides GPUs). The running tasks are reported to `record` (host, pid, start time), which the launcher
keeps in its `.running` marker, so cancel can stop exactly those process groups. Each task's output goes
to `runs/<grid>/slurm/local/<task_key>.log`.
`run_debug` calls the task in this process, so `breakpoint()` and pdb work.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from contracts.provenance import CODE_ROOT
from launch.task import LOCAL_JOB_ENV, LOCAL_LOG_ENV, PcsweepTask
from launch.trial_states import LocalProcess

POLL_S = 0.2


@dataclass(frozen=True)
class LocalResult:
    """How each local task ended: exit codes by task key and where its log is."""

    returncodes: Mapping[str, int]
    logs: Mapping[str, str]

    @property
    def failed_tasks(self) -> tuple[str, ...]:
        return tuple(k for k, rc in self.returncodes.items() if rc != 0)


def local_log_dir(task: PcsweepTask) -> Path:
    return task.paths.slurm_dir / "local"


def task_command(task: PcsweepTask, python: str | None = None) -> list[str]:
    """The argv that runs one task in a fresh process (`python` may be an `apptainer exec ... python`); a task
    with its own `command` (a search worker, `launch.search_launch`) says it itself."""
    if hasattr(task, "command"):
        return task.command(python)
    argv = shlex.split(python) if python else [sys.executable]
    return [*argv, "-m", "launch.task", "--root", str(Path(task.root).resolve()), "--grid", task.grid,
            "--task-key", task.task_key, "--attempt", str(task.attempt), *task.trial_ids]


def task_env(base: Mapping[str, str], extra: Mapping[str, str], job_id: str, log: Path) -> dict[str, str]:
    """The subprocess environment: ours, the task environment, the code on PYTHONPATH, the job id."""
    env = {**base, **extra, LOCAL_JOB_ENV: job_id, LOCAL_LOG_ENV: str(log)}
    pythonpath = [str(CODE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    return env


@dataclass
class _Running:
    """A started task: its process, its open log and its identity for the marker."""

    proc: subprocess.Popen
    log: IO[bytes]
    identity: LocalProcess | None


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the task's whole process group (it leads it: start_new_session), e.g. apptainer's children."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop(running: Mapping[str, _Running]) -> None:
    for r in running.values():
        _signal_group(r.proc, signal.SIGTERM)
    for r in running.values():
        try:
            r.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(r.proc, signal.SIGKILL)
            r.proc.wait()
        r.log.close()


def _start(task: PcsweepTask, python: str | None, env: Mapping[str, str], job_id: str) -> tuple[_Running, Path]:
    log = local_log_dir(task) / f"{task.task_key}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    proc = subprocess.Popen(task_command(task, python), stdout=handle, stderr=subprocess.STDOUT, cwd=CODE_ROOT,
                            env=task_env(os.environ, env, job_id, log), start_new_session=True)
    return _Running(proc, handle, LocalProcess.of(proc.pid)), log


def run_local(tasks: Sequence[PcsweepTask], *, jobs: int = 1, env: Mapping[str, str] | None = None,
              python: str | None = None, job_id: str = "", progress: bool = True,
              record: Callable[[dict[str, LocalProcess]], None] | None = None) -> LocalResult:
    """Run tasks in subprocesses, `jobs` at a time; returns each task's exit code.

    `record` is told the running tasks' identities whenever they change. Ctrl-C (or SIGTERM from cancel)
    terminates the running tasks' process groups (their finished trials are lost, as on a killed node) and
    re-raises.
    """
    from tqdm import tqdm  # lazy: only a local run draws a progress bar

    queue = list(tasks)
    running: dict[str, _Running] = {}
    returncodes: dict[str, int] = {}
    logs: dict[str, str] = {}
    bar = tqdm(total=len(queue), unit="task", desc="local tasks", disable=not progress)
    previous = _exit_on_sigterm()
    try:
        while queue or running:
            changed = False
            while queue and len(running) < max(1, jobs):
                task = queue.pop(0)
                running[task.task_key], log = _start(task, python, env or {}, job_id)
                logs[task.task_key] = str(log)
                changed = True
            if changed and record:
                record({k: r.identity for k, r in running.items() if r.identity})
            time.sleep(POLL_S)
            for key, r in list(running.items()):
                if r.proc.poll() is not None:
                    r.log.close()
                    returncodes[key] = r.proc.returncode
                    del running[key]
                    bar.update(1)
                    bar.set_postfix(failed=sum(rc != 0 for rc in returncodes.values()))
    except BaseException:
        _stop(running)
        raise
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return LocalResult(returncodes, logs)


def _exit_on_sigterm() -> Any:
    """Turn SIGTERM (`python -m launch cancel`) into SystemExit, so running tasks are stopped too."""
    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        return None


def run_debug(task: PcsweepTask) -> dict:
    """Run one task in this process (no pickling, no subprocess): breakpoints and pdb work."""
    task.progress = True
    return task()
