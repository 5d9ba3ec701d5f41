"""Live progress of running tasks: a log line per group epoch and a small JSON per task, read by `status --watch`.

A task tells its `ProgressMeter` when a group (one compiled program's trials) starts, after every epoch, and
when trials settle. For every group epoch it prints `pcsweep: group k/n, epoch e/E, N trials, S s/epoch, task
ETA ...` to the task's log (at most one line a second when epochs are faster, but always a group's first and
last epoch) and rewrites `slurm/progress/<task key>.json` atomically, so `status` can show an ETA measured
from real epoch times while the task runs. No jax here: status reads these files on a login node.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from contracts.atomic import write_json_atomic
from contracts.paths import RunPaths

MIN_WRITE_S = 1.0  # the progress file is rewritten at most this often (group starts and ends always)
LOG_EVERY_S = 1.0  # epochs faster than this log one line a second (a group's first and last epoch always)


@dataclass(frozen=True)
class TaskProgress:
    """What one task has done so far; `slurm/progress/<task key>.json` holds `asdict` of it."""

    task_key: str
    attempt: int
    job_id: str
    trials: int  # trials of this task (attempt)
    done: int = 0
    failed: int = 0
    group: int = 0  # 1-based index of the group in flight (0 before the first)
    groups: int = 0  # groups of this task (distinct static keys; a group split by memory counts again)
    group_trials: int = 0
    epoch: int = 0  # epochs finished in the group in flight
    epochs: int = 0
    s_per_epoch: float | None = None  # the group's latest epoch (the first includes the compile)
    trial_epochs_total: int = 0
    trial_epochs_done: int = 0
    eta_s: float | None = None  # the task's remaining seconds at `updated`
    updated: float = 0.0  # time.time()
    finished: bool = False

    @property
    def s_per_trial_epoch(self) -> float | None:
        if self.s_per_epoch is None or not self.group_trials:
            return None
        return self.s_per_epoch / self.group_trials

    @classmethod
    def from_json(cls, data: object) -> TaskProgress | None:
        """From a progress file's JSON; None for anything malformed (status then shows no ETA for it)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except TypeError:
            return None


def progress_path(paths: RunPaths, task_key: str) -> Path:
    """`runs/<grid>/slurm/progress/<task key>.json`, beside the tasks' logs."""
    return paths.slurm_dir / "progress" / f"{task_key}.json"


def read_progress(paths: RunPaths, task_keys: Iterable[str]) -> dict[str, TaskProgress]:
    """The progress files of these tasks that exist and parse."""
    out = {}
    for key in task_keys:
        try:
            data = json.loads(progress_path(paths, key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        p = TaskProgress.from_json(data)
        if p is not None:
            out[key] = p
    return out


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def grid_eta(running: Sequence[TaskProgress], pending_trials: int, now: float | None = None) -> float | None:
    """Seconds until the grid's queued trials are done, from measured epoch times (None before any).

    The running tasks' own ETAs (less the time since they wrote them), plus the pending trials at the
    measured seconds per trial-epoch, shared among as many slots as tasks run now. Rough, as any ETA of
    a queue: it assumes pending tasks get the slots the running ones free.
    """
    now = time.time() if now is None else now
    rates = [p.s_per_trial_epoch for p in running if p.s_per_trial_epoch is not None]
    if not rates:
        return None
    left = sum(max(0.0, (p.eta_s or 0.0) - (now - p.updated)) for p in running)
    epochs = [p.trial_epochs_total / p.trials for p in running if p.trials]
    per_trial = (sum(epochs) / len(epochs) if epochs else 1.0) * sum(rates) / len(rates)
    return (left + pending_trials * per_trial) / max(1, len(running))


class ProgressMeter:
    """The task's side: one log line per group epoch and the progress file, rewritten atomically."""

    def __init__(self, paths: RunPaths, task_key: str, attempt: int, job_id: str,
                 epochs_by_trial: Mapping[str, int], groups: int) -> None:
        self.path = progress_path(paths, task_key)
        self.epochs_by_trial = dict(epochs_by_trial)
        self.state = TaskProgress(task_key, attempt, job_id, trials=len(epochs_by_trial), groups=groups,
                                  trial_epochs_total=sum(epochs_by_trial.values()))
        self._mark = time.perf_counter()
        self._settled_epochs = 0
        self._written_at = 0.0
        self._printed_at = 0.0
        self._write(force=True)

    def group(self, trial_ids: Sequence[str]) -> None:
        """A group of `trial_ids` starts (its compile is timed into its first epoch)."""
        k = self.state.group + 1
        epochs = max((self.epochs_by_trial.get(t, 0) for t in trial_ids), default=0)
        self.state = replace(self.state, group=k, groups=max(k, self.state.groups), group_trials=len(trial_ids),
                             epoch=0, epochs=epochs)
        self._mark = time.perf_counter()
        self._write(force=True)

    def epoch(self, epoch: int, n_trials: int) -> None:
        """`pc.trials`' on_epoch: epoch `epoch` (0-based) of the group in flight ended for `n_trials` trials."""
        now = time.perf_counter()
        seconds, self._mark = now - self._mark, now
        s = self.state
        done_epochs = self._settled_epochs + (epoch + 1) * n_trials
        left = max(0, s.trial_epochs_total - done_epochs)
        eta = left * seconds / max(1, n_trials)
        self.state = replace(s, epoch=epoch + 1, group_trials=n_trials, s_per_epoch=round(seconds, 3),
                             trial_epochs_done=done_epochs, eta_s=round(eta, 1))
        now_s = time.monotonic()
        if epoch == 0 or epoch + 1 >= s.epochs or now_s - self._printed_at >= LOG_EVERY_S:
            self._printed_at = now_s
            print(f"pcsweep: group {s.group}/{s.groups}, epoch {epoch + 1}/{s.epochs}, {n_trials} trials, "
                  f"{seconds:.2f} s/epoch, task ETA {duration(eta)} ({s.done + s.failed}/{s.trials} trials "
                  "settled)", file=sys.stdout, flush=True)
        self._write(force=epoch + 1 >= s.epochs)

    def settled(self, trial_id: str, ok: bool) -> None:
        """One trial has a result (`ok`) or failed."""
        self._settled_epochs += self.epochs_by_trial.get(trial_id, 0)
        s = self.state
        self.state = replace(s, done=s.done + ok, failed=s.failed + (not ok),
                             trial_epochs_done=max(s.trial_epochs_done, self._settled_epochs))
        self._write()

    def finish(self) -> None:
        self.state = replace(self.state, finished=True, eta_s=0.0)
        self._write(force=True)

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written_at < MIN_WRITE_S:
            return
        self._written_at = now
        self.state = replace(self.state, updated=round(time.time(), 3))
        try:
            write_json_atomic(self.path, asdict(self.state))
        except OSError as e:  # progress is a convenience: never fail a training for it
            print(f"pcsweep: progress file {self.path} not written: {e}", file=sys.stderr, flush=True)
