"""The adaptive-search worker: one process asks Optuna for trials, trains them as pcsweep trials, tells the values.

A grid's `search:` section (`grids.search.SearchSpec`) describes studies; each study lives in one Optuna journal,
`runs/<grid>/optuna/<study>.log` (JournalFileBackend with O_EXCL file locks: the run folder is on NFS, where
SQLite's fcntl locking is broken). Any number of workers (later: one SLURM array task each) run `run_worker` at
once on the same studies; every worker builds the same sampler (TPE with constant liar, a seed per study and
worker) so the search does not depend on which worker asked.

One round of a study, in one worker:
1. under the study's *ask lock* (`optuna/<study>.ask.lock`, O_EXCL like the journal's): count COMPLETE and RUNNING
   trials and ask n = min(batch, budget - COMPLETE - RUNNING) trials, each stamped with its owner (user attr
   `owner`: worker, host, pid, process start time, SLURM ids). Counting and asking under one lock is what keeps a
   study at exactly its budget of COMPLETE trials however many workers race: without it two workers could both
   see the same free slots. Optuna's `ask()` pops enqueued (WAITING) trials first, so retries are asked first.
2. outside the lock: each trial's config is the study's base with every searched key set from `trial.suggest_*`
   (an enqueued trial's fixed params are honoured by the same calls); `TrialConfig.from_mapping` validates it and
   an invalid combination is told FAIL with the reason. Trials with the same config share one pcsweep trial id:
   it is trained once and every Optuna trial of it is told the same value. A trial id that some shard already
   holds (an earlier batch, a killed worker's last group, a fixed sweep) is read, not trained again.
3. the batch is one trial set (`submissions/search-<study>-n<first number>-w<worker>.trials.jsonl`: Optuna numbers
   are never reused, so a stamp is never written twice) plus a map of Optuna number -> trial id
   (`optuna/batches/<stamp>.json`, read back by `search_trial_ids`); `PcsweepTask` trains it in this process,
   grouped by static shape, and writes shard parts. Trials that raised are told FAIL with their
   `failed/<id>.json` error.
4. each finished trial's value comes from its shard row, computed as collect's summary computes the column
   (`trial_value`), and is told.

Recovery: RUNNING trials whose owner is gone (`owner_alive`, a pure function) are told FAIL and their params
enqueued again (`retry_of`), so a killed worker costs neither a budget slot nor its sampled config. It runs when a
worker opens a study and before it leaves one on which others still run trials.

Study order: one study after the other, starting at study `worker mod len(studies)` (see `study_order`).
Nothing here imports jax; `PcsweepTask` imports pc inside the call.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.samplers import TPESampler
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, Trial, TrialState

from contracts.atomic import write_json_atomic
from contracts.cli import OneLineParser, root_path, run_command
from contracts.config import ConfigError, TrialConfig, set_dotted, trial_id
from contracts.failures import failure_reason
from contracts.lock import process_start_time
from contracts.paths import RunPaths
from contracts.shard import ShardError, open_shard
from contracts.trialset import write_trial_set
from grids.search import METRICS, Distribution, SearchSpec, Study
from launch.task import PcsweepTask, TaskError
from launch.trial_states import done_trials

OPTUNA_DIR = "optuna"  # runs/<grid>/optuna/: one journal per study, ask locks, batch maps
ASK_LOCK_GRACE_S = 120  # a lock older than this is taken over (its holder was killed); holding it takes < 1 s
ORPHAN_AFTER_S = 600.0  # a RUNNING trial without an owner record this old was left between ask and stamping
SQUEUE_TIMEOUT_S = 20.0
SLURM_ID_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID")
# Accuracies lie in [0, 1]: a diverged trial is told the worst value a trial can have (see `trial_value`).
WORST = {"maximize": 0.0, "minimize": 1.0}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


# ----------------------------------------------------------------------------------------------------------------
# Who owns a RUNNING trial, and is it still there


@dataclass(frozen=True)
class Owner:
    """The process that asked a trial: (host, pid, start time) names one process for good (a reused pid has
    another start time); the SLURM ids let a worker on another node be checked with squeue."""

    worker: int
    host: str
    pid: int
    start_time: str | None
    slurm_job_id: str | None = None
    slurm_array_job_id: str | None = None
    slurm_array_task_id: str | None = None
    slurm_procid: str | None = None

    @classmethod
    def current(cls, worker: int, ids: Mapping[str, str] | None = None) -> Owner:
        """This process; `ids` are its SLURM id variables (None: read from the environment)."""
        env = os.environ if ids is None else ids
        if ids is not None and (unknown := sorted(set(ids) - set(SLURM_ID_VARS))):
            raise ValueError(f"worker_ids: unknown keys {unknown}; expected some of {list(SLURM_ID_VARS)}")
        return cls(worker, socket.gethostname(), os.getpid(), process_start_time(os.getpid()),
                   *(env.get(v) or None for v in SLURM_ID_VARS))

    @property
    def job(self) -> str | None:
        """The SLURM job as squeue names it: `<array job>_<task>` for an array element, else the job id."""
        if self.slurm_array_job_id:
            return f"{self.slurm_array_job_id}_{self.slurm_array_task_id or 0}"
        return self.slurm_job_id

    def attrs(self) -> dict[str, Any]:
        """The user attr `owner` (one dict: one journal write per trial instead of eight)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_attrs(cls, attrs: Any) -> Owner | None:
        """The owner recorded on a trial, or None when there is no (readable) record."""
        if not isinstance(attrs, Mapping):
            return None
        try:
            return cls(int(attrs["worker"]), str(attrs["host"]), int(attrs["pid"]),
                       None if attrs.get("start_time") is None else str(attrs["start_time"]),
                       *(None if attrs.get(k) is None else str(attrs[k]) for k in
                         ("slurm_job_id", "slurm_array_job_id", "slurm_array_task_id", "slurm_procid")))
        except (KeyError, TypeError, ValueError):
            return None

    def same_process(self, other: Owner) -> bool:
        return (self.host, self.pid, self.start_time) == (other.host, other.pid, other.start_time)


def owner_alive(owner: Owner | None, *, me: Owner, age_s: float, start_time_of: Callable[[int], str | None],
                job_listed: Callable[[str], bool | None]) -> bool:
    """Whether a RUNNING trial's owner may still finish it; False only when it is certainly gone.

    Pure: what it needs to know about processes and jobs comes in as `start_time_of(pid)` (None: no such
    process; `contracts.lock.process_start_time`) and `job_listed(job)` (True/False, None when squeue does not
    answer; `squeue_lists`). In order:
    - no owner record: the asker died between `ask` and stamping the trial (both happen under the ask lock), or
      someone outside pcsweep asked it; dead once the trial is `ORPHAN_AFTER_S` old;
    - this very process: alive;
    - on this host: alive while its pid runs with the recorded start time (a reused pid is another process);
    - the same SLURM job (and task rank) as this process, on another host: dead, the job was requeued and this
      process is its new incarnation;
    - a SLURM job: dead when squeue no longer lists it; alive when it does, or when squeue does not answer (never
      break a trial on a scheduler hiccup);
    - another host without SLURM ids: cannot be checked, alive (a relaunch on that host recovers it).
    """
    if owner is None:
        return age_s < ORPHAN_AFTER_S
    if owner.same_process(me):
        return True
    if owner.host == me.host:
        now = start_time_of(owner.pid) if owner.pid > 1 else None
        return now is not None and (owner.start_time is None or now == owner.start_time)
    if owner.job is not None and owner.job == me.job and owner.slurm_procid == me.slurm_procid:
        return False
    if owner.job is not None:
        return job_listed(owner.job) is not False
    return True


def squeue_lists(job: str, timeout_s: float = SQUEUE_TIMEOUT_S) -> bool | None:
    """Whether `squeue -h -j <job>` still lists the job: True/False, None when squeue is missing or fails.

    A job SLURM has forgotten makes squeue exit non-zero with "Invalid job id": that is an answer (gone).
    """
    if shutil.which("squeue") is None:
        return None
    try:
        r = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%i"], capture_output=True, text=True,
                           timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode == 0:
        return bool(r.stdout.strip())
    return False if "invalid job id" in r.stderr.lower() else None


# ----------------------------------------------------------------------------------------------------------------
# Studies, storage, asking


def optuna_dir(paths: RunPaths) -> Path:
    return paths.folder / OPTUNA_DIR


def safe_name(name: str) -> str:
    """A file-name-safe form of a study name (the parser already checks it; a stamp must never escape)."""
    return _UNSAFE.sub("_", name).lstrip(".") or "study"


def journal_path(paths: RunPaths, study: str) -> Path:
    return optuna_dir(paths) / f"{safe_name(study)}.log"


def study_storage(paths: RunPaths, study: str) -> JournalStorage:
    """The study's journal: a file of operations on the shared file system, appended under an O_EXCL lock file
    (`JournalFileOpenLock`, NFSv3+), never SQLite (fcntl locks are unreliable on NFS)."""
    path = journal_path(paths, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def worker_seed(study: str, worker: int) -> int:
    """A sampler seed per (study, worker): workers must not draw the same startup trials, and a rerun of one
    worker on the same history draws the same ones."""
    return int.from_bytes(hashlib.sha256(f"{study}\0{worker}".encode()).digest()[:4], "big")


def open_study(paths: RunPaths, spec: SearchSpec, study: Study, worker: int) -> optuna.Study:
    """Create or load the study; every worker builds the same sampler type and settings, only the seed differs."""
    return optuna.create_study(study_name=study.name, storage=study_storage(paths, study.name),
                               direction=spec.direction, load_if_exists=True,
                               sampler=TPESampler(constant_liar=True, seed=worker_seed(study.name, worker)))


def ask_lock(paths: RunPaths, study: str) -> JournalFileOpenLock:
    """The lock held while counting and asking (and recovering): `optuna/<study>.ask.lock`."""
    return JournalFileOpenLock(str(optuna_dir(paths) / f"{safe_name(study)}.ask"), grace_period=ASK_LOCK_GRACE_S)


class _Held:
    """`with _Held(lock):` (optuna's locks have acquire/release but are no context managers)."""

    def __init__(self, lock: JournalFileOpenLock) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        try:
            self.lock.release()
        except RuntimeError:  # taken over after the grace period: nothing left to release
            print("pcsweep search: an ask lock was taken over while this worker held it (held longer than "
                  f"{ASK_LOCK_GRACE_S} s?)", file=sys.stderr)


def ask_trials(study: optuna.Study, n: int, owner: Owner) -> list[Trial]:
    """Ask n trials (enqueued ones first) and stamp each with its owner. Call under the ask lock."""
    trials = []
    for _ in range(max(n, 0)):
        trial = study.ask()
        trial.set_user_attr("owner", owner.attrs())
        trials.append(trial)
    return trials


def _suggest(trial: Trial, d: Distribution) -> Any:
    """`trial.suggest_*` for one searched key; for an enqueued trial it returns the fixed value."""
    if d.kind == "float":
        return trial.suggest_float(d.key, d.low, d.high, log=d.log, step=d.step)
    if d.kind == "int":
        return trial.suggest_int(d.key, d.low, d.high, step=d.step or 1, log=d.log)
    return trial.suggest_categorical(d.key, list(d.choices or ()))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def trial_config(trial: Trial, spec: SearchSpec, study: Study) -> dict[str, Any]:
    """The study's base with each searched key set, validated and in full (ConfigError when it is invalid)."""
    mapping = _plain(study.base)  # a deep copy of plain dicts: the base is shared by every trial
    for d in spec.params:
        set_dotted(mapping, d.key, _suggest(trial, d))
    return TrialConfig.from_mapping(mapping).to_mapping()


# ----------------------------------------------------------------------------------------------------------------
# Values


def trial_value(status: str, test_accuracy: Sequence[float] | np.ndarray, metric: str,
                direction: str) -> tuple[float | None, str]:
    """(value to tell, note): the value None means tell FAIL, the note says why.

    The number is collect's summary column of the same name (`accuracy_best`: nanmax over epochs; `accuracy`:
    the last epoch), so a study optimises what the summary and the figures show.
    - diverged: the worst value (0 when maximising accuracy), not FAIL. Divergence is a property of the region
      the sampler chose (a stability result, docs/design.md section 5), and TPE ignores FAIL trials: told FAIL,
      a diverging region would be sampled again and again, and a cell where most of the space diverges would
      never reach its budget. The worst value teaches TPE to leave it and counts against the budget. (The
      figures leave diverged trials out; the trial's user attr `status` says which they are.)
    - not diverged but the metric is NaN (`accuracy` of an early-stopped trial, whose later epochs are NaN; no
      epochs): FAIL, because nothing was measured; the region is not bad, the metric does not apply.
    """
    if metric not in METRICS or direction not in WORST:
        raise ValueError(f"metric {metric!r} / direction {direction!r}: expected one of {METRICS} / {list(WORST)}")
    acc = np.asarray(test_accuracy, dtype=np.float64).reshape(-1)
    finite = acc[np.isfinite(acc)]
    if metric == "accuracy_best":
        raw = float(finite.max()) if finite.size else math.nan
    else:
        raw = float(acc[-1]) if acc.size else math.nan
    if status == "diverged":
        return WORST[direction], f"diverged; told the worst value {WORST[direction]} ({metric} was {raw})"
    if not math.isfinite(raw):
        return None, f"{metric} is not finite ({raw}); an early-stopped trial has no last-epoch accuracy"
    return raw, ""


def _shard_rows(paths: RunPaths, trial_ids: Iterable[str]) -> dict[str, tuple[str, np.ndarray]]:
    """trial id -> (status, test_accuracy) from the newest shard holding it (`launch.trial_states.done_trials`).

    A shard part can be renamed or merged by a task of another worker between the scan and the read: then the
    scan runs once more.
    """
    wanted = set(trial_ids)
    out: dict[str, tuple[str, np.ndarray]] = {}
    for _ in range(2):
        done, _bad = done_trials(paths)
        by_path: dict[Path, list[str]] = {}
        for tid in wanted - set(out):
            if tid in done:
                by_path.setdefault(done[tid], []).append(tid)
        moved = False
        for path, tids in by_path.items():
            try:
                with open_shard(path) as shard:
                    for block in shard.blocks(tids):
                        for i, tid in enumerate(block.trial_ids):
                            out[tid] = (block.status[i], np.asarray(block.arrays["test_accuracy"][i]))
            except (ShardError, OSError):
                moved = True
        if not moved:
            break
    return out


def _failure_note(paths: RunPaths, tid: str) -> str:
    """Why a trained trial has no shard row: its `failed/<id>.json` error, in one line."""
    try:
        record = json.loads(paths.failed(tid).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "the task wrote neither a shard row nor a failure record"
    return f"raised: {failure_reason(record)}" if isinstance(record, dict) else f"unreadable {paths.failed(tid)}"


# ----------------------------------------------------------------------------------------------------------------
# Reports


@dataclass
class StudyReport:
    """What one worker did to one study."""

    name: str
    asked: int = 0  # Optuna trials this worker asked
    completed: int = 0  # told COMPLETE by this worker
    failed: int = 0  # told FAIL by this worker (invalid config, raised, NaN metric)
    diverged: int = 0  # of `completed`: told the worst value
    trained: int = 0  # distinct trial ids trained
    reused: int = 0  # distinct trial ids read from shards already written
    recovered: int = 0  # RUNNING trials of dead owners told FAIL and enqueued again
    complete_total: int = 0  # COMPLETE trials of the study when the worker left it
    stopped: str = ""  # budget reached | others running | max rounds | too many failures


@dataclass
class WorkerReport:
    worker: int
    studies: dict[str, StudyReport] = field(default_factory=dict)

    @property
    def asked(self) -> int:
        return sum(s.asked for s in self.studies.values())

    @property
    def completed(self) -> int:
        return sum(s.completed for s in self.studies.values())

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.studies.values())


# ----------------------------------------------------------------------------------------------------------------
# The worker


def study_order(studies: Sequence[Study], worker: int) -> list[Study]:
    """Every study once, starting at `worker mod len(studies)`.

    One study after the other rather than round-robin: a study reaches its budget (and is ready for the figures)
    as early as possible, and a run cut short leaves whole studies, not every study part-done; a worker keeps
    training one cell's program (same static shape) instead of switching programs every batch. The rotated start
    spreads the workers of an array over the studies, so each study's sampler sees few concurrent batches at
    first; workers that finish theirs move on and join the others.
    """
    if not studies:
        return []
    k = worker % len(studies)
    return list(studies[k:]) + list(studies[:k])


def _age_s(trial: FrozenTrial) -> float:
    start = trial.datetime_start
    if start is None:
        return 0.0
    now = datetime.now(start.tzinfo) if start.tzinfo else datetime.now()
    return max((now - start).total_seconds(), 0.0)


def recover_dead_trials(study: optuna.Study, lock: JournalFileOpenLock, me: Owner, *,
                        start_time_of: Callable[[int], str | None] = process_start_time,
                        job_listed: Callable[[str], bool | None] = squeue_lists) -> list[int]:
    """Tell FAIL every RUNNING trial whose owner is gone and enqueue its params again; returns their numbers.

    The verdicts (squeue may take seconds) are reached outside the ask lock; the FAIL and the enqueue happen
    under it, for trials still RUNNING, so two workers never enqueue one dead trial twice.
    """
    listed: dict[str, bool | None] = {}

    def cached(job: str) -> bool | None:
        if job not in listed:
            listed[job] = job_listed(job)
        return listed[job]

    dead = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not owner_alive(Owner.from_attrs(t.user_attrs.get("owner")), me=me, age_s=_age_s(t),
                               start_time_of=start_time_of, job_listed=cached)}
    if not dead:
        return []
    with _Held(lock):
        gone = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number in dead]
        for t in gone:
            _fail_and_requeue(study, t, f"owner gone: {t.user_attrs.get('owner')}")
    return [t.number for t in gone]


def _fail_and_requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Tell FAIL (with the reason) and, if it had any params, enqueue them again with `retry_of`: the config is
    tried again and the budget (COMPLETE trials) is unchanged. An enqueued trial's params may not have been
    suggested yet: its fixed params count too."""
    _set_attr(study, trial, "fail_reason", reason)
    if study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True).state != TrialState.FAIL:
        return
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    if params:
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number})


def _set_attr(study: optuna.Study, trial: Trial | FrozenTrial, key: str, value: Any) -> None:
    """A user attr on a trial that may have been finished meanwhile (then it is left as it is)."""
    with contextlib.suppress(UpdateFinishedTrialError):
        study._storage.set_trial_user_attr(trial._trial_id, key, value)


def _release(study: optuna.Study, numbers: Iterable[int], reason: str) -> None:
    """FAIL the trials this worker cannot finish and enqueue their params again (an interrupted or crashing
    worker): what recovery would do for them later, done now."""
    numbers = set(numbers)
    try:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.number in numbers:
                _fail_and_requeue(study, trial, reason)
    except Exception as e:  # noqa: BLE001 - best effort while another exception is on its way out
        print(f"pcsweep search: could not release trials {sorted(numbers)}: {e}", file=sys.stderr)


def _count(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete


class _Batch:
    """One round's asked trials, on their way to a value."""

    def __init__(self, paths: RunPaths, spec: SearchSpec, study: optuna.Study, meta: Study, worker: int,
                 report: StudyReport) -> None:
        self.paths, self.spec, self.study, self.meta, self.worker, self.report = (
            paths, spec, study, meta, worker, report)
        self.open: dict[int, Trial] = {}  # number -> trial not told yet

    def fail(self, trial: Trial, reason: str) -> None:
        _set_attr(self.study, trial, "fail_reason", reason)
        self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        self.open.pop(trial.number, None)
        self.report.failed += 1

    def run(self, trials: list[Trial]) -> None:
        self.open = {t.number: t for t in trials}
        configs: dict[str, dict[str, Any]] = {}
        by_id: dict[str, list[Trial]] = {}
        for trial in trials:
            try:
                config = trial_config(trial, self.spec, self.meta)
            except ConfigError as e:
                self.fail(trial, f"invalid config: {e}")
                continue
            except ValueError as e:  # optuna refused a suggest (a search space changed under a running study)
                self.fail(trial, f"cannot suggest: {e}")
                continue
            tid = trial_id(config)
            configs.setdefault(tid, config)
            by_id.setdefault(tid, []).append(trial)
        if not by_id:
            return
        first = min(t.number for group in by_id.values() for t in group)
        stamp = f"search-{safe_name(self.meta.name)}-n{first:06d}-w{self.worker}"
        for tid, group in by_id.items():
            for trial in group:
                _set_attr(self.study, trial, "trial_id", tid)
                _set_attr(self.study, trial, "batch", stamp)
        write_trial_set(self.paths, stamp, configs.values())
        write_json_atomic(optuna_dir(self.paths) / "batches" / f"{stamp}.json", {
            "study": self.meta.name, "stamp": stamp, "worker": self.worker,
            "trials": {str(t.number): tid for tid, group in by_id.items() for t in group}})
        rows = _shard_rows(self.paths, by_id)
        train = tuple(tid for tid in by_id if tid not in rows)
        self.report.reused += len(by_id) - len(train)
        if train:
            self.report.trained += len(train)
            print(f"pcsweep search: study {self.meta.name}: training {len(train)} trial(s) for "
                  f"{len(trials)} asked ({stamp})", flush=True)
            try:
                PcsweepTask(str(self.paths.root), self.paths.grid, stamp, train)()
            except TaskError as e:  # some trials raised; the others are in the shard
                print(f"pcsweep search: {e}", file=sys.stderr, flush=True)
            rows.update(_shard_rows(self.paths, train))
        for tid, group in by_id.items():
            if tid not in rows:
                reason = _failure_note(self.paths, tid)
                for trial in group:
                    self.fail(trial, reason)
                continue
            status, accuracy = rows[tid]
            value, note = trial_value(status, accuracy, self.spec.metric, self.spec.direction)
            for trial in group:
                if value is None:
                    self.fail(trial, note)
                    continue
                _set_attr(self.study, trial, "status", status)
                if note:
                    _set_attr(self.study, trial, "note", note)
                frozen = self.study.tell(trial, value, skip_if_finished=True)
                self.open.pop(trial.number, None)
                if frozen.state == TrialState.COMPLETE:
                    self.report.completed += 1
                    self.report.diverged += status == "diverged"


def _run_study(paths: RunPaths, spec: SearchSpec, meta: Study, worker: int, me: Owner,
               rounds_left: list[int | None], max_failures: int) -> StudyReport:
    report = StudyReport(meta.name)
    study = open_study(paths, spec, meta, worker)
    lock = ask_lock(paths, meta.name)
    report.recovered += len(recover_dead_trials(study, lock, me))
    while True:
        if rounds_left[0] is not None and rounds_left[0] <= 0:
            report.stopped = "max rounds"
            break
        if report.failed >= max_failures:
            report.stopped = f"too many failures ({report.failed}); see the trials' fail_reason"
            break
        with _Held(lock):
            complete, running = _count(study)
            n = min(spec.batch, spec.budget - complete - running)
            trials = ask_trials(study, n, me) if complete < spec.budget else []
        if complete >= spec.budget:
            report.stopped = "budget reached"
            break
        if not trials:
            recovered = recover_dead_trials(study, lock, me)
            report.recovered += len(recovered)
            if recovered:
                continue  # their slots are free again
            report.stopped = f"others running ({running} trial(s)); a relaunch or another worker finishes them"
            break
        report.asked += len(trials)
        batch = _Batch(paths, spec, study, meta, worker, report)
        try:
            batch.run(trials)
        except BaseException as e:
            _release(study, batch.open, f"worker stopped: {type(e).__name__}: {e}")
            raise
        if rounds_left[0] is not None:
            rounds_left[0] -= 1
    report.complete_total = _count(study)[0]
    print(f"pcsweep search: study {meta.name}: {report.stopped}; {report.complete_total}/{spec.budget} complete "
          f"(this worker: {report.completed} complete, {report.failed} failed, {report.asked} asked)", flush=True)
    return report


def run_worker(paths: RunPaths, spec: SearchSpec, *, worker: int, worker_ids: Mapping[str, str] | None = None,
               max_rounds: int | None = None, max_failures: int | None = None) -> WorkerReport:
    """Run the search's studies in this process until each has its budget of COMPLETE trials, or nothing is left
    for this worker to ask (the rest are running in other workers).

    Args:
        paths: the grid's run folder; studies live in `<folder>/optuna/`.
        spec: the grid's `search:` section.
        worker: this worker's index (the array task index): the sampler seed and the first study depend on it.
        worker_ids: this worker's SLURM id variables (`SLURM_JOB_ID`, `SLURM_ARRAY_JOB_ID`, `SLURM_ARRAY_TASK_ID`,
            `SLURM_PROCID`) recorded on each trial it asks; None reads them from the environment.
        max_rounds: at most this many batches in all (None: no limit), e.g. to fit a SLURM time limit.
        max_failures: leave a study after this many FAIL trials of this worker in it (default: the budget): a
            systematic failure (a search space of invalid configs, a missing dataset) must not loop forever.
    """
    if spec.metric not in METRICS or spec.direction not in WORST:
        raise ValueError(f"search: metric {spec.metric!r} / direction {spec.direction!r} not supported; expected "
                         f"one of {METRICS} / {list(WORST)}")
    me = Owner.current(worker, worker_ids)
    report = WorkerReport(worker)
    rounds_left = [max_rounds]
    cap = max(spec.budget, 1) if max_failures is None else max_failures
    t0 = time.monotonic()
    for meta in study_order(spec.studies, worker):
        report.studies[meta.name] = _run_study(paths, spec, meta, worker, me, rounds_left, cap)
    print(f"pcsweep search: worker {worker} done in {time.monotonic() - t0:.0f} s: {report.completed} complete, "
          f"{report.failed} failed, {report.asked} asked over {len(report.studies)} stud(ies)", flush=True)
    return report


def search_trial_ids(paths: RunPaths) -> dict[str, list[tuple[str, int]]]:
    """pcsweep trial id -> [(study, Optuna trial number), ...] from the batch maps (`optuna/batches/*.json`);
    one id may stand for several Optuna trials (the same config suggested twice)."""
    out: dict[str, list[tuple[str, int]]] = {}
    folder = optuna_dir(paths) / "batches"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            pairs = [(str(doc["study"]), int(n), str(tid)) for n, tid in doc["trials"].items()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        for study, number, tid in pairs:
            out.setdefault(tid, []).append((study, number))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run one search worker in this process on a grid file with a `search:` section.

    The low-level entry of adaptive search (as `python -m launch.task` is for grid tasks): start as many as you
    like, on one machine or as the tasks of an sbatch array (`--worker $SLURM_ARRAY_TASK_ID`); they share the
    studies through the run folder. Exit status: 0 when this worker has nothing left to ask, 2 for a bad argument
    or grid file (one line, nothing written).
    """

    from grids import GridError, load_grid, resolve
    from launch.compat import store_grid

    parser = OneLineParser(prog="python -m launch.search_worker", description=main.__doc__)
    parser.add_argument("grid", metavar="GRID", help="a grid file with a search: section, or its name")
    parser.add_argument("--root", type=root_path, default=None, help="run root (default: $PCSWEEP_ROOT or ./runs)")
    parser.add_argument("--worker", type=int, default=0, help="this worker's index, >= 0 (the sampler seed and the "
                        "first study depend on it; default 0)")
    parser.add_argument("--max-rounds", type=int, default=None, help="ask at most this many batches in all")
    args = parser.parse_args(argv)
    try:
        if args.worker < 0 or (args.max_rounds is not None and args.max_rounds < 1):
            raise GridError("--worker must be >= 0 and --max-rounds >= 1")
        ref = resolve(args.grid, args.root)
        grid = load_grid(ref.require_file())
        if grid.search is None:
            raise GridError(f"{ref.require_file()}: no search: section; launch a grid with python -m launch")
        paths = ref.paths
        paths.folder.mkdir(parents=True, exist_ok=True)
        store_grid(grid, paths)  # the spec as searched, beside its studies (atomic; workers store the same text)
    except (GridError, OSError) as e:
        print(f"python -m launch.search_worker: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    run_worker(paths, grid.search, worker=args.worker, max_rounds=args.max_rounds)
    return 0


__all__ = ["ASK_LOCK_GRACE_S", "ORPHAN_AFTER_S", "Owner", "StudyReport", "WorkerReport", "ask_lock", "ask_trials",
           "journal_path", "open_study", "owner_alive", "recover_dead_trials", "run_worker", "search_trial_ids",
           "squeue_lists", "study_order", "study_storage", "trial_config", "trial_value", "worker_seed"]


if __name__ == "__main__":
    sys.exit(run_command("launch.search_worker", main))
