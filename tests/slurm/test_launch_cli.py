"""Bad grid files and refused relaunches through the real CLI: exit 2, a clear message, nothing sent.

Runs `python -m launch` in a subprocess against the live cluster (sbatch on PATH, so the default
executor is slurm) and checks that neither squeue nor sacct ever sees a job of the grid.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from contracts.paths import RunPaths
from grids.grid import grid_from_mapping
from launch.compat import store_grid

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]


def base_doc(name: str) -> dict:
    return {"name": name,
            "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                         "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
            "sweep": [{"axes": {"seed": [0, 1]}}]}


BAD = {  # case -> (edit of the document, text the error must contain)
    "unknown_key": (lambda d: d["defaults"]["model"].update(widht=8), "defaults.model.widht: unknown key"),
    "wrong_type": (lambda d: d["defaults"]["train"].update(epochs="two"), "train.epochs: got 'two'"),
    "empty_axis": (lambda d: d["sweep"][0]["axes"].update(seed=[]), "sweep[0].axes.seed: empty axis"),
    "negative_lr": (lambda d: d["defaults"]["train"].update(w_lr=-0.1), "train.w_lr: got -0.1"),
    "float_width": (lambda d: d["sweep"][0]["axes"].update({"model.width": [8.5]}), "model.width: got 8.5"),
    "no_dataset": (lambda d: d["defaults"]["data"].update(dataset="cifar10"), "data.dataset: got 'cifar10'"),
}


def jobs_named(name: str) -> str:
    """Every job of `pcsweep-<name>` that squeue or sacct knows (should stay empty)."""
    q = subprocess.run(["squeue", "--me", "-h", "-n", f"pcsweep-{name}"], capture_output=True, text=True, timeout=30)
    a = subprocess.run(["sacct", "-n", "-X", "-S", "now-1hours", "--name", f"pcsweep-{name}", "-o", "JobID"],
                       capture_output=True, text=True, timeout=30)
    return (q.stdout + a.stdout).strip()


def launch_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_grid_file_gives_its_error_exit_2_and_submits_nothing(slurm_cluster, tmp_path, case):
    edit, expected = BAD[case]
    name = f"bad{uuid.uuid4().hex[:6]}"
    doc = base_doc(name)
    edit(doc)
    grid_file = tmp_path / f"{case}.yaml"
    grid_file.write_text(yaml.safe_dump(doc))
    r = launch_cli(str(grid_file), "--root", str(tmp_path / "runs"), "--no-container", "--platform", "cpu",
                   "--gpus", "0")
    assert r.returncode == 2, r.stdout + r.stderr
    assert str(grid_file) in r.stderr and expected in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()
    assert jobs_named(name) == ""


def test_relaunch_that_changes_existing_trials_is_refused_naming_the_key(slurm_cluster, tmp_path):
    name = f"edit{uuid.uuid4().hex[:6]}"
    root = tmp_path / "runs"
    store_grid(grid_from_mapping(base_doc(name), source="first.yaml"), RunPaths.of(name, root))
    changed = base_doc(name)
    changed["defaults"]["model"]["width"] = 16
    grid_file = tmp_path / "changed.yaml"
    grid_file.write_text(yaml.safe_dump(changed))
    r = launch_cli(str(grid_file), "--root", str(root), "--no-container", "--platform", "cpu", "--gpus", "0")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "defaults.model.width" in r.stderr and "--force" in r.stderr
    submissions = RunPaths.of(name, root).submissions_dir
    assert not submissions.exists() or not any(submissions.iterdir())
    assert jobs_named(name) == ""
    assert "width: 8" in RunPaths.of(name, root).grid_yaml.read_text()  # the stored grid is untouched


def test_status_and_cancel_cli_work_on_a_grid_never_launched(slurm_cluster, tmp_path):
    r = launch_cli("status", "nothing-here", "--root", str(tmp_path))
    assert r.returncode == 0 and "nothing submitted yet" in r.stdout
    r = launch_cli("cancel", "nothing-here", "--root", str(tmp_path))
    assert r.returncode == 0 and "cancelled 0 job(s)" in r.stdout
