"""The summary table: one row per trial, read from a trial group with as few HDF5 calls as we can.

Each row holds the trial's status, wall time, final and best test accuracy, its flattened config,
the derived `optim` / `condition` labels, and per-layer values at the last batch of the last
epoch: energies at t = T-1 (as the paper did) and t = T, energy variance at t = T-1, weight norms,
gradient norms and gradient variances, plus adjacent energy ratios. `docs/collect.md` lists every
column. pandas is imported only where a DataFrame is built or read.

Speed matters (tens of thousands of trials; on a small VM every HDF5 object open costs ~50 us), so
`read_row` uses h5py's low-level API and reads just the last batch of each array: for the
contiguous float32 datasets `pc.shard` writes, that block is read straight from the file with one
`pread` at the dataset's byte offset; any other layout falls back to an HDF5 read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import h5py
import numpy as np
from h5py import h5a, h5d, h5g, h5t

from pc.config import valid_keys
from pc.shard import STATUSES, ShardError

if TYPE_CHECKING:
    import pandas as pd

RATIO_EPS = 1e-32  # energy_{k-1} / (energy_k + 1e-32), as the paper's notebooks
_F4 = np.dtype("<f4")
_STR = h5py.string_dtype()
PER_LAYER = ("energy", "energy_var", "w_norm", "w_grad_norm", "w_grad_var")


class Row(NamedTuple):
    """What the summary keeps of one trial (arrays are per layer, float32)."""

    trial_id: str
    status: str
    wall_s: float
    config: str  # canonical JSON
    accuracy: float  # test accuracy after the last epoch
    accuracy_best: float  # best test accuracy over epochs
    energy: np.ndarray  # [L] at t = T-1
    energy_var: np.ndarray  # [L] at t = T-1
    energy_final: np.ndarray  # [L] at t = T
    w_norm: np.ndarray  # [Lw]
    w_grad_norm: np.ndarray
    w_grad_var: np.ndarray


def _str_attr(gid: Any, name: bytes) -> str:
    attr = h5a.open(gid, name)
    kind = attr.get_type()
    if kind.get_class() != h5t.STRING:
        raise ValueError(f"attribute {name.decode()} is not a string")
    buf = np.empty((), _STR) if kind.is_variable_str() else np.empty((), attr.dtype)
    attr.read(buf)
    value = buf[()]
    return value.decode() if isinstance(value, bytes) else str(value)


def _float_attr(gid: Any, name: bytes) -> float:
    attr = h5a.open(gid, name)
    buf = np.empty((), np.float64)
    attr.read(buf)
    return float(buf)


class TrialReader:
    """Reads summary rows from one open HDF5 file holding `/trials/<id>` groups (a shard or results).

    Use as a context manager. The first trial's datasets are checked to be little-endian float32
    before the file is read with `pread` at dataset offsets; later trials of the same file are
    trusted to share the writer's dtype (their ranks and sizes are still checked).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.file = h5py.File(self.path, "r")
        try:
            self.trials = self.file["trials"].id
            self.fd = os.open(self.path, os.O_RDONLY)
        except BaseException:
            self.file.close()
            raise
        self._f32_checked = False
        self._direct = True

    def __enter__(self) -> "TrialReader":
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
        self.file.close()

    def _last_batch(self, gid: Any, name: bytes, ndim: int) -> np.ndarray:
        """`array[E-1, B-1]` (or the whole array when ndim == 1) as float32; NaN when E or B is 0."""
        d = h5d.open(gid, name)
        shape = d.shape
        if len(shape) != ndim:
            raise ValueError(f"{name.decode()} has {len(shape)} dims; expected {ndim}")
        if not self._f32_checked:
            self._direct = self._direct and d.get_type().equal(h5t.IEEE_F32LE)
        if ndim == 1:
            buf = np.empty(shape, _F4)
            d.read(h5py.h5s.ALL, h5py.h5s.ALL, buf)
            return buf
        tail = shape[2:]
        if shape[0] == 0 or shape[1] == 0:
            return np.full(tail, np.nan, _F4)
        n = math.prod(tail)
        offset = d.get_offset() if self._direct else None
        if offset is None:
            return np.asarray(h5py.Dataset(d)[shape[0] - 1, shape[1] - 1], dtype=_F4)
        raw = os.pread(self.fd, n * 4, offset + ((shape[0] - 1) * shape[1] + shape[1] - 1) * n * 4)
        if len(raw) != n * 4:
            raise ValueError(f"{name.decode()}: the file ends inside the dataset (truncated)")
        return np.frombuffer(raw, _F4).reshape(tail)

    def row(self, trial_id: str) -> Row:
        """One trial's summary values.

        Raises:
            ShardError: the group lacks an attribute or array, or one has the wrong rank.
        """
        try:
            gid = h5g.open(self.trials, trial_id.encode())
            status = _str_attr(gid, b"status")
            if status not in STATUSES:
                raise ValueError(f"status {status!r} is not one of {STATUSES}")
            acc = self._last_batch(gid, b"test_accuracy", 1)
            energy = self._last_batch(gid, b"energy", 4)  # [T+1, L]
            if energy.shape[0] < 2:
                raise ValueError(f"energy has {energy.shape[0]} inference steps; expected T+1 >= 2")
            energy_var = self._last_batch(gid, b"energy_var", 4)
            w = [self._last_batch(gid, n, 3) for n in (b"w_norm", b"w_grad_norm", b"w_grad_var")]
            self._f32_checked = True
            return Row(
                trial_id=trial_id,
                status=status,
                wall_s=_float_attr(gid, b"wall_s"),
                config=_str_attr(gid, b"config"),
                accuracy=float(acc[-1]) if acc.size else math.nan,
                accuracy_best=float(np.nanmax(acc)) if acc.size and not np.isnan(acc).all() else math.nan,
                energy=energy[-2],
                energy_var=energy_var[-2],
                energy_final=energy[-1],
                w_norm=w[0],
                w_grad_norm=w[1],
                w_grad_var=w[2],
            )
        except (KeyError, OSError, ValueError, TypeError) as e:
            raise ShardError(f"{self.path}: trial {trial_id}: {e}") from e


def read_rows(path: str | os.PathLike, trial_ids: list[str]) -> list[Row]:
    """Rows for `trial_ids` of one file (a worker-process entry point: plain arguments, picklable result).

    Raises:
        ShardError: the file or a trial in it is unreadable.
    """
    try:
        reader = TrialReader(path)
    except (OSError, ValueError, KeyError) as e:
        raise ShardError(f"{path}: not readable any more ({e})") from e
    with reader:
        return [reader.row(t) for t in trial_ids]


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"data": {"dataset": "x"}} -> {"data.dataset": "x"}."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _per_layer(rows: list[Row], field: str) -> np.ndarray:
    """[n, Lmax] float64, NaN where a trial has fewer layers."""
    width = max((len(getattr(r, field)) for r in rows), default=0)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        values = getattr(r, field)
        out[i, : len(values)] = values
    return out


def build_table(rows: Iterable[Row]) -> "pd.DataFrame":
    """One DataFrame, columns in the documented order, rows sorted by trial id (numpy, then one frame)."""
    import pandas as pd

    rows = sorted(rows, key=lambda r: r.trial_id)
    configs = [flatten(json.loads(r.config)) for r in rows]
    keys = valid_keys()
    extra = sorted({k for c in configs for k in c} - set(keys))
    cols: dict[str, Any] = {
        "trial_id": [r.trial_id for r in rows],
        "status": [r.status for r in rows],
        "wall_s": np.array([r.wall_s for r in rows], dtype=np.float64),
        "accuracy": np.array([r.accuracy for r in rows], dtype=np.float64),
        "accuracy_best": np.array([r.accuracy_best for r in rows], dtype=np.float64),
    }
    for key in keys + extra:
        cols[key] = [c.get(key) for c in configs]
    cols["optim"] = [f"{c.get('train.w_optimizer')}-{c.get('train.w_momentum')}" for c in configs]
    cols["condition"] = [f"{c.get('model.kind')}-{o}" for c, o in zip(configs, cols["optim"])]
    cols["n_layers_energy"] = np.array([len(r.energy) for r in rows], dtype=np.int64)
    layers = {f: _per_layer(rows, f) for f in (*PER_LAYER, "energy_final")}
    for f in PER_LAYER:
        for k in range(layers[f].shape[1]):
            cols[f"{f}_{k}"] = layers[f][:, k]
    energy = layers["energy"]
    for k in range(1, energy.shape[1]):
        cols[f"energy_ratio_{k - 1}/{k}"] = energy[:, k - 1] / (energy[:, k] + RATIO_EPS)
    for k in range(layers["energy_final"].shape[1]):
        cols[f"energy_final_{k}"] = layers["energy_final"][:, k]
    return pd.DataFrame(cols)


def read_table(path: str | os.PathLike) -> "pd.DataFrame":
    """Read a summary CSV back with the dtypes it was written with (trial ids stay strings)."""
    import pandas as pd

    df = pd.read_csv(path, dtype={"trial_id": str, "status": str, "optim": str, "condition": str})
    return df.sort_values("trial_id", kind="stable", ignore_index=True)


def merge_tables(old: "pd.DataFrame", new: "pd.DataFrame") -> "pd.DataFrame":
    """`old` without the trials `new` replaces, plus `new`; sorted by trial id; columns in order.

    Columns follow `build_table`'s order: a union where old and new differ (e.g. a first BP trial).
    """
    import pandas as pd

    if old.empty:
        return new
    if new.empty:
        return old
    kept = old[~old["trial_id"].isin(set(new["trial_id"]))]
    new = new.astype({c: object for c in new.columns if c in kept.columns and new[c].dtype != kept[c].dtype})
    merged = pd.concat([kept, new], ignore_index=True, sort=False)
    order = column_order(list(merged.columns))
    return merged[order].sort_values("trial_id", kind="stable").reset_index(drop=True)


def column_order(columns: list[str]) -> list[str]:
    """The documented column order for any set of summary columns."""
    fixed = ["trial_id", "status", "wall_s", "accuracy", "accuracy_best"]
    keys = valid_keys()
    config = [c for c in keys if c in columns]
    known = set(fixed) | set(keys) | {"optim", "condition", "n_layers_energy"}
    metric = [c for c in columns if c not in known]
    extra = sorted(c for c in metric if "." in c)

    def layer_key(c: str) -> tuple:
        for i, f in enumerate((*PER_LAYER, "energy_ratio", "energy_final")):
            if c.startswith(f + "_") and c[len(f) + 1:].split("/")[0].isdigit():
                return (i, int(c[len(f) + 1:].split("/")[0]))
        return (99, c)

    metric = sorted((c for c in metric if "." not in c), key=layer_key)
    return [c for c in fixed if c in columns] + config + extra + [
        c for c in ("optim", "condition", "n_layers_energy") if c in columns] + metric


def update_table(path: str | os.PathLike, new: "pd.DataFrame") -> None:
    """Add `new` rows to the summary at `path`, atomically.

    The cheap path (new trials only, no new columns) copies the old file and appends; a row
    replacing an existing trial, or a new column, rewrites the whole table. Either way
    `read_table` returns rows sorted by trial id, so the result equals a full rebuild.
    """
    import shutil

    if new.empty:
        return
    path = os.fspath(path)
    with open(path) as f:
        header = f.readline().rstrip("\n").split(",")
    if set(new.columns) <= set(header) and not set(new["trial_id"]) & read_ids(path):
        tmp = f"{path}.tmp.{os.getpid()}"
        try:
            shutil.copyfile(path, tmp)
            new.reindex(columns=header).to_csv(tmp, mode="a", header=False, index=False)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    write_table(merge_tables(read_table(path), new), path)


def read_ids(path: str | os.PathLike) -> set[str]:
    """The trial ids of a summary CSV (first column), without parsing the rest."""
    with open(path) as f:
        next(f)
        return {line.split(",", 1)[0] for line in f}


def write_table(df: "pd.DataFrame", path: str | os.PathLike) -> None:
    """Write the summary CSV atomically (tmp + os.replace); floats round-trip exactly."""
    path = os.fspath(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
