"""Device memory: flat over many groups, a budget less what is in use, an estimate that bounds XLA's buffers,
and groups up to 4096 that give the same bits as small ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pc_cases import BASE, SGD_A, SGD_B

from pc.memory import (
    DEFAULT_MEM_GB,
    MAX_GROUP_ENV,
    MEM_ENV,
    live_bytes,
    max_group_size,
    memory_budget,
    per_trial_bytes,
)
from pc.train import GROUP_SIZES, GroupProgram, chunk_sizes, dims_of, get_program
from pc.trials import TrialFailure, iter_trial_results

TINY_BP = BASE.replace(**{"model.kind": "bp", "train.T": 1, "train.epochs": 1, "data.n_samples": 64})


def _live() -> tuple[int, int]:
    arrays = jax.live_arrays()
    return len(arrays), sum(a.nbytes for a in arrays)


def test_live_arrays_stay_flat_over_many_groups():
    # Each width is its own static group and program; before, every program kept its group's weights
    # and optimizer state alive for the rest of the process.
    list(iter_trial_results([TINY_BP.replace(**{"model.width": 3, "seed": s}) for s in range(3)]))
    after_first = _live()
    for width in (4, 5, 6, 7):
        results = list(iter_trial_results([TINY_BP.replace(**{"model.width": width, "seed": s}) for s in range(3)]))
        assert [r.status for r in results] == ["ok"] * 3
        assert _live() == after_first
    program = get_program(TINY_BP.replace(**{"model.width": 7}), 2, 2, 4)
    assert program.optim_w.state.get() is None and program.model.layers[0].nn.weight.get() is None


def test_a_released_program_is_reused_without_recompiling():
    cfgs = [SGD_A, SGD_B]
    program = get_program(SGD_A, 2, 2, 2)
    list(iter_trial_results(cfgs))
    compiled = program._epoch.wrap_fn._cache_size()
    list(iter_trial_results([c.replace(seed=c.seed + 40) for c in cfgs]))
    assert program._epoch.wrap_fn._cache_size() == compiled == 1


def test_budget_on_cpu_subtracts_the_live_arrays(monkeypatch):
    monkeypatch.delenv(MEM_ENV, raising=False)
    before = memory_budget()
    assert before == DEFAULT_MEM_GB * 2**30 - live_bytes()
    held = jnp.ones((1024, 1024), jnp.float32)  # 4 MiB held by "someone else"
    assert memory_budget() == pytest.approx(before - held.nbytes, abs=4096)
    monkeypatch.setenv(MEM_ENV, "0.5")  # an explicit budget is taken as given
    assert memory_budget() == 0.5 * 2**30
    del held


def test_chunks_pad_small_groups_and_cut_large_ones():
    assert GROUP_SIZES[0] == 2 and GROUP_SIZES[-1] == 4096
    assert chunk_sizes(1, GROUP_SIZES) == [(1, 2)]
    assert chunk_sizes(3, GROUP_SIZES) == [(3, 4)]
    assert chunk_sizes(80, GROUP_SIZES) == [(80, 128)]  # <= 128: always one padded program
    assert chunk_sizes(129, GROUP_SIZES) == [(128, 128), (1, 2)]
    assert chunk_sizes(200, GROUP_SIZES) == [(200, 256)]  # 22% padding
    assert chunk_sizes(1100, GROUP_SIZES) == [(1024, 1024), (76, 128)]
    assert chunk_sizes(9000, GROUP_SIZES) == [(4096, 4096), (4096, 4096), (808, 1024)]
    assert chunk_sizes(5, (2, 4)) == [(4, 4), (1, 2)]
    assert chunk_sizes(3, (1,)) == [(1, 1)] * 3
    for n in range(1, 3000, 7):
        chunks = chunk_sizes(n, GROUP_SIZES)
        assert sum(t for t, _ in chunks) == n and all(t <= s for t, s in chunks)


def _xla_bytes(cfg, d_in, n_classes, n, n_batches) -> int:
    """Arguments + outputs + temporaries of the compiled epoch, less the shared data arrays."""
    program = GroupProgram(cfg, d_in, n_classes, n)
    b = cfg.data.batch_size
    data = [jnp.zeros((n_batches, b, d_in)), jnp.zeros((n_batches, b, n_classes))]
    with program.loaded([cfg.replace(seed=i) for i in range(n)]):
        m = program.lower(jnp.zeros((n, n_batches), jnp.int32), *data, *data).compile().memory_analysis()
    shared = 2 * sum(x.nbytes for x in data)
    return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes - shared


@pytest.mark.parametrize(("cfg", "d_in", "n_classes", "n", "n_batches"), [
    (BASE.replace(**{"train.w_optimizer": "adamw"}), 2, 2, 16, 8),
    (BASE.replace(**{"model.width": 64, "data.batch_size": 64, "train.T": 6}), 20, 10, 4, 4),
    (TINY_BP.replace(**{"model.width": 32}), 2, 2, 8, 2),
], ids=["pc-adamw-w16", "pc-sgd-w64-b64", "bp-w32"])
def test_memory_estimate_bounds_xla_buffers_within_5x(cfg, d_in, n_classes, n, n_batches):
    estimate = n * per_trial_bytes(dims_of(cfg, d_in, n_classes), cfg.data.batch_size, cfg.train.T, n_batches)
    measured = _xla_bytes(cfg, d_in, n_classes, n, n_batches)
    assert measured <= estimate <= 5 * measured, (estimate, measured)


def test_groups_up_to_32_are_bit_identical_and_4096_differs_by_ulps(monkeypatch):
    tiny = BASE.replace(**{"model.width": 3, "train.T": 2, "train.epochs": 2, "data.n_samples": 64})
    cfgs = [tiny.replace(**{"seed": s, "train.h_lr": 0.1 + 0.001 * (s % 50)}) for s in range(4096)]
    picks = (0, 1, 21, 31)
    alone = {i: next(iter_trial_results([cfgs[i]])) for i in picks}  # padded to 2
    monkeypatch.delenv(MAX_GROUP_ENV, raising=False)
    assert max_group_size() == 32  # CPU
    of_32 = {r.trial_id: r for r in iter_trial_results(cfgs[:32])}
    for i in picks:
        for name, value in alone[i].arrays.items():
            np.testing.assert_array_equal(of_32[cfgs[i].trial_id].arrays[name], value, err_msg=name)
    # From 64 on, XLA's CPU code vectorizes over the trial axis: the weights and accuracies stayed the
    # same bits here, the reported energies and gradient statistics moved by a few ulps.
    monkeypatch.setenv(MAX_GROUP_ENV, "4096")
    big = {r.trial_id: r for r in iter_trial_results(cfgs)}
    assert len(big) == 4096
    for i in picks:
        got = big[cfgs[i].trial_id].arrays
        for name, value in alone[i].arrays.items():
            if name in ("w_norm", "test_accuracy"):
                np.testing.assert_array_equal(got[name], value, err_msg=name)
            else:
                np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-12, err_msg=name)


def test_a_bad_max_group_fails_the_trials_naming_the_variable(monkeypatch):
    monkeypatch.setenv(MAX_GROUP_ENV, "lots")
    (failure,) = iter_trial_results([TINY_BP])
    assert isinstance(failure, TrialFailure)
    assert "$PCSWEEP_MAX_GROUP: got 'lots'; expected an integer >= 1" in failure.error
