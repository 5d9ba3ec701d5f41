"""The shard writer: trials -> one HDF5 file, atomically, `complete` set last (docs/shard-format.md).

A shard is written to `<name>.tmp.<pid>`, flushed, closed and `os.replace`d; the `complete` file
attribute is set last, and a file without it is not a result (a writer killed after a flush leaves a
file that opens cleanly but is partial).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from contracts.config import canonical_json
from contracts.shard.layout import (
    ARRAY_NAMES,
    BLOCKS,
    CONFIG_DTYPE,
    SCHEMA,
    SCHEMA_VERSION,
    STATUS_DTYPE,
    TrialResult,
    group_by_shape,
    trial_id_dtype,
)


def _provenance() -> dict[str, Any]:
    env = os.environ
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "slurm_job_id": env.get("SLURM_JOB_ID", ""),
        "slurm_array_job_id": env.get("SLURM_ARRAY_JOB_ID", ""),
        "slurm_array_task_id": env.get("SLURM_ARRAY_TASK_ID", ""),
    }


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
    ids = [t.trial_id for t in trials]
    g.create_dataset("trial_id", data=np.array(ids, dtype=trial_id_dtype(ids)))
    g.create_dataset("config", data=[canonical_json(t.config) for t in trials], dtype=CONFIG_DTYPE)
    g.create_dataset("status", data=np.array([t.status for t in trials], dtype=STATUS_DTYPE))
    g.create_dataset("wall_s", data=np.array([float(t.wall_s) for t in trials], dtype=np.float64))
    for name in ARRAY_NAMES:
        g.create_dataset(name, data=np.stack([np.asarray(t.arrays[name], dtype=np.float32) for t in trials]))
