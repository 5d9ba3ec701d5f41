"""bench/search.py end to end at a toy size (width 8, T 2, one epoch, 6 trials per method): about 25 s on 2 CPUs.

What could break without anyone noticing: a method silently missing or short of its budget (run_worker's exact
budget, the Optuna loop, the random and grid paths), the warm reruns compiling after all (then the warm ratio
measures compiles), the cold start not compiling (then `drop_program` no longer empties pc's cache), the
PcsweepTask instrumentation no longer seeing run_worker's training, run roots left behind, a non-JSON last line.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
METHODS = {"tpe_batched", "tpe_batched_small", "tpe_sequential", "random_batched", "grid"}


@pytest.mark.slow
def test_bench_search_tiny_run_has_every_method_at_its_budget(tmp_path):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, str(REPO / "bench" / "search.py"), "--quick", "--budget", "6", "--batch", "3",
                        "--small-batch", "2", "--width", "8", "--epochs", "1", "--T", "2", "--no-variant",
                        "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])  # strict JSON: no NaN
    for key in ("ratio_cpu", "warm_ratio_cpu", "small_batch_ratio_cpu", "ceiling_ratio"):
        assert math.isfinite(last[key]) and last[key] > 0, (key, last[key])
    assert set(last["best_mean"]) == METHODS and last["checkpoints"] == [6]

    results = json.loads((out / "results.json").read_text())
    for method, curves in results["curves"].items():
        assert len(curves) == 1, method  # --quick: one seed
        for curve in curves:
            assert len(curve) == 6, (method, curve)  # every trial COMPLETE (the grid has 2 x 1 x 1 x 3 points)
            assert all(0.0 <= v <= 1.0 for v in curve)
            assert all(a <= b for a, b in zip(curve, curve[1:])), (method, curve)
    cost, warm = results["cost"], results["warm_cost"]
    assert set(warm) == {"tpe_batched", "tpe_batched_small", "tpe_sequential"}
    for method, c in warm.items():
        assert c["compiles"] == 0 and c["trials"] == 6, (method, c)
    for method in warm:
        assert cost[method]["compiles"] > 0, f"{method} did not start cold"
        assert 0 < cost[method]["train_cpu_s"] <= cost[method]["cpu_s"], (method, cost[method])
    assert (out / "search_quality.png").stat().st_size > 10_000
    assert "search.log" in os.listdir(out)
    assert not list(tmp.iterdir()), "run roots left in the temp folder"
