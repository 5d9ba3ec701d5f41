"""Opening a shard: `open_shard` validates it and returns a `Shard` whose arrays are read on demand."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py

from contracts.shard.blocks import checked_blocks, read_block
from contracts.shard.layout import (
    SCHEMA,
    SCHEMA_VERSION,
    Block,
    BlockInfo,
    ShardError,
    TrialResult,
    check_shard_file,
    decode_attr,
    read_attr,
)


class Shard:
    """An open, validated shard. Use as a context manager; arrays are read on demand.

    `attrs` (all file attributes, decoded) is read on first use; `attr(name)` reads one.
    """

    def __init__(self, path: Path, file: h5py.File, attrs: dict[str, Any] | None = None,
                 checked: list[tuple[BlockInfo, dict[str, Any]]] | None = None):
        self.path = path
        self.file = file
        self._attrs = attrs
        self._checked = checked if checked is not None else checked_blocks(file, str(path))
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
            self._attrs = {k: decode_attr(v) for k, v in self.file.attrs.items()}
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


def open_shard(shard_path: str | os.PathLike) -> Shard:
    """Open and validate a shard; raise ShardError naming the file and the reason.

    Rejects a file that HDF5 cannot open (truncated, empty, not HDF5), one with another schema or
    schema version, one without `complete` (the write did not finish), and one whose blocks are
    malformed (see `check_blocks`). Reads no arrays.
    """
    shard_path = Path(shard_path)
    with contextlib.suppress(FileNotFoundError):  # the open below reports it as a ShardError, as any bad file
        check_shard_file(shard_path)
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
        checked = checked_blocks(f, str(shard_path))
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
