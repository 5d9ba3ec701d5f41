"""--dry-run and the sbatch text: golden files, task environment, python command, options."""

from __future__ import annotations

import dataclasses
import difflib
import json

import numpy as np
import pytest
from golden_cases import GOLDEN, ROOT, golden_texts, gpu_options

from contracts.paths import RunPaths
from contracts.shard import TrialResult, write_shard
from grids.grid import dump_grid, load_grid
from launch.dryrun import dry_run, render_dry_run
from launch.options import LaunchOptions, OptionsError
from launch.sbatch import CODE_ROOT, executor_parameters, python_command, task_environment

GRIDS = CODE_ROOT / "grids"


@pytest.mark.parametrize("name", ["dry_run_demo.txt", "sbatch_demo_apptainer.sh", "sbatch_demo_cpu.sh"])
def test_rendered_text_matches_its_golden_file(name):
    """Compare only; after an intended change, `make golden` re-records (tests/launch/golden_cases.py)."""
    want = (GOLDEN / name).read_text()
    text = golden_texts()[name]
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), f"golden/{name}", "now"))
        pytest.fail(f"{name} differs from the golden file:\n{diff}\nIf the change is intended: make golden")


@pytest.fixture(scope="module")
def demo():
    return load_grid(GRIDS / "demo.yaml")


def test_dry_run_json_has_the_counts_and_plan(demo):
    d = dry_run(demo, gpu_options())
    data = json.loads(json.dumps(dataclasses.asdict(d), default=str))
    assert data["trials"] == 32 and data["tasks"] == 10
    assert [a["tasks"] for a in data["arrays"]] == [5, 5] and sum(a["trials"] for a in data["arrays"]) == 32
    assert data["sample"][0]["trial_id"] == demo.trial_ids[0]
    assert "#SBATCH --array=0-4%2" in data["sbatch"]
    assert data["parameters"]["job_name"] == "pcsweep-demo"


def test_only_restricts_the_plan_and_unknown_ids_are_named(demo):
    picked = demo.trial_ids[3:5]
    d = dry_run(demo, gpu_options(only=picked))
    assert d.trials == 2 and d.grid_trials == 32 and {s["trial_id"] for s in d.sample} == set(picked)
    with pytest.raises(OptionsError, match="--only ffffffffffffffff: not a trial of grid 'demo'"):
        dry_run(demo, gpu_options(only=("ffffffffffffffff",)))


def test_local_dry_run_has_no_sbatch_and_no_forced_platform(demo):
    d = dry_run(demo, LaunchOptions(root=ROOT, executor="local", jobs=2))
    assert d.sbatch == "" and d.parameters == {} and "JAX_PLATFORMS" not in d.environment
    assert "dry run: nothing was submitted" in render_dry_run(d)


def test_task_environment():
    paths = RunPaths.of("g", ROOT)
    env = task_environment(LaunchOptions(root=ROOT), paths)
    assert env == {
        "JAX_PLATFORMS": "cuda",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "JAX_COMPILATION_CACHE_DIR": "/scratch/runs/.jax_cache",
        "HDF5_USE_FILE_LOCKING": "FALSE",
    }
    assert task_environment(LaunchOptions(root=ROOT, platform="cpu"), paths)["JAX_PLATFORMS"] == "cpu"
    local_cuda = LaunchOptions(root=ROOT, executor="local", platform="cuda")
    assert task_environment(local_cuda, paths)["JAX_PLATFORMS"] == "cuda"


def test_python_command_binds_root_and_code_and_never_cleans_env():
    paths = RunPaths.of("g", ROOT)
    cmd = python_command(LaunchOptions(root=ROOT, image="/img/p.sif"), paths)
    assert cmd == f"apptainer exec --nv --bind /scratch/runs,{CODE_ROOT} /img/p.sif python"
    assert "--nv" not in python_command(LaunchOptions(root=ROOT, image="/img/p.sif", gpus=0), paths)
    assert python_command(LaunchOptions(root=ROOT), paths) is None
    assert python_command(LaunchOptions(root=ROOT, container=False), paths) is None
    assert "cleanenv" not in cmd


def test_executor_parameters_are_valid_for_submitit():
    from submitit.slurm.slurm import _get_default_parameters, _make_sbatch_string

    options = gpu_options(account="proj", qos="high", constraint="a100", mem_gb=1.5)
    params = executor_parameters(options, "demo", RunPaths.of("demo", ROOT))
    assert set(params) <= set(_get_default_parameters())
    assert params["mem"] == "1536MB" and params["gpus_per_node"] == 1 and params["array_parallelism"] == 2
    text = _make_sbatch_string(command="true", folder="/tmp/x", **params)
    for flag in ("--account=proj", "--qos=high", "--constraint=a100", "--mail-type=END", "--time=30",
                 "--partition=gpu"):
        assert f"#SBATCH {flag}" in text
    assert "gpus_per_node" not in executor_parameters(gpu_options(gpus=0), "demo", RunPaths.of("demo", ROOT))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(trials_per_task=3, task_minutes=5), "--trials-per-task and --task-minutes"),
        (dict(executor="debug"), "--only TRIAL_ID"),
        (dict(executor="cluster"), "--executor"),
        (dict(image="x.sif", container=False), "--no-container"),
        (dict(sbatch={"time": "10"}), "--sbatch time=10: time is set by --time"),
        (dict(sbatch={"cpus_per_task": "2"}), "set by --cpus"),
        (dict(sbatch={"bad key": "1"}), "sbatch long option"),
        (dict(time_min=0), "--time"),
        (dict(mem_gb=0), "--mem"),
        (dict(platform="tpu"), "--platform"),
    ],
)
def test_contradictory_options_are_refused(kwargs, message):
    with pytest.raises(OptionsError, match=message.replace("(", r"\(")):
        LaunchOptions(root=ROOT, **kwargs)


def test_default_task_size_is_half_the_time_limit():
    assert LaunchOptions(root=ROOT, time_min=120).task_sizing() == (None, 60.0)
    assert LaunchOptions(root=ROOT, trials_per_task=9).task_sizing() == (9, None)


def test_relaunch_dry_run_plans_only_missing_trials(demo, tmp_path):
    """With a real complete shard for 5 trials, the dry run plans the other 27 and says why."""
    paths = RunPaths.of("demo", tmp_path)
    shapes = {"test_accuracy": (2,), "energy": (2, 8, 9, 3), "energy_var": (2, 8, 9, 3),
              "w_norm": (2, 8, 3), "w_grad_norm": (2, 8, 3), "w_grad_var": (2, 8, 3)}
    done = [
        TrialResult(tid, cfg.to_mapping(), "ok", 0.1, {k: np.zeros(s, np.float32) for k, s in shapes.items()})
        for tid, cfg in zip(demo.trial_ids[:5], demo.trials[:5])
    ]
    write_shard(paths.shard("t-done"), done, grid="demo", task_key="t-done")
    d = dry_run(demo, LaunchOptions(root=tmp_path, executor="local", trials_per_task=100))
    assert d.trials == 27 and d.skipped["done"] == 5
    assert "27 to run; skipped: 5 done" in render_dry_run(d)
    forced = dry_run(demo, LaunchOptions(root=tmp_path, executor="local", force=True))
    assert forced.trials == 32


def test_dry_run_warns_when_launch_would_refuse_the_grid(demo, tmp_path):
    paths = RunPaths.of("demo", tmp_path)
    paths.folder.mkdir(parents=True)
    stored = load_grid(GRIDS / "demo.yaml", ["train.epochs=1"])
    paths.grid_yaml.write_text(dump_grid(stored))
    d = dry_run(demo, LaunchOptions(root=tmp_path, executor="local"))
    assert d.conflict and "32 trial(s) already launched" in d.conflict
    assert render_dry_run(d).startswith("WARNING: ")
    assert dry_run(stored, LaunchOptions(root=tmp_path, executor="local")).conflict is None
    assert dry_run(demo, LaunchOptions(root=tmp_path, executor="local", force=True)).conflict is None
