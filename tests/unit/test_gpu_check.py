"""scripts/gpu-check on a machine without a GPU (these machines have none; CI neither).

The real check needs a GPU node: `bash scripts/gpu-check` there (docs/apptainer.md). Here the script
runs in a subprocess with JAX_PLATFORMS=cpu: without `--allow-cpu` it must refuse (exit 1, saying no
GPU is visible); with `--allow-cpu --quick` it must train both paper-shaped groups through
pc.trials.run_trials on CPU, write shards that contracts.shard.open_shard accepts, and end with a JSON line.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu-check"


def run_script(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu", "PCSWEEP_PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=REPO)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{proc.stderr}"
    return json.loads(lines[-1])


def load_script_module():
    """Import the bash/python script as a module (its shell part is a Python string)."""
    loader = importlib.machinery.SourceFileLoader("pcsweep_gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_script_is_executable():
    assert os.access(SCRIPT, os.X_OK), "chmod +x scripts/gpu-check (the Makefile runs it directly)"


def test_without_a_gpu_it_exits_1_and_says_no_gpu_is_visible():
    proc = run_script()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "NO GPU VISIBLE" in proc.stdout
    assert "docs/troubleshooting.md" in proc.stdout
    result = last_json(proc)
    assert result["ok"] is False and result["error"] == "no GPU visible" and result["platform"] == "cpu"


def test_a_missing_interpreter_is_named():
    proc = run_script(PCSWEEP_PYTHON="/nonexistent/python")
    assert proc.returncode == 2
    assert "no Python found (tried /nonexistent/python)" in proc.stderr
    assert "pip install -e '.[cuda]'" in proc.stderr


def test_synthetic_fashion_mnist_files_are_read_by_pc_data(tmp_path):
    from contracts.config import DataConfig
    from pc.data import load_data

    folder = load_script_module().write_synthetic_fashion_mnist(tmp_path / "fm", n_train=300, n_test=260)
    data = load_data(DataConfig(dataset="fashion_mnist", batch_size=128), folder)
    assert data.train_x.shape == (2, 128, 784) and data.test_x.shape == (2, 128, 784)
    assert data.n_classes == 10
    assert (data.train_y.sum(axis=-1) == 1).all()  # one-hot rows


@pytest.mark.slow
def test_quick_cpu_run_trains_both_groups_and_writes_valid_shards(tmp_path):
    from contracts.shard import open_shard

    proc = run_script("--allow-cpu", "--quick", "--out", str(tmp_path), timeout=600)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert "SYNTHETIC FashionMNIST-shaped data" in proc.stdout
    result = last_json(proc)
    assert result["ok"] is True and result["platform"] == "cpu" and result["fashion_mnist_synthetic"] is True
    for name, n_trials, width in (("moons_w128", 4, 128), ("fmnist_w1024", 2, 1024)):
        group = result[name]
        assert group["width"] == width
        run = group["cold"]
        assert "warm" not in group  # --quick skips the warm rerun
        assert run["trials"] == n_trials and run["failed"] == [] and run["problems"] == []
        assert run["trials_per_s"] > 0
        with open_shard(run["shard"]) as shard:
            assert len(shard.trial_ids) == n_trials
            assert shard.attrs["grid"] == "gpu-check"
            trial = shard.trial(shard.trial_ids[0])
            assert trial.arrays["energy"].shape[:3] == (1, group["batches_per_epoch"], trial.config["train"]["T"] + 1)
