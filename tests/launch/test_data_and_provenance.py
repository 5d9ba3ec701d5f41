"""Image data found before launching and bound into the image; the launcher's git state and pc's run record
in task shards (issue: the image has no git and sees no host folder it is not given)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from contracts.paths import RunPaths
from contracts.shard import open_shard
from grids.grid import grid_from_mapping
from launch.compat import store_grid
from launch.datacheck import check_data
from launch.dryrun import dry_run, render_dry_run
from launch.options import LaunchOptions
from launch.prepare import prepare_launch
from launch.task import PcsweepTask

FASHION = {"name": "fm", "defaults": {"data": {"dataset": "fashion_mnist", "batch_size": 8, "resize": 4}},
           "sweep": [{"axes": {"seed": [0, 1]}}]}
MOONS = {"name": "moons", "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                                       "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
         "sweep": [{"axes": {"seed": [0, 1]}}]}


def _write_idx(folder: Path, n: int = 16) -> None:
    """The four FashionMNIST IDX files (gzip), tiny and real: what pc.datasets reads."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("t10k", n)):
        images = rng.integers(0, 255, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, count) + labels.tobytes())


def test_image_data_is_found_bound_and_exported(tmp_path, monkeypatch):
    data = tmp_path / "datasets" / "fashion-mnist"
    _write_idx(data)
    monkeypatch.setenv("PCSWEEP_DATA", str(tmp_path / "datasets"))  # the subfolder rule finds fashion-mnist/
    grid = grid_from_mapping(FASHION)
    options = LaunchOptions(root=tmp_path / "runs", executor="slurm", image=str(tmp_path / "p.sif"),
                            partition="gpu", preflight=False)
    plan = prepare_launch(grid, options, max_array_size=10)
    assert plan.data.folders == (str(data.resolve()),) and plan.data.missing == ()
    bind = plan.python.split("--bind ")[1].split()[0].split(",")
    assert str(data.resolve()) in bind and str(plan.paths.root) in bind
    assert plan.environment["PCSWEEP_DATA"] == str(data.resolve())
    assert f"export PCSWEEP_DATA={data.resolve()}" in "\n".join(plan.parameters["setup"])
    text = render_dry_run(dry_run(grid, options))
    assert f"data: {data.resolve()} (bound into the image)" in text
    assert f"--bind {','.join(bind)}" in text  # the sbatch script shows the plan's own command


def test_missing_image_data_is_named_with_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setenv("PCSWEEP_DATA", str(tmp_path / "empty"))
    check = check_data(grid_from_mapping({**FASHION, "defaults": {"data": {"dataset": "mnist"}}}).trials)
    assert check.folders == () and len(check.missing) == 1
    assert "mnist: IDX files" in check.missing[0] and "PCSWEEP_DATA" in check.missing[0]
    assert check.render().startswith("data: MISSING")


def test_no_image_dataset_means_no_data_check(tmp_path):
    check = check_data(grid_from_mapping(MOONS).trials)
    assert check.folders == () and check.missing == () and check.render() == "" and check.environment() == {}


@pytest.fixture
def moons_run(tmp_path):
    grid = grid_from_mapping(MOONS)
    paths = RunPaths.of(grid.name, tmp_path / "runs")
    store_grid(grid, paths)
    return grid, paths


def test_task_shards_carry_the_launchers_git_state_and_pcs_run_record(moons_run):
    grid, paths = moons_run
    PcsweepTask(str(paths.root), grid.name, "k0", tuple(grid.trial_ids), git=("0123abc", False))()
    with open_shard(paths.shard("k0")) as shard:
        attrs = shard.attrs
    assert attrs["git_sha"] == "0123abc" and not attrs["git_dirty"]
    assert attrs["matmul_precision"] == "default"
    assert "--xla_cpu_use_thunk_runtime=false" in attrs["xla_flags"]
    assert float(attrs["compile_s"]) >= 0 and "transposed_w" in attrs


def test_the_git_state_survives_a_requeue(moons_run):
    grid, paths = moons_run
    task = PcsweepTask(str(paths.root), grid.name, "k1", tuple(grid.trial_ids), git=("feed", True))
    assert task.checkpoint().function.git == ("feed", True)
