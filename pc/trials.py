"""Run many trials: group them by static shape, train each group in one program, write shards.

This is what a launch task calls. `iter_trial_results` yields each trial's `TrialResult` as its
group finishes (or a `TrialFailure` for each trial of a group that raised); `run_trials` trains
everything and writes one shard. Seeds: each trial owns `px.RandomKeyGenerator(seed)` for its
weights and `random.Random(seed)` for its batch order (the batch-index list is shuffled in place at
the start of every epoch, cumulatively, as the paper's `random.shuffle(train_dl)` did).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
import traceback as tb
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts.config import ConfigError, TrialConfig, static_key, trial_id
from contracts.provenance import run_provenance
from contracts.shard import TrialResult, write_shard
from pc.early_stop import epochs_to_train
from pc.memory import max_group_size, memory_budget
from pc.record import ProgramRun, RunRecord

_ARRAYS_EB = ("energy", "energy_var", "w_norm", "w_grad_norm", "w_grad_var")  # [E, B, ...]


@dataclass(frozen=True)
class TrialFailure:
    """A trial whose group raised (bad data files, a bug, out of memory): not a result."""

    trial_id: str
    config: dict  # the full config mapping
    error: str  # "ExceptionType: message"
    traceback: str  # tail of the traceback


def _as_config(c: TrialConfig | Mapping) -> TrialConfig:
    return c if isinstance(c, TrialConfig) else TrialConfig.from_mapping(c)


def _failure(cfg: TrialConfig | Mapping, exc: BaseException) -> TrialFailure:
    mapping = cfg.to_mapping() if isinstance(cfg, TrialConfig) else dict(cfg)
    tail = "".join(tb.format_exception(exc))[-4000:]
    return TrialFailure(trial_id(mapping), mapping, f"{type(exc).__name__}: {exc}", tail)


def iter_trial_results(
    configs: Sequence[TrialConfig | Mapping],
    *,
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
    on_epoch: Callable[[int, int], None] | None = None,
    record: RunRecord | None = None,
    on_group: Callable[[tuple[str, ...]], None] | None = None,
) -> Iterator[TrialResult | TrialFailure]:
    """Train all trials, yielding each result as its group finishes; never raises for a trial.

    Trials with equal `contracts.config.static_key` train together, cut and padded to sizes in
    `pc.train.GROUP_SIZES` (`pc.train.chunk_sizes`) up to `pc.memory.max_group_size()` (32 on CPU,
    4096 on a GPU, $PCSWEEP_MAX_GROUP), capped by the memory budget (`pc.memory`: $PCSWEEP_GROUP_MEM_GB,
    else 4 GiB on CPU or half a GPU, less the memory in use). Each group's
    arrays are released when it ends. One line per group goes to stderr (program, size, compile and
    train seconds). A trial id given twice is trained and yielded once.

    Args:
        configs: trial configs (TrialConfig or nested mappings; an invalid mapping yields a failure).
        data_dir: folder with image IDX files (see `pc.datasets.load_data`).
        progress: show a tqdm bar over trial-epochs.
        on_epoch: called as on_epoch(epoch, n_trials) after every epoch of every group.
        on_group: called with the trial ids of a group (one program's chunk) before it compiles and trains;
            its results follow its last epoch (a launch task writes each finished group to its own shard).
        record: filled with how the groups ran (`pc.record.RunRecord`, for the shard's attributes).
    Yields:
        `contracts.shard.TrialResult` (status ok | diverged) or `TrialFailure`.
    """
    from tqdm.auto import tqdm

    groups: dict[str, list[TrialConfig]] = {}
    seen: set[str] = set()
    for c in configs:
        try:
            cfg = _as_config(c)
        except ConfigError as e:
            yield _failure(c, e)
            continue
        if cfg.trial_id in seen:  # the same trial twice: train and yield it once
            continue
        seen.add(cfg.trial_id)
        groups.setdefault(static_key(cfg), []).append(cfg)
    total = sum(len(g) * g[0].train.epochs for g in groups.values())
    bar = tqdm(total=total, unit="trial-epoch", disable=not progress, dynamic_ncols=True)
    try:
        for group in groups.values():
            yield from _run_group(group, data_dir, bar, on_epoch, record if record is not None else RunRecord(),
                                  on_group)
    finally:
        bar.close()


def _run_group(group, data_dir, bar, on_epoch, record: RunRecord,
               on_group=None) -> Iterator[TrialResult | TrialFailure]:
    # jax and pcx load here, not at the top: `python -m pc --help` and the task's start stay fast
    from pc import compile_cache

    compile_cache.install()  # before pcx, whose import already compiles (its random key)
    import pcx as px

    from pc import train
    from pc.datasets import load_data
    from pc.precision import jax_default_precision

    record.jax_default_matmul_precision = jax_default_precision()

    try:
        ds = load_data(group[0].data, data_dir)
        data = _device_data(ds)
        sizes = train.group_sizes(group[0], ds.d_in, ds.n_classes, memory_budget(),
                                  n_batches=ds.train_x.shape[0], max_size=max_group_size())
    except Exception as e:  # noqa: BLE001 - every trial of the group fails with the same cause
        for cfg in group:
            yield _failure(cfg, e)
        bar.update(len(group) * group[0].train.epochs)
        return
    start = 0
    for n_trials, n in train.chunk_sizes(len(group), sizes):
        chunk, start = group[start : start + n_trials], start + n_trials
        rkg_state, rkg_value = px.RKG.key, px.RKG.key.get()
        if on_group is not None:
            on_group(tuple(c.trial_id for c in chunk))
        try:
            yield from _run_chunk(chunk, n, ds, data, bar, on_epoch, record)
        except Exception as e:  # noqa: BLE001 - a failed chunk fails its trials, never the task
            # A pcx transform that raises leaves a tracer in the global key: restore it, and
            # forget the program whose objects saw the failed trace.
            px.RKG.key = rkg_state
            rkg_state.set(rkg_value)
            train.drop_program(chunk[0], ds.d_in, ds.n_classes, n)
            for cfg in chunk:
                yield _failure(cfg, e)


def _device_data(ds) -> dict[str, Any]:
    import jax.numpy as jnp

    key = id(ds)
    if _DATA_CACHE.get("key") != key:
        _DATA_CACHE.clear()
        _DATA_CACHE.update(key=key, ds=ds, arrays={k: jnp.asarray(getattr(ds, k)) for k in
                                                   ("train_x", "train_y", "test_x", "test_y")})
    return _DATA_CACHE["arrays"]


_DATA_CACHE: dict[str, Any] = {}


def _run_chunk(chunk, n, ds, data, bar, on_epoch, record: RunRecord) -> Iterator[TrialResult]:
    from pc import train
    from pc.compile_time import measure_compile

    t0 = time.perf_counter()
    padded = list(chunk) + [chunk[-1]] * (n - len(chunk))
    with measure_compile() as meter:
        program = train.get_program(chunk[0], ds.d_in, ds.n_classes, n)
        with program.loaded(padded):
            per_epoch, accs, trained = _train_epochs(program, chunk, padded, ds, data, bar, on_epoch)
    train_s = time.perf_counter() - t0
    run = ProgramRun(hashlib.sha256(static_key(chunk[0]).encode()).hexdigest()[:12], n, len(chunk),
                     round(meter.seconds, 3), meter.cache_hits, round(train_s, 3), program.precision,
                     program.transpose_choice.use)
    record.programs.append(run)
    record.transposed[program.transpose_choice.shape] = program.transpose_choice.as_dict()
    print(f"pcsweep: group {run.program} ({chunk[0].data.dataset}, width {chunk[0].model.width}, "
          f"{chunk[0].model.kind}): {len(chunk)} trial(s) in a program of {n}; compile {meter.seconds:.1f} s"
          f"{' (cache hit)' if meter.cache_hits else ''}; total {train_s:.1f} s", file=sys.stderr, flush=True)
    wall_s = train_s / len(chunk)
    for i, cfg in enumerate(chunk):
        arrays = {k: np.stack([m[k][i] for m in per_epoch]).astype(np.float32) for k in _ARRAYS_EB}
        arrays["test_accuracy"] = np.array([a[i] for a in accs], np.float32)
        status = _mark_divergence(arrays, trained[i])
        yield TrialResult(cfg.trial_id, cfg.to_mapping(), status, wall_s, arrays)


def _train_epochs(program, chunk, padded, ds, data, bar,
                  on_epoch) -> tuple[list[dict], list[np.ndarray], list[int]]:
    """Every epoch of one loaded chunk; stops computing once every real trial has diverged or stopped early.

    Returns the per-epoch metrics and accuracies of the whole program, and per real trial the epochs it
    trained (`train.early_stop`, `pc.early_stop`: the epochs after its stop do not count).
    """
    n = len(padded)
    n_batches, epochs = ds.train_x.shape[0], chunk[0].train.epochs
    orders = np.stack([batch_orders(c.seed, n_batches, epochs) for c in padded], axis=1)  # [E, n, B]
    per_epoch, accs = [], []
    diverged = np.zeros(n, bool)
    trained = [epochs] * len(chunk)
    done = np.zeros(len(chunk), bool)
    for epoch in range(epochs):
        if (diverged[: len(chunk)] | done).all():  # nothing left to learn: skip the compute
            metrics = {k: np.full_like(v, np.nan) for k, v in per_epoch[-1].items()}
            acc = np.full(n, np.nan, np.float32)
        else:
            metrics, acc = program.epoch(orders[epoch], data, epoch)
            bad = np.zeros(n, bool)
            for v in metrics.values():
                bad |= ~np.isfinite(v.reshape(n, -1)).all(axis=1)
            diverged |= bad
        per_epoch.append(metrics)
        accs.append(acc)
        for i, cfg in enumerate(chunk):
            if cfg.train.early_stop and not done[i]:
                stop = epochs_to_train([a[i] for a in accs])
                if stop is not None:
                    trained[i], done[i] = stop, True
        bar.update(len(chunk))
        if on_epoch is not None:
            on_epoch(epoch, len(chunk))
    return per_epoch, accs, trained


def batch_orders(seed: int, n_batches: int, epochs: int) -> np.ndarray:
    """[epochs, n_batches]: the k-th batch index trained in each epoch.

    One `random.Random(seed)` shuffles one list of batch indices in place at the start of every
    epoch (cumulative), as the paper's `random.shuffle(train_dl)` did, but seeded.
    """
    rng, order, out = random.Random(seed), list(range(n_batches)), []
    for _ in range(epochs):
        rng.shuffle(order)
        out.append(list(order))
    return np.asarray(out, dtype=np.int32)


def _mark_divergence(arrays: dict[str, np.ndarray], trained_epochs: int | None = None) -> str:
    """NaN-pad every array from the first batch with a NaN/inf metric; return ok | diverged.

    trained_epochs: epochs the trial trained (fewer when it stopped early): later epochs become NaN and do not
    count as a divergence.
    """
    e, b = arrays["energy"].shape[:2]
    if trained_epochs is not None and trained_epochs < e:
        for k in _ARRAYS_EB:
            arrays[k][trained_epochs:] = np.nan
        arrays["test_accuracy"][trained_epochs:] = np.nan
        e = trained_epochs
    finite = np.ones(e * b, bool)
    for k in _ARRAYS_EB:
        finite &= np.isfinite(arrays[k][:e].reshape(e * b, -1)).all(axis=1)
    if finite.all():
        return "ok"
    first = int(np.argmin(finite))
    for k in _ARRAYS_EB:
        flat = arrays[k].reshape(-1, *arrays[k].shape[2:])
        flat[first:] = np.nan
    arrays["test_accuracy"][first // b :] = np.nan
    return "diverged"


def provenance() -> dict[str, Any]:
    """Shard attributes: package versions (JSON), device kind, XLA flags, git sha and dirty flag
    (`contracts.provenance.run_provenance` for the device these trials run on)."""
    import jax

    return run_provenance(jax.devices()[0])


def run_trials(
    configs: Sequence[TrialConfig | Mapping],
    shard_path: str | os.PathLike,
    *,
    grid: str = "",
    task_key: str = "",
    attrs: Mapping | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[TrialFailure]:
    """Train all trials and write their results to one shard (atomically); return the failures.

    The shard's attributes hold `provenance()` (versions, device kind, git sha) and how the trials ran
    (`pc.record.RunRecord.attributes`: matmul precision, XLA flags, compile seconds, transposed-weight
    choices), updated by `attrs`.
    """
    results, failures, record = [], [], RunRecord()
    for r in iter_trial_results(configs, data_dir=data_dir, progress=progress, record=record):
        (failures if isinstance(r, TrialFailure) else results).append(r)
    write_shard(shard_path, results, grid=grid, task_key=task_key,
                attrs={**provenance(), **record.attributes(), **(attrs or {})})
    return failures


__all__ = ["TrialFailure", "batch_orders", "iter_trial_results", "provenance", "run_trials"]
