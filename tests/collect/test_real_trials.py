"""collect on a shard from real tiny trials (pc.trials.run_trials: two moons, width 8, one epoch),
with the expected trials read from the run folder's grid.yaml through grids.grid."""

from __future__ import annotations

import numpy as np
import pytest
from collect_cases import GRID

import collect

GRID_YAML = f"""
name: {GRID}
defaults:
  data: {{dataset: two_moons, n_samples: 128, batch_size: 32}}
  model: {{kind: pc, width: 8}}
  train: {{epochs: 1, T: 3, h_lr: 0.1, w_optimizer: sgd, w_lr: 0.01, w_momentum: 0.9}}
  seed: 0
sweep:
  - name: tiny
    axes:
      model.kind: [pc, bp]
      seed: [0, 1]
    by:
      model.kind:
        bp:
          set: {{train.T: 1}}
"""


@pytest.mark.slow
def test_collect_on_real_trials_matches_the_shard_arrays(run):
    from contracts.shard import read_shard
    from grids.grid import load_grid
    from pc.trials import run_trials

    run.paths.grid_yaml.write_text(GRID_YAML)
    grid = load_grid(run.paths.grid_yaml)
    assert len(grid.trials) == 4
    chosen = [t for t in grid.trials if t.model.kind == "pc"] + [t for t in grid.trials if t.model.kind == "bp"][:1]
    failures = run_trials(chosen, run.paths.shard("t0"), grid=GRID, task_key="t0", progress=False)
    assert failures == []
    shard = {r.trial_id: r for r in read_shard(run.paths.shard("t0"))}

    report = collect.collect(GRID, run.root, progress=False)
    assert (report.expected, report.expected_source, report.complete) == (4, "grid.yaml", 3)
    assert report.missing == sorted(set(grid.trial_ids) - set(shard))

    df = collect.load_summary(GRID, root=run.root).set_index("trial_id")
    for tid, r in shard.items():
        row, T = df.loc[tid], r.config["train"]["T"]
        L = r.arrays["energy"].shape[-1]
        assert row["n_layers_energy"] == L == (3 if r.config["model"]["kind"] == "pc" else 1)
        assert row["accuracy"] == pytest.approx(float(r.arrays["test_accuracy"][-1]), rel=1e-7)
        for k in range(L):
            assert np.float32(row[f"energy_{k}"]) == r.arrays["energy"][-1, -1, T - 1, k]
            assert np.float32(row[f"energy_final_{k}"]) == r.arrays["energy"][-1, -1, T, k]
            assert np.float32(row[f"energy_var_{k}"]) == r.arrays["energy_var"][-1, -1, T - 1, k]
        for k in range(3):
            for m in ("w_norm", "w_grad_norm", "w_grad_var"):
                assert np.float32(row[f"{m}_{k}"]) == r.arrays[m][-1, -1, k]
        if L == 3:
            e = r.arrays["energy"][-1, -1, T - 1].astype(np.float64)
            assert row["energy_ratio_0/1"] == pytest.approx(e[0] / (e[1] + 1e-32), rel=1e-12)
            assert row["energy_ratio_1/2"] == pytest.approx(e[1] / (e[2] + 1e-32), rel=1e-12)
        else:
            assert np.isnan(row["energy_ratio_0/1"])
        loaded = collect.load_trial(GRID, tid, root=run.root)
        for name, arr in r.arrays.items():
            np.testing.assert_array_equal(loaded.arrays[name], arr)
