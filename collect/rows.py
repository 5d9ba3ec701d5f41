"""Reading the rows a collect takes from one shard block: small columns, parsed configs, summary values.

`read_rows` reads, for the chosen rows of a checked block, what the results writer and the summary
need: the per-row columns, every config parsed (a config that is not a JSON object makes the whole
shard bad before anything of it is written), the test accuracy and the last-batch values. When the
six arrays are contiguous float32 in the file (what `contracts.shard` writes) it returns their file
offsets, so the writer copies them file to file; otherwise it reads the rows into memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from contracts.config import trial_id
from contracts.shard import ARRAY_NAMES, Block, BlockInfo, ShardError, read_block


@dataclass
class Copied:
    """Rows written to results: per-row columns and the values the summary needs."""

    trial_ids: list[str]
    status: list[str]
    configs: list[str]  # canonical JSON, as stored
    parsed: list[dict[str, Any]]  # the same configs, parsed (checked to be JSON objects)
    wall_s: np.ndarray  # [n] float64
    test_accuracy: np.ndarray  # [n, E] float32
    last: dict[str, np.ndarray]  # energy, energy_var [n, T+1, L]; w_* [n, Lw]: at the last batch of the last epoch

    @classmethod
    def of(cls, block: Block, where: str = "block") -> Copied:
        """Every row of an in-memory block (ShardError if a config is not a JSON object)."""
        return cls(block.trial_ids, block.status, block.configs, parse_configs(block.configs, block.trial_ids, where),
                   np.asarray(block.wall_s, np.float64), np.asarray(block.arrays["test_accuracy"], np.float32),
                   {n: last_batch(block.arrays[n]) for n in ARRAY_NAMES[1:]})


class RowPlan(NamedTuple):
    """What the writer needs to copy some rows of one shard block."""

    block: BlockInfo
    rows: list[int]  # source rows, increasing
    copied: Copied
    offsets: dict[str, int] | None  # array name -> file offset of its contiguous float32 data; None: use `data`
    data: Block | None  # the rows read into memory (when the arrays cannot be copied file to file)


def parse_configs(configs: Sequence[str], trial_ids: Sequence[str], where: str) -> list[dict[str, Any]]:
    """Each config parsed, in one `json.loads`; ShardError naming the first bad one's trial.

    A config that is not a JSON object (damaged, or written by something else) would otherwise
    surface only when the summary is built, after rows were written.
    """
    try:
        parsed = json.loads("[" + ",".join(configs) + "]")
        if len(parsed) == len(configs) and all(type(c) is dict for c in parsed):
            return parsed
    except (ValueError, TypeError):
        pass
    for tid, text in zip(trial_ids, configs):
        try:
            value = json.loads(text)
        except (ValueError, TypeError) as e:
            raise ShardError(f"{where}: trial {tid}: config is not valid JSON ({e}); rerun its task") from None
        if type(value) is not dict:
            raise ShardError(f"{where}: trial {tid}: config is a JSON {type(value).__name__}, not an object; "
                             f"rerun its task")
    raise ShardError(f"{where}: the configs do not parse as one list of objects; rerun its task")


def last_batch(a: np.ndarray) -> np.ndarray:
    """`a[:, E-1, B-1]` of a stacked [N, E, B, ...] array, copied as float32; NaN when E or B is 0."""
    if a.shape[1] == 0 or a.shape[2] == 0:
        return np.full((a.shape[0], *a.shape[3:]), np.nan, np.float32)
    return np.array(a[:, -1, -1], dtype=np.float32)


def raw_offset(d: Any) -> int | None:
    """File offset of a dataset's data if it is contiguous, allocated, little-endian float32; else None.

    (HDF5 gives no offset for chunked, compact or external storage.) `d` is an h5py low-level DatasetID.
    """
    try:
        return d.get_offset() if d.dtype == np.dtype("<f4") else None
    except (ValueError, RuntimeError, OSError, TypeError):
        return None


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


def _last_values(fd: int, src: Mapping[str, int], shapes: Mapping[str, tuple[int, ...]],
                 row_bytes: Mapping[str, int], rows: list[int]) -> dict[str, np.ndarray]:
    """The last-batch values of the five per-batch arrays, read with `pread` (no HDF5 call)."""
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
    return last


def check_ids(trial_ids: Sequence[str], parsed: Sequence[Mapping[str, Any]], where: str) -> None:
    """Each row's id must be the hash of its stored config: a shard whose rows carry each other's ids (or an edited
    config) would give a trial another trial's config in the results. ShardError names the first bad row."""
    for tid, config in zip(trial_ids, parsed):
        digest = trial_id(config)
        if digest != tid:
            raise ShardError(f"{where}: trial {tid}: its stored config hashes to {digest}, not to its id (rows mixed "
                             "up or a config edited); the shard is not used: rerun its task")


def read_rows(path: Path, fd: int, size: int, b: BlockInfo, datasets: Mapping[str, Any], rows: list[int]) -> RowPlan:
    """What the writer needs of `rows` of block `b` of the open shard `path` (`fd`: it, opened read-only).

    Raises:
        ShardError: a column, a config or an array cannot be read (the shard is bad).
    """
    where = f"{path}: block {b.name}"
    try:
        src = {a: raw_offset(datasets[a]) for a in ARRAY_NAMES}
        shapes = dict(zip(ARRAY_NAMES, b.shape_key))
        row_bytes = {a: 4 * int(np.prod(shapes[a], dtype=np.int64)) for a in ARRAY_NAMES}
        if not all(o is not None and o + len(b) * row_bytes[a] <= size for a, o in src.items()):
            block = read_block(datasets, b, rows)
            copied_block = Copied.of(block, where)
            check_ids(copied_block.trial_ids, copied_block.parsed, where)
            return RowPlan(b, rows, copied_block, None, block)
        small = read_block(datasets, b, rows, arrays=False)
        parsed = parse_configs(small.configs, small.trial_ids, where)
        check_ids(small.trial_ids, parsed, where)
        acc = _pread_rows(fd, src["test_accuracy"], row_bytes["test_accuracy"], rows, 0,
                          row_bytes["test_accuracy"], shapes["test_accuracy"])
        last = _last_values(fd, src, shapes, row_bytes, rows)
        copied = Copied(small.trial_ids, small.status, small.configs, parsed, small.wall_s, acc, last)
        return RowPlan(b, rows, copied, {a: int(o) for a, o in src.items() if o is not None}, None)
    except ShardError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ShardError(f"{where}: unreadable ({e})") from e
