"""Checking and reading the blocks of an open shard or results file (docs/shard-format.md).

`check_blocks` validates every block's columns, ranks, lengths, statuses and ids without reading
arrays; `read_block` reads a checked block (all rows or some) into a `Block`. collect's results.h5
uses the same blocks, with extra per-row columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5s

from contracts.shard.layout import (
    ARRAY_NAMES,
    ARRAY_NDIM,
    BLOCKS,
    COLUMNS,
    CONFIG_DTYPE,
    STATUSES,
    Block,
    BlockInfo,
    ShapeKey,
    ShardError,
)


def _block_names(blocks: h5py.Group, where: str) -> list[str]:
    names = list(blocks.keys())
    for name in names:
        if not name.isdigit():
            raise ShardError(f"{where}: /{BLOCKS}/{name}: block names are decimal integers")
    return sorted(names, key=int)


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values.tolist()]


def _open_dataset(gid: Any, name: str) -> Any:
    """A block's dataset through h5py's low-level API (a high-level open costs several times more)."""
    try:
        return h5d.open(gid, name.encode())
    except (KeyError, ValueError, TypeError, RuntimeError, OSError):
        return None


def _read_all(d: Any, dtype: Any) -> np.ndarray:
    buf = np.empty(d.shape, dtype=dtype)
    if buf.size:
        d.read(h5s.ALL, h5s.ALL, buf)
    return buf


def _dtype_for(name: str, d: Any) -> Any:
    """The memory dtype a column or array is read into."""
    if name in ARRAY_NDIM:
        return np.float32
    if name == "wall_s":
        return np.float64
    kind = d.dtype
    return CONFIG_DTYPE if kind.kind == "O" else kind


def _check_block(g: Any, here: str, extra_columns: Sequence[str], allow_deleted: bool,
                 seen: set[str]) -> tuple[list[str], ShapeKey, dict[str, Any]]:
    """Validate one block (see `check_blocks`); returns its trial ids, shape key and open datasets."""
    if not isinstance(g, h5py.Group):
        raise ShardError(f"{here}: not a group")
    wanted = (*COLUMNS, *extra_columns, *ARRAY_NAMES)
    ds = {c: _open_dataset(g.id, c) for c in wanted}
    missing = [c for c in wanted if ds[c] is None]
    if missing:
        raise ShardError(f"{here}: no dataset {', '.join(missing)} (malformed block)")
    shapes: dict[str, tuple[int, ...]] = {}
    for c, d in ds.items():
        shape, dtype = d.shape, d.dtype
        want = 1 if c not in ARRAY_NDIM else ARRAY_NDIM[c] + 1
        if shape is None or len(shape) != want:
            raise ShardError(f"{here}: {c} has {len(shape or ())} dims; expected {want} (malformed block)")
        if c in ARRAY_NDIM or c == "wall_s":
            if dtype.kind != "f":
                raise ShardError(f"{here}: {c} has dtype {dtype}; expected floats")
        elif (dtype.kind not in ("S", "O") or (c == "trial_id" and dtype.kind != "S")
              or (dtype.kind == "O" and h5py.check_string_dtype(dtype) is None)):  # an object column of non-text
            raise ShardError(f"{here}: {c} has dtype {dtype}; expected "
                             f"{'fixed-length ASCII' if c == 'trial_id' else 'strings'}")
        shapes[c] = shape
    n = shapes["trial_id"][0]
    for c, shape in shapes.items():
        if shape[0] != n:
            raise ShardError(f"{here}: {c} has {shape[0]} rows but trial_id has {n} (length mismatch: malformed block)")
    e4, w3 = shapes["energy"][1:], shapes["w_norm"][1:]
    if shapes["energy_var"][1:] != e4 or any(shapes[m][1:] != w3 for m in ("w_grad_norm", "w_grad_var")):
        raise ShardError(f"{here}: energy/energy_var or w_norm/w_grad_norm/w_grad_var differ in shape")
    if not (shapes["test_accuracy"][1] == e4[0] == w3[0] and e4[1] == w3[1]):
        raise ShardError(f"{here}: epochs or batches differ between test_accuracy {shapes['test_accuracy']}, "
                         f"energy {shapes['energy']} and w_norm {shapes['w_norm']}")
    try:
        ids = _decode(_read_all(ds["trial_id"], ds["trial_id"].dtype))
        status = _decode(_read_all(ds["status"], _dtype_for("status", ds["status"])))
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as e:
        raise ShardError(f"{here}: trial_id or status unreadable ({e})") from e
    for tid, st in zip(ids, status):
        if not tid:
            if allow_deleted:
                continue
            raise ShardError(f"{here}: an empty trial_id (malformed block)")
        if st not in STATUSES:
            raise ShardError(f"{here}: trial {tid}: status {st!r} is not one of {STATUSES}")
        if tid in seen:
            raise ShardError(f"{here}: trial {tid} appears more than once in the file")
        seen.add(tid)
    return ids, tuple(shapes[a][1:] for a in ARRAY_NAMES), ds


def checked_blocks(f: h5py.File, where: str, extra_columns: Sequence[str] = (), *, allow_deleted: bool = False
                   ) -> list[tuple[BlockInfo, dict[str, Any]]]:
    """`check_blocks`, keeping each block's open datasets (for `read_block`) next to its BlockInfo."""
    if BLOCKS not in f:
        raise ShardError(f"{where}: no /{BLOCKS} group")
    blocks = f[BLOCKS]
    if not isinstance(blocks, h5py.Group):
        raise ShardError(f"{where}: /{BLOCKS} is not a group")
    out = []
    seen: set[str] = set()
    for name in _block_names(blocks, where):
        ids, key, ds = _check_block(blocks[name], f"{where}: block {name}", extra_columns, allow_deleted, seen)
        out.append((BlockInfo(name, tuple(ids), key), ds))
    return out


def check_blocks(f: h5py.File, where: str, extra_columns: Sequence[str] = (), *, allow_deleted: bool = False
                 ) -> list[BlockInfo]:
    """Validate every block of an open shard or results file without reading its arrays.

    Checks that each block has every column (COLUMNS plus `extra_columns`) and array, that all of
    them have N rows (N = len(trial_id)), the right rank and kind (strings, floats), consistent
    E, B and L between the arrays, statuses in STATUSES, and trial ids unique in the file. Reads
    only `trial_id` and `status`. With `allow_deleted` (results.h5), a row whose trial_id is empty
    is a deleted row: it is listed as "" and not checked.

    Raises:
        ShardError: naming `where`, the block and the reason.
    """
    return [info for info, _ in checked_blocks(f, where, extra_columns, allow_deleted=allow_deleted)]


def read_block(g: Any, info: BlockInfo, rows: Sequence[int] | None = None,
               extra_columns: Sequence[str] = (), *, arrays: bool = True) -> Block:
    """Read a checked block (all rows, or `rows`, increasing) into a Block. h5py errors pass through.

    `g` is the block's group, or a mapping of its datasets by name (h5py low-level DatasetIDs, as
    `Shard.checked_blocks` holds them). `arrays=False` reads only the per-row columns.
    """
    if rows is not None:
        rows = np.asarray(rows, dtype=np.intp)
        if len(rows) == len(info) and (len(rows) == 0 or (np.diff(rows) == 1).all()):
            rows = None
    n = len(info) if rows is None else len(rows)

    def read(name: str) -> np.ndarray:
        d = g[name]
        d = d.id if isinstance(d, h5py.Dataset) else d
        dtype = _dtype_for(name, d)
        if rows is None or n * 4 >= len(info):  # all or many rows: one contiguous read, then select in memory
            whole = _read_all(d, dtype)
            return whole if rows is None else whole[rows]
        if not n:
            return np.empty((0, *d.shape[1:]), dtype)
        return np.asarray(h5py.Dataset(d)[rows], dtype=dtype)

    ids = list(info.trial_ids) if rows is None else [info.trial_ids[i] for i in rows]
    configs = _decode(read("config"))
    status = _decode(read("status"))
    wall_s = read("wall_s")
    stacked = {a: read(a) for a in ARRAY_NAMES} if arrays else {}
    columns = {c: _decode(read(c)) for c in extra_columns}
    return Block(ids, configs, status, wall_s, stacked, columns)
