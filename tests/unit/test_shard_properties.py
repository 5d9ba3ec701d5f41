"""Property-based tests (Hypothesis) of the shard contract: whatever trials are written, in whatever mix of
shapes and statuses, reading the shard back gives exactly them (ids, configs, statuses, wall times, every array
bit for bit, NaN padding included)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.config import TrialConfig
from contracts.shard import ARRAY_NAMES, TrialResult, read_shard, write_shard

shapes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.sampled_from([1, 3]))  # E, B, T, L


@st.composite
def trial(draw, seed: int) -> TrialResult:
    E, B, T, L = draw(shapes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dims = {"test_accuracy": (E,), "energy": (E, B, T + 1, L), "energy_var": (E, B, T + 1, L),
            "w_norm": (E, B, 3), "w_grad_norm": (E, B, 3), "w_grad_var": (E, B, 3)}
    arrays = {name: rng.standard_normal(dims[name]).astype(np.float32) for name in ARRAY_NAMES}
    status = draw(st.sampled_from(["ok", "diverged"]))
    if status == "diverged":
        cut = draw(st.integers(0, E * B - 1))
        for name in ARRAY_NAMES[1:]:
            arrays[name].reshape(E * B, -1)[cut:] = np.nan
    cfg = TrialConfig.from_mapping({"seed": seed, "train": {"epochs": E, "T": T}})
    return TrialResult(cfg.trial_id, cfg.to_mapping(), status, draw(st.floats(0, 1e6)), arrays)


trial_lists = st.integers(1, 6).flatmap(lambda n: st.tuples(*[trial(seed) for seed in range(n)]))


@settings(max_examples=40, deadline=None)
@given(trials=trial_lists)
def test_write_then_read_returns_exactly_the_trials(trials):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_shard(Path(tmp) / "s.h5", list(trials), grid="g", task_key="t")
        back = {t.trial_id: t for t in read_shard(path)}
        assert sorted(back) == sorted(t.trial_id for t in trials)
        for t in trials:
            b = back[t.trial_id]
            assert (b.status, b.wall_s, dict(b.config)) == (t.status, t.wall_s, dict(t.config))
            for name in ARRAY_NAMES:
                np.testing.assert_array_equal(b.arrays[name], t.arrays[name])  # NaN == NaN here
                assert b.arrays[name].dtype == np.float32
        assert [p.name for p in Path(tmp).iterdir()] == ["s.h5"]  # no temporary file left
