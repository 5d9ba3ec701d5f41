"""Trials -> tasks -> array jobs (pure; no I/O apart from `read_max_array_size`).

Rules (docs/launch-cli.md, "Planning"):
1. Trials are grouped by `contracts.config.static_key`: trials of one group share array shapes and train
   together in one compiled program (`pc`'s batched trainer).
2. A group larger than one task's capacity is cut into the fewest pieces that fit, of near-equal
   size (so no piece is a sliver); smaller groups stay whole.
3. Pieces are packed into tasks in grid order by a bounded first fit (a whole group goes to the
   first of the 32 most recent tasks with room): a task holds either one piece of a big group or
   several whole small groups, each run as its own program one after another. So a task may mix
   static keys, but only whole groups; a piece of a split group always has a task to itself.
4. Capacity is `trials_per_task` trials, or `task_minutes` of estimated run time (`CostModel`): from a
   calibration of the platform (`python -m pc.calibrate`, `contracts.calibration.estimate`: measured
   seconds per trial-epoch of the nearest shape; each group in a task adds its data load and its measured
   compile seconds, the full compile for the first group (or piece) of a program in plan order and the
   persistent-cache load for later ones (`contracts.calibration.program_key`); each task adds the measured
   task start) when one is given, else a rough FLOP count over a throughput (`estimate_trial_seconds`) with
   GROUP_OVERHEAD_S per group.
5. Tasks are split into array jobs of at most `max_array_size` tasks (SLURM's MaxArraySize caps
   the array index, so an array of N tasks needs N <= MaxArraySize).
The task key is a hash of the task's sorted trial ids, so the same trials always form the same
key and a relaunch finds its shard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from contracts.calibration import MIN_TRIAL_S, Calibration, Estimate, estimate, program_key
from contracts.config import PER_TRIAL_KEYS, TrialConfig, static_key
from contracts.shapes import MAX_GROUP, trial_flops
from grids.sweep import fast_trial_id
from launch.scheduler_call import run_scheduler

DEFAULT_TASK_MINUTES = 30.0
# Effective FLOP/s (`contracts.shapes.trial_flops` per second) of one task without a calibration. CPU: fitted to the
# 2-thread CPU calibration of 2026-12-07 (docs/pc.md): with it the FLOP model projects the three paper grids within
# -20%..+2% of the calibration (1,169 CPU-hours), while one shape's measured rate ranges from 7e9 (two moons width
# 32: overhead-bound) to 1.8e11 FLOP/s (FashionMNIST PC width 2048). A GPU is taken as 100x that, unmeasured.
FLOPS_PER_S = {"cuda": 1.45e13, "cpu": 1.45e11}
FLOP_MODEL_SPREAD = (0.8, 20.0)  # a shape's measured time over the FLOP model's, smallest and largest of that table
GROUP_OVERHEAD_S = 60.0  # jax import, data load and one compile per group in a task
MAX_ARRAY_SIZE_FALLBACK = 1001
OPEN_BINS = 32  # tasks still open to whole groups while packing


@dataclass(frozen=True)
class ProgramCost:
    """The estimate of one kind of static group (dataset, kind, width, T, batch), for the dry run."""

    dataset: str
    kind: str
    width: int
    programs: int  # static groups of this shape in the plan
    trials: int
    trial_s: float  # estimated seconds of one trial
    compile_s: float | None  # measured compile seconds per program (None: FLOP model)
    measured: str  # the calibration shape used, "" for the FLOP model


@dataclass(frozen=True)
class CostModel:
    """How run time is estimated: a calibration of the launch's platform when there is one, else FLOPs."""

    platform: str = "cuda"
    flops_per_s: float = FLOPS_PER_S["cuda"]
    calibration: Calibration | None = None

    @classmethod
    def for_platform(cls, platform: str, calibration: Calibration | None = None) -> CostModel:
        return cls(platform, FLOPS_PER_S[platform], calibration)

    @property
    def task_start_s(self) -> float:
        """Seconds every task pays before its first group (measured by the calibration; 0 without one)."""
        return (self.calibration.task_start_s or 0.0) if self.calibration is not None else 0.0

    def group_cost(self, cfg: TrialConfig, n_trials: int) -> tuple[float, float, Estimate | None]:
        """(seconds per trial, overhead per group in a task, calibration.Estimate or None) for a static group
        of `n_trials` trials like `cfg` (it runs in programs of at most MAX_GROUP trials). The overhead counts
        a full compile; `pack_tasks` lowers it for a program compiled before (Estimate.repeat_compile_s)."""
        est = None
        if self.calibration is not None:
            est = estimate(self.calibration, cfg, min(n_trials, MAX_GROUP.get(self.platform, 4096)))
        if est is None:
            return estimate_trial_seconds(cfg, flops_per_s=self.flops_per_s), GROUP_OVERHEAD_S, None
        return est.trial_s, est.compile_s + self.data_load_s(cfg), est

    def data_load_s(self, cfg: TrialConfig) -> float:
        """Measured seconds to load the trial's data set (0 without a calibration or a measurement)."""
        return self.calibration.data_load_s.get(cfg.data.dataset, 0.0) if self.calibration is not None else 0.0

    def program_size(self, n_trials: int) -> int:
        """The padded program size a piece of `n_trials` trials runs at (powers of two from 2, at most
        MAX_GROUP), for telling programs apart."""
        size = 2
        while size < min(n_trials, MAX_GROUP.get(self.platform, 4096)):
            size *= 2
        return size


@dataclass(frozen=True)
class Task:
    """One array task: the trials one process trains, whole static groups or one piece of one."""

    task_key: str  # "t-" + sha256 of the sorted trial ids, first 16 hex digits
    trial_ids: tuple[str, ...]
    groups: int = 1  # static groups (compiled programs) in this task
    est_s: float = 0.0  # estimated run time in seconds (rough)


@dataclass(frozen=True)
class TaskPacking:
    """The tasks of one launch and how they are cut into array jobs."""

    grid: str
    tasks: tuple[Task, ...]
    arrays: tuple[tuple[int, ...], ...]  # task indices per array job, each <= max_array_size tasks
    groups: int = 0  # distinct static keys among the trials
    trials: int = 0
    estimate: str = "flop"  # what sized the tasks: "calibration" or "flop" (CostModel)
    calibration: str | None = None  # the calibration file used
    calibration_date: str | None = None
    flop_groups: int = 0  # with a calibration: groups it had no comparable shape for (FLOP model used)
    programs: tuple[ProgramCost, ...] = ()  # the estimate per shape


def _static_spec() -> list[tuple[str, tuple[str, ...] | None]]:
    """Per top-level field: None (use it whole) or the sub-fields that are not per-trial."""
    spec = []
    for f in dataclasses.fields(TrialConfig):
        if f.name in PER_TRIAL_KEYS:
            continue
        value = getattr(TrialConfig(), f.name)
        if dataclasses.is_dataclass(value):
            inner = tuple(g.name for g in dataclasses.fields(value) if f"{f.name}.{g.name}" not in PER_TRIAL_KEYS)
            spec.append((f.name, None if len(inner) == len(dataclasses.fields(value)) else inner))
        else:
            spec.append((f.name, None))
    return spec


_STATIC_SPEC = _static_spec()


def _shape(cfg: TrialConfig) -> tuple:
    """A hashable stand-in for `static_key(cfg)` (equal exactly when the static keys are equal)."""
    out = []
    for name, inner in _STATIC_SPEC:
        value = getattr(cfg, name)
        out.append(value if inner is None else tuple(getattr(value, f) for f in inner))
    out.append(cfg.train.h_momentum != 0)  # per trial, but on/off is part of the program (`static_key`)
    return tuple(out)


def task_key(trial_ids: Sequence[str]) -> str:
    """Deterministic task key from its trials' ids (order-free)."""
    return "t-" + hashlib.sha256("\n".join(sorted(trial_ids)).encode()).hexdigest()[:16]


def estimate_trial_seconds(cfg: TrialConfig, *, flops_per_s: float = FLOPS_PER_S["cuda"]) -> float:
    """Rough run time of one trial: its matmul FLOPs (`contracts.shapes.trial_flops`, the count the calibration
    and the trainer use) over a throughput.

    Args:
        cfg: the trial.
        flops_per_s: effective throughput of one task (see FLOPS_PER_S).

    Returns:
        Seconds, excluding compile time (counted per group by `pack_tasks`), never below MIN_TRIAL_S.
    """
    return max(MIN_TRIAL_S, trial_flops(cfg) / flops_per_s)


@dataclass
class _Group:
    """The trials of one static key, the estimated seconds of each (one shape, so one cost) and the overhead
    the group adds to a task (compile, data load)."""

    cfg: TrialConfig
    members: list[int]
    seconds: float = 0.0
    overhead: float = GROUP_OVERHEAD_S
    est: Estimate | None = None
    program: str = ""  # contracts.calibration.program_key (calibrated groups only)


@dataclass(frozen=True)
class _Piece:
    """A whole static group or one piece of a split one: the unit that is packed into tasks."""

    members: list[int]
    whole: bool
    overhead: float = GROUP_OVERHEAD_S


@dataclass
class _Bin:
    """A task being packed: its trial indices, used capacity and number of groups."""

    members: list[int] = field(default_factory=list)
    cost: float = 0.0
    groups: int = 0
    overhead: float = 0.0  # estimated seconds of the groups' compiles and data loads


def _check_sizing(trials_per_task: int | None, task_minutes: float | None, max_array_size: int) -> float | None:
    """Refuse bad capacities (ValueError); returns `task_minutes`, defaulted when neither is given."""
    if trials_per_task is not None and task_minutes is not None:
        raise ValueError("give trials_per_task or task_minutes, not both")
    if trials_per_task is None and task_minutes is None:
        task_minutes = DEFAULT_TASK_MINUTES
    if (trials_per_task is not None and trials_per_task < 1) or (task_minutes is not None and task_minutes <= 0):
        raise ValueError(f"task capacity must be positive; got trials_per_task={trials_per_task}, "
                         f"task_minutes={task_minutes}")
    if max_array_size < 1:
        raise ValueError(f"max_array_size must be >= 1; got {max_array_size}")
    return task_minutes


def _group_trials(trials: Sequence[TrialConfig], cost: CostModel) -> tuple[list[_Group], list[float]]:
    """Static groups in first-seen order with their costs, and each trial's estimated seconds.

    Grids share section objects between trials; their ids are a cheap memo key while `trials` keeps them
    alive (hashing frozen dataclasses for 50k trials costs ~1 s), and `_shape` stands in for `static_key`.
    A group's cost depends on its size (the calibration's group size), so it is set once all are grouped.
    """
    groups: dict[str, _Group] = {}
    by_shape: dict[tuple, _Group] = {}
    by_ids: dict[tuple[int, int, int], _Group] = {}
    of_trial: list[_Group] = []
    for i, cfg in enumerate(trials):
        ids = (id(cfg.data), id(cfg.model), id(cfg.train))
        group = by_ids.get(ids)
        if group is None:
            shape = _shape(cfg)
            group = by_shape.get(shape)
            if group is None:
                skey = static_key(cfg)
                if skey not in groups:
                    groups[skey] = _Group(cfg, [])
                group = by_shape[shape] = groups[skey]
            by_ids[ids] = group
        group.members.append(i)
        of_trial.append(group)
    for group in groups.values():
        group.seconds, group.overhead, group.est = cost.group_cost(group.cfg, len(group.members))
        if group.est is not None:
            group.program = program_key(group.cfg)
    return list(groups.values()), [g.seconds for g in of_trial]


def _cut_pieces(groups: Sequence[_Group], unit_cost: float | None, capacity: float,
                cost: CostModel | None = None) -> list[_Piece]:
    """Rule 2: a group that does not fit one task is cut into the fewest near-equal pieces that fit.

    `unit_cost` is the cost of one trial when counting trials (1), None when counting seconds (then each
    piece also pays its group's overhead). With a calibration (`cost`), a piece whose program (program key and
    padded size) came earlier in plan order pays the persistent-cache load instead of the compile: tasks share
    the cache, and run in plan order where they run one after another.
    """
    pieces: list[_Piece] = []
    compiled: set[tuple[str, int]] = set()
    for group in groups:
        per = group.seconds if unit_cost is None else unit_cost
        per_piece = max(1, int((capacity - (group.overhead if unit_cost is None else 0.0)) / per + 1e-9))
        n_pieces = math.ceil(len(group.members) / per_piece)
        size, extra = divmod(len(group.members), n_pieces)
        start = 0
        for p in range(n_pieces):
            end = start + size + (1 if p < extra else 0)
            overhead = group.overhead
            if group.est is not None and cost is not None:
                program = (group.program, cost.program_size(end - start))
                if program in compiled:
                    overhead = group.est.repeat_compile_s + cost.data_load_s(group.cfg)
                compiled.add(program)
            pieces.append(_Piece(group.members[start:end], n_pieces == 1, overhead))
            start = end
    return pieces


def _pack(pieces: Sequence[_Piece], costs: Sequence[float], capacity: float, count_overhead: bool,
          task_start_s: float = 0.0) -> list[_Bin]:
    """Rule 3: a piece of a split group gets a task of its own; a whole group goes to the first of the last
    OPEN_BINS shareable tasks with room (bounded first fit: near grid order, linear time), else a new one.
    Every task starts at `task_start_s` (counted only when counting seconds)."""
    bins: list[_Bin] = []
    open_bins: list[_Bin] = []
    for piece in pieces:
        cost = (piece.overhead if count_overhead else 0.0) + sum(costs[i] for i in piece.members)
        target = None
        if piece.whole:
            target = next((b for b in open_bins if b.cost + cost <= capacity + 1e-9), None)
        if target is None:
            target = _Bin(cost=task_start_s if count_overhead else 0.0)
            bins.append(target)
            if piece.whole:
                open_bins = (open_bins + [target])[-OPEN_BINS:]
        target.members.extend(piece.members)
        target.cost += cost
        target.groups += 1
        target.overhead += piece.overhead
    return bins


def _split_arrays(n_tasks: int, max_array_size: int) -> tuple[tuple[int, ...], ...]:
    """Rule 5: consecutive task indices, at most `max_array_size` per array job."""
    return tuple(tuple(range(start, min(start + max_array_size, n_tasks)))
                 for start in range(0, n_tasks, max_array_size))


def pack_tasks(
    trials: Sequence[TrialConfig],
    *,
    grid: str,
    trials_per_task: int | None = None,
    task_minutes: float | None = None,
    max_array_size: int = MAX_ARRAY_SIZE_FALLBACK,
    flops_per_s: float = FLOPS_PER_S["cuda"],
    trial_ids: Sequence[str] | None = None,
    cost: CostModel | None = None,
) -> TaskPacking:
    """Group trials by static key, pack the groups into tasks and the tasks into arrays (module rules 1-5).

    Args:
        trials: the trials to run, in grid order.
        grid: the grid name.
        trials_per_task: task capacity in trials; or
        task_minutes: task capacity in estimated minutes (default 30 when neither is given).
        max_array_size: the most tasks in one array job.
        flops_per_s: throughput for the run-time estimate (FLOP model; ignored when `cost` is given).
        trial_ids: `trials[i].trial_id`, if already known (saves hashing 50k configs again).
        cost: how run time is estimated (a calibration, `CostModel.for_platform`); default the FLOP model
            at `flops_per_s`.

    Raises:
        ValueError: both or a non-positive capacity, or a max_array_size below 1.
    """
    task_minutes = _check_sizing(trials_per_task, task_minutes, max_array_size)
    if trial_ids is None:
        trial_ids = [fast_trial_id(c) for c in trials]
    cost = cost or CostModel(flops_per_s=flops_per_s)
    groups, seconds = _group_trials(trials, cost)
    start_s = cost.task_start_s
    if trials_per_task is not None:  # capacity counted in trials
        capacity, unit_cost = float(trials_per_task), 1.0
        costs: Sequence[float] = [1.0] * len(trials)
        pieces = _cut_pieces(groups, unit_cost, capacity, cost)
    else:  # capacity counted in estimated seconds; each task first pays its start
        capacity, unit_cost = task_minutes * 60.0, None  # type: ignore[operator]
        costs = seconds
        pieces = _cut_pieces(groups, unit_cost, max(capacity - start_s, 1e-9), cost)
    bins = _pack(pieces, costs, capacity, unit_cost is None, start_s)
    tasks = []
    for b in bins:
        ids = tuple(trial_ids[i] for i in b.members)
        est = start_s + b.overhead + sum(seconds[i] for i in b.members)
        tasks.append(Task(task_key(ids), ids, b.groups, round(est, 1)))
    cal = cost.calibration
    return TaskPacking(grid=grid, tasks=tuple(tasks), arrays=_split_arrays(len(tasks), max_array_size),
                groups=len(groups), trials=len(trials), estimate="calibration" if cal else "flop",
                calibration=cal.path if cal else None, calibration_date=cal.date if cal else None,
                flop_groups=sum(g.est is None for g in groups) if cal else 0, programs=_program_costs(groups))


def _program_costs(groups: Sequence[_Group]) -> tuple[ProgramCost, ...]:
    """The estimate per (dataset, kind, width, T, batch size), in first-seen order, for the dry run."""
    out: dict[tuple, ProgramCost] = {}
    for g in groups:
        c = g.cfg
        key = (c.data.dataset, c.model.kind, c.model.width, c.train.T, c.data.batch_size, c.model.constant_width)
        old = out.get(key)
        out[key] = ProgramCost(c.data.dataset, c.model.kind, c.model.width, (old.programs if old else 0) + 1,
                               (old.trials if old else 0) + len(g.members), round(g.seconds, 3),
                               round(g.est.compile_s, 1) if g.est else None, g.est.shape if g.est else "")
    return tuple(out.values())


def read_max_array_size(timeout_s: float = 10.0) -> int:
    """The cluster's MaxArraySize from `scontrol show config`; 1001 (SLURM's default) if unknown.

    Never hangs: `scontrol` gets `timeout_s`, and a missing command, an error or an unparsable
    answer all give the fallback.
    """
    out = run_scheduler(["scontrol", "show", "config"], timeout_s,
                        f"MaxArraySize taken as SLURM's default, {MAX_ARRAY_SIZE_FALLBACK}")
    if out is None or out.returncode != 0:
        return MAX_ARRAY_SIZE_FALLBACK
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)\s*$", out.stdout, re.M)
    if not match or int(match.group(1)) < 1:
        return MAX_ARRAY_SIZE_FALLBACK
    return int(match.group(1))
