"""Planning: static groups, packing by trials or minutes, array splitting, MaxArraySize."""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path

import pytest

from contracts.config import static_key
from grids.grid import grid_from_mapping, load_grid
from launch.plan import (
    GROUP_OVERHEAD_S,
    MAX_ARRAY_SIZE_FALLBACK,
    _shape,
    estimate_trial_seconds,
    pack_tasks,
    read_max_array_size,
    task_key,
)

GRIDS = Path(__file__).resolve().parents[2] / "grids"


@pytest.fixture(scope="module")
def stability():
    return load_grid(GRIDS / "stability.yaml")


def _check_cover(plan, grid):
    ids = [t for task in plan.tasks for t in task.trial_ids]
    assert sorted(ids) == sorted(grid.trial_ids), "every trial in exactly one task"
    assert plan.trials == len(grid.trials)


_GROUPS: dict = {}


def _group_of(grid):
    if grid.name not in _GROUPS:
        _GROUPS[grid.name] = {tid: static_key(cfg) for tid, cfg in zip(grid.trial_ids, grid.trials)}
    return _GROUPS[grid.name]


def _check_groups(plan, grid):
    """A task mixes static keys only as whole groups; a split group's pieces are alone in their tasks."""
    group = _group_of(grid)
    sizes = collections.Counter(group.values())
    for task in plan.tasks:
        keys = collections.Counter(group[t] for t in task.trial_ids)
        assert task.groups == len(keys)
        if len(keys) > 1:
            for key, n in keys.items():
                assert n == sizes[key], "a task with several groups holds each of them whole"


@pytest.mark.parametrize("per_task", [1, 7, 100, 5000])
def test_trials_per_task_packs_within_capacity(stability, per_task):
    plan = pack_tasks(stability.trials, grid="stability", trials_per_task=per_task, trial_ids=stability.trial_ids)
    _check_cover(plan, stability)
    _check_groups(plan, stability)
    assert all(len(t.trial_ids) <= per_task for t in plan.tasks)
    group = _group_of(stability)
    sizes = collections.Counter(group.values())
    pieces = collections.defaultdict(list)
    for task in plan.tasks:
        for key, n in collections.Counter(group[t] for t in task.trial_ids).items():
            pieces[key].append(n)
    for key, ns in pieces.items():
        assert len(ns) == -(-sizes[key] // per_task), "fewest pieces"
        assert max(ns) - min(ns) <= 1, "pieces of one group are balanced"


def test_default_plan_never_splits_a_small_group_and_groups_by_static_key(stability):
    plan = pack_tasks(stability.trials, grid="stability", trial_ids=stability.trial_ids)
    _check_cover(plan, stability)
    _check_groups(plan, stability)
    assert plan.groups == 64  # 2 datasets x 2 kinds x 8 widths x {sgd, adamw}
    # the stand-in hash used for speed must agree with contracts.config.static_key
    group = _group_of(stability)
    shapes = {(_shape(c), group[t]) for t, c in zip(stability.trial_ids, stability.trials)}
    assert len({s for s, _ in shapes}) == len({k for _, k in shapes}) == len(shapes)


def test_task_minutes_bounds_the_estimated_duration():
    doc = {
        "name": "fm",
        "defaults": {"data": {"dataset": "fashion_mnist", "batch_size": 128}, "model": {"width": 4096}},
        "sweep": [{"axes": {"train.h_lr": [0.01, 0.1, 0.3], "seed": {"range": 10}}},
                  {"set": {"model.width": 64}, "axes": {"seed": {"range": 50}}}],
    }
    grid = grid_from_mapping(doc)
    per_trial = estimate_trial_seconds(grid.trials[0])
    assert per_trial > 10  # width 4096 on fashion_mnist is a heavy trial
    plan = pack_tasks(grid.trials, grid="fm", task_minutes=10, trial_ids=grid.trial_ids)
    _check_cover(plan, grid)
    for task in plan.tasks:
        assert task.est_s <= 600 + 1e-6
    big = [t for t in plan.tasks if t.est_s > 300]
    assert len(big) == -(-30 // int((600 - GROUP_OVERHEAD_S) // per_trial))
    longer = pack_tasks(grid.trials, grid="fm", task_minutes=60, trial_ids=grid.trial_ids)
    assert len(longer.tasks) < len(plan.tasks)


def test_a_single_trial_longer_than_the_target_still_gets_a_task():
    grid = grid_from_mapping({"name": "x",
                              "defaults": {"data": {"dataset": "fashion_mnist"}, "model": {"width": 4096}}})
    plan = pack_tasks(grid.trials, grid="x", task_minutes=0.1, trial_ids=grid.trial_ids)
    assert [len(t.trial_ids) for t in plan.tasks] == [1]


def test_arrays_split_at_max_array_size(stability):
    plan = pack_tasks(stability.trials, grid="stability", trials_per_task=100, max_array_size=7,
                     trial_ids=stability.trial_ids)
    n = len(plan.tasks)
    assert [len(a) for a in plan.arrays] == [7] * (n // 7) + ([n % 7] if n % 7 else [])
    assert [i for a in plan.arrays for i in a] == list(range(n))


def test_plans_and_task_keys_are_deterministic(stability):
    a = pack_tasks(stability.trials, grid="stability", trials_per_task=50)
    b = pack_tasks(stability.trials, grid="stability", trials_per_task=50, trial_ids=stability.trial_ids)
    assert a == b
    assert len({t.task_key for t in a.tasks}) == len(a.tasks)
    ids = a.tasks[0].trial_ids
    assert task_key(ids) == task_key(tuple(reversed(ids))) == a.tasks[0].task_key
    assert a.tasks[0].task_key.startswith("t-") and len(a.tasks[0].task_key) == 18


@pytest.mark.parametrize(
    "kwargs",
    [dict(trials_per_task=1, task_minutes=1), dict(trials_per_task=0), dict(task_minutes=-1), dict(max_array_size=0)],
)
def test_bad_sizing_is_refused(stability, kwargs):
    with pytest.raises(ValueError, match="not both|capacity must be positive|max_array_size must be >= 1"):
        pack_tasks(stability.trials[:3], grid="s", **kwargs)


def test_paper_grids_plan_quickly():
    t0 = time.process_time()
    total = 0
    for name in ("propagation", "stability", "stability_constant_width"):
        grid = load_grid(GRIDS / f"{name}.yaml")
        plan = pack_tasks(grid.trials, grid=name, trial_ids=grid.trial_ids)
        total += sum(len(t.trial_ids) for t in plan.tasks)
        assert max(len(a) for a in plan.arrays) <= MAX_ARRAY_SIZE_FALLBACK
    assert total == 50_560 + 3_432 + 792
    assert time.process_time() - t0 < 10  # bench/launch_scale.py reports the real number (target < 2 s)


def _fake_scontrol(tmp_path: Path, body: str) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "scontrol"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}


def test_max_array_size_falls_back_without_scontrol(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no scontrol
    assert read_max_array_size() == 1001


@pytest.mark.parametrize(
    "body, expected",
    [
        ("echo 'Configuration data as of now'; echo 'MaxArraySize            = 7'; echo 'MaxJobCount = 10000'", 7),
        ("echo 'MaxJobCount = 10000'", 1001),
        ("echo 'MaxArraySize = 7'; exit 1", 1001),
        ("echo 'MaxArraySize = lots'", 1001),
    ],
)
def test_max_array_size_is_read_from_scontrol(tmp_path, monkeypatch, body, expected):
    for k, v in _fake_scontrol(tmp_path, body).items():
        monkeypatch.setenv(k, v)
    assert read_max_array_size() == expected


def test_max_array_size_never_hangs(tmp_path, monkeypatch):
    for k, v in _fake_scontrol(tmp_path, "exec sleep 30").items():
        monkeypatch.setenv(k, v)
    t0 = time.monotonic()
    assert read_max_array_size(timeout_s=0.5) == 1001
    assert time.monotonic() - t0 < 10


def test_plan_groups_state_momentum_on_and_off_apart_as_the_task_will():
    # h_momentum's value is per trial, whether it is on is part of the program: the planner's stand-in for
    # static_key must split the search grid's momentum-0 trials from the others (84 programs, not 42).
    grid = load_grid(GRIDS / "state_init_search.yaml")
    plan = pack_tasks(grid.trials, grid="state_init_search", trial_ids=grid.trial_ids)
    keys = {static_key(c) for c in grid.trials}
    assert plan.groups == len(keys) == 3 * 7 * 2 * 2  # init rule x T x activation x momentum on/off
    shapes = {(_shape(c), static_key(c)) for c in grid.trials}
    assert len({s for s, _ in shapes}) == len(keys) == len(shapes)
