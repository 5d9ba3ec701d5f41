"""The task side (docs/design.md section 7): one picklable callable that every executor runs.

A `PcsweepTask` carries only small arguments (run root, grid name, task key, trial ids). Inside the
call it reads its trials' configs from the run folder's trial sets (`grids.launched`), imports `pc.trials`
(jax) and trains its trials, writes one shard, writes `failed/<trial_id>.json` for each trial that raised,
and raises at the end if any did, so SLURM records FAILED and a non-zero exit.

Shards are one file per task attempt: attempt 0 writes `shards/<task_key>.h5`, attempt n > 0 writes
`shards/<task_key>.a<n>.h5` (and a name that is taken gets a `.<k>` suffix), so a requeued attempt
never overwrites what an earlier one finished. While the task runs, each group (one compiled program's
trials) is written as soon as it finishes to its own part, `<that name>.g<k>.h5` (k = 0, 1, ...), so a
SIGKILL, an OOM kill or a lost node loses at most the group in flight; at the end the parts are merged
into the attempt's shard (a single part is renamed) and removed. On timeout or preemption submitit sends
USR2 and calls `checkpoint`: the trials finished so far go into a shard now, and the requeued job runs
only the rest (attempt + 1). Progress (a log line per group epoch, `slurm/progress/<task key>.json`)
comes from `launch.progress`.

`python -m launch.task --root R --grid G --task-key K [--attempt N] ID ...` runs one task in a fresh
process: the local executor uses it.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from contracts.config import ConfigError, TrialConfig, static_key
from contracts.failures import write_failure
from contracts.paths import RunPaths
from contracts.provenance import device_label, git_state, package_versions
from contracts.shard import TrialResult, write_shard
from grids.launched import launched_trials
from launch.environment import apply_task_environment
from launch.progress import ProgressMeter

TRACEBACK_LINES = 30
LOCAL_JOB_ENV = "PCSWEEP_JOB_ID"  # set by the local executor: its job id for failure records
LOCAL_LOG_ENV = "PCSWEEP_TASK_LOG"  # set by the local executor: the task's log file


class TaskError(RuntimeError):
    """A task that cannot run (grid file missing or changed) or whose trials raised."""


def _job_id() -> str:
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '0')}"
    return env.get("SLURM_JOB_ID") or env.get(LOCAL_JOB_ENV, f"local:{socket.gethostname()}:{os.getpid()}")


def _log_paths(paths: RunPaths) -> list[str]:
    """Where this task's output goes: submitit's `%A_%a_%t_log.{out,err}` on SLURM, else the local log."""
    env = os.environ
    if env.get("SLURM_JOB_ID"):  # an array element is <A>_<a>, a single-task submission a plain job
        stem = f"{_job_id()}_{env.get('SLURM_PROCID', '0')}"
        return [str(paths.slurm_dir / f"{stem}_log.out"), str(paths.slurm_dir / f"{stem}_log.err")]
    return [env[LOCAL_LOG_ENV]] if env.get(LOCAL_LOG_ENV) else []


def shard_key(task_key: str, attempt: int) -> str:
    """The shard's task key for one attempt: `<task_key>` first, then `<task_key>.a<attempt>`."""
    return task_key if attempt == 0 else f"{task_key}.a{attempt}"


def checkpoint_split(trial_ids: Sequence[str], finished: Iterable[str],
                     failed: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The checkpoint's settled trials and the rest it requeues, each in task order.

    Settled: every trial that finished (the checkpoint's shard holds it) or raised (its failure record is written and
    `prior_failed` carries it: rerunning it would only raise again, and `--rerun-failed` is the way to retry it).
    Requeued: every other trial of the task, so no trial is lost and none runs twice.
    """
    done = set(finished) | set(failed)
    return tuple(t for t in trial_ids if t in done), tuple(t for t in trial_ids if t not in done)


def single_part_is_whole(part_sizes: Sequence[int], finished: int) -> bool:
    """Whether the attempt's shard can be its one part renamed: exactly one part, holding every finished trial.

    A trial that finished after the last part (the group in flight when a time limit or the end arrives) is in
    no part, so the shard must be written from every finished trial instead, or the trial is lost.
    """
    return len(part_sizes) == 1 and part_sizes[0] == finished


def _free_shard_path(paths: RunPaths, key: str) -> tuple[str, Path]:
    path = paths.shard(key)
    k = 1
    while path.exists():
        k += 1
        path = paths.shard(f"{key}.{k}")
    return path.stem, path


def load_configs(paths: RunPaths, trial_ids: tuple[str, ...]) -> list[TrialConfig]:
    """The TrialConfigs of `trial_ids` from the run folder's trial sets (in the given order).

    `grids.launched.launched_trials` reads them (a run folder from before trial sets: its grid.yaml); each
    config is validated again here, on the node that trains it.
    """
    trials = launched_trials(paths, set(trial_ids))
    missing = [t for t in trial_ids if t not in trials.configs]
    if missing:
        why = "; ".join(trials.notes) or f"no trial set under {paths.submissions_dir} holds them"
        raise TaskError(
            f"{paths.folder}: {len(missing)} trial id(s) of this task were never launched into this run folder "
            f"(first: {missing[0]}): {why}. Relaunch the grid to submit its trials again."
        )
    try:
        return [TrialConfig.from_mapping(trials.configs[t]) for t in trial_ids]
    except ConfigError as e:
        raise TaskError(f"{paths.submissions_dir}: a launched config no longer validates ({e}); relaunch the "
                        "grid with this version of pcsweep") from e


@dataclass
class PcsweepTask:
    """Train some trials of a grid and store their results; picklable, tiny, importable anywhere.

    Args:
        root: the run root (`runs/`); the grid's folder is `<root>/<grid>`.
        grid: the grid name.
        task_key: this task's key in the submission manifest.
        trial_ids: the trials to train, all in a trial set of `<root>/<grid>/submissions/`.
        attempt: 0 for the first run; +1 for each checkpoint requeue.
        prior_failed: trials that raised in earlier attempts, so the last attempt still exits non-zero.
        progress: show pc's per-trial progress (debug runs).
        git: (sha, dirty) of the checkout, from the launcher (the image has no git); None asks git here.
    """

    root: str
    grid: str
    task_key: str
    trial_ids: tuple[str, ...]
    attempt: int = 0
    prior_failed: tuple[str, ...] = ()
    progress: bool = False
    git: tuple[str, bool] | None = None
    _finished: list = field(default_factory=list, init=False, repr=False, compare=False)
    _failed: list = field(default_factory=list, init=False, repr=False, compare=False)
    _written: Path | None = field(default=None, init=False, repr=False, compare=False)
    _pending: list = field(default_factory=list, init=False, repr=False, compare=False)  # not in a part yet
    _parts: list = field(default_factory=list, init=False, repr=False, compare=False)  # part files written
    _part_sizes: list = field(default_factory=list, init=False, repr=False, compare=False)  # trials in each part
    _group_left: set = field(default_factory=set, init=False, repr=False, compare=False)
    _record: Any = field(default=None, init=False, repr=False, compare=False)  # pc.record.RunRecord while running

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        # results never travel in pickles
        state.update(_finished=[], _failed=[], _written=None, _pending=[], _parts=[], _part_sizes=[],
                     _group_left=set(), _record=None)
        return state

    @property
    def paths(self) -> RunPaths:
        return RunPaths.of(self.grid, self.root)

    def __call__(self) -> dict[str, Any]:
        """Run the trials; returns a small summary. Raises TaskError if any trial raised."""
        paths = self.paths
        self._finished, self._failed, self._written, self._pending, self._parts = [], [], None, [], []
        self._part_sizes = []
        if not self.trial_ids:
            return self._summary(None)
        apply_task_environment(paths, None)
        configs = load_configs(paths, tuple(self.trial_ids))
        from pc.backend import backend_problem, environment_problem
        from pc.record import RunRecord  # lazy, with pc.trials: pc is only ever imported inside a task
        from pc.trials import iter_trial_results  # lazy: imports jax, only ever inside a task

        n = len(configs)
        meter = ProgressMeter(paths, self.task_key, self.attempt, _job_id(),
                              {c.trial_id: c.train.epochs for c in configs}, len({static_key(c) for c in configs}))

        def on_group(trial_ids: tuple[str, ...]) -> None:
            self._write_part(paths)  # anything left from the previous group (normally nothing)
            self._group_left = set(trial_ids)
            meter.group(trial_ids)

        self._record = RunRecord()
        problem = environment_problem() or backend_problem()
        if problem:  # every trial fails with the reason, instead of a traceback and trials status calls "lost"
            print(f"pcsweep: {problem}", file=sys.stderr, flush=True)
            for cfg in configs:
                self._failed.append(cfg.trial_id)
                self._record_failure(paths, SimpleNamespace(trial_id=cfg.trial_id, error=problem, traceback=""))
            configs = []
        for item in iter_trial_results(configs, progress=self.progress, on_epoch=meter.epoch, on_group=on_group,
                                       record=self._record):
            if isinstance(item, TrialResult):
                self._finished.append(item)
                self._pending.append(item)
                print(f"pcsweep: trial {item.trial_id} {item.status} in {item.wall_s:.1f} s "
                      f"({len(self._finished) + len(self._failed)}/{n})", flush=True)
            else:
                self._failed.append(item.trial_id)
                self._record_failure(paths, item)
            meter.settled(item.trial_id, isinstance(item, TrialResult))
            self._group_left.discard(item.trial_id)
            if not self._group_left:
                self._write_part(paths)  # the group is complete: keep it now
        shard = self._write_shard(paths)
        meter.finish()
        failed = list(self.prior_failed) + self._failed
        if failed:
            raise TaskError(
                f"task {self.task_key}: {len(failed)} of {len(self.trial_ids) + len(self.prior_failed)} "
                f"trial(s) raised: {', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}; see "
                f"{paths.failed_dir}/<trial_id>.json (finished trials are in {shard or 'no shard'})"
            )
        return self._summary(shard)

    def _summary(self, shard: Path | None) -> dict[str, Any]:
        return {"task_key": self.task_key, "attempt": self.attempt, "shard": str(shard) if shard else None,
                "done": len(self._finished), "failed": len(self._failed)}

    def _attrs(self) -> dict[str, Any]:
        """Shard attributes: provenance, and what pc recorded while training (precision, compile seconds,
        transposed-weight choices; `pc.record.RunRecord`)."""
        sha, dirty = self.git or git_state()
        record = self._record.attributes() if self._record is not None else {}
        return {**record, "git_sha": sha, "git_dirty": dirty, "versions": package_versions(),
                "attempt": self.attempt, "job_id": _job_id(), "device_kind": _device_kind(),
                "image_digest": os.environ.get("PCSWEEP_IMAGE_DIGEST", "")}

    def _write_part(self, paths: RunPaths) -> None:
        """Write the trials finished since the last part to `<shard key>.g<k>.h5` (atomic, like any shard)."""
        if not self._pending or self._written is not None:
            return
        key = shard_key(self.task_key, self.attempt)
        _, path = _free_shard_path(paths, f"{key}.g{len(self._parts)}")
        self._parts.append(write_shard(path, self._pending, grid=self.grid, task_key=key,
                                       attrs={**self._attrs(), "part": len(self._parts)}))
        self._part_sizes.append(len(self._pending))
        for trial in self._pending:
            paths.failed(trial.trial_id).unlink(missing_ok=True)
        self._pending = []

    def _write_shard(self, paths: RunPaths) -> Path | None:
        """The attempt's one shard of every finished trial (once per attempt): a single part is renamed,
        several are merged; the parts are then removed. Drops stale failure records of these trials."""
        if self._written is not None or not self._finished:
            return self._written
        key, path = _free_shard_path(paths, shard_key(self.task_key, self.attempt))
        if single_part_is_whole(self._part_sizes, len(self._finished)):
            os.replace(self._parts[0], path)  # the part already says task_key=key; only its name changes
            self._written = path
        else:
            self._written = write_shard(path, self._finished, grid=self.grid, task_key=key, attrs=self._attrs())
            for part in self._parts:
                part.unlink(missing_ok=True)
        self._parts, self._part_sizes, self._pending = [], [], []
        for trial in self._finished:
            paths.failed(trial.trial_id).unlink(missing_ok=True)
        return self._written

    def _record_failure(self, paths: RunPaths, failure: Any) -> None:
        tb = getattr(failure, "traceback", "") or ""
        tb_text = tb if isinstance(tb, str) else "".join(traceback.format_list(tb))
        print(f"pcsweep: trial {failure.trial_id} raised {failure.error}\n{tb_text.rstrip()}",
              file=sys.stderr, flush=True)
        write_failure(paths, {
            "trial_id": failure.trial_id,
            "task_key": self.task_key,
            "error": str(failure.error),
            "traceback_tail": "\n".join(tb_text.rstrip().splitlines()[-TRACEBACK_LINES:]),
            "host": socket.gethostname(),
            "job_id": _job_id(),
            "attempt": self.attempt,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "log_paths": _log_paths(paths),
        })

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's USR2 hook (timeout or preemption): save what is finished, requeue the rest.

        Returns a `DelayedSubmission` of a task with only the unfinished trials and attempt + 1.
        """
        import submitit  # lazy: only the SLURM checkpoint hook needs it

        self._write_shard(self.paths)
        _, rest = checkpoint_split(self.trial_ids, (t.trial_id for t in self._finished), self._failed)
        print(f"pcsweep: checkpoint of task {self.task_key} attempt {self.attempt}: "
              f"{len(self._finished)} finished, {len(rest)} requeued", flush=True)
        return submitit.helpers.DelayedSubmission(PcsweepTask(
            self.root, self.grid, self.task_key, rest, self.attempt + 1,
            prior_failed=tuple(self.prior_failed) + tuple(self._failed), progress=self.progress, git=self.git))


def _device_kind() -> str:
    """The device as every shard names it (`contracts.provenance.device_label`, e.g. `cpu:cpu`) if jax is already
    loaded by the trials (never imports it here); "" before."""
    jax = sys.modules.get("jax")
    if jax is None:
        return ""
    try:
        device = jax.devices()[0]
        return device_label(device.platform, device.device_kind)
    except Exception:  # noqa: BLE001 - provenance only
        return ""


def main(argv: list[str] | None = None) -> int:
    """Run one task in this process (the local executor's subprocess entry)."""
    parser = argparse.ArgumentParser(prog="python -m launch.task", description=main.__doc__)
    parser.add_argument("--root", required=True, help="run root (the folder holding <grid>/)")
    parser.add_argument("--grid", required=True, help="grid name")
    parser.add_argument("--task-key", required=True, help="task key from the submission manifest")
    parser.add_argument("--attempt", type=int, default=0, help="attempt number (0 = first)")
    parser.add_argument("--progress", action="store_true", help="show per-trial progress")
    parser.add_argument("trial_ids", nargs="+", help="trial ids of this task")
    args = parser.parse_args(argv)
    task = PcsweepTask(args.root, args.grid, args.task_key, tuple(args.trial_ids), args.attempt,
                       progress=args.progress)
    try:
        summary = task()
    except TaskError as e:
        print(f"pcsweep task failed: {e}", file=sys.stderr)
        return 1
    print(f"pcsweep task done: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
