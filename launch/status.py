"""`python -m launch status GRID`: per-array counts of pending, running, done, failed and lost trials.

Built from the files (manifests, shards, `failed/`) plus one `squeue` call; `sacct` only adds
reasons (TIMEOUT, OUT_OF_MEMORY, CANCELLED, FAILED, ...) when accounting answers. Each trial counts
once, in the newest array that submitted it; its state is, in this order: done (a complete shard
holds it), pending/running (that array's element is still queued), failed (a failure record),
lost (none of these: killed, cancelled, timed out for good, or a node died), or unknown (squeue did
not answer, so queued cannot be told from lost).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.failures import read_failures
from contracts.paths import RunPaths
from contracts.trialset import trial_set_files
from grids.launched import launched_trials
from launch.manifest import ArrayRecord, array_records
from launch.progress import TaskProgress, duration, grid_eta, read_progress
from launch.reasons import explain
from launch.scheduler_call import forget_unresponsive
from launch.trial_states import Accounting, QueueEntry, done_trials, local_running, log_tail, sacct, squeue

STATES = ("pending", "running", "done", "failed", "lost", "unknown")
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class ArrayStatus:
    """Counts for one submitted array (trials resubmitted by a newer array count there instead)."""

    job_id: str
    stamp: str
    executor: str
    tasks: int
    trials: int
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    lost: int = 0
    unknown: int = 0
    superseded: int = 0  # trials that a newer submission took over
    reasons: dict[str, int] = field(default_factory=dict)  # squeue's pending reason -> pending trials


@dataclass(frozen=True)
class Problem:
    """A task with failed or lost trials, and the best reason we have."""

    job_id: str  # <A>_<a> on SLURM
    task_key: str
    state: str  # failed | lost
    trials: int
    reason: str


@dataclass(frozen=True)
class StatusReport:
    """A grid's status; `--json` prints `dataclasses.asdict` of it."""

    grid: str
    root: str
    time: str
    queue: str  # "squeue", "unavailable" (no/failed squeue) or "none" (nothing submitted to SLURM)
    accounting: bool  # sacct answered
    grid_trials: int | None  # trials launched (its trial sets; a run folder from before them: grid.yaml), or None
    submitted: int
    not_submitted: int | None
    counts: dict[str, int]
    arrays: list[ArrayStatus]
    problems: list[Problem]
    bad_shards: list[str] = field(default_factory=list)
    stuck: dict[str, str] = field(default_factory=dict)  # pending reasons that will not clear -> what to do
    progress: list[TaskProgress] = field(default_factory=list)  # running tasks' progress files
    eta_s: float | None = None  # until nothing is queued, from measured epoch times (None: not measured yet)
    trials_source: str = "grid.yaml"  # where grid_trials came from: "trial sets" or "grid.yaml"
    studies: list[dict[str, Any]] = field(default_factory=list)  # a search's studies (launch.search_launch)
    workers_active: int = 0  # search workers pending or running (squeue, or a live local process)
    study_lines: list[str] = field(default_factory=list)  # their status lines

    @property
    def active(self) -> int:
        """Trials pending or running, plus search workers that are (they own no trials up front)."""
        return self.counts["pending"] + self.counts["running"] + self.workers_active

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_TRIALS_CACHE: dict[Path, tuple[tuple, int | None, str]] = {}  # run folder -> (file stamps, trials, source)


def _launched_count(paths: RunPaths) -> tuple[int | None, str]:
    """How many trials were launched into the run folder, and from where (`grids.launched`); cached on the files'
    sizes and mtimes, so `status --watch` reads them again only when a launch changed them."""
    files = [*trial_set_files(paths), paths.grid_yaml]
    stamps = []
    for f in files:
        try:
            st = f.stat()
            stamps.append((str(f), st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((str(f), None, None))
    cached = _TRIALS_CACHE.get(paths.folder)
    if cached and cached[0] == tuple(stamps):
        return cached[1], cached[2]
    launched = launched_trials(paths)
    count, source = (len(launched.configs), launched.source) if launched.known else (None, "unknown")
    _TRIALS_CACHE[paths.folder] = (tuple(stamps), count, source)
    return count, source


def _latest(records: list[ArrayRecord]) -> dict[str, tuple[int, int, str]]:
    """trial id -> (array index, element index, task key) of the newest array that submitted it."""
    latest: dict[str, tuple[int, int, str]] = {}
    for r, record in enumerate(records):
        for a, key in enumerate(record.task_keys):
            for trial_id in record.tasks[key]:
                latest[trial_id] = (r, a, key)
    return latest


def _queue_state(paths: RunPaths, record: ArrayRecord, a: int, queue: dict[str, QueueEntry] | None) -> str | None:
    """pending/running if the element is still queued, None if not, "unknown" if we cannot tell."""
    if record.executor in ("local", "debug"):
        alive = local_running(paths, record.stamp, record.job_id)
        return "unknown" if alive is None else ("running" if alive else None)
    if queue is None:
        return "unknown"
    entry = queue.get(record.task_job_id(a))
    if entry is None:
        return None
    return "running" if entry.running else "pending"


def _reason(record: ArrayRecord, a: int, key: str, paths: RunPaths, trial_ids: list[str],
            failed: dict[str, dict], acct: dict[str, Accounting] | None, bad: list[str]) -> str:
    """Why a task's trials are failed or lost: sacct's state, a failure record, an invalid shard of
    the task, or the last line of its log, whichever exist."""
    job = record.task_job_id(a)
    parts = []
    if acct and job in acct and acct[job].state not in ("COMPLETED", "RUNNING", "PENDING"):
        parts.append(f"{acct[job].state} (exit {acct[job].exit_code})")
    for trial_id in trial_ids:
        rec = failed.get(trial_id)
        if rec:
            tail = (rec.get("traceback_tail") or "").strip().splitlines()
            parts.append(f"{trial_id}: {tail[-1] if tail else rec.get('error', '')}".strip())
            break
    parts += [f"invalid shard: {b}" for b in bad if f"/{key}." in b][:1]
    if not parts:
        logs = ([paths.slurm_dir / f"{job}_0_log.err", paths.slurm_dir / f"{job}_0_log.out"]
                if record.executor == "slurm" else [paths.slurm_dir / "local" / f"{key}.log"])
        for log in logs:
            tail = log_tail(log)
            if tail:
                parts.append(f"{log.name}: {tail}")
                break
        else:
            where = "sacct has no record" if acct is not None else "no accounting"
            parts.append(f"{where}, no failure record, empty or missing log")
    return "; ".join(parts)


def status_report(grid: str, root: Path, *, queue_timeout_s: float = 20.0) -> StatusReport:
    """Count the grid's trials by state, per array, from files plus squeue (and sacct for reasons)."""
    paths = RunPaths.of(grid, root)
    records = array_records(paths)
    done, bad = done_trials(paths)
    failed = read_failures(paths)
    slurm_arrays = [r for r in records if r.executor == "slurm"]
    queue = squeue(grid, timeout_s=queue_timeout_s) if slurm_arrays else {}
    latest = _latest(records)

    per_array = [dict.fromkeys(STATES, 0) | {"superseded": 0} for _ in records]
    per_task: dict[tuple[int, int], dict[str, list[str]]] = {}
    reasons: list[dict[str, int]] = [{} for _ in records]
    workers_active = 0
    for r, record in enumerate(records):
        for a, key in enumerate(record.task_keys):
            if not record.tasks[key]:  # a search worker: alive or not, it owns no trials
                workers_active += _queue_state(paths, record, a, queue) in ("pending", "running")
            for trial_id in record.tasks[key]:
                if latest[trial_id][0] != r:
                    per_array[r]["superseded"] += 1
                    continue
                queued = _queue_state(paths, record, a, queue)
                if trial_id in done:
                    state = "done"
                elif queued in ("pending", "running"):
                    state = queued
                elif trial_id in failed:
                    state = "failed"
                else:
                    state = "unknown" if queued == "unknown" else "lost"
                per_array[r][state] += 1
                if state == "pending" and queue and record.executor == "slurm":
                    why = queue[record.task_job_id(a)].reason
                    reasons[r][why] = reasons[r].get(why, 0) + 1
                per_task.setdefault((r, a), {}).setdefault(state, []).append(trial_id)

    troubled = [(r, a, s, ids) for (r, a), states in per_task.items() for s, ids in states.items()
                if s in ("failed", "lost")]
    acct = None
    if any(records[r].executor == "slurm" for r, *_ in troubled):
        acct = sacct(sorted({records[r].job_id for r, *_ in troubled if records[r].executor == "slurm"}),
                     timeout_s=queue_timeout_s)
    problems = [
        Problem(records[r].task_job_id(a), records[r].task_keys[a], s, len(ids),
                _reason(records[r], a, records[r].task_keys[a], paths, ids, failed, acct, bad))
        for r, a, s, ids in troubled[:MAX_PROBLEMS]
    ]
    arrays = [ArrayStatus(job_id=rec.job_id, stamp=rec.stamp, executor=rec.executor, tasks=len(rec.task_keys),
                          trials=sum(len(v) for v in rec.tasks.values()), reasons=reasons[r], **per_array[r])
              for r, rec in enumerate(records)]
    counts = {s: sum(a[s] for a in per_array) for s in STATES}
    running_keys = [records[r].task_keys[a] for (r, a), states in per_task.items() if "running" in states]
    progress = [p for p in read_progress(paths, running_keys).values() if not p.finished]
    grid_trials, trials_source = _launched_count(paths)
    submitted = len(latest)
    extra_done = len(set(done) - set(latest))  # e.g. results of trials from a grid edited with --force
    return StatusReport(
        grid=grid, root=str(root), time=datetime.now(UTC).isoformat(timespec="seconds"),
        queue="none" if not slurm_arrays else ("squeue" if queue is not None else "unavailable"),
        accounting=acct is not None, grid_trials=grid_trials, submitted=submitted,
        not_submitted=None if grid_trials is None else max(0, grid_trials - submitted - extra_done),
        counts=counts, arrays=arrays, problems=problems, bad_shards=bad,
        stuck={w.reason: w.hint for w in map(explain, {k for d in reasons for k in d}) if w.stuck},
        progress=progress, eta_s=grid_eta(progress, counts["pending"]) if counts["running"] else None,
        trials_source=trials_source, workers_active=workers_active, **_studies(paths),
    )


def _studies(paths: RunPaths) -> dict[str, Any]:
    """A search's per-study progress (completed / running / failed of the budget, best, ETA), when the run folder
    holds studies; a spec or journal that cannot be read is one line, never a failed status."""
    if not (paths.folder / "optuna").is_dir():
        return {}
    try:
        from grids.grid import load_grid
        from launch.search_launch import render_studies, study_progress

        spec = load_grid(paths.grid_yaml).search
        if spec is None:
            return {}
        progress = study_progress(paths, spec)
    except Exception as e:  # noqa: BLE001 - status must work whatever the journals hold
        return {"study_lines": [f"studies: cannot be read ({type(e).__name__}: {e})"]}
    return {"studies": [{**asdict(s), "left": s.left, "eta_s": s.eta_s()} for s in progress],
            "study_lines": render_studies(progress)}


def render_status(report: StatusReport) -> str:
    """A human summary: totals, one row per array, the problems and what to do about them."""
    c = report.counts
    lines = [f"grid {report.grid} in {Path(report.root) / report.grid}  ({report.time})"]
    where = "launched" if report.trials_source == "trial sets" else "in grid.yaml"
    total = f"{report.grid_trials} trials {where}, " if report.grid_trials is not None else ""
    lines.append(f"{total}{report.submitted} submitted" +
                 (f", {report.not_submitted} never submitted" if report.not_submitted else ""))
    lines.append("  ".join(f"{s} {c[s]}" for s in STATES if c[s] or s in ("pending", "running", "done")))
    lines += report.study_lines
    if report.workers_active:
        lines.append(f"{report.workers_active} search worker(s) pending or running")
    if report.queue == "unavailable":
        lines.append("squeue did not answer: queued and lost trials cannot be told apart (shown as unknown)")
    if report.arrays:
        head = f"{'array':>14} {'stamp':>18} {'tasks':>6} {'pending':>8} {'running':>8} {'done':>6} " \
               f"{'failed':>7} {'lost':>5}"
        lines += ["", head]
        for a in report.arrays:
            job = a.job_id if a.executor == "slurm" else a.executor
            row = f"{job:>14} {a.stamp:>18} {a.tasks:>6} {a.pending:>8} {a.running:>8} {a.done:>6} " \
                  f"{a.failed:>7} {a.lost:>5}"
            if a.unknown:
                row += f"  unknown {a.unknown}"
            if a.superseded:
                row += f"  ({a.superseded} resubmitted later)"
            lines.append(row)
    else:
        lines.append("nothing submitted yet: python -m launch grids/<grid>.yaml")
    lines += _reason_lines(report) + _progress_lines(report)
    if report.problems:
        lines += ["", "problems:"]
        lines += [f"  {p.job_id} {p.task_key}: {p.trials} {p.state}: {p.reason}" for p in report.problems]
    for bad in report.bad_shards:
        lines.append(f"  invalid shard (ignored): {bad}")
    if c["lost"] or c["failed"]:
        lines += ["", f"rerun lost trials: python -m launch <grid file> --root {report.root}"
                  + ("  (add --rerun-failed for failed ones)" if c["failed"] else "")]
    return "\n".join(lines)


def _progress_lines(report: StatusReport) -> list[str]:
    """Running tasks: group, epoch, seconds per epoch and ETA from their progress files."""
    if not report.progress:
        return []
    lines = ["", f"running tasks ({len(report.progress)} reporting); ETA of the queued trials ~"
             f"{duration(report.eta_s)} from measured epoch times:"]
    for p in sorted(report.progress, key=lambda p: p.task_key)[:20]:
        lines.append(f"  {p.task_key}: group {p.group}/{p.groups}, epoch {p.epoch}/{p.epochs}, {p.group_trials} "
                     f"trials, {p.s_per_epoch if p.s_per_epoch is not None else '?'} s/epoch, {p.done}/{p.trials} "
                     f"done, task ETA {duration(p.eta_s)}")
    return lines


def _reason_lines(report: StatusReport) -> list[str]:
    """Pending trials by squeue reason per array; reasons that will not clear by themselves get a hint."""
    lines = []
    for a in report.arrays:
        if not a.reasons:
            continue
        parts = []
        for reason, n in sorted(a.reasons.items(), key=lambda kv: -kv[1]):
            why = explain(reason)
            parts.append(f"{reason} {n}" + (f" (STUCK: will not start by itself; {why.hint})" if why.stuck else ""))
        lines.append(f"  array {a.job_id} pending: " + "; ".join(parts))
    return ["", "pending reasons (squeue):", *lines] if lines else []


def watch(grid: str, root: Path, interval_s: float = 10) -> None:
    """Refresh the status every `interval_s` with a progress bar over trials until nothing is queued.

    The bar counts settled trials (done, failed, lost); its postfix shows done, running, pending, failed and
    the ETA measured from the tasks' epoch times (`launch.progress`). Ctrl-C stops watching (the jobs keep
    running) and prints the last status.
    """
    from tqdm import tqdm  # lazy: only --watch draws a progress bar

    report = status_report(grid, root)
    bar = tqdm(total=max(report.submitted, 1), unit="trial", desc=f"pcsweep-{grid}",
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} trials [{elapsed}{postfix}]")
    try:
        while True:
            c = report.counts
            bar.n = c["done"] + c["failed"] + c["lost"]
            bar.set_postfix_str(f"done {c['done']}, running {c['running']}, pending {c['pending']}, failed "
                                f"{c['failed']}, lost {c['lost']}, ETA {duration(report.eta_s)}", refresh=False)
            bar.refresh()
            if report.active == 0 and c["unknown"] == 0:
                break
            time.sleep(interval_s)
            forget_unresponsive()  # a watch outlives a slow minute of the controller: ask SLURM again each tick
            report = status_report(grid, root)
            if report.submitted != bar.total:
                bar.total = max(report.submitted, 1)
    except KeyboardInterrupt:
        pass
    finally:
        bar.close()
    print(render_status(report))
