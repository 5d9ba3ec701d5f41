"""Validating a shard cheaply before it is merged: `probe` -> `ShardInfo` (or ShardError, naming the fix).

The probe uses h5py's low-level API (one file open, a few attributes, per block `trial_id` plus two
dataset shapes). The full check of a block's datasets (`contracts.shard.open_shard`) runs when its rows
are copied, through `open_probed`, which also notices a shard replaced since its probe.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from h5py import h5d, h5f, h5g, h5s

from contracts.shard import (
    BLOCKS,
    SCHEMA,
    SCHEMA_VERSION,
    BlockInfo,
    ShapeKey,
    Shard,
    ShardError,
    check_shard_file,
    open_shard,
    read_attr,
)

_STAMP = re.compile(r"^(\d{8}T\d{6}Z)(?:-(\d{1,3}))?-")


def submission_order(shard_name: str) -> tuple[str, int]:
    """The launch stamp a task's shard name starts with (`<stamp>[-n]-<task key>...`), as a sortable pair.

    Stamps come from one clock, the launching login node's, in launch order, so a `--force` rerun's shards beat
    the first run's even when a compute node's clock ran ahead (its `created` would otherwise win forever).
    A name without a stamp (`python -m pc --out`, search parts) sorts before every launch: ("", 0).
    """
    found = _STAMP.match(shard_name)
    return (found.group(1), int(found.group(2) or 1)) if found else ("", 0)


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
    def key(self) -> tuple[tuple[str, int], str, int, str]:
        """Newest wins: by the submission that wrote it (`submission_order`), then `created`, file mtime and name
        (so ties are deterministic)."""
        return (submission_order(self.name), self.created, self.mtime_ns, self.name)

    @property
    def provenance(self) -> tuple[str, str, str, str]:
        """The four provenance values its rows get in results.h5 (`collect.blockstore.PROVENANCE` order)."""
        return (self.name, self.created, self.hostname, self.slurm_job_id)


class ShardChanged(ShardError):
    """A shard was replaced between its probe and its read: skip it now, read it next collect."""


def _shape_key(energy: tuple[int, ...], w: tuple[int, ...]) -> ShapeKey:
    """The six per-trial shapes from energy [E, B, T+1, L] and w_norm [E, B, Lw]."""
    return ((energy[0],), energy, energy, w, w, w)


def _check_header(path: Path, fid: h5f.FileID, grid: str) -> None:
    """Schema, version, `complete` flag and grid of an open shard (ShardError naming the fix)."""
    schema, version, complete = (read_attr(fid, k) for k in ("schema", "schema_version", "complete"))
    if schema != SCHEMA:
        raise ShardError(f"{path}: schema is {schema!r}; expected {SCHEMA!r} (not a pcsweep shard: remove it)")
    if version != SCHEMA_VERSION:
        raise ShardError(f"{path}: schema_version is {version!r}; this pcsweep reads version {SCHEMA_VERSION} "
                         f"only (a version-1 shard has one group per trial: rerun its task to rewrite it)")
    if complete is not True:
        raise ShardError(f"{path}: no 'complete' flag: the write did not finish (partial shard; rerun its task)")
    written_for = read_attr(fid, "grid")
    if grid and isinstance(written_for, str) and written_for and written_for != grid:
        raise ShardError(f"{path}: a shard of grid {written_for!r}, not {grid!r} (foreign shard): "
                         f"move it to that grid's shards/ folder, or delete it")


def _probe_blocks(path: Path, fid: h5f.FileID) -> list[BlockInfo]:
    try:
        blocks_id = h5g.open(fid, BLOCKS.encode())
    except (KeyError, ValueError, TypeError) as e:
        raise ShardError(f"{path}: no /{BLOCKS} group (malformed shard; rerun its task)") from e
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
    return blocks


def probe(path: Path, grid: str = "") -> ShardInfo:
    """Check a shard's schema, version, `complete` flag and grid, and list its trials by block.

    `grid`: the run folder's grid; a shard whose `grid` attribute names another grid is foreign (an
    empty attribute, e.g. from `python -m pc --out`, is accepted).

    Raises:
        ShardError: not HDF5, truncated, partial (no `complete`), wrong schema or version, another
            grid's, no blocks, or energies with fewer than 2 inference steps (no t = T-1).
    """
    st = check_shard_file(path)
    try:
        fid = h5f.open(os.fsencode(path), h5f.ACC_RDONLY)
    except (OSError, ValueError, RuntimeError) as e:
        raise ShardError(f"{path}: not a readable HDF5 file (truncated or corrupt; rerun its task): {e}") from e
    try:
        _check_header(path, fid, grid)
        created, hostname, job = (str(read_attr(fid, k) or "") for k in ("created", "hostname", "slurm_job_id"))
        blocks = _probe_blocks(path, fid)
    except ShardError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:  # TypeError: an empty (null) attribute
        raise ShardError(f"{path}: unreadable HDF5 metadata (truncated or corrupt; rerun its task): {e}") from e
    finally:
        fid.close()
    declared = sum(4 * len(b.trial_ids) * int(np.prod(shape, dtype=np.int64)) for b in blocks for shape in b.shape_key)
    if declared > st.st_size:  # pcsweep writes its float32 arrays whole and uncompressed: they fit in the file
        raise ShardError(f"{path}: its blocks declare {declared:,} bytes of arrays in a file of {st.st_size:,} bytes "
                         "(chunks never written, or compressed by another writer); reading it would allocate all "
                         "of that: rerun its task")
    return ShardInfo(name=path.name, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, created=created,
                     hostname=hostname, slurm_job_id=job, trial_ids=tuple(t for b in blocks for t in b.trial_ids),
                     blocks=tuple(blocks))


def open_probed(info: ShardInfo) -> Shard:
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
