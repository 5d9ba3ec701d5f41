"""Writing results.h5: a new file renamed into place (full collect) or an in-place update (incremental).

`ResultsWriter` is the one way collect writes results.h5. A finished file is verified (its live trial ids are
exactly the ones collect kept) before it replaces the old one or before an in-place update is declared done.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
from h5py import h5d, h5g, h5s

from collect.blockstore import PROVENANCE, RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION, BlockStore
from collect.merge_state import updating_marker
from collect.probe import ShardInfo, open_probed
from collect.rows import Copied, read_rows
from collect.shards import now
from contracts.atomic import tmp_path
from contracts.cli import errors_name
from contracts.paths import RunPaths
from contracts.shard import BLOCKS, ShapeKey, ShardError


class InPlaceRefused(OSError):
    """results.h5 cannot be updated in place (held open, not version-2 results, or failed verification):
    write a new file instead."""


def open_results(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """Open a results file."""
    return h5py.File(path, mode)


def verify_results(path: Path, expected: set[str]) -> None:
    """Check a closed results file: it reopens, is version-2 results, and holds one live row per `expected` id.

    Every row collect writes carries a kept id, so the right number of distinct live ids means the update
    landed whole: no row missing, no replaced row left undeleted. Reads only the attributes and each
    block's `trial_id` column with h5py's low-level API (a few ms for 50,000 trials: it runs on every collect).

    Raises:
        OSError: naming the file and what is wrong.
    """
    try:
        with open_results(path) as f:
            if f.attrs.get("schema") != RESULTS_SCHEMA or f.attrs.get("schema_version") != RESULTS_SCHEMA_VERSION:
                raise OSError(f"{path}: not version-{RESULTS_SCHEMA_VERSION} results after writing")
            columns = []
            blocks = h5g.open(f.id, BLOCKS.encode())
            for name in blocks:
                d = h5d.open(blocks, name + b"/trial_id")
                buf = np.empty(d.shape, dtype=d.dtype)
                if buf.size:
                    d.read(h5s.ALL, h5s.ALL, buf)
                columns.append(buf[buf != b""])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise OSError(f"{path}: invalid after writing ({type(e).__name__}: {e})") from e
    live = np.sort(np.concatenate(columns)) if columns else np.zeros(0, dtype="S1")
    repeated = int(np.count_nonzero(live[1:] == live[:-1])) if len(live) > 1 else 0
    if len(live) != len(expected) or repeated:
        raise OSError(f"{path}: holds {len(live)} trial rows after writing, expected {len(expected)} "
                      f"({repeated} repeated)")


class ResultsWriter:
    """results.h5 being written. Use as a context manager: `copy_from`..., `commit(ids)`, then `finish()`.

    Two modes:
      * new (a full collect): everything goes to `results.h5.tmp.<pid>`, which `commit()` verifies and
        renames over results.h5, so readers see the old file or the new one, never a mix; leaving the
        block without `commit` deletes the tmp file.
      * in place (an incremental collect): the new rows are appended to results.h5 itself, because
        copying a multi-GB file per collect is what made incremental runs slow. A marker file
        `results.h5.updating` exists from the start until `finish()`, which the caller calls once the
        summary and the state are written too: any failure or kill before that leaves the marker, the
        loaders refuse the file and the next collect rebuilds it from the shards (which are the truth).
        A file that cannot be opened for the update (held open, not version-2 results) raises
        InPlaceRefused here, before anything is written; so does a file that fails verification.
    """

    def __init__(self, paths: RunPaths, *, in_place: bool):
        self.final = paths.results
        self.in_place = in_place
        self.marker = updating_marker(paths)
        self.tmp = tmp_path(paths.results)
        self.grid = paths.grid
        if in_place:
            self.marker.write_text(f"collect pid {os.getpid()} started {now()}\n")
            try:
                self.file, self.store = self._open_in_place()
            except BaseException:
                self.marker.unlink(missing_ok=True)  # nothing was written
                raise
        else:
            self.file = open_results(self.tmp, "w")
            self.store = BlockStore(self.file, str(self.final), existing=False)

    def _open_in_place(self) -> tuple[h5py.File, BlockStore]:
        try:
            f = open_results(self.final, "a")
        except OSError as e:  # e.g. a notebook holds results.h5 open (HDF5 file lock), or it is not HDF5
            raise InPlaceRefused(str(e)) from e
        try:
            version = f.attrs.get("schema_version")
            if f.attrs.get("schema") != RESULTS_SCHEMA or version != RESULTS_SCHEMA_VERSION:
                raise InPlaceRefused(f"{self.final}: not version-{RESULTS_SCHEMA_VERSION} results "
                                     f"(schema_version {version!r})")
            return f, BlockStore(f, str(self.final), existing=True)
        except ShardError as e:
            f.close()
            raise InPlaceRefused(str(e)) from e
        except BaseException:
            f.close()
            raise

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.store.close()
            if self.file.id.valid:
                self.file.close()  # may raise again on a full disk: the tmp file still goes
        except OSError:
            if exc[0] is None:
                raise
        finally:
            if not self.in_place:
                self.tmp.unlink(missing_ok=True)

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
                for c, v in zip(PROVENANCE, info.provenance):
                    widths[c] = max(widths[c], len(v.encode()))
        for key, n in counts.items():
            self.store.allocate(key, n, widths)

    def copy_from(self, info: ShardInfo, trial_ids: Sequence[str]) -> list[Copied]:
        """Copy the rows of `trial_ids` from a shard, stamped with the shard's provenance.

        The shard is checked (`contracts.shard.open_shard`), its small columns and summary values read
        and its configs parsed before its rows are written; the arrays are then copied file to file when
        both sides are contiguous float32 (what `contracts.shard` writes), else read and written.

        Returns:
            What was copied, per block (the summary rows are computed from it).
        Raises:
            ShardChanged: the shard was replaced since it was probed (nothing was written).
            ShardError: the shard is malformed or cannot be read (nothing was written).
        """
        provenance = dict(zip(PROVENANCE, info.provenance))
        wanted = set(trial_ids)
        with open_probed(info) as shard:
            fd = os.open(info.path, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                plans = []
                for b, datasets in shard.checked_blocks():
                    rows = [i for i, t in enumerate(b.trial_ids) if t in wanted]
                    if rows:
                        plans.append(read_rows(info.path, fd, size, b, datasets, rows))
                with errors_name(self.final if self.in_place else self.tmp):  # raw pwrites into the results file
                    for p in plans:
                        if p.offsets is not None:
                            self.store.add_raw(p.copied, p.block.shape_key, provenance, fd, p.offsets, p.rows)
                        elif p.data is not None:
                            self.store.add(p.data, provenance)
            finally:
                os.close(fd)
        return [p.copied for p in plans]

    def commit(self, expected: set[str]) -> None:
        """Write the file attrs, close and verify the file holds exactly `expected`; a new file is then
        `os.replace`d over results.h5.

        Raises:
            InPlaceRefused: an in-place update failed verification (the marker stays: rebuild).
            OSError: a new file failed verification (results.h5 is left as it was).
        """
        self.store.stamp(self.grid, now())
        self.store.close()
        self.file.close()
        if self.in_place:
            try:
                verify_results(self.final, expected)
            except OSError as e:
                raise InPlaceRefused(str(e)) from e
        else:
            verify_results(self.tmp, expected)
            os.replace(self.tmp, self.final)

    def finish(self) -> None:
        """The update is complete (results, summary and state written): remove the marker, if any.

        A full collect also removes a stale marker of a killed update: its new file replaced that one.
        """
        self.marker.unlink(missing_ok=True)
