"""The demo pipeline end to end on real trainings: launch (local executor) -> collect -> plots.

Real pcx trainings on CPU JAX, real shards, a real collect and the plots CLI: the figures of a
collected run, not of a synthetic fixture.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from plots import fig_lr_scaling, style
from plots.data import Inputs

REPO = Path(__file__).resolve().parents[2]
DEMO_FIGURES = ["energy_per_t_two_moons", "energy_norms_per_epoch_two_moons", "accuracy-h-lr-optimizers-two_moons",
                "energy-ratios-two_moons", "all_accuracies_two_moons", "lr-scaling-lineplot-two_moons", "coverage"]


@pytest.mark.slow
def test_demo_grid_launch_collect_plots_writes_every_figure(tmp_path):
    import collect
    from grids.grid import load_grid
    from launch.options import LaunchOptions
    from launch.submit import launch

    root = tmp_path / "runs"
    grid = load_grid(REPO / "grids" / "demo.yaml", overrides=["train.epochs=1"])
    submission = launch(grid, LaunchOptions(root=root, executor="local", platform="cpu"))
    assert submission.trials == len(grid.trials) == 32

    report = collect.collect("demo", root, progress=False)
    assert (report.expected, report.complete, report.missing) == (32, 32, [])

    out = subprocess.run([sys.executable, "-m", "plots", "demo", "--root", str(root)], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "constant-layer-size" in out.stdout + out.stderr  # skipped, with its reason, not a crash
    figures = root / "demo" / "figures"
    for stem in DEMO_FIGURES:
        assert (figures / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-", stem
        with Image.open(figures / f"{stem}.png") as im:
            im.verify()
    summary = collect.load_summary("demo", root)
    assert len(summary) == 32 and summary["accuracy"].between(0, 1).all()

    # the LR-scaling lines of real trainings are the means of collect's final accuracies
    style.apply()
    inputs = Inputs.load("demo", root)
    fig = fig_lr_scaling.draw(inputs.summary, inputs.results, "two_moons")
    table = inputs.summary[inputs.summary["accuracy"].notna()]
    for ax, condition in zip(fig.axes, ("pc-sgd-0.9", "pc-adamw-0.9", "bp-sgd-0.9")):
        rows = table[(table["condition"] == condition) & ((table["model.kind"] == "bp") | (table["train.h_lr"] < 0.3))]
        means = rows.groupby(["model.width", "train.h_lr"])["accuracy"].mean().to_numpy()
        if condition.startswith("bp"):  # drawn as a flat segment: each mean twice
            means = np.repeat(means, 2)
        got = np.concatenate([ln.get_ydata() for ln in ax.get_lines() if len(ln.get_xdata()) > 1])
        np.testing.assert_allclose(np.sort(got), np.sort(means), rtol=1e-9)
    plt.close(fig)
