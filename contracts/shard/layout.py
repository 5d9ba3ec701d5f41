"""HDF5 shard format, version 2 (docs/shard-format.md, docs/design.md section 5): names, records, attributes.

Imports only h5py, numpy and the standard library, never jax.

Layout (version 2). Trials whose six arrays have the same shapes are stored together in one block,
so a shard holds O(blocks) HDF5 objects instead of O(trials) (every object open costs 40-120 us):

    /                       attrs: schema, schema_version = 2, grid, task_key, created, hostname,
                                   slurm_*, caller's extras (git sha, versions JSON, ...), complete
    /blocks/<k>/            k = 0, 1, ... in decimal; N >= 1 trials, one row each
        trial_id       [N]                  fixed-length ASCII (S16 for 16-hex-digit ids)
        config         [N]                  variable-length UTF-8: canonical JSON of the trial config
        status         [N]                  fixed-length ASCII (S8): ok | diverged
        wall_s         [N]                  float64
        test_accuracy  [N, E]               float32
        energy         [N, E, B, T+1, L]    float32
        energy_var     [N, E, B, T+1, L]    float32
        w_norm         [N, E, B, Lw]        float32   (w_grad_norm, w_grad_var the same)

`collect`'s results.h5 uses the same blocks (with extra per-row columns), through `contracts.shard.blocks`.
and `read_block` below.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
from h5py import h5a

SCHEMA = "pcsweep-shard"
SCHEMA_VERSION = 2
STATUSES = ("ok", "diverged")
ARRAY_NAMES = ("test_accuracy", "energy", "energy_var", "w_norm", "w_grad_norm", "w_grad_var")
ARRAY_NDIM = {"test_accuracy": 1, "energy": 4, "energy_var": 4, "w_norm": 3, "w_grad_norm": 3, "w_grad_var": 3}
BLOCKS = "blocks"  # the group holding the blocks
COLUMNS = ("trial_id", "config", "status", "wall_s")  # per-row columns of every block
STATUS_DTYPE = np.dtype("S8")  # "diverged" is 8 characters
CONFIG_DTYPE = h5py.string_dtype("utf-8")
MAX_TRIAL_ID = 64  # longest trial id a shard or results file takes (real ids are 16 hex digits)


class ShardError(ValueError):
    """A shard that is not a complete, valid result (names the file and the reason)."""


class ShardUnreadable(ShardError):
    """A shard this user may not read (permission): evidence of nothing, so it is left where it is, not set aside
    as corrupt."""


def check_shard_file(path: str | os.PathLike) -> os.stat_result:
    """Before opening a shard: it must be a regular file (a FIFO would block the open forever) that this user may
    read. Returns its stat.

    Raises:
        FileNotFoundError: it is gone.
        ShardUnreadable: permission denied.
        ShardError: a FIFO, device, socket or folder.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ShardError(f"{path}: not a regular file (a FIFO, device, socket or folder); move it out of shards/")
    if not os.access(path, os.R_OK):
        raise ShardUnreadable(f"{path}: cannot be read by this user (permission denied; owner uid {st.st_uid}, "
                              f"mode {stat.S_IMODE(st.st_mode):o}): left in place; make it readable "
                              f"(chmod a+r) and collect again")
    return st


@dataclass
class TrialResult:
    """One trial's outcome as stored in a shard."""

    trial_id: str
    config: Mapping[str, Any]  # the full trial config mapping (docs/design.md section 2)
    status: str  # ok | diverged
    wall_s: float
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # ARRAY_NAMES -> array

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: got {self.status!r}; expected one of {STATUSES}")
        missing = [n for n in ARRAY_NAMES if n not in self.arrays]
        if missing:
            raise ValueError(f"trial {self.trial_id}: missing arrays {missing}")
        for name in ARRAY_NAMES:
            if np.ndim(self.arrays[name]) != ARRAY_NDIM[name]:
                raise ValueError(
                    f"trial {self.trial_id}: {name} has {np.ndim(self.arrays[name])} dims; "
                    f"expected {ARRAY_NDIM[name]}"
                )


ShapeKey = tuple[tuple[int, ...], ...]  # the per-trial shape of each of ARRAY_NAMES, in that order


@dataclass
class Block:
    """Trials with identical array shapes, stacked: row i of every field is one trial.

    `arrays[name]` has a leading trial axis (`energy`: [N, E, B, T+1, L]); `configs` are canonical
    JSON strings (parse with `json.loads`, or use `trial(i)`); `columns` holds extra per-row string
    columns of the file (results.h5 provenance; empty for a shard).
    """

    trial_ids: list[str]
    configs: list[str]
    status: list[str]
    wall_s: np.ndarray  # [N] float64
    arrays: dict[str, np.ndarray]
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.trial_ids)

    @property
    def shape_key(self) -> ShapeKey:
        return tuple(tuple(self.arrays[n].shape[1:]) for n in ARRAY_NAMES)

    def trial(self, i: int) -> TrialResult:
        """Row i as a TrialResult (its arrays are copies, not views into the block)."""
        return TrialResult(self.trial_ids[i], json.loads(self.configs[i]), self.status[i], float(self.wall_s[i]),
                           {n: self.arrays[n][i].copy() for n in ARRAY_NAMES})


@dataclass(frozen=True)
class BlockInfo:
    """A block's metadata, checked by `check_blocks` without reading its arrays."""

    name: str  # the group name under /blocks, e.g. "0"
    trial_ids: tuple[str, ...]
    shape_key: ShapeKey

    def __len__(self) -> int:
        return len(self.trial_ids)


def shape_key(arrays: Mapping[str, Any]) -> ShapeKey:
    """The block a trial's arrays belong to: the shape of each of ARRAY_NAMES."""
    return tuple(tuple(np.shape(arrays[n])) for n in ARRAY_NAMES)


def trial_id_dtype(trial_ids: Iterable[str]) -> np.dtype:
    """`S<n>` wide enough for the ids (at least 16); raises ValueError for non-ASCII or too long ids."""
    width = 16
    for tid in trial_ids:
        if not isinstance(tid, str) or not tid or not tid.isascii() or len(tid) > MAX_TRIAL_ID:
            raise ValueError(f"trial id {tid!r}: expected a non-empty ASCII string of at most {MAX_TRIAL_ID} "
                             f"characters (a 16-hex-digit id from contracts.config.trial_id)")
        width = max(width, len(tid))
    return np.dtype(f"S{width}")


def group_by_shape(trials: Iterable[TrialResult]) -> list[list[TrialResult]]:
    """Trials grouped by `shape_key`, groups in order of first appearance, trials in input order.

    Raises:
        ValueError: a trial id appears twice.
    """
    groups: dict[ShapeKey, list[TrialResult]] = {}
    seen: set[str] = set()
    for trial in trials:
        if trial.trial_id in seen:
            raise ValueError(f"trial {trial.trial_id} given twice; a shard holds each trial once")
        seen.add(trial.trial_id)
        groups.setdefault(shape_key(trial.arrays), []).append(trial)
    return list(groups.values())


def decode_attr(value: Any) -> Any:
    """An HDF5 attribute value as plain Python (bytes decoded, numpy scalars unwrapped)."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attr(oid: Any, name: str) -> Any:
    """A scalar attribute, decoded, through h5py's low-level API (cheaper than `attrs.get`); None if absent."""
    key = name.encode()
    if not h5a.exists(oid, key):
        return None
    attr = h5a.open(oid, key)
    buf = np.empty(attr.shape, dtype=attr.dtype)
    attr.read(buf)
    return decode_attr(buf[()])
