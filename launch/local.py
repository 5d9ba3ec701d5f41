"""Local and debug executors: the same `PcsweepTask` code, run on this machine.

`run_local` runs each task as `python -m launch.task ...` in its own subprocess, `jobs` at a time,
with a progress bar over tasks (unlike submitit's LocalExecutor, which starts every task at once and
hides GPUs). Each task's output goes to `runs/<grid>/slurm/local/<task_key>.log`.
`run_debug` calls the task in this process, so `breakpoint()` and pdb work.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch.manifest import CODE_ROOT
from launch.task import LOCAL_JOB_ENV, LOCAL_LOG_ENV, PcsweepTask

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
    """The argv that runs one task in a fresh process (`python` may be an `apptainer exec ... python`)."""
    argv = shlex.split(python) if python else [sys.executable]
    return [*argv, "-m", "launch.task", "--root", str(Path(task.root).resolve()), "--grid", task.grid,
            "--task-key", task.task_key, "--attempt", str(task.attempt), *task.trial_ids]


def task_env(base: Mapping[str, str], extra: Mapping[str, str], job_id: str, log: Path) -> dict[str, str]:
    """The subprocess environment: ours, the task environment, the code on PYTHONPATH, the job id."""
    env = {**base, **extra, LOCAL_JOB_ENV: job_id, LOCAL_LOG_ENV: str(log)}
    pythonpath = [str(CODE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    return env


def run_local(tasks: Sequence[PcsweepTask], *, jobs: int = 1, env: Mapping[str, str] | None = None,
              python: str | None = None, job_id: str = "", progress: bool = True) -> LocalResult:
    """Run tasks in subprocesses, `jobs` at a time; returns each task's exit code.

    Ctrl-C terminates the running tasks (their finished trials are lost, as on a killed node) and
    re-raises KeyboardInterrupt.
    """
    from tqdm import tqdm

    jobs = max(1, int(jobs))
    queue = list(tasks)
    running: dict[str, tuple[subprocess.Popen, object]] = {}
    returncodes: dict[str, int] = {}
    logs: dict[str, str] = {}
    bar = tqdm(total=len(queue), unit="task", desc="local tasks", disable=not progress)
    previous = _exit_on_sigterm()
    try:
        while queue or running:
            while queue and len(running) < jobs:
                task = queue.pop(0)
                log = local_log_dir(task) / f"{task.task_key}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                handle = log.open("ab")
                proc = subprocess.Popen(
                    task_command(task, python), stdout=handle, stderr=subprocess.STDOUT, cwd=CODE_ROOT,
                    env=task_env(os.environ, env or {}, job_id, log))
                running[task.task_key] = (proc, handle)
                logs[task.task_key] = str(log)
            time.sleep(POLL_S)
            for key, (proc, handle) in list(running.items()):
                if proc.poll() is not None:
                    handle.close()
                    returncodes[key] = proc.returncode
                    del running[key]
                    bar.update(1)
                    failed = sum(rc != 0 for rc in returncodes.values())
                    bar.set_postfix(failed=failed)
    except BaseException:
        for proc, _ in running.values():
            proc.terminate()
        for proc, handle in running.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            handle.close()
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
