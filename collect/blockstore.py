"""results.h5's block layout and `BlockStore`, which writes rows into it (docs/collect.md, docs/shard-format.md).

`results.h5` has the shard's block layout: `/blocks/<k>/` holds every trial of one array shape, one row
per trial, with the shard columns (`trial_id`, `config`, `status`, `wall_s`, the six stacked arrays)
plus four provenance columns (`PROVENANCE`), and file attrs `schema = "pcsweep-results"`,
`schema_version = 2`, `grid`, `created`. Cost is O(shards + blocks), not O(HDF5 objects per trial): the
arrays are written at known file offsets, copied from a shard with one `copy_file_range` per array per
run of rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5p, h5s, h5t

from collect.rows import Copied
from contracts.shard import (
    ARRAY_NAMES,
    BLOCKS,
    CONFIG_DTYPE,
    MAX_TRIAL_ID,
    STATUS_DTYPE,
    Block,
    ShapeKey,
    ShardError,
    check_blocks,
    trial_id_dtype,
)

RESULTS_SCHEMA = "pcsweep-results"
RESULTS_SCHEMA_VERSION = 2
PROVENANCE = ("shard", "shard_created", "hostname", "slurm_job_id")
RESULTS_TRIAL_ID = np.dtype(f"S{MAX_TRIAL_ID}")

# write_arrays(offsets, first row in the block, first row of the batch, row count): writes a batch's arrays
ArrayWriter = Callable[[Mapping[str, tuple[int, int]], int, int, int], None]


@dataclass
class Slot:
    """Rows [next, end) of block `name`, still free, for trials of one shape."""

    name: str
    next: int
    end: int
    columns: dict[str, Any]  # column name -> h5py low-level DatasetID
    offsets: dict[str, tuple[int, int]]  # array name -> (file offset, bytes per row)
    widths: dict[str, int]  # bytes of each fixed-length provenance column


def copy_range(src: int, dst: int, count: int, src_off: int, dst_off: int) -> None:
    """`count` bytes from file `src` at src_off to `dst` at dst_off, in the kernel where it can."""
    while count > 0:
        try:
            n = os.copy_file_range(src, dst, count, src_off, dst_off)
        except OSError:  # e.g. EXDEV on old kernels: copy through user space
            data = os.pread(src, min(count, 64 << 20), src_off)
            n = os.pwrite(dst, data, dst_off) if data else 0
        if n <= 0:
            raise OSError(f"copy of {count} bytes at {src_off} stopped early (the source ends: truncated?)")
        count, src_off, dst_off = count - n, src_off + n, dst_off + n


def runs_of(rows: Sequence[int]) -> list[tuple[int, int, int]]:
    """(first source row, first position, length) of each run of consecutive rows."""
    out: list[tuple[int, int, int]] = []
    for pos, r in enumerate(rows):
        if out and out[-1][0] + out[-1][2] == r:
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + 1)
        else:
            out.append((r, pos, 1))
    return out


def _write_rows(d: Any, start: int, values: np.ndarray) -> None:
    """`d[start:start + len(values)] = values` through h5py's low-level API (a fraction of the high-level cost)."""
    if not len(values):
        return
    space = d.get_space()
    space.select_hyperslab((start,) + (0,) * (values.ndim - 1), values.shape)
    d.write(h5s.create_simple(values.shape), space, np.ascontiguousarray(values))


def _columns(trial_ids: list[str], configs: list[str], status: list[str], wall_s: np.ndarray,
             provenance: Mapping[str, str] | None, columns: Mapping[str, list[str]]) -> dict[str, np.ndarray]:
    """The per-row columns of a batch of rows; `provenance` None takes the rows' own `columns`."""
    if max(map(len, trial_ids), default=0) > MAX_TRIAL_ID:
        trial_id_dtype(trial_ids)  # raises, naming the id
    n = len(trial_ids)
    cols: dict[str, np.ndarray] = {
        "trial_id": np.array(trial_ids, dtype=RESULTS_TRIAL_ID),
        "config": np.array(configs, dtype=CONFIG_DTYPE),
        "status": np.array(status, dtype=STATUS_DTYPE),
        "wall_s": np.ascontiguousarray(wall_s, dtype=np.float64),
    }
    for c in PROVENANCE:
        values = [provenance.get(c, "")] * n if provenance is not None else columns.get(c, [""] * n)
        encoded = [v.encode() for v in values]
        width = max(1, max(map(len, encoded), default=1))
        cols[c] = np.array(encoded, dtype=h5py.string_dtype("utf-8", width))
    return cols


class BlockStore:
    """An open results file in block layout: an index trial id -> (block, row), and row writes.

    Rows are written into blocks allocated with a fixed number of rows (`allocate`). The six
    arrays are contiguous little-endian float32 datasets allocated when created, so their rows are
    written at known file offsets, bypassing HDF5: copied from a shard in the kernel
    (`copy_file_range`, `add_raw`) or written from memory (`add`); HDF5 itself only writes the
    small per-row columns and the metadata. A trial written again (a newer copy) has its old row
    deleted, by emptying its `trial_id`; rows never filled stay empty, i.e. deleted, too. Readers
    skip deleted rows; a full collect writes a file without them (unless a shard turns bad midway).
    Use as a context manager (it holds a raw file descriptor of the file).
    """

    def __init__(self, f: h5py.File, where: str, *, existing: bool):
        self.f = f
        self.where = where
        self.group = f.require_group(BLOCKS)
        self.index: dict[str, tuple[str, int]] = {}
        self.free: dict[ShapeKey, list[Slot]] = {}
        self.next_name = 0
        if existing:
            for info in check_blocks(f, where, PROVENANCE, allow_deleted=True):
                for row, tid in enumerate(info.trial_ids):
                    if tid:
                        self.index[tid] = (info.name, row)
                self.next_name = max(self.next_name, int(info.name) + 1)
                if self.group[info.name]["trial_id"].dtype.itemsize < MAX_TRIAL_ID:
                    raise ShardError(f"{where}: block {info.name}: trial_id narrower than S{MAX_TRIAL_ID}")
        self.fd = os.open(f.filename, os.O_WRONLY)

    def __enter__(self) -> BlockStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __len__(self) -> int:
        return len(self.index)

    def allocate(self, key: ShapeKey, n: int, widths: Mapping[str, int] | None = None) -> None:
        """A new block of `n` rows for trials of shape `key` (filled by later `add` calls).

        `widths`: bytes of each provenance column (fixed-length UTF-8, so writing them costs
        what a number does); a row whose value does not fit goes to another block.
        """
        if n <= 0:
            return
        name = str(self.next_name)
        self.next_name += 1
        g = self.group.create_group(name)
        widths = {c: max(1, (widths or {}).get(c, 0)) for c in PROVENANCE}
        small = {"trial_id": RESULTS_TRIAL_ID, "config": CONFIG_DTYPE, "status": STATUS_DTYPE,
                 "wall_s": np.dtype(np.float64), **{c: h5py.string_dtype("utf-8", widths[c]) for c in PROVENANCE}}
        ids = {col: g.create_dataset(col, shape=(n,), dtype=dtype).id for col, dtype in small.items()}
        dcpl = h5p.create(h5p.DATASET_CREATE)
        dcpl.set_layout(h5d.CONTIGUOUS)
        dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)  # file space now, so the offset is known
        dcpl.set_fill_time(h5d.FILL_TIME_NEVER)  # every row is written (or deleted) by us
        offsets = {}
        for a, shape in zip(ARRAY_NAMES, key):
            d = h5d.create(g.id, a.encode(), h5t.IEEE_F32LE, h5s.create_simple((n, *shape)), dcpl=dcpl)
            offsets[a] = (d.get_offset(), 4 * int(np.prod(shape, dtype=np.int64)))
        self.free.setdefault(key, []).append(Slot(name, 0, n, ids, offsets, widths))

    def _place(self, trial_ids: list[str], key: ShapeKey, cols: dict[str, np.ndarray],
               write_arrays: ArrayWriter) -> None:
        """Delete these trials' old rows; write `cols`, and the arrays via `write_arrays`."""
        for tid in trial_ids:
            old = self.index.pop(tid, None)
            if old is not None:
                self.group[old[0]]["trial_id"][old[1]] = b""
        need = {c: cols[c].dtype.itemsize for c in PROVENANCE}
        n, done = len(trial_ids), 0
        while done < n:
            slots = [s for s in self.free.get(key, []) if all(s.widths[c] >= w for c, w in need.items())]
            if not slots:
                self.allocate(key, n - done, need)
                slots = [self.free[key][-1]]
            slot = slots[0]
            m = min(slot.end - slot.next, n - done)
            for c, values in cols.items():
                _write_rows(slot.columns[c], slot.next, values[done:done + m])
            write_arrays(slot.offsets, slot.next, done, m)
            for j in range(m):
                self.index[trial_ids[done + j]] = (slot.name, slot.next + j)
            slot.next += m
            done += m
            if slot.next == slot.end:
                self.free[key].remove(slot)

    def _pwrite(self, data: memoryview, at: int) -> None:
        pos = 0
        while pos < len(data):
            pos += os.pwrite(self.fd, data[pos:], at + pos)

    def add(self, block: Block, provenance: Mapping[str, str] | None = None) -> None:
        """Write a block's rows (arrays from memory) into the space allocated for its shape.

        `provenance`: the same four values for every row; None takes the block's own columns.
        A trial already in the file has its old row deleted.
        """
        if not len(block):
            return
        cols = _columns(block.trial_ids, block.configs, block.status, block.wall_s, provenance, block.columns)
        arrays = {a: np.ascontiguousarray(block.arrays[a], dtype="<f4") for a in ARRAY_NAMES}

        def write_arrays(offsets: Mapping[str, tuple[int, int]], at: int, done: int, m: int) -> None:
            for a, (off, row_bytes) in offsets.items():
                self._pwrite(memoryview(arrays[a][done:done + m]).cast("B"), off + at * row_bytes)

        self._place(block.trial_ids, block.shape_key, cols, write_arrays)

    def add_raw(self, copied: Copied, key: ShapeKey, provenance: Mapping[str, str], src_fd: int,
                src: Mapping[str, int], rows: Sequence[int]) -> None:
        """Write rows whose arrays are copied from a shard file: `src[name]` = offset of the array
        (contiguous float32 LE, shape [N, *key[i]]), `rows` = source rows, increasing."""
        cols = _columns(copied.trial_ids, copied.configs, copied.status, copied.wall_s, provenance, {})
        runs = runs_of(rows)

        def write_arrays(offsets: Mapping[str, tuple[int, int]], at: int, done: int, m: int) -> None:
            for a, (off, row_bytes) in offsets.items():
                for first, pos, length in runs:
                    lo, hi = max(pos, done), min(pos + length, done + m)
                    if lo < hi:
                        copy_range(src_fd, self.fd, (hi - lo) * row_bytes, src[a] + (first + lo - pos) * row_bytes,
                                   off + (at + lo - done) * row_bytes)

        self._place(copied.trial_ids, key, cols, write_arrays)

    def stamp(self, grid: str, created: str) -> None:
        """The file attributes that make it a results file (written last)."""
        attrs = self.f.attrs
        attrs["schema"] = RESULTS_SCHEMA
        attrs["schema_version"] = RESULTS_SCHEMA_VERSION
        attrs["grid"] = grid
        attrs["created"] = created
