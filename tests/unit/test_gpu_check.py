"""scripts/gpu-check on a machine without a GPU (these machines have none; CI neither).

The real check needs a GPU node: `make gpu-check` there (docs/gpu-check.md); its GPU path has never run. Here
the script runs in a subprocess with JAX_PLATFORMS=cpu: without `--allow-cpu` it must refuse (exit 1, saying no
GPU is visible); with `--allow-cpu --quick` it runs all seven sections on CPU once (a module fixture, ~1-1.5 min
on the 2 shared cores), and each section's printed lines and JSON figures are checked against what the
project's own readers say about the files it wrote (calibration, shards, the planner).
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu-check"
sys.path.insert(0, str(REPO / "scripts"))  # the gpucheck sections (scripts/ is not an installed package)

from gpucheck import common, costs, runs  # noqa: E402 - needs the path above


def run_script(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu", "PCSWEEP_PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=REPO)


def last_json(proc: subprocess.CompletedProcess) -> dict:
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{proc.stderr}"
    return json.loads(lines[-1])


def section_text(stdout: str, number: int) -> str:
    """The lines of one labelled section (up to the next label)."""
    match = re.search(rf"^==== {number}\. .*?(?=^==== )", stdout, re.S | re.M)
    assert match, f"no section {number} in:\n{stdout}"
    return match.group(0)


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
    from pc.datasets import load_data

    folder = common.write_synthetic_fashion_mnist(tmp_path / "fm", n_train=300, n_test=260)
    data = load_data(DataConfig(dataset="fashion_mnist", batch_size=128), folder)
    assert data.train_x.shape == (2, 128, 784) and data.test_x.shape == (2, 128, 784)
    assert data.n_classes == 10
    assert (data.train_y.sum(axis=-1) == 1).all()  # one-hot rows


def test_paper_shapes_are_pc_calibrate_s_shapes_coarse_to_fine():
    from pc.calibrate import default_shapes

    shapes = costs.paper_shapes(quick=False)
    assert sorted(shapes) == sorted(default_shapes(False)) and len(shapes) == len(set(shapes))
    # every family's widest, narrowest and middle width comes before any other width
    first_pass = shapes[: shapes.index("fashion_mnist:pc:128")]
    assert {"fashion_mnist:pc:32", "fashion_mnist:pc:4096", "fashion_mnist:pc:1024", "two_moons:bp:4096",
            "constant:bp:2304"} <= set(first_pass)
    assert not {s for s in first_pass if s.endswith((":128", ":512", ":2048"))}
    assert costs.paper_shapes(quick=True) == ["two_moons:pc:32", "two_moons:bp:32"]


def test_differences_are_relative_to_the_metric_scale_and_infinite_when_one_side_diverged():
    def finals(energy, w_norm, acc):
        values = {name: np.zeros(3) for name in runs.FINAL_METRICS}
        values.update(energy=np.array(energy), w_norm=np.array(w_norm), test_accuracy=np.array([acc]))
        return {"t": values}

    d = runs.differences(finals([1.0, 2.0, 4.0], [1, 1, 1], 0.5), finals([1.0, 2.0, 4.002], [1, 1, 1], 0.75), ["t"])
    assert d["max_abs"] == pytest.approx(0.002) and d["max_rel"] == pytest.approx(0.002 / 4.002)
    assert d["accuracy_max_abs"] == pytest.approx(0.25)  # reported apart, not part of max_abs
    nan = runs.differences(finals([1.0, np.nan, 4.0], [1, 1, 1], 0.5), finals([1.0, 2.0, 4.0], [1, 1, 1], 0.5), ["t"])
    assert nan["max_rel"] == float("inf")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    proc = run_script("--allow-cpu", "--quick", "--out", str(out), timeout=600)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    return proc.stdout, last_json(proc), out


@pytest.mark.slow
def test_quick_cpu_run_says_loudly_it_ran_on_cpu_and_prints_the_sections_in_order(quick_run):
    stdout, result, _ = quick_run
    assert result["ok"] is True and result["cpu_run"] is True and result["platform"] == "cpu"
    assert stdout.count("CPU RUN (--allow-cpu): NO GPU WAS USED") == 2  # at the start and in the summary
    labels = [int(n) for n in re.findall(r"^==== (\d)\. ", stdout, re.M)]
    assert labels == [1, 2, 3, 4, 5, 6, 7, 8]
    assert stdout.index("==== 8.") < stdout.index("==== summary ====")
    assert "PASS" in stdout and result["errors"] == {} and result["problems"] == []
    assert set(result["seconds"]) == {"software", "precision", "calibration", "task", "parity", "memory", "projection",
                                      "search"}


@pytest.mark.slow
def test_section_8_measures_batched_search_against_the_optuna_loop_on_this_device(quick_run):
    stdout, result, out = quick_run
    sr, text = result["search"], section_text(stdout, 8)
    assert sr["device"].startswith("cpu:") and (sr["budget"], sr["batch"]) == (32, 16)  # bench/search.py --quick
    for key in ("ratio_wall", "warm_ratio_wall", "ratio_cpu", "warm_ratio_cpu", "ceiling_ratio", "ceiling_ratio_wall"):
        assert sr[key] > 0, key
    assert sr["group_wall_s_per_trial"] < sr["alone_wall_s_per_trial"]  # a batch is cheaper per trial, even on CPU
    assert sr["meets_goal"] == (sr["warm_ratio_wall"] >= 10)
    assert f"{sr['warm_ratio_wall']}x warm" in text and ("goal 10x" in text)
    assert (out / "search" / "results.json").exists() and (out / "search" / "search_quality.png").exists()
    if not sr["meets_goal"]:
        assert any(w.startswith("section 8: batched search") for w in result["warnings"])


@pytest.mark.slow
def test_section_1_versions_devices_driver_and_ptxas(quick_run):
    stdout, result, _ = quick_run
    sw, text = result["software"], section_text(stdout, 1)
    for pkg in ("jax", "jaxlib", "pcx"):
        assert sw["versions"][pkg] == md.version(pkg)
        assert re.search(rf"^  {pkg} +{re.escape(md.version(pkg))}$", text, re.M)
    assert sw["devices"] == ["cpu:0 cpu"] and sw["device_count"] == 1
    if shutil.which("nvidia-smi") is None:
        assert sw["driver"]["driver_version"] is None and "NVIDIA driver: not found" in text
    ptxas = sw["ptxas"]
    if ptxas["path"] is None:
        assert "ptxas: not found" in text
    else:  # the version printed is the one that ptxas itself reports
        own = subprocess.run([ptxas["path"], "--version"], capture_output=True, text=True).stdout
        assert f"V{ptxas['version']}" in own and f"ptxas {ptxas['version']} at {ptxas['path']}" in text


@pytest.mark.slow
def test_section_2_precision_names_each_setting_and_measures_float32_on_cpu(quick_run):
    stdout, result, _ = quick_run
    pr, text = result["precision"], section_text(stdout, 2)
    assert pr["jax_default_matmul_precision"] == "unset"
    assert "--xla_cpu_use_thunk_runtime=false" in pr["env"]["XLA_FLAGS"] and "XLA_FLAGS=--xla_cpu" in text
    for name, hlo in (("default", "DEFAULT"), ("high", "HIGH"), ("highest", "HIGHEST")):
        m = pr["mapping"][name]
        assert m["hlo_precision"] == [hlo]
        assert 0 < m["relative_error"] < 1e-5 and m["float32"] is True  # CPU: float32 at every setting
        assert f"train.matmul_precision={name}" in text and f"dot precision {hlo};" in text


@pytest.mark.slow
def test_section_3_calibration_file_is_valid_and_printed_as_its_table(quick_run):
    from contracts.calibration import read_calibration
    from pc.calibrate import render_table

    stdout, result, out = quick_run
    cal_figures = result["calibration"]
    assert Path(cal_figures["file"]) == out.resolve() / "runs" / ".calibration" / "cpu.json"
    cal = read_calibration(Path(cal_figures["file"]))  # the planner's reader accepts it
    assert cal.platform == "cpu" and cal.host["source"] == "scripts/gpu-check" and cal.host["quick"] is True
    assert [(s.dataset, s.kind, s.width, [g.n for g in s.groups]) for s in cal.shapes] == [
        ("two_moons", "pc", 32, [2]), ("two_moons", "bp", 32, [2])]
    assert render_table(cal) in section_text(stdout, 3)
    assert [(r["compile_s"], r["trial_epoch_s"]) for r in cal_figures["rows"]] == [
        (g.compile_s, g.trial_epoch_s) for s in cal.shapes for g in s.groups]
    assert all(g.compile_s > 0 and g.trial_epoch_s > 0 for s in cal.shapes for g in s.groups)


@pytest.mark.slow
def test_section_4_two_task_runs_valid_shards_and_the_second_hits_the_cache(quick_run):
    from contracts.shard import open_shard

    stdout, result, _ = quick_run
    task = result["task"]
    want = set(runs.task_grid(quick=True).trial_ids)
    assert [r["run"] for r in task["runs"]] == [1, 2] and task["problems"] == []
    hits = []
    for run in task["runs"]:
        with open_shard(run["shard"]) as shard:
            assert set(shard.trial_ids) == want
            assert shard.attrs["grid"] == "gpu-check-task" and shard.attrs["device_kind"] == "cpu:cpu"
            programs = common.programs_of(shard.attrs)
        assert run["cache_hits"] == sum(p["cache_hits"] for p in programs)
        assert run["compile_s"] == pytest.approx(sum(p["compile_s"] for p in programs), abs=1e-3)
        hits.append(run["cache_hits"])
    assert hits[0] == 0 and hits[1] >= 1 and task["second_run_cache_hits"] == hits[1]
    assert task["runs"][0]["shard"] != task["runs"][1]["shard"]
    assert f"persistent-cache hits {hits[1]}" in section_text(stdout, 4)


@pytest.mark.slow
def test_section_5_parity_says_cpu_against_cpu_and_finds_the_same_bits(quick_run):
    stdout, result, out = quick_run
    par, text = result["parity"], section_text(stdout, 5)
    assert par["cpu_only"] is True and "CPU against CPU" in par["compared"]
    assert "PARITY ON A CPU-ONLY RUN" in text and "it says nothing about a GPU" in text
    assert par["highest"]["tolerance_rel"] == 1e-5 and par["default"]["tolerance_rel"] == 1e-3
    device, cpu = runs.read_finals(out / "parity-device.h5"), runs.read_finals(out / "parity-cpu.h5")
    assert sorted(device) == sorted(cpu) == sorted(c.trial_id for c in runs.parity_configs(quick=True))
    for tid in device:  # same machine, same flags, same group size: the same bits
        for name, value in device[tid].items():
            np.testing.assert_array_equal(value, cpu[tid][name], err_msg=name)
    for p in ("default", "highest"):
        assert par[p]["max_abs"] == 0.0 and par[p]["within"] is True


@pytest.mark.slow
def test_section_6_no_device_peak_on_cpu_and_the_estimates_are_pc_memory_s(quick_run):
    from contracts.calibration import read_calibration
    from pc.memory import per_trial_bytes

    stdout, result, _ = quick_run
    mem = result["memory"]
    assert mem["peak_bytes"] is None and mem["compared"] == 0
    assert "n/a: this device reports no memory statistics" in section_text(stdout, 6)
    assert mem["host_max_rss_bytes"] > 100 * 2**20  # a process that imported jax and trained
    cal = read_calibration(Path(result["calibration"]["file"]))
    want = [g.n * per_trial_bytes(s.dims, s.batch_size, s.T, s.timed_batches) for s in cal.shapes for g in s.groups]
    assert [p["est_bytes"] for p in mem["programs"]] == want


@pytest.mark.slow
def test_section_7_projection_is_the_planner_s_from_the_calibration_just_written(quick_run):
    from contracts.calibration import read_calibration
    from grids.grid import load_grid
    from launch.plan import CostModel, pack_tasks

    stdout, result, _ = quick_run
    proj, text = result["projection"], section_text(stdout, 7)
    grids = proj["grids"]
    assert {g: d["trials"] for g, d in grids.items()} == {
        "propagation": 50_560, "stability": 3_432, "stability_constant_width": 792}
    cal_file = result["calibration"]["file"]
    assert all(d["estimate"] == "calibration" and d["calibration"] == cal_file for d in grids.values())
    # the quick calibration has two-moons shapes only: every FashionMNIST group falls back to the FLOP model
    assert grids["stability_constant_width"]["flop_groups"] == grids["stability_constant_width"]["groups"] == 32
    assert 0 < grids["stability"]["flop_groups"] < grids["stability"]["groups"]
    assert proj["total_device_hours"] == pytest.approx(sum(d["device_hours"] for d in grids.values()), abs=0.02)
    grid = load_grid(REPO / "grids" / "stability.yaml")  # the same plan, made here with the same calibration
    plan = pack_tasks(grid.trials, grid="stability", task_minutes=30.0,
                     cost=CostModel.for_platform("cpu", read_calibration(Path(cal_file))))
    assert grids["stability"]["device_hours"] == pytest.approx(sum(t.est_s for t in plan.tasks) / 3600, abs=0.01)
    assert proj["meets_goal"] is None and "a CPU total says nothing about it" in text
    assert f"Section 5.1 total: {proj['total_device_hours']:,.2f} CPU device-hours" in text
