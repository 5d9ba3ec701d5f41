"""Property-based tests (Hypothesis) of collect: idempotence (a second collect changes nothing) and an
incremental collect equal to a full one, for random shard sets with overlapping trials (newest copy wins)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from collect_cases import GRID, synthetic_trial
from hypothesis import given, settings
from hypothesis import strategies as st

import collect
from contracts.paths import RunPaths
from contracts.shard import write_shard

# each shard: the seeds of its trials (seeds repeat across shards: later copies of a trial must win)
shard_sets = st.lists(st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True), min_size=2, max_size=5)


def _write(root: Path, index: int, seeds: list[int]) -> None:
    trials = [synthetic_trial(s, offset=100.0 * index) for s in seeds]  # copy k of a trial differs from copy j
    write_shard(RunPaths.of(GRID, root).shard(f"s{index}"), trials, grid=GRID, task_key=f"s{index}",
                attrs={"created": f"2026-01-01T00:00:{index:02d}+00:00"})


def _snapshot(root: Path) -> tuple[pd.DataFrame, dict]:
    df = collect.load_summary(GRID, root=root).sort_values("trial_id", kind="stable").reset_index(drop=True)
    arrays = collect.load_arrays(GRID, "energy", list(df["trial_id"]), root=root)
    return df, arrays


@settings(max_examples=8, deadline=None)
@given(shards=shard_sets, split=st.integers(1, 4))
def test_incremental_equals_full_and_a_second_collect_changes_nothing(shards, split):
    split = min(split, len(shards) - 1)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        inc, full = Path(a), Path(b)
        for i, seeds in enumerate(shards[:split]):
            _write(inc, i, seeds)
        collect.collect(GRID, root=inc, progress=False)
        for i, seeds in enumerate(shards[split:], start=split):
            _write(inc, i, seeds)
        collect.collect(GRID, root=inc, progress=False)  # incremental: only the new shards are read
        for i, seeds in enumerate(shards):
            _write(full, i, seeds)
        collect.collect(GRID, root=full, progress=False, rebuild=True)
        (t_inc, a_inc), (t_full, a_full) = _snapshot(inc), _snapshot(full)
        pd.testing.assert_frame_equal(t_inc, t_full)  # the same rows: the same newest copies won
        assert len(t_inc) == len({s for seeds in shards for s in seeds})
        for tid in a_full:
            np.testing.assert_array_equal(a_inc[tid], a_full[tid])
        summary = RunPaths.of(GRID, inc).summary.read_bytes()
        again = collect.collect(GRID, root=inc, progress=False)
        assert RunPaths.of(GRID, inc).summary.read_bytes() == summary
        pd.testing.assert_frame_equal(_snapshot(inc)[0], t_inc)
        assert again.complete == len(t_inc)
