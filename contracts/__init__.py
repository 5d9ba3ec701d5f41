"""contracts: the shapes every stage shares, written once (docs/design.md sections 2, 4, 5).

- `contracts.config`: the trial config schema, its validation and the trial id;
- `contracts.paths`: the run folder layout and the rule for grid names;
- `contracts.shard`: the HDF5 shard format (writer and reader; h5py and numpy only);
- `contracts.failures`: the `failed/<trial_id>.json` records;
- `contracts.labels`: the `optim` and `condition` labels of the summary table.

No module here imports jax, pandas or submitit, so every stage can use them on a login node.
Import the submodules directly; this `__init__` imports nothing.
"""
