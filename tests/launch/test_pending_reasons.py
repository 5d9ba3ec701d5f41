"""Pending reasons in `status`, from literal `squeue -o '%i|%T|%r'` text (fast tier).

`squeue` is a real program on PATH that prints the text the test gives it, so what reaches the status is
exactly what SLURM prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from contracts.paths import RunPaths
from grids.grid import grid_from_mapping
from launch.compat import store_grid
from launch.manifest import write_manifest
from launch.reasons import explain
from launch.status import render_status, status_report

TINY = {"name": "tiny", "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                                     "model": {"width": 8}, "train": {"epochs": 1, "T": 2}},
        "sweep": [{"axes": {"seed": [0, 1, 2, 3, 4]}}]}


@pytest.fixture
def run(tmp_path, monkeypatch) -> tuple[RunPaths, list[str], Path]:
    """runs/tiny with one submitted array of 5 one-trial tasks (job 77), and a squeue printing `squeue.out`."""
    grid = grid_from_mapping(json.loads(json.dumps(TINY)), source="tiny.yaml")
    paths = RunPaths.of("tiny", tmp_path / "runs")
    store_grid(grid, paths)
    tasks = {f"k{i}": [t] for i, t in enumerate(grid.trial_ids)}
    write_manifest(paths, {"grid": "tiny", "stamp": "s1", "executor": "slurm", "tasks": tasks,
                           "arrays": [{"job_id": "77", "task_keys": list(tasks)}], "sbatch": {}, "image": None,
                           "python_command": None, "git_sha": "x", "git_dirty": False, "versions": {},
                           "options": {}})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("squeue", "sacct"):
        (bin_dir / name).write_text(f"#!/bin/sh\ncat '{bin_dir}/{name}.out'\n")
        (bin_dir / name).chmod(0o755)
        (bin_dir / f"{name}.out").write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return paths, list(grid.trial_ids), bin_dir / "squeue.out"


SQUEUE = """\
77_0|PENDING|PartitionConfig
77_1|PENDING|PartitionConfig
77_2|PENDING|Priority
77_3|RUNNING|None
77_4|PENDING|QOSMaxWallDurationPerJobLimit
"""


def test_pending_trials_are_counted_by_reason_and_stuck_ones_get_a_hint(run):
    paths, _, squeue_out = run
    squeue_out.write_text(SQUEUE)
    report = status_report("tiny", paths.root)
    assert report.counts["pending"] == 4 and report.counts["running"] == 1
    (array,) = report.arrays
    assert array.reasons == {"PartitionConfig": 2, "Priority": 1, "QOSMaxWallDurationPerJobLimit": 1}
    assert set(report.stuck) == {"PartitionConfig", "QOSMaxWallDurationPerJobLimit"}
    text = render_status(report)
    assert "array 77 pending: PartitionConfig 2 (STUCK: will not start by itself;" in text
    assert "Priority 1" in text and "Priority 1 (STUCK" not in text
    assert "--time" in report.stuck["QOSMaxWallDurationPerJobLimit"]
    assert json.loads(json.dumps(report.to_json()))["arrays"][0]["reasons"]["Priority"] == 1


def test_only_normal_reasons_give_no_stuck_hint(run):
    paths, _, squeue_out = run
    squeue_out.write_text("77_0|PENDING|Resources\n77_1|PENDING|Priority\n77_2|PENDING|QOSMaxJobsPerUserLimit\n")
    report = status_report("tiny", paths.root)
    assert report.arrays[0].reasons == {"Resources": 1, "Priority": 1, "QOSMaxJobsPerUserLimit": 1}
    assert report.stuck == {} and "STUCK" not in render_status(report)


@pytest.mark.parametrize(("reason", "stuck", "flag"), [
    ("Priority", False, ""), ("Resources", False, ""), ("None", False, ""), ("BeginTime", False, ""),
    ("JobArrayTaskLimit", False, ""), ("QOSMaxJobsPerUserLimit", False, ""), ("AssocGrpGRES", False, ""),
    ("PartitionConfig", True, "--partition"), ("PartitionTimeLimit", True, "--time"),
    ("ReqNodeNotAvail", True, "sinfo -R"), ("BadConstraints", True, "--constraint"),
    ("InvalidQOS", True, "--qos"), ("InvalidAccount", True, "--account"), ("JobHeldUser", True, "scontrol release"),
    ("QOSMaxGRESPerJob", True, "--gpus"), ("AssocMaxWallDurationPerJobLimit", True, "--time"),
])
def test_reasons_are_classified(reason, stuck, flag):
    why = explain(reason)
    assert why.stuck is stuck and flag in why.hint
