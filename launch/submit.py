"""Submission: `prepare_launch`'s plan -> submitit SLURM arrays (or local/debug runs) -> manifest.

The only module that submits (submitit is imported lazily, inside `_submit_slurm`). `launch` holds the run
folder's lock (`contracts.lock.RunLock`) while it reads what is done and queued, selects and submits, so
two launches at once never send the same trials. It stores `grid.yaml`, the submission's trial set
(`contracts.trialset`: the exact configs it sends, which its tasks read) and the manifest only for a launch
that sent something, and returns as soon as sbatch accepted the arrays; it never waits on results (local
and debug runs wait for their tasks, after releasing the lock).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contracts.lock import RunLock
from contracts.paths import RunPaths
from contracts.provenance import git_state, package_versions
from contracts.trialset import trial_set_path, write_trial_set
from grids.grid import Grid
from launch.compat import GridConflictError, provisional_grid
from launch.environment import apply_task_environment
from launch.local import run_debug, run_local
from launch.manifest import array_entry, array_records, new_stamp, write_manifest
from launch.options import LaunchOptions
from launch.preflight import PreflightError, preflight, require_fit
from launch.prepare import LaunchPlan, SubmissionError, only_indices, prepare_launch, run_paths
from launch.search_launch import prepare_search, studies_left, study_progress, worker_tasks, workers_launched
from launch.task import PcsweepTask
from launch.trial_states import LocalProcess, local_job_id, local_marker, write_local_marker


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
                full = disk_full_note(Path(self.root) / self.grid)
                if full:
                    lines.append(full)
        return "\n".join(lines)


FULL_BELOW_BYTES = 1 << 20


def disk_full_note(folder: Path) -> str | None:
    """A line when the file system holding `folder` is (nearly) full: a task that failed there may have had no room
    for its log or its failure record, so this is the one place the reason can still be said."""
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return None
    if usage.free >= FULL_BELOW_BYTES:
        return None
    return (f"the file system holding {folder} is full ({usage.free:,} bytes free): the tasks may have failed for "
            "that, with no room for their logs or failure records; free space and relaunch (finished trials are "
            "kept)")


def check_executor(options: LaunchOptions) -> None:
    """`--executor slurm` needs sbatch on PATH (the CLI defaults to `local` without it)."""
    if options.executor == "slurm" and shutil.which("sbatch") is None:
        raise SubmissionError("--executor slurm: sbatch is not on PATH (not a SLURM login node?); "
                              "run here with --executor local, or load the cluster's slurm module")


def _options_json(options: LaunchOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(options).items()}


def _manifest(p: LaunchPlan, options: LaunchOptions, stamp: str, tasks: Sequence[PcsweepTask],
              git: tuple[str, bool]) -> dict[str, Any]:
    sha, dirty = git
    return {
        "grid": p.grid.name, "stamp": stamp, "executor": p.executor,
        "tasks": {t.task_key: list(t.trial_ids) for t in tasks}, "arrays": [],
        "sbatch": p.parameters, "image": options.image if options.container else None,
        "python_command": p.python, "git_sha": sha, "git_dirty": dirty, "versions": package_versions(),
        "options": _options_json(options),
    }


@contextlib.contextmanager
def _kept_only_if_sent(p: LaunchPlan, manifest: dict[str, Any]) -> Iterator[None]:
    """grid.yaml and the trial set are stored for the block (tasks read the trial set when they start); if the
    block raises before an array went out, grid.yaml is put back as it was and the trial set and the reserved
    manifest are removed."""
    with provisional_grid(p.grid, p.paths, sent=lambda: bool(manifest["arrays"])):
        try:
            write_trial_set(p.paths, manifest["stamp"], (c.to_mapping() for c in p.configs))
            yield
        finally:
            if not manifest["arrays"]:
                trial_set_path(p.paths, manifest["stamp"]).unlink(missing_ok=True)
                p.paths.submission(manifest["stamp"]).unlink(missing_ok=True)


def launch(grid: Grid, options: LaunchOptions) -> Submission:
    """Submit the grid's missing trials (see module doc) and return at once with what was sent.

    Raises:
        OptionsError: an `--only` id that is not in the grid (nothing is written, not even the lock).
        PreflightError: the partition can never run the request (`launch.preflight`; nothing is written).
        LockHeld: another launch or collect holds the run folder (after `options.wait_s`).
        GridConflictError: the grid changes trials already launched (without `force`).
        SubmissionError: nothing could be submitted (squeue down, sbatch refused, ...).
    """
    check_executor(options)
    if grid.search is not None:
        return _launch_search(grid, options)
    only_indices(grid, options.only)
    verdict, options = preflight(options)
    require_fit(verdict)
    with RunLock(run_paths(grid, options).lock, "launch", wait_s=options.wait_s):
        p = prepare_launch(grid, options, verdict=verdict)
        if p.conflict:
            raise GridConflictError(p.conflict)
        if p.executor == "slurm" and options.preflight and p.data.missing:
            raise PreflightError(f"{p.data.missing[0]} (a SLURM launch checks this before submitting; "
                                 "--no-preflight submits anyway)")
        base = dict(grid=grid.name, root=str(p.paths.root), executor=p.executor, grid_trials=len(grid.trial_ids),
                    skipped=p.skipped)
        if not p.trial_ids:
            return Submission(stamp=None, manifest=None, trials=0, tasks=0, **base)
        stamp = new_stamp(p.paths)
        git = git_state()  # here, where the checkout is: the image has no git, so tasks are told
        tasks = [PcsweepTask(str(p.paths.root), grid.name, f"{stamp}-{t.task_key}", t.trial_ids, git=git)
                 for t in p.plan.tasks]
        arrays = [tuple(tasks[i] for i in idx) for idx in p.plan.arrays]
        manifest = _manifest(p, options, stamp, tasks, git)
        with _kept_only_if_sent(p, manifest):
            if p.executor == "slurm":
                submitted = _submit_slurm(arrays, p, manifest)
            else:
                submitted = _start_here(arrays, p, manifest)
        done = dict(stamp=stamp, manifest=str(p.paths.submission(stamp)), trials=len(p.trial_ids), tasks=len(tasks),
                    arrays=tuple(submitted), **base)
    if p.executor == "slurm":
        return Submission(**done)
    failed_tasks, logs = _run_here(tasks, p, options, manifest)
    return Submission(failed_tasks=failed_tasks, logs=logs, **done)


def _launch_search(grid: Grid, options: LaunchOptions) -> Submission:
    """Submit `options.workers` search workers (`launch.search_launch`); nothing when every study has its budget."""
    verdict, options = preflight(options)
    require_fit(verdict)
    paths = run_paths(grid, options)
    with RunLock(paths.lock, "launch", wait_s=options.wait_s):
        p = prepare_search(grid, options, verdict)
        if p.executor == "slurm" and options.preflight and p.data.missing:
            raise PreflightError(f"{p.data.missing[0]} (a SLURM launch checks this before submitting; "
                                 "--no-preflight submits anyway)")
        progress = study_progress(paths, grid.search)
        base = dict(grid=grid.name, root=str(paths.root), executor=p.executor,
                    grid_trials=len(grid.search.studies) * grid.search.budget,
                    skipped={"done": sum(s.complete for s in progress)})
        if not studies_left(progress):
            return Submission(stamp=None, manifest=None, trials=0, tasks=0, **base)
        stamp = new_stamp(paths)
        git = git_state()
        tasks = worker_tasks(paths, grid, stamp, options.workers, first=workers_launched(array_records(paths)))
        manifest = _manifest(p, options, stamp, tasks, git)
        with provisional_grid(grid, paths, sent=lambda: bool(manifest["arrays"])):
            try:
                submitted = (_submit_slurm if p.executor == "slurm" else _start_here)([tuple(tasks)], p, manifest)
            finally:
                if not manifest["arrays"]:
                    paths.submission(stamp).unlink(missing_ok=True)
        done = dict(stamp=stamp, manifest=str(paths.submission(stamp)), trials=sum(s.left for s in progress),
                    tasks=len(tasks), arrays=tuple(submitted), **base)
    if p.executor == "slurm":
        return Submission(**done)
    failed_tasks, logs = _run_here(tasks, p, options, manifest)
    return Submission(failed_tasks=failed_tasks, logs=logs, **done)


def _submit_slurm(arrays: Sequence[tuple[PcsweepTask, ...]], p: LaunchPlan,
                  manifest: dict[str, Any]) -> list[SubmittedArray]:
    """One submitit batch (one `sbatch --array`) per planned array; the manifest is rewritten after
    each, so arrays that went out are recorded even if a later sbatch fails."""
    import submitit  # lazy: the only submitting code path; dry runs and status never need it

    paths = p.paths
    paths.slurm_dir.mkdir(parents=True, exist_ok=True)  # Slurm < 23.02 fails silently without it
    submitted = []
    for tasks in arrays:
        executor = submitit.SlurmExecutor(folder=paths.slurm_dir, python=p.python)
        executor.update_parameters(**p.parameters)
        sbatch_stderr = io.StringIO()  # submitit echoes sbatch's stderr; a refusal must stay one line
        pickles = set(paths.slurm_dir.glob("*.pkl"))
        try:
            with contextlib.redirect_stderr(sbatch_stderr), executor.batch():
                jobs = [executor.submit(task) for task in tasks]
        except Exception as e:
            for orphan in set(paths.slurm_dir.glob("*.pkl")) - pickles:  # submitit's pickles of tasks never sent
                orphan.unlink(missing_ok=True)
            raise SubmissionError(_refusal(e, len(submitted) + 1, len(arrays), manifest, paths)) from e
        sys.stderr.write(sbatch_stderr.getvalue())  # sbatch's warnings on success are worth seeing
        job_id = jobs[0].job_id.split("_")[0]
        manifest["arrays"].append(array_entry(job_id, [t.task_key for t in tasks]))
        write_manifest(paths, manifest)
        submitted.append(SubmittedArray(job_id, len(tasks), sum(len(t.trial_ids) for t in tasks)))
    return submitted


def _refusal(error: Exception, number: int, total: int, manifest: dict[str, Any], paths: RunPaths) -> str:
    """One line: which sbatch failed and why (sbatch's own words, lines joined), and what went out before it."""
    why = " ".join(str(error).split()) or type(error).__name__
    if not manifest["arrays"]:
        return f"sbatch refused array {number} of {total} ({why}); nothing was submitted; fix the cause and relaunch"
    done = ", ".join(a["job_id"] for a in manifest["arrays"])
    return (f"sbatch refused array {number} of {total} ({why}); arrays already submitted: {done} (recorded in "
            f"{paths.submission(manifest['stamp'])}); fix the cause and relaunch: submitted trials are skipped")


def _start_here(arrays: Sequence[tuple[PcsweepTask, ...]], p: LaunchPlan,
                manifest: dict[str, Any]) -> list[SubmittedArray]:
    """Local and debug runs start here: the marker (this process, for cancel and status) and the manifest
    are written before the lock is released, so a concurrent relaunch sees these trials as queued."""
    job_id = local_job_id()
    me = LocalProcess.of(os.getpid())
    if me is None:  # only without /proc: then nothing could ever tell this run from a dead one
        raise SubmissionError("--executor local: /proc is not readable here, so a running launch cannot be "
                              "recognised; run on Linux or use --executor slurm")
    write_local_marker(p.paths, manifest["stamp"], me)
    manifest["arrays"] = [array_entry(job_id, [t.task_key for t in array]) for array in arrays]
    write_manifest(p.paths, manifest)
    return [SubmittedArray(job_id, len(a), sum(len(t.trial_ids) for t in a)) for a in arrays]


def _run_here(tasks: Sequence[PcsweepTask], p: LaunchPlan, options: LaunchOptions,
              manifest: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Run the started local/debug launch to its end; the marker goes when it returns (or is cancelled)."""
    stamp = manifest["stamp"]
    me = LocalProcess.of(os.getpid())

    def record(running: dict[str, LocalProcess]) -> None:
        if me is not None:
            write_local_marker(p.paths, stamp, me, running)

    try:
        if p.executor == "debug":
            apply_task_environment(p.paths, options.platform)
            run_debug(tasks[0])
            return (), ()
        result = run_local(tasks, jobs=options.jobs, env=p.environment, python=p.python,
                           job_id=manifest["arrays"][0]["job_id"],
                           record=record)
    finally:
        local_marker(p.paths, stamp).unlink(missing_ok=True)
    return result.failed_tasks, tuple(result.logs.values())


__all__ = ["GridConflictError", "Submission", "SubmissionError", "SubmittedArray", "check_executor", "launch"]
