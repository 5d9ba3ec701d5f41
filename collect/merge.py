"""Shards -> results.h5: find, validate and set aside shards; copy trial rows; remember what was merged.

`results.h5` has the shard's block layout (docs/shard-format.md): `/blocks/<k>/` holds every trial
of one array shape, one row per trial, with the shard columns (`trial_id`, `config`, `status`,
`wall_s`, the six stacked arrays) plus four provenance columns (`shard`, `shard_created`,
`hostname`, `slurm_job_id`), and file attrs `schema = "pcsweep-results"`, `schema_version = 2`,
`grid`, `created`. A full collect writes `results.h5.tmp.<pid>` (one block per shape) and
`os.replace`s it; an incremental collect adds blocks to results.h5 in place, behind a marker file
(see `ResultsWriter`), deleting a replaced trial's old row by emptying its `trial_id`.

Cost is O(shards + blocks), not O(HDF5 objects per trial): a shard is probed with a handful of
low-level HDF5 calls, then checked and its rows copied, the six arrays file to file with one
`copy_file_range` per array per run of rows (`BlockStore`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5f, h5g, h5p, h5s, h5t

from contracts.paths import RunPaths
from contracts.shard import (
    ARRAY_NAMES,
    BLOCKS,
    CONFIG_DTYPE,
    MAX_TRIAL_ID,
    SCHEMA,
    SCHEMA_VERSION,
    STATUS_DTYPE,
    Block,
    BlockInfo,
    ShapeKey,
    ShardError,
    TrialResult,
    check_blocks,
    group_by_shape,
    open_shard,
    read_attr,
    read_block,
    trial_id_dtype,
)

RESULTS_SCHEMA = "pcsweep-results"
RESULTS_SCHEMA_VERSION = 2
STATE_VERSION = 2  # 1 described a version-1 (group per trial) results.h5: such a state forces a rebuild
PROVENANCE = ("shard", "shard_created", "hostname", "slurm_job_id")
RESULTS_TRIAL_ID = np.dtype(f"S{MAX_TRIAL_ID}")


@dataclass(frozen=True)
class ShardInfo:
    """A validated shard: where it is, when it was made, which trials it holds (by block)."""

    name: str
    path: Path
    size: int
    mtime_ns: int
    created: str
    hostname: str
    slurm_job_id: str
    trial_ids: tuple[str, ...]
    blocks: tuple[BlockInfo, ...] = ()

    @property
    def key(self) -> tuple[str, int, str]:
        """Newest wins: by `created`, then file mtime, then name (so ties are deterministic)."""
        return (self.created, self.mtime_ns, self.name)


def list_shards(paths: RunPaths) -> dict[str, tuple[int, int]]:
    """name -> (size, mtime_ns) of every `shards/*.h5`; in-flight `*.tmp.*` writes and `bad/` are skipped."""
    out: dict[str, tuple[int, int]] = {}
    if not paths.shards_dir.is_dir():
        return out
    with os.scandir(paths.shards_dir) as entries:
        for e in entries:
            if e.name.endswith(".h5") and ".tmp." not in e.name and e.is_file():
                st = e.stat()
                out[e.name] = (st.st_size, st.st_mtime_ns)
    return out


class ShardChanged(ShardError):
    """A shard was replaced between its probe and its read: skip it now, read it next collect."""


def _shape_key(energy: tuple[int, ...], w: tuple[int, ...]) -> ShapeKey:
    """The six per-trial shapes from energy [E, B, T+1, L] and w_norm [E, B, Lw]."""
    return ((energy[0],), energy, energy, w, w, w)


def probe(path: Path) -> ShardInfo:
    """Check a shard's schema, version and `complete` flag and list its trials by block.

    Cheap (h5py's low-level API: one file open, six attributes, per block `trial_id` plus two
    dataset shapes): the full check of a block's datasets (`contracts.shard.open_shard`) runs when its
    rows are copied.

    Raises:
        ShardError: not HDF5, truncated, partial (no `complete`), wrong schema or version, no
            blocks, or energies with fewer than 2 inference steps (no t = T-1).
    """
    st = path.stat()
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDONLY)
    except (OSError, ValueError, RuntimeError) as e:
        raise ShardError(f"{path}: not a readable HDF5 file (truncated or corrupt): {e}") from e
    try:
        schema, version, complete = (read_attr(fid, k) for k in ("schema", "schema_version", "complete"))
        if schema != SCHEMA:
            raise ShardError(f"{path}: schema is {schema!r}; expected {SCHEMA!r}")
        if version != SCHEMA_VERSION:
            raise ShardError(f"{path}: schema_version is {version!r}; this pcsweep reads version {SCHEMA_VERSION} "
                             f"only (a version-1 shard has one group per trial: rerun its task to rewrite it)")
        if complete is not True:
            raise ShardError(f"{path}: no 'complete' flag: the write did not finish (partial shard)")
        created, hostname, job = (str(read_attr(fid, k) or "") for k in ("created", "hostname", "slurm_job_id"))
        try:
            blocks_id = h5g.open(fid, BLOCKS.encode())
        except (KeyError, ValueError, TypeError) as e:
            raise ShardError(f"{path}: no /{BLOCKS} group") from e
        blocks = []
        for name in sorted((n.decode() for n in blocks_id), key=lambda n: (len(n), n)):
            try:
                gid = h5g.open(blocks_id, name.encode())
                tid = h5d.open(gid, b"trial_id")
                buf = np.empty(tid.shape, dtype=tid.dtype)
                if buf.size:
                    tid.read(h5s.ALL, h5s.ALL, buf)
                ids = tuple(t.decode() for t in buf.tolist())
                key = _shape_key(h5d.open(gid, b"energy").shape[1:], h5d.open(gid, b"w_norm").shape[1:])
            except (KeyError, ValueError, TypeError, AttributeError, IndexError, UnicodeDecodeError) as e:
                raise ShardError(f"{path}: block {name}: malformed ({type(e).__name__}: {e})") from e
            if len(key[1]) != 4 or len(key[3]) != 3:
                raise ShardError(f"{path}: block {name}: energy {key[1]} or w_norm {key[3]}: wrong rank")
            if key[1][2] < 2:
                raise ShardError(f"{path}: block {name}: energy has {key[1][2]} inference steps; expected T+1 >= 2")
            blocks.append(BlockInfo(name, ids, key))
    except ShardError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ShardError(f"{path}: unreadable HDF5 metadata (truncated or corrupt): {e}") from e
    finally:
        fid.close()
    return ShardInfo(name=path.name, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, created=created,
                     hostname=hostname, slurm_job_id=job, trial_ids=tuple(t for b in blocks for t in b.trial_ids),
                     blocks=tuple(blocks))


def _open_probed(info: ShardInfo):
    """`open_shard` on a probed shard, checking that it is the file that was probed.

    Raises:
        ShardChanged: the file was replaced since it was probed.
        ShardError: the shard is malformed or unreadable.
    """
    try:
        st = info.path.stat()
    except FileNotFoundError as e:
        raise ShardChanged(f"{info.path}: gone since it was probed") from e
    if (st.st_size, st.st_mtime_ns) != (info.size, info.mtime_ns):
        raise ShardChanged(f"{info.path}: changed since it was probed")
    shard = open_shard(info.path)
    if tuple((b.name, b.trial_ids, b.shape_key) for b in shard.block_infos) != tuple(
            (b.name, b.trial_ids, b.shape_key) for b in info.blocks):
        shard.close()
        raise ShardChanged(f"{info.path}: changed since it was probed")
    return shard


def _pread_rows(fd: int, offset: int, row_bytes: int, rows: Sequence[int], part: int, nbytes: int,
                shape: tuple[int, ...]) -> np.ndarray:
    """Bytes [part, part + nbytes) of each row of a raw float32 array, as [len(rows), *shape]."""
    out = bytearray()
    for r in rows:
        chunk = os.pread(fd, nbytes, offset + r * row_bytes + part)
        if len(chunk) != nbytes:
            raise OSError("the file ends inside a dataset (truncated)")
        out += chunk
    return np.frombuffer(bytes(out), dtype="<f4").reshape((len(rows), *shape)).astype(np.float32)


def _read_rows(path: Path, fd: int, size: int, b: BlockInfo, datasets: Mapping[str, Any], rows: list[int]):
    """What `copy_from` needs of one block: (info, rows, Copied, raw sources or None, Block or None)."""
    try:
        src = {a: raw_offset(datasets[a]) for a in ARRAY_NAMES}
        shapes = dict(zip(ARRAY_NAMES, b.shape_key))
        row_bytes = {a: 4 * int(np.prod(shapes[a], dtype=np.int64)) for a in ARRAY_NAMES}
        raw = all(o is not None and o + len(b) * row_bytes[a] <= size for a, o in src.items())
        if not raw:
            block = read_block(datasets, b, rows)
            return b, rows, Copied.of(block), None, block
        small = read_block(datasets, b, rows, arrays=False)
        E, B = shapes["energy"][0], shapes["energy"][1]
        last = {}
        for a in ARRAY_NAMES[1:]:
            tail = shapes[a][2:]
            tail_bytes = 4 * int(np.prod(tail, dtype=np.int64))
            if E == 0 or B == 0:
                last[a] = np.full((len(rows), *tail), np.nan, np.float32)
            elif row_bytes[a] <= 16 * tail_bytes:  # small rows (w_*): one read of the rows' span
                span = _pread_rows(fd, src[a], row_bytes[a], [0], rows[0] * row_bytes[a],
                                   (rows[-1] - rows[0] + 1) * row_bytes[a], (rows[-1] - rows[0] + 1, *shapes[a]))[0]
                last[a] = np.array(span[np.asarray(rows) - rows[0], -1, -1], dtype=np.float32)
            else:
                last[a] = _pread_rows(fd, src[a], row_bytes[a], rows, row_bytes[a] - tail_bytes, tail_bytes, tail)
        acc = _pread_rows(fd, src["test_accuracy"], row_bytes["test_accuracy"], rows, 0,
                          row_bytes["test_accuracy"], shapes["test_accuracy"])
        copied = Copied(small.trial_ids, small.status, small.configs, small.wall_s, acc, last)
        return b, rows, copied, src, None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ShardError(f"{path}: block {b.name}: unreadable ({e})") from e


def set_aside(paths: RunPaths, path: Path, reason: str) -> str:
    """Move a bad shard to `shards/bad/` with `<name>.reason.txt` next to it; return the new name."""
    paths.bad_shards_dir.mkdir(parents=True, exist_ok=True)
    dest = paths.bad_shards_dir / path.name
    try:
        os.replace(path, dest)
    except FileNotFoundError:
        return dest.name  # already gone (deleted or moved by someone else): nothing to set aside
    note = dest.with_name(dest.name + ".reason.txt")
    note.write_text(f"{reason}\nmoved here by collect at {_now()}; fix or delete it, then relaunch the task\n")
    return dest.name


def bad_shards(paths: RunPaths) -> list[tuple[str, str]]:
    """(file, reason) for every shard in `shards/bad/`, reasons read from their `.reason.txt`."""
    if not paths.bad_shards_dir.is_dir():
        return []
    out = []
    for p in sorted(paths.bad_shards_dir.glob("*.h5")):
        note = p.with_name(p.name + ".reason.txt")
        reason = note.read_text().splitlines()[0] if note.is_file() else "no reason recorded"
        out.append((p.name, reason))
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def updating_marker(paths: RunPaths) -> Path:
    """Present while collect updates results.h5 in place (or after such an update was killed)."""
    return paths.results.with_name(paths.results.name + ".updating")


@dataclass
class Copied:
    """Rows written to results: per-row columns and the values the summary needs."""

    trial_ids: list[str]
    status: list[str]
    configs: list[str]
    wall_s: np.ndarray  # [n] float64
    test_accuracy: np.ndarray  # [n, E] float32
    last: dict[str, np.ndarray]  # energy, energy_var [n, T+1, L]; w_* [n, Lw]: at the last batch of the last epoch

    @classmethod
    def of(cls, block: Block) -> Copied:
        return cls(block.trial_ids, block.status, block.configs, np.asarray(block.wall_s, np.float64),
                   np.asarray(block.arrays["test_accuracy"], np.float32),
                   {n: last_batch(block.arrays[n]) for n in ARRAY_NAMES[1:]})


def last_batch(a: np.ndarray) -> np.ndarray:
    """`a[:, E-1, B-1]` of a stacked [N, E, B, ...] array, copied as float32; NaN when E or B is 0."""
    if a.shape[1] == 0 or a.shape[2] == 0:
        return np.full((a.shape[0], *a.shape[3:]), np.nan, np.float32)
    return np.array(a[:, -1, -1], dtype=np.float32)


def raw_offset(d: Any) -> int | None:
    """File offset of a dataset's data if it is contiguous, allocated, little-endian float32; else None.

    (HDF5 gives no offset for chunked, compact or external storage.)
    """
    try:
        return d.get_offset() if d.dtype == np.dtype("<f4") else None
    except (ValueError, RuntimeError, OSError, TypeError):
        return None


def _copy_range(src: int, dst: int, count: int, src_off: int, dst_off: int) -> None:
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


def _runs(rows: Sequence[int]) -> list[tuple[int, int, int]]:
    """(first source row, first position, length) of each run of consecutive rows."""
    out: list[tuple[int, int, int]] = []
    for pos, r in enumerate(rows):
        if out and out[-1][0] + out[-1][2] == r:
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + 1)
        else:
            out.append((r, pos, 1))
    return out


class BlockStore:
    """An open results file in block layout: an index trial id -> (block, row), and row writes.

    Rows are written into blocks allocated with a fixed number of rows (`allocate`). The six
    arrays are contiguous little-endian float32 datasets allocated when created, so their rows are
    written at known file offsets, bypassing HDF5: copied from a shard in the kernel
    (`copy_file_range`, `add_raw`) or written from memory (`add`); HDF5 itself only writes the
    small per-row columns and the metadata. A trial written again (a newer copy) has its old row
    deleted, by emptying its `trial_id`; rows never filled stay empty, i.e. deleted, too. Readers
    skip deleted rows; a full collect writes a file without them (unless a shard turns bad midway).
    """

    def __init__(self, f: h5py.File, where: str, *, existing: bool):
        self.f = f
        self.where = where
        self.group = f.require_group(BLOCKS)
        self.index: dict[str, tuple[str, int]] = {}
        self.free: dict[ShapeKey, list[list]] = {}  # shape -> [[block name, next row, end row, ids, offsets], ...]
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
        ids = {}
        for col, dtype in small.items():
            ids[col] = g.create_dataset(col, shape=(n,), dtype=dtype).id
        dcpl = h5p.create(h5p.DATASET_CREATE)
        dcpl.set_layout(h5d.CONTIGUOUS)
        dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)  # file space now, so the offset is known
        dcpl.set_fill_time(h5d.FILL_TIME_NEVER)  # every row is written (or deleted) by us
        offsets = {}
        for a, shape in zip(ARRAY_NAMES, key):
            d = h5d.create(g.id, a.encode(), h5t.IEEE_F32LE, h5s.create_simple((n, *shape)), dcpl=dcpl)
            offsets[a] = (d.get_offset(), 4 * int(np.prod(shape, dtype=np.int64)))
        self.free.setdefault(key, []).append([name, 0, n, ids, offsets, widths])

    @staticmethod
    def _columns(trial_ids: list[str], configs: list[str], status: list[str], wall_s: np.ndarray,
                 provenance: Mapping[str, str] | None, columns: Mapping[str, list[str]]) -> dict[str, np.ndarray]:
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

    def _place(self, trial_ids: list[str], key: ShapeKey, cols: dict[str, np.ndarray], write_arrays) -> None:
        """Delete these trials' old rows; write `cols`, and the arrays via `write_arrays(offsets, at, done, m)`."""
        for tid in trial_ids:
            old = self.index.pop(tid, None)
            if old is not None:
                self.group[old[0]]["trial_id"][old[1]] = b""
        need = {c: cols[c].dtype.itemsize for c in PROVENANCE}
        n, done = len(trial_ids), 0
        while done < n:
            slots = [s for s in self.free.get(key, []) if all(s[5][c] >= w for c, w in need.items())]
            if not slots:
                self.allocate(key, n - done, need)
                slots = [self.free[key][-1]]
            slot = slots[0]
            name, start, end, ids, offsets, _ = slot
            m = min(end - start, n - done)
            for c, values in cols.items():
                _write_rows(ids[c], start, values[done:done + m])
            write_arrays(offsets, start, done, m)
            for j in range(m):
                self.index[trial_ids[done + j]] = (name, start + j)
            slot[1] += m
            done += m
            if slot[1] == end:
                self.free[key].remove(slot)

    def add(self, block: Block, provenance: Mapping[str, str] | None = None) -> None:
        """Write a block's rows (arrays from memory) into the space allocated for its shape.

        `provenance`: the same four values for every row; None takes the block's own columns.
        A trial already in the file has its old row deleted.
        """
        if not len(block):
            return
        cols = self._columns(block.trial_ids, block.configs, block.status, block.wall_s, provenance, block.columns)
        arrays = {a: np.ascontiguousarray(block.arrays[a], dtype="<f4") for a in ARRAY_NAMES}

        def write_arrays(offsets, at, done, m):
            for a, (off, row_bytes) in offsets.items():
                data = memoryview(arrays[a][done:done + m]).cast("B")
                pos = 0
                while pos < len(data):
                    pos += os.pwrite(self.fd, data[pos:], off + at * row_bytes + pos)

        self._place(block.trial_ids, block.shape_key, cols, write_arrays)

    def add_raw(self, copied: Copied, key: ShapeKey, provenance: Mapping[str, str], src_fd: int,
                src: Mapping[str, int], rows: Sequence[int]) -> None:
        """Write rows whose arrays are copied from a shard file: `src[name]` = offset of the array
        (contiguous float32 LE, shape [N, *key[i]]), `rows` = source rows, increasing."""
        cols = self._columns(copied.trial_ids, copied.configs, copied.status, copied.wall_s, provenance, {})
        runs = _runs(rows)

        def write_arrays(offsets, at, done, m):
            for a, (off, row_bytes) in offsets.items():
                for first, pos, length in runs:
                    lo, hi = max(pos, done), min(pos + length, done + m)
                    if lo < hi:
                        _copy_range(src_fd, self.fd, (hi - lo) * row_bytes, src[a] + (first + lo - pos) * row_bytes,
                                    off + (at + lo - done) * row_bytes)

        self._place(copied.trial_ids, key, cols, write_arrays)

    def stamp(self, grid: str) -> None:
        attrs = self.f.attrs
        attrs["schema"] = RESULTS_SCHEMA
        attrs["schema_version"] = RESULTS_SCHEMA_VERSION
        attrs["grid"] = grid
        attrs["created"] = _now()


def _write_rows(d: Any, start: int, values: np.ndarray) -> None:
    """`d[start:start + len(values)] = values` through h5py's low-level API (a fraction of the high-level cost)."""
    if not len(values):
        return
    space = d.get_space()
    space.select_hyperslab((start,) + (0,) * (values.ndim - 1), values.shape)
    d.write(h5s.create_simple(values.shape), space, np.ascontiguousarray(values))


def open_results(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """Open a results file."""
    return h5py.File(path, mode)


def write_results(path: str | os.PathLike, trials: Iterable[TrialResult], *, grid: str = "",
                  provenance: Mapping[str, str] | None = None) -> Path:
    """Write a results file from TrialResults (tmp + `os.replace`): for tests and tools, not collect."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        with open_results(tmp, "w") as f:
            store = BlockStore(f, str(path), existing=False)
            for group in group_by_shape(trials):
                from contracts.config import canonical_json

                store.add(Block([t.trial_id for t in group], [canonical_json(t.config) for t in group],
                                [t.status for t in group], np.array([t.wall_s for t in group], dtype=np.float64),
                                {n: np.stack([np.asarray(t.arrays[n], np.float32) for t in group])
                                 for n in ARRAY_NAMES}), provenance or {})
            store.stamp(grid)
            store.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class ResultsWriter:
    """results.h5 being written. Use as a context manager, then `commit()`.

    Two modes:
      * new (a full collect): everything goes to `results.h5.tmp.<pid>`, which `commit()` renames
        over results.h5, so readers see the old file or the new one, never a mix; an exception
        deletes the tmp file.
      * in place (an incremental collect): the new rows are appended to results.h5 itself, because
        copying a multi-GB file per collect is what made incremental runs slow. A marker file
        `results.h5.updating` exists for the duration; if the process dies, the marker stays, the
        loaders refuse the file and the next collect rebuilds it from the shards (which are the
        truth). A file that is not version-2 results raises OSError here, before anything is
        written (the caller then writes a new file).
    """

    def __init__(self, paths: RunPaths, *, in_place: bool):
        self.final = paths.results
        self.in_place = in_place
        self.marker = updating_marker(paths)
        self.tmp = paths.results.with_name(f"{paths.results.name}.tmp.{os.getpid()}")
        self.grid = paths.grid
        self.committed = False
        if in_place:
            self.marker.write_text(f"collect pid {os.getpid()} started {_now()}\n")
            try:
                self.file = open_results(self.final, "a")
                try:
                    version = self.file.attrs.get("schema_version")
                    if self.file.attrs.get("schema") != RESULTS_SCHEMA or version != RESULTS_SCHEMA_VERSION:
                        raise OSError(f"{self.final}: not version-{RESULTS_SCHEMA_VERSION} results "
                                      f"(schema_version {version!r})")
                    self.store = BlockStore(self.file, str(self.final), existing=True)
                except ShardError as e:
                    self.file.close()
                    raise OSError(str(e)) from e
                except BaseException:
                    self.file.close()
                    raise
            except BaseException:
                self.marker.unlink(missing_ok=True)
                raise
        else:
            self.file = open_results(self.tmp, "w")
            self.store = BlockStore(self.file, str(self.final), existing=False)

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()
        if self.file.id.valid:
            self.file.close()  # in place: a cleanly closed file is valid HDF5; the state no longer matches it
        if self.in_place:
            self.marker.unlink(missing_ok=True)
        else:
            self.tmp.unlink(missing_ok=True)

    def has(self, trial_id: str) -> bool:
        return trial_id in self.store.index

    def plan(self, infos: Iterable[ShardInfo], pending: Mapping[str, ShardInfo]) -> None:
        """Allocate one block per shape for the rows `pending` (trial id -> shard) will bring."""
        counts: dict[ShapeKey, int] = {}
        widths = dict.fromkeys(PROVENANCE, 1)
        for info in infos:
            used = False
            for b in info.blocks:
                n = sum(1 for t in b.trial_ids if pending.get(t) is info)
                if n:
                    counts[b.shape_key] = counts.get(b.shape_key, 0) + n
                    used = True
            if used:
                for c, v in zip(PROVENANCE, (info.name, info.created, info.hostname, info.slurm_job_id)):
                    widths[c] = max(widths[c], len(v.encode()))
        for key, n in counts.items():
            self.store.allocate(key, n, widths)

    def copy_from(self, info: ShardInfo, trial_ids: Sequence[str]) -> list[Copied]:
        """Copy the rows of `trial_ids` from a shard, stamped with the shard's provenance.

        The shard is checked (`contracts.shard.open_shard`) and its small columns and summary values read
        before its rows are written; the arrays are then copied file to file when both sides are
        contiguous float32 (what `contracts.shard` writes), else read and written.

        Returns:
            What was copied, per block (the summary rows are computed from it).
        Raises:
            ShardChanged: the shard was replaced since it was probed (nothing was written).
            ShardError: the shard is malformed or cannot be read (nothing was written).
        """
        provenance = dict(zip(PROVENANCE, (info.name, info.created, info.hostname, info.slurm_job_id)))
        wanted = set(trial_ids)
        out: list[Copied] = []
        with _open_probed(info) as shard:
            fd = os.open(info.path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                plans = []
                for b, datasets in shard.checked_blocks():
                    rows = [i for i, t in enumerate(b.trial_ids) if t in wanted]
                    if rows:
                        plans.append(_read_rows(info.path, fd, size, b, datasets, rows))
                for b, rows, copied, src, block in plans:
                    if src is not None:
                        self.store.add_raw(copied, b.shape_key, provenance, fd, src, rows)
                    else:
                        self.store.add(block, provenance)
                    out.append(copied)
            finally:
                os.close(fd)
        return out

    def commit(self) -> None:
        """Write the file attrs and close; a new file is then `os.replace`d over results.h5."""
        self.store.stamp(self.grid)
        self.store.close()
        self.file.close()
        if not self.in_place:
            os.replace(self.tmp, self.final)
            self.marker.unlink(missing_ok=True)  # a stale marker from a killed update: the new file replaced it
        self.committed = True


def file_stamp(path: Path) -> list[int] | None:
    """[size, mtime_ns] of a file, or None: how the state recognises the results it wrote."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


def load_state(paths: RunPaths) -> tuple[dict[str, Any] | None, str]:
    """The state of the last collect if it still matches results.h5 and the summary, else (None, why)."""
    path = paths.collect_state
    if not path.is_file():
        return None, "first collect (no state file)"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"{path} unreadable ({e}); rebuilding"
    if state.get("version") != STATE_VERSION:
        return None, f"{path}: state version {state.get('version')!r}; rebuilding"
    if updating_marker(paths).exists():
        return None, f"{updating_marker(paths)} exists: an earlier collect was interrupted; rebuilding"
    if file_stamp(paths.results) != state.get("results") or file_stamp(paths.summary) != state.get("summary"):
        return None, "results.h5 or summary.csv changed since the last collect; rebuilding"
    return state, ""


def save_state(paths: RunPaths, shards: dict[str, dict[str, Any]], kept: dict[str, list]) -> None:
    """Record what results.h5 holds (atomically; written after results and summary)."""
    state = {"version": STATE_VERSION, "grid": paths.grid, "results": file_stamp(paths.results),
             "summary": file_stamp(paths.summary), "shards": shards, "kept": kept}
    tmp = paths.collect_state.with_name(f"{paths.collect_state.name}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(state, separators=(",", ":")))
    os.replace(tmp, paths.collect_state)


def duplicates(shards: dict[str, dict[str, Any]]) -> list[str]:
    """Trial ids held by more than one valid shard, sorted."""
    seen: dict[str, int] = {}
    for entry in shards.values():
        for tid in entry["trials"]:
            seen[tid] = seen.get(tid, 0) + 1
    return sorted(t for t, n in seen.items() if n > 1)


def shard_entry(info: ShardInfo) -> dict[str, Any]:
    return {"size": info.size, "mtime_ns": info.mtime_ns, "created": info.created, "trials": list(info.trial_ids)}


def winners(infos: Iterable[ShardInfo], kept: dict[str, list], bad: set[str]) -> dict[str, ShardInfo]:
    """trial id -> the shard whose copy to merge; trials whose kept copy is at least as new are left out."""
    best: dict[str, ShardInfo] = {}
    for info in infos:
        if info.name in bad:
            continue
        for tid in info.trial_ids:
            cur = best.get(tid)
            if cur is None or info.key > cur.key:
                best[tid] = info
    out = {}
    for tid, info in best.items():
        old = kept.get(tid)
        if old is not None and (old[0], old[1], old[2]) >= info.key:
            continue
        out[tid] = info
    return out
