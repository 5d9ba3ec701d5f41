"""Submission: grid -> relaunch filter -> plan -> submitit SLURM arrays (or local/debug) -> manifest.

The only module that imports submitit (lazily, inside `_submit_slurm`). `launch` returns as soon as
sbatch has accepted the arrays and the manifest is written; it never waits on results. A relaunch of
the same grid submits only trials with no complete result that are not queued or running (and, with
`rerun_failed`, the failed ones); `force` submits everything.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from contracts.paths import RunPaths
from grids.grid import Grid, GridError, dump_grid, load_grid
from launch.manifest import array_entry, git_state, new_stamp, package_versions, write_manifest
from launch.state import done_trials, failed_records, local_job_id, local_marker, local_running, squeue
from launch.task import PcsweepTask

DEFAULT_MAX_ARRAY_SIZE = 1001


class SubmissionError(RuntimeError):
    """Nothing was submitted: the message says why and what to do."""


class GridConflictError(GridError):
    """A relaunch whose grid would change what existing trial ids mean (refused unless --force)."""


@dataclass(frozen=True)
class SubmittedArray:
    job_id: str
    tasks: int
    trials: int


@dataclass(frozen=True)
class Submission:
    """What one launch did; `--json` prints `dataclasses.asdict` of it, `render()` is for humans."""

    grid: str
    root: str
    executor: str
    stamp: str | None  # None when nothing was submitted
    manifest: str | None
    grid_trials: int
    trials: int  # submitted now
    tasks: int
    arrays: tuple[SubmittedArray, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=dict)  # done / queued / failed
    failed_tasks: tuple[str, ...] = ()  # local and debug runs: tasks that exited non-zero
    logs: tuple[str, ...] = ()  # local and debug runs: task logs

    @property
    def exit_code(self) -> int:
        """The CLI's exit status: 1 when a local task failed, else 0 (SLURM results come later)."""
        return 1 if self.failed_tasks else 0

    def render(self) -> str:
        skipped = ", ".join(f"{v} {k}" for k, v in self.skipped.items() if v)
        head = f"grid {self.grid}: {self.grid_trials} trials" + (f" ({skipped}: skipped)" if skipped else "")
        if not self.trials:
            return f"{head}\nnothing to submit: every trial is done, queued or failed " \
                   "(--rerun-failed reruns failed ones, --force everything)"
        lines = [head, f"{self.executor}: {self.trials} trials in {self.tasks} tasks, manifest {self.manifest}"]
        if self.executor == "slurm":
            for a in self.arrays:
                lines.append(f"  array {a.job_id}: {a.tasks} tasks, {a.trials} trials")
            lines += [f"watch: squeue --me -n pcsweep-{self.grid}   or   "
                      f"python -m launch status {self.grid} --root {self.root} --watch",
                      f"cancel: python -m launch cancel {self.grid} --root {self.root}"]
        else:
            ok = self.tasks - len(self.failed_tasks)
            lines.append(f"{ok} tasks finished, {len(self.failed_tasks)} failed")
            if self.failed_tasks:
                lines.append(f"failed tasks: {', '.join(self.failed_tasks[:10])}; see "
                             f"{Path(self.root) / self.grid / 'failed'} and the logs")
        return "\n".join(lines)


# ---------------------------------------------------------------- grid.yaml compatibility


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and any(isinstance(v, Mapping) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def differing_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two grid documents (or exist in only one)."""
    a, b = _flat(old), _flat(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, object()) != b.get(k, object()))


def reconcile_grid(grid: Grid, paths: RunPaths, force: bool = False) -> None:
    """Store the grid as `runs/<grid>/grid.yaml`, refusing edits that change existing trials.

    A grid whose trials are a superset of the stored one (values added) replaces it; one that drops
    stored trial ids (a changed default or value) raises GridConflictError naming the keys, unless
    `force`.
    """
    if paths.grid_yaml.exists():
        old = load_grid(paths.grid_yaml)
        if old.raw == grid.raw:
            return
        vanished = set(old.trial_ids or [c.trial_id for c in old.trials]) - set(_ids(grid))
        if vanished and not force:
            keys = differing_keys(old.raw, grid.raw)
            raise GridConflictError(
                f"{grid.path or grid.name}: {len(vanished)} trial(s) already launched into {paths.folder} "
                f"would no longer be in the grid; keys that differ from {paths.grid_yaml}: "
                f"{', '.join(keys) or '(none: trial ids changed)'}. Add values instead of changing them, "
                "give the grid a new name, or relaunch with --force (existing results are kept but no "
                "longer belong to the grid)."
            )
    paths.folder.mkdir(parents=True, exist_ok=True)
    tmp = paths.grid_yaml.with_name(f"grid.yaml.tmp.{os.getpid()}")
    tmp.write_text(dump_grid(grid))
    os.replace(tmp, paths.grid_yaml)


def _ids(grid: Grid) -> tuple[str, ...]:
    return grid.trial_ids or tuple(c.trial_id for c in grid.trials)


# ---------------------------------------------------------------- relaunch filter


def queued_trials(paths: RunPaths) -> set[str]:
    """Trials of this grid's arrays that the scheduler still lists (or local runs still alive).

    Raises SubmissionError when squeue does not answer, rather than risk submitting trials twice.
    """
    from launch.manifest import array_records

    records = array_records(paths)
    queue = squeue(paths.grid) if any(r.executor == "slurm" for r in records) else {}
    if queue is None:
        raise SubmissionError(
            "squeue did not answer, so queued trials cannot be told from missing ones; retry, or "
            "pass --force to submit every trial regardless")
    queued: set[str] = set()
    for record in records:
        for a, key in enumerate(record.task_keys):
            if record.executor == "slurm":
                live = record.task_job_id(a) in queue
            else:
                live = bool(local_running(paths, record.stamp, record.job_id))
            if live:
                queued.update(record.tasks[key])
    return queued


def select_trials(grid: Grid, paths: RunPaths, options: Any) -> tuple[list[str], dict[str, int]]:
    """The trial ids to run now, in grid order, and how many were skipped for each reason."""
    ids = list(_ids(grid))
    only = tuple(getattr(options, "only", ()) or ())
    if only:
        known = set(ids)
        unknown = [t for t in only if t not in known]
        if unknown:
            raise SubmissionError(
                f"--only: {len(unknown)} id(s) not in grid {grid.name} (first: {unknown[0]}); "
                f"list trial ids with: python -m launch {grid.path or grid.name} --dry-run --json")
        wanted = set(only)
        ids = [t for t in ids if t in wanted]
    force = options.force or (options.executor == "debug" and bool(only))
    if force:
        return ids, {}
    done, _ = done_trials(paths)
    failed = failed_records(paths)
    queued = queued_trials(paths)
    skipped = {"done": 0, "queued": 0, "failed": 0}
    keep = []
    for t in ids:
        if t in done:
            skipped["done"] += 1
        elif t in queued:
            skipped["queued"] += 1
        elif t in failed and not options.rerun_failed:
            skipped["failed"] += 1
        else:
            keep.append(t)
    return keep, skipped


# ---------------------------------------------------------------- launch


def resolve_executor(options: Any) -> str:
    """The executor to use; `slurm` needs sbatch on PATH (the CLI defaults to `local` without it)."""
    executor = options.executor or "slurm"
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise SubmissionError("--executor slurm: sbatch is not on PATH (not a SLURM login node?); "
                              "run here with --executor local, or load the cluster's slurm module")
    return executor


def _options_json(options: Any) -> dict[str, Any]:
    data = asdict(options) if is_dataclass(options) else dict(vars(options))
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in data.items()}


def launch(grid: Grid, options: Any) -> Submission:
    """Submit the grid's missing trials (see module doc) and return at once with what was sent.

    Raises:
        GridConflictError: the grid changes trials already launched (without `force`).
        SubmissionError: nothing could be submitted (bad --only, squeue down, sbatch refused, ...).
    """
    from launch.plan import FLOPS_PER_S, make_plan

    executor = resolve_executor(options)
    paths = RunPaths.of(grid.name, Path(options.root).resolve())
    reconcile_grid(grid, paths, force=options.force)
    ids, skipped = select_trials(grid, paths, options)
    base = dict(grid=grid.name, root=str(paths.root), executor=executor, grid_trials=len(_ids(grid)),
                skipped=skipped)
    if not ids:
        return Submission(stamp=None, manifest=None, trials=0, tasks=0, **base)
    if executor == "debug" and len(ids) != 1:
        raise SubmissionError(
            f"--executor debug runs one trial in this process; {len(ids)} are selected. "
            f"Pick one with --only ID (e.g. --only {ids[0]}).")
    by_id = dict(zip(_ids(grid), grid.trials))
    max_array = options.max_array_size or (_cluster_max_array_size() if executor == "slurm" else DEFAULT_MAX_ARRAY_SIZE)
    trials_per_task, task_minutes = options.task_sizing()
    platform = options.platform or ("cuda" if executor == "slurm" else "cpu")
    plan = make_plan([by_id[t] for t in ids], grid=grid.name, trials_per_task=trials_per_task,
                     task_minutes=task_minutes, max_array_size=max_array, trial_ids=ids,
                     flops_per_s=FLOPS_PER_S.get(platform, FLOPS_PER_S["cuda"]))
    sbatch, python = _slurm_settings(options, grid, paths) if executor == "slurm" else ({}, _python(options, paths))
    sha, dirty = git_state()
    stamp = new_stamp(paths)
    manifest_path = paths.submission(stamp)
    tasks = [PcsweepTask(str(paths.root), grid.name, f"{stamp}-{t.task_key}", tuple(t.trial_ids)) for t in plan.tasks]
    arrays = [tuple(tasks[i] for i in idx) for idx in plan.arrays]
    manifest = {
        "grid": grid.name, "stamp": stamp, "executor": executor,
        "tasks": {t.task_key: list(t.trial_ids) for t in tasks}, "arrays": [],
        "sbatch": sbatch, "image": getattr(options, "image", None) if getattr(options, "container", True) else None,
        "python_command": python, "git_sha": sha, "git_dirty": dirty, "versions": package_versions(),
        "options": _options_json(options),
    }
    failed_tasks: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()
    try:
        if executor == "slurm":
            submitted = _submit_slurm(arrays, sbatch, python, paths, manifest)
        else:
            submitted, failed_tasks, logs = _run_here(executor, arrays, options, paths, manifest, python)
    finally:
        if not manifest["arrays"]:
            manifest_path.unlink(missing_ok=True)  # nothing went out: no manifest
    return Submission(stamp=stamp, manifest=str(manifest_path), trials=len(ids), tasks=len(tasks),
                      arrays=tuple(submitted), failed_tasks=failed_tasks, logs=logs, **base)


def _cluster_max_array_size() -> int:
    from launch.plan import read_max_array_size

    return read_max_array_size()


def _python(options: Any, paths: RunPaths) -> str | None:
    from launch.sbatch import python_command

    return python_command(options, paths)


def _slurm_settings(options: Any, grid: Grid, paths: RunPaths) -> tuple[dict[str, Any], str | None]:
    from launch.sbatch import executor_parameters

    params = executor_parameters(options, grid.name, paths)
    return params, _python(options, paths)


def _submit_slurm(arrays: Sequence[tuple[PcsweepTask, ...]], sbatch: dict[str, Any], python: str | None,
                  paths: RunPaths, manifest: dict[str, Any]) -> list[SubmittedArray]:
    """One submitit batch (one `sbatch --array`) per planned array; the manifest is rewritten after
    each, so arrays that went out are recorded even if a later sbatch fails."""
    import submitit

    paths.slurm_dir.mkdir(parents=True, exist_ok=True)  # Slurm < 23.02 fails silently without it
    submitted = []
    for tasks in arrays:
        executor = submitit.SlurmExecutor(folder=paths.slurm_dir, python=python)
        executor.update_parameters(**sbatch)
        try:
            with executor.batch():
                jobs = [executor.submit(task) for task in tasks]
        except Exception as e:
            done = ", ".join(a["job_id"] for a in manifest["arrays"]) or "none"
            raise SubmissionError(
                f"sbatch refused array {len(submitted) + 1} of {len(arrays)} ({e}); arrays already "
                f"submitted: {done} (recorded in {paths.submission(manifest['stamp'])}); fix the cause "
                "and relaunch: submitted trials are skipped") from e
        job_id = jobs[0].job_id.split("_")[0]
        manifest["arrays"].append(array_entry(job_id, [t.task_key for t in tasks]))
        write_manifest(paths, manifest)
        submitted.append(SubmittedArray(job_id, len(tasks), sum(len(t.trial_ids) for t in tasks)))
    return submitted


def _run_here(executor: str, arrays: Sequence[tuple[PcsweepTask, ...]], options: Any, paths: RunPaths,
              manifest: dict[str, Any], python: str | None) -> tuple[list[SubmittedArray], tuple, tuple]:
    """Local and debug runs: write the manifest first (status works meanwhile), then run and wait."""
    from launch.local import run_debug, run_local

    job_id = local_job_id()
    tasks = [t for array in arrays for t in array]
    marker = local_marker(paths, manifest["stamp"])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(job_id + "\n")
    manifest["arrays"] = [array_entry(job_id, [t.task_key for t in array]) for array in arrays]
    write_manifest(paths, manifest)
    submitted = [SubmittedArray(job_id, len(a), sum(len(t.trial_ids) for t in a)) for a in arrays]
    try:
        if executor == "debug":
            from launch.task import set_env_defaults

            set_env_defaults(paths, getattr(options, "platform", None))
            run_debug(tasks[0])
            return submitted, (), ()
        result = run_local(tasks, jobs=getattr(options, "jobs", 1), env=_local_env(options, paths),
                           python=python, job_id=job_id)
    finally:
        marker.unlink(missing_ok=True)
    return submitted, result.failed_tasks, tuple(result.logs.values())


def _local_env(options: Any, paths: RunPaths) -> dict[str, str]:
    """The task environment for local subprocesses: the SLURM one, but JAX_PLATFORMS only if asked."""
    from launch.sbatch import task_environment

    env = {k: str(v) for k, v in task_environment(options, paths).items()}
    env.pop("JAX_PLATFORMS", None)
    if getattr(options, "platform", None):
        env["JAX_PLATFORMS"] = options.platform
    return env


__all__ = ["GridConflictError", "Submission", "SubmissionError", "SubmittedArray", "differing_keys", "launch",
           "queued_trials", "reconcile_grid", "select_trials"]
