"""HDF5 shard format, version 1 (DESIGN.md section 5): writer and reader.

Imports only h5py and numpy (never jax), so `collect` reads shards on a login node. A shard is
written to `<name>.tmp.<pid>`, flushed, closed and `os.replace`d; the `complete` attribute is set
last, and a file without it is not a result (a writer killed after a flush leaves a file that opens
cleanly but is partial).

Per-trial arrays (float32; E epochs, B batches per epoch, T inference steps, L layers with a Vode):
    test_accuracy [E]; energy, energy_var [E, B, T+1, L]; w_norm, w_grad_norm, w_grad_var [E, B, L]
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SCHEMA = "pcsweep-shard"
SCHEMA_VERSION = 1
STATUSES = ("ok", "diverged")
ARRAY_NAMES = ("test_accuracy", "energy", "energy_var", "w_norm", "w_grad_norm", "w_grad_var")
ARRAY_NDIM = {"test_accuracy": 1, "energy": 4, "energy_var": 4, "w_norm": 3, "w_grad_norm": 3, "w_grad_var": 3}


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


def _provenance() -> dict[str, Any]:
    env = os.environ
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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

    Args:
        attrs: extra file attributes (git sha/dirty, versions, device kind, image digest, ...);
            dicts and lists are stored as JSON strings.
    Returns:
        The final path.
    """
    shard_path = Path(shard_path)
    shard_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = shard_path.with_name(f"{shard_path.name}.tmp.{os.getpid()}")
    try:
        with h5py.File(tmp_path, "w") as f:
            file_attrs = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "grid": grid,
                          "task_key": task_key, **_provenance(), **(attrs or {})}
            for key, value in file_attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
            trials_group = f.create_group("trials")
            for trial in trials:
                _write_trial(trials_group, trial)
            f.flush()
            f.attrs["complete"] = True
        os.replace(tmp_path, shard_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return shard_path


def _write_trial(trials_group: h5py.Group, trial: TrialResult) -> None:
    from pc.config import canonical_json

    g = trials_group.create_group(trial.trial_id)
    g.attrs["config"] = canonical_json(trial.config)
    g.attrs["status"] = trial.status
    g.attrs["wall_s"] = float(trial.wall_s)
    for name in ARRAY_NAMES:
        g.create_dataset(name, data=np.asarray(trial.arrays[name], dtype=np.float32))


@dataclass
class Shard:
    """An open, validated shard. Use as a context manager; trials are read lazily."""

    path: Path
    file: h5py.File
    attrs: dict[str, Any]

    def __enter__(self) -> "Shard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def close(self) -> None:
        self.file.close()

    @property
    def trial_ids(self) -> list[str]:
        return list(self.file["trials"].keys())

    def trial(self, trial_id: str) -> TrialResult:
        try:
            g = self.file["trials"][trial_id]
            return TrialResult(
                trial_id=trial_id,
                config=json.loads(g.attrs["config"]),
                status=str(g.attrs["status"]),
                wall_s=float(g.attrs["wall_s"]),
                arrays={name: g[name][()] for name in ARRAY_NAMES},
            )
        except (KeyError, OSError, ValueError) as e:
            raise ShardError(f"{self.path}: trial {trial_id}: unreadable ({e})") from e

    def trials(self) -> Iterator[TrialResult]:
        for trial_id in self.trial_ids:
            yield self.trial(trial_id)


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_shard(shard_path: str | os.PathLike) -> Shard:
    """Open and validate a shard; raise ShardError naming the file and the reason.

    Rejects a file that HDF5 cannot open (truncated, empty, not HDF5), one without `complete`
    (the write did not finish), and one with another schema or schema version.
    """
    shard_path = Path(shard_path)
    try:
        f = h5py.File(shard_path, "r")
    except (OSError, ValueError) as e:
        raise ShardError(f"{shard_path}: not a readable HDF5 file (truncated or corrupt): {e}") from e
    try:
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        if attrs.get("schema") != SCHEMA:
            raise ShardError(f"{shard_path}: schema is {attrs.get('schema')!r}; expected {SCHEMA!r}")
        if attrs.get("schema_version") != SCHEMA_VERSION:
            raise ShardError(
                f"{shard_path}: schema_version is {attrs.get('schema_version')!r}; "
                f"this pcsweep reads version {SCHEMA_VERSION}"
            )
        if attrs.get("complete") is not True:
            raise ShardError(f"{shard_path}: no 'complete' flag: the write did not finish (partial shard)")
        if "trials" not in f:
            raise ShardError(f"{shard_path}: no /trials group")
    except BaseException:
        f.close()
        raise
    return Shard(shard_path, f, attrs)


def read_shard(shard_path: str | os.PathLike) -> list[TrialResult]:
    """Every trial of a shard, fully read (convenient for small shards and tests)."""
    with open_shard(shard_path) as shard:
        return list(shard.trials())
