"""HDF5 shard format, version 2 (docs/shard-format.md, docs/design.md section 5): writer and reader.

Imports only h5py, numpy and the standard library (plus `contracts.config.canonical_json`, which is pure
Python), never jax, so `collect` and `launch` read shards on a login node. Every name is importable
from here (`from contracts.shard import open_shard, write_shard`); the modules hold one idea each:

- `layout`: the names, dtypes and records of the format (`TrialResult`, `Block`, `BlockInfo`), attributes;
- `write`: `write_shard` (tmp file + `os.replace`, `complete` set last);
- `blocks`: `check_blocks` and `read_block`, shared with collect's results.h5;
- `reader`: `open_shard` / `Shard` / `read_shard`.
"""

from contracts.shard.blocks import check_blocks, checked_blocks, read_block
from contracts.shard.layout import (
    ARRAY_NAMES,
    ARRAY_NDIM,
    BLOCKS,
    COLUMNS,
    CONFIG_DTYPE,
    MAX_TRIAL_ID,
    SCHEMA,
    SCHEMA_VERSION,
    STATUS_DTYPE,
    STATUSES,
    Block,
    BlockInfo,
    ShapeKey,
    ShardError,
    ShardUnreadable,
    TrialResult,
    check_shard_file,
    decode_attr,
    group_by_shape,
    read_attr,
    shape_key,
    trial_id_dtype,
)
from contracts.shard.reader import Shard, open_shard, read_shard
from contracts.shard.write import write_shard

__all__ = [
    "ARRAY_NAMES",
    "ARRAY_NDIM",
    "BLOCKS",
    "COLUMNS",
    "CONFIG_DTYPE",
    "MAX_TRIAL_ID",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATUSES",
    "STATUS_DTYPE",
    "Block",
    "BlockInfo",
    "ShapeKey",
    "Shard",
    "ShardError",
    "ShardUnreadable",
    "TrialResult",
    "check_shard_file",
    "check_blocks",
    "checked_blocks",
    "decode_attr",
    "group_by_shape",
    "open_shard",
    "read_attr",
    "read_block",
    "read_shard",
    "shape_key",
    "trial_id_dtype",
    "write_shard",
]
