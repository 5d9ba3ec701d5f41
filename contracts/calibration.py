"""The calibration file: measured costs of the group program on one device kind, and the estimate made from it.

`python -m pc.calibrate` times the real group program on representative shapes and writes
`ROOT/.calibration/<device kind>.json` (schema `pcsweep-calibration`, version 1). The launcher reads it on a
login node to size tasks and project device-hours, so this module is pure Python (no jax, no numpy).

A file holds, per measured shape (dataset, kind, width, T, batch size, constant width) and group size: the
compile seconds of the program (trace + lowering + XLA compile, no persistent cache), the seconds one trial
spends per full epoch in steady state, and the peak memory where the device reports it.

`estimate(cal, cfg, group)` turns that into seconds for one trial (docs/pc.md, "Calibration"):
1. the comparable shapes: same dataset family (two_moons/two_circles; fashion_mnist/mnist) and constant-width
   flag; among them the family of measured widths closest to the trial (same kind, then T, then batch size);
2. per trial-batch seconds at the trial's width: the measured value at that width, else interpolated in
   log-log between the two neighbouring widths, else (wider than any measured) the widest scaled by the FLOP
   ratio; narrower than any measured: the narrowest (small shapes are bound by overhead, not FLOPs). The
   measured values are made non-decreasing in width first (noise at tiny widths can invert them). A family
   of another kind, T or batch size is scaled by the FLOP ratio of the two configs;
3. times the trial's batches per epoch and epochs, never below `MIN_TRIAL_S`;
4. the compile seconds of the nearest measured program (per program, counted once per group by the planner),
   and what a persistent-cache hit of that program costs (`cached_compile_s`: the trace and lowering, which a
   hit still pays; the full compile for a file that did not measure them).
Group size: each width uses its measured group size nearest (in log) to the group the trial runs in.
The planner also adds `task_start_s` per task (a fresh python importing the task side and jax; 0 for a file
that did not measure it) and counts the full compile only once per `program_key`: the tasks share jax's
persistent compilation cache, and groups that differ only in what the compiled program does not see (two
moons or two circles, the data seed and noise) compile to the same program.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contracts.atomic import write_json_atomic
from contracts.config import TrialConfig, static_key
from contracts.shapes import FAMILIES, batch_flops, layer_dims, train_batches

SCHEMA = "pcsweep-calibration"
VERSION = 1
FOLDER = ".calibration"  # under the run root
CACHE_LOAD_S = 0.1  # reading one program from the persistent compilation cache, beyond its trace and lowering
MIN_TRIAL_S = 0.05  # floor per trial: dispatch, metric transfers and result writing of even the tiniest trial


class CalibrationError(ValueError):
    """A calibration file that cannot be used: one line naming the file and what is wrong."""


@dataclass(frozen=True)
class GroupCost:
    """One program (shape x group size) as measured."""

    n: int  # trials in the program (the padded group size)
    compile_s: float  # trace + lowering + XLA compile, no persistent cache
    trial_epoch_s: float  # steady-state seconds per trial per full epoch (all train batches + the test pass)
    epochs_timed: int  # steady epochs the figure is the mean of
    peak_bytes: int | None = None  # device peak while the program ran (None where the device reports none)
    est_bytes: int | None = None  # pc.memory's estimate for the whole program, for comparison
    trace_s: float | None = None  # of compile_s, the trace + lowering (paid again on a persistent-cache hit)


@dataclass(frozen=True)
class ShapeCost:
    """One static shape and its programs at several group sizes."""

    dataset: str
    kind: str  # pc | bp
    width: int
    T: int
    batch_size: int
    constant_width: bool
    dims: tuple[int, ...]
    n_batches: int  # train batches of a full epoch
    timed_batches: int  # batches of the epochs actually timed (a prefix of the data; scaled to n_batches)
    groups: tuple[GroupCost, ...]

    def group(self, n: int) -> GroupCost:
        """The measured program whose group size is nearest to `n` (in log; ties to the larger)."""
        return min(self.groups, key=lambda g: (abs(math.log(g.n / max(n, 1))), -g.n))


@dataclass(frozen=True)
class Calibration:
    """A whole calibration file."""

    platform: str  # cpu | cuda
    device_kind: str  # jax's device_kind, e.g. "cpu" or "NVIDIA H200"
    device_name: str  # CPU model or GPU name, for people
    date: str  # UTC, ISO 8601
    versions: dict[str, str]
    shapes: tuple[ShapeCost, ...]
    data_load_s: dict[str, float] = field(default_factory=dict)  # per dataset: loading it for a group
    host: dict[str, Any] = field(default_factory=dict)  # threads, load average while measuring, quick flag
    task_start_s: float | None = None  # a task's fixed start: fresh python, task side, jax and pcx imports
    path: str = ""  # where it was read from (not stored)


@dataclass(frozen=True)
class Estimate:
    """Seconds for one trial and the compile seconds of its program, from a calibration."""

    trial_s: float
    compile_s: float
    shape: str  # the measured shape used, e.g. "two_moons pc w128 T8 B32 n32"
    cached_compile_s: float | None = None  # the program again from the persistent cache (None: compile_s)

    @property
    def repeat_compile_s(self) -> float:
        """Seconds a group of an already compiled program pays (trace + lowering + cache load)."""
        return self.compile_s if self.cached_compile_s is None else self.cached_compile_s


def file_name(device_kind: str) -> str:
    """`<device kind>.json` with anything but letters, digits, '.', '-' and '_' turned into '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", device_kind.strip()) + ".json"


def to_dict(cal: Calibration) -> dict[str, Any]:
    """The JSON object of a calibration (without its `path`)."""
    out = asdict(cal)
    out.pop("path")
    return {"schema": SCHEMA, "version": VERSION, **out}


def write_calibration(folder: Path, cal: Calibration) -> Path:
    """Write `cal` to `folder/<device kind>.json` atomically; returns the path."""
    return write_json_atomic(Path(folder) / file_name(cal.device_kind), to_dict(cal))


def _need(obj: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    """`obj[key]` when it has one of `types` (a bool is not a number here) and is finite, else CalibrationError."""
    value = obj.get(key) if isinstance(obj, Mapping) else None
    wanted = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
        raise CalibrationError(f"{where}.{key}: got {value!r}; expected {' or '.join(t.__name__ for t in wanted)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalibrationError(f"{where}.{key}: got {value!r}; expected a finite number")
    return value


def _group(obj: Any, where: str) -> GroupCost:
    num = (int, float)
    g = GroupCost(
        n=_need(obj, "n", int, where), compile_s=float(_need(obj, "compile_s", num, where)),
        trial_epoch_s=float(_need(obj, "trial_epoch_s", num, where)),
        epochs_timed=_need(obj, "epochs_timed", int, where),
        peak_bytes=obj.get("peak_bytes"), est_bytes=obj.get("est_bytes"),
    )
    if g.n < 1 or g.compile_s < 0 or g.trial_epoch_s <= 0 or g.epochs_timed < 1:
        raise CalibrationError(f"{where}: got {obj!r}; expected n >= 1, compile_s >= 0, trial_epoch_s > 0")
    for key in ("peak_bytes", "est_bytes"):
        if obj.get(key) is not None:
            _need(obj, key, int, where)
    if obj.get("trace_s") is not None:
        trace = float(_need(obj, "trace_s", (int, float), where))
        if not 0 <= trace <= g.compile_s:
            raise CalibrationError(f"{where}.trace_s: got {trace!r}; expected 0 <= trace_s <= compile_s")
        g = dataclasses.replace(g, trace_s=trace)
    return g


def _shape(obj: Any, where: str) -> ShapeCost:
    dataset = _need(obj, "dataset", str, where)
    if dataset not in FAMILIES:
        raise CalibrationError(f"{where}.dataset: got {dataset!r}; expected one of {', '.join(FAMILIES)}")
    groups = _need(obj, "groups", list, where)
    if not groups:
        raise CalibrationError(f"{where}.groups: empty")
    dims = _need(obj, "dims", list, where)
    if len(dims) < 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise CalibrationError(f"{where}.dims: got {dims!r}; expected positive integers")
    shape = ShapeCost(
        dataset=dataset, kind=_need(obj, "kind", str, where), width=_need(obj, "width", int, where),
        T=_need(obj, "T", int, where), batch_size=_need(obj, "batch_size", int, where),
        constant_width=_need(obj, "constant_width", bool, where), dims=tuple(dims),
        n_batches=_need(obj, "n_batches", int, where), timed_batches=_need(obj, "timed_batches", int, where),
        groups=tuple(_group(g, f"{where}.groups[{i}]") for i, g in enumerate(groups)),
    )
    if min(shape.width, shape.T, shape.batch_size, shape.n_batches, shape.timed_batches) < 1:
        raise CalibrationError(f"{where}: width, T, batch_size, n_batches and timed_batches must be >= 1")
    return shape


def calibration_from_dict(obj: Any, where: str = "calibration") -> Calibration:
    """Validate a parsed calibration object; CalibrationError names the first bad key."""
    if not isinstance(obj, Mapping) or obj.get("schema") != SCHEMA:
        raise CalibrationError(f"not a {SCHEMA} file (schema: "
                               f"{obj.get('schema') if isinstance(obj, Mapping) else type(obj).__name__!r})")
    if obj.get("version") != VERSION:
        raise CalibrationError(f"version {obj.get('version')!r}; this pcsweep reads version {VERSION} "
                               "(run python -m pc.calibrate again)")
    shapes = _need(obj, "shapes", list, where)
    platform = _need(obj, "platform", str, where)
    if platform not in ("cpu", "cuda"):
        raise CalibrationError(f"{where}.platform: got {platform!r}; expected cpu or cuda")
    loads = obj.get("data_load_s", {})
    if not isinstance(loads, Mapping) or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                                 and v >= 0 for v in loads.values()):
        raise CalibrationError(f"{where}.data_load_s: got {loads!r}; expected seconds per dataset")
    start = obj.get("task_start_s")
    if start is not None:
        start = float(_need(obj, "task_start_s", (int, float), where))
        if start < 0:
            raise CalibrationError(f"{where}.task_start_s: got {start!r}; expected seconds >= 0")
    return Calibration(
        task_start_s=start, platform=platform, device_kind=_need(obj, "device_kind", str, where),
        device_name=_need(obj, "device_name", str, where), date=_need(obj, "date", str, where),
        versions=dict(_need(obj, "versions", dict, where)),
        shapes=tuple(_shape(s, f"{where}.shapes[{i}]") for i, s in enumerate(shapes)),
        data_load_s={str(k): float(v) for k, v in loads.items()}, host=dict(obj.get("host") or {}),
    )


def read_calibration(path: Path) -> Calibration:
    """Read and validate one calibration file.

    Raises:
        CalibrationError: one line naming the file: unreadable, not JSON, foreign or damaged.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CalibrationError(f"{path}: cannot read a calibration ({type(e).__name__}: {e}); "
                               "delete it or run python -m pc.calibrate again") from None
    try:
        cal = calibration_from_dict(obj)
    except CalibrationError as e:
        raise CalibrationError(f"{path}: {e}; delete it or run python -m pc.calibrate again") from None
    if not cal.shapes:
        raise CalibrationError(f"{path}: holds no measured shapes; run python -m pc.calibrate again")
    return dataclasses.replace(cal, path=str(path))


def find_calibration(root: Path, platform: str) -> Calibration | None:
    """The newest valid calibration for `platform` in `root/.calibration/`, or None when there is none.

    Raises CalibrationError (naming the file) for a damaged file there: a user who calibrated should hear
    that it is not used, not get the FLOP model silently.
    """
    folder = Path(root) / FOLDER
    if not folder.is_dir():
        return None
    found = [read_calibration(p) for p in sorted(folder.glob("*.json"))]
    found = [c for c in found if c.platform == platform]
    return max(found, key=lambda c: (c.date, c.path)) if found else None


# --- the estimate ------------------------------------------------------------------------------------------

def _at_width(shape: ShapeCost, width: int) -> tuple[int, ...]:
    """The measured shape's dims with another hidden width (in = h = out for a constant-width shape)."""
    if shape.constant_width:
        return (width,) * len(shape.dims)
    return (shape.dims[0], *[width] * (len(shape.dims) - 2), shape.dims[-1])


def _family(cal: Calibration, cfg: TrialConfig) -> list[ShapeCost]:
    """Rule 1: the comparable shapes closest to the trial, widths ascending ([] when none is comparable)."""
    fam = FAMILIES[cfg.data.dataset]
    near = [s for s in cal.shapes if FAMILIES[s.dataset] == fam and s.constant_width == cfg.model.constant_width]
    if not near:
        return []
    t = cfg.train

    def rank(s: ShapeCost) -> tuple:
        return (s.kind != cfg.model.kind, s.T != t.T, s.batch_size != cfg.data.batch_size,
                s.dataset != cfg.data.dataset, abs(s.T - t.T), abs(math.log(s.batch_size / cfg.data.batch_size)))

    best = rank(min(near, key=rank))
    return sorted((s for s in near if rank(s) == best), key=lambda s: s.width)


def _per_batch(family: Sequence[ShapeCost], width: int, group: int) -> tuple[float, ShapeCost]:
    """Rule 2 inside one family: per trial-batch seconds at `width`, and the nearest measured shape."""
    costs, run = [], 0.0
    for s in family:  # non-decreasing in width
        run = max(run, s.group(group).trial_epoch_s / s.n_batches)
        costs.append(run)
    nearest = min(family, key=lambda s: (abs(math.log(s.width / width)), s.width))
    if width <= family[0].width:
        return costs[0], family[0]
    if width >= family[-1].width:
        top = family[-1]
        ratio = batch_flops(_at_width(top, width), top.kind, top.T, top.batch_size) / batch_flops(
            top.dims, top.kind, top.T, top.batch_size)
        return costs[-1] * ratio, top
    i = next(k for k, s in enumerate(family) if s.width >= width)
    lo, hi = family[i - 1], family[i]
    f = math.log(width / lo.width) / math.log(hi.width / lo.width)
    return math.exp((1 - f) * math.log(costs[i - 1]) + f * math.log(costs[i])), nearest


def estimate(cal: Calibration, cfg: TrialConfig, group: int = 1) -> Estimate | None:
    """Seconds of one trial of `cfg` run in a group of `group` trials (module rules 1-4); None when the
    calibration has no comparable shape (the planner then uses its FLOP model for this trial)."""
    family = _family(cal, cfg)
    if not family:
        return None
    per_batch, shape = _per_batch(family, cfg.model.width, group)
    dims = layer_dims(cfg)
    per_batch *= batch_flops(dims, cfg.model.kind, cfg.train.T, cfg.data.batch_size) / batch_flops(
        _at_width(shape, cfg.model.width), shape.kind, shape.T, shape.batch_size)
    seconds = max(MIN_TRIAL_S, per_batch * train_batches(cfg) * cfg.train.epochs)
    program = shape.group(group)
    label = f"{shape.dataset} {shape.kind} w{shape.width} T{shape.T} B{shape.batch_size} n{program.n}"
    cached = None if program.trace_s is None else min(program.compile_s, program.trace_s + CACHE_LOAD_S)
    return Estimate(seconds, program.compile_s, label, cached)


def program_key(cfg: TrialConfig) -> str:
    """What the compiled program of a static group depends on: its static key with the dataset replaced by its
    family and without the data seed and noise. Groups with equal keys (two moons and two circles of one
    shape) compile to the same program, so all but the first load it from the persistent compilation cache."""
    mapping = json.loads(static_key(cfg))
    data = mapping.get("data", {})
    data["dataset"] = FAMILIES.get(data.get("dataset"), data.get("dataset"))
    data.pop("seed", None)
    data.pop("noise", None)
    return json.dumps(mapping, sort_keys=True, separators=(",", ":"))


__all__ = [
    "CACHE_LOAD_S", "FOLDER", "MIN_TRIAL_S", "SCHEMA", "VERSION", "Calibration", "CalibrationError", "Estimate",
    "GroupCost", "ShapeCost", "calibration_from_dict", "estimate", "file_name",
    "find_calibration", "program_key", "read_calibration", "to_dict", "write_calibration",
]
