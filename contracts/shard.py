"""HDF5 shard format, version 2 (docs/shard-format.md, DESIGN.md section 5): writer and reader.

Imports only h5py, numpy and the standard library (plus `contracts.config.canonical_json`, which is pure
Python), never jax, so `collect` and `launch` read shards on a login node.

A shard is written to `<name>.tmp.<pid>`, flushed, closed and `os.replace`d; the `complete` file
attribute is set last, and a file without it is not a result (a writer killed after a flush leaves a
file that opens cleanly but is partial).

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

`collect`'s results.h5 uses the same blocks (with extra per-row columns), through `check_blocks`
and `read_block` below.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5a, h5d, h5s

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


@dataclass
class TrialResult:
    """One trial's outcome as stored in a shard."""

    trial_id: str
    config: Mapping[str, Any]  # the full trial config mapping (DESIGN.md section 2)
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

    def take(self, rows: Sequence[int] | np.ndarray) -> Block:
        """A block of the given rows, in that order."""
        rows = np.asarray(rows, dtype=np.intp)
        return Block([self.trial_ids[i] for i in rows], [self.configs[i] for i in rows],
                     [self.status[i] for i in rows], self.wall_s[rows], {n: a[rows] for n, a in self.arrays.items()},
                     {c: [v[i] for i in rows] for c, v in self.columns.items()})


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


def _provenance() -> dict[str, Any]:
    env = os.environ
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "slurm_job_id": env.get("SLURM_JOB_ID", ""),
        "slurm_array_job_id": env.get("SLURM_ARRAY_JOB_ID", ""),
        "slurm_array_task_id": env.get("SLURM_ARRAY_TASK_ID", ""),
    }


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


def write_shard(
    shard_path: str | os.PathLike,
    trials: Iterable[TrialResult],
    *,
    grid: str = "",
    task_key: str = "",
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write trials atomically to `shard_path` (tmp file + `os.replace`, `complete` set last).

    Trials with equal array shapes go into one block (`/blocks/<k>`), in the order given.

    Args:
        attrs: extra file attributes (git sha/dirty, versions, device kind, image digest, ...);
            dicts and lists are stored as JSON strings.
    Returns:
        The final path.
    Raises:
        ValueError: a trial id given twice, or one that is not short ASCII.
    """
    shard_path = Path(shard_path)
    groups = group_by_shape(trials)
    shard_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = shard_path.with_name(f"{shard_path.name}.tmp.{os.getpid()}")
    try:
        with h5py.File(tmp_path, "w") as f:
            file_attrs = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "grid": grid,
                          "task_key": task_key, **_provenance(), **(attrs or {})}
            for key, value in file_attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
            blocks = f.create_group(BLOCKS)
            for k, members in enumerate(groups):
                _write_block(blocks.create_group(str(k)), members)
            f.flush()
            f.attrs["complete"] = True
        os.replace(tmp_path, shard_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return shard_path


def _write_block(g: h5py.Group, trials: list[TrialResult]) -> None:
    from contracts.config import canonical_json

    ids = [t.trial_id for t in trials]
    g.create_dataset("trial_id", data=np.array(ids, dtype=trial_id_dtype(ids)))
    g.create_dataset("config", data=[canonical_json(t.config) for t in trials], dtype=CONFIG_DTYPE)
    g.create_dataset("status", data=np.array([t.status for t in trials], dtype=STATUS_DTYPE))
    g.create_dataset("wall_s", data=np.array([float(t.wall_s) for t in trials], dtype=np.float64))
    for name in ARRAY_NAMES:
        g.create_dataset(name, data=np.stack([np.asarray(t.arrays[name], dtype=np.float32) for t in trials]))


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
        elif dtype.kind not in ("S", "O") or (c == "trial_id" and dtype.kind != "S"):
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


def _check_blocks(f: h5py.File, where: str, extra_columns: Sequence[str] = (), *, allow_deleted: bool = False
                  ) -> list[tuple[BlockInfo, dict[str, Any]]]:
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
    return [info for info, _ in _check_blocks(f, where, extra_columns, allow_deleted=allow_deleted)]


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


class Shard:
    """An open, validated shard. Use as a context manager; arrays are read on demand.

    `attrs` (all file attributes, decoded) is read on first use; `attr(name)` reads one.
    """

    def __init__(self, path: Path, file: h5py.File, attrs: dict[str, Any] | None = None,
                 checked: list[tuple[BlockInfo, dict[str, Any]]] | None = None):
        self.path = path
        self.file = file
        self._attrs = attrs
        self._checked = checked if checked is not None else _check_blocks(file, str(path))
        self.block_infos = [info for info, _ in self._checked]

    def __enter__(self) -> Shard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def close(self) -> None:
        self.file.close()

    @property
    def attrs(self) -> dict[str, Any]:
        if self._attrs is None:
            self._attrs = {k: _attr(v) for k, v in self.file.attrs.items()}
        return self._attrs

    def attr(self, name: str, default: Any = None) -> Any:
        """One file attribute (decoded), without reading the others."""
        if self._attrs is not None:
            return self._attrs.get(name, default)
        value = read_attr(self.file.id, name)
        return default if value is None else value

    def checked_blocks(self) -> list[tuple[BlockInfo, dict[str, Any]]]:
        """(BlockInfo, its open datasets by name as h5py low-level DatasetIDs) per block: for `read_block`."""
        return list(self._checked)

    @property
    def trial_ids(self) -> list[str]:
        """Every trial id in the shard, sorted (as version 1 listed its groups)."""
        return sorted(t for b in self.block_infos for t in b.trial_ids)

    def _where(self, trial_id: str) -> tuple[int, int]:
        for k, b in enumerate(self.block_infos):
            if trial_id in b.trial_ids:
                return k, b.trial_ids.index(trial_id)
        raise ShardError(f"{self.path}: no trial {trial_id}")

    def trial(self, trial_id: str) -> TrialResult:
        """One trial with all its arrays."""
        k, row = self._where(trial_id)
        info, datasets = self._checked[k]
        try:
            return read_block(datasets, info, [row]).trial(0)
        except (KeyError, OSError, ValueError) as e:
            raise ShardError(f"{self.path}: trial {trial_id}: unreadable ({e})") from e

    def blocks(self, trial_ids: Iterable[str] | None = None) -> Iterator[Block]:
        """Every block, fully read: one read per dataset per block (the fast path).

        With `trial_ids`, only those rows (blocks without any are skipped).
        """
        wanted = None if trial_ids is None else set(trial_ids)
        for info, datasets in self._checked:
            rows = None if wanted is None else [i for i, t in enumerate(info.trial_ids) if t in wanted]
            if rows is not None and not rows:
                continue
            try:
                yield read_block(datasets, info, rows)
            except (KeyError, OSError, ValueError) as e:
                raise ShardError(f"{self.path}: block {info.name}: unreadable ({e})") from e

    def trials(self) -> Iterator[TrialResult]:
        """Every trial, block by block."""
        for block in self.blocks():
            for i in range(len(block)):
                yield block.trial(i)


def _attr(value: Any) -> Any:
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
    return _attr(buf[()])


def open_shard(shard_path: str | os.PathLike) -> Shard:
    """Open and validate a shard; raise ShardError naming the file and the reason.

    Rejects a file that HDF5 cannot open (truncated, empty, not HDF5), one with another schema or
    schema version, one without `complete` (the write did not finish), and one whose blocks are
    malformed (see `check_blocks`). Reads no arrays.
    """
    shard_path = Path(shard_path)
    try:
        f = h5py.File(shard_path, "r")
    except (OSError, ValueError) as e:
        raise ShardError(f"{shard_path}: not a readable HDF5 file (truncated or corrupt): {e}") from e
    try:
        schema, version, complete = (read_attr(f.id, k) for k in ("schema", "schema_version", "complete"))
        if schema != SCHEMA:
            raise ShardError(f"{shard_path}: schema is {schema!r}; expected {SCHEMA!r}")
        if version != SCHEMA_VERSION:
            raise ShardError(
                f"{shard_path}: schema_version is {version!r}; this pcsweep reads version {SCHEMA_VERSION} only "
                f"(a version-1 shard has one group per trial: rerun its task to rewrite it)"
            )
        if complete is not True:
            raise ShardError(f"{shard_path}: no 'complete' flag: the write did not finish (partial shard)")
        checked = _check_blocks(f, str(shard_path))
    except ShardError:
        f.close()
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:  # HDF5 metadata unreadable past the superblock
        f.close()
        raise ShardError(f"{shard_path}: unreadable HDF5 metadata (truncated or corrupt): {e}") from e
    except BaseException:
        f.close()
        raise
    return Shard(shard_path, f, None, checked)


def read_shard(shard_path: str | os.PathLike) -> list[TrialResult]:
    """Every trial of a shard, fully read (convenient for small shards and tests)."""
    with open_shard(shard_path) as shard:
        return list(shard.trials())
