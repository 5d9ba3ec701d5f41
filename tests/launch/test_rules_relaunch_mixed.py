"""Relaunch planning over run folders launched with more than one executor, and `status --watch` while squeue is
silent (fast tier: `squeue`/`sacct` are stand-in programs on PATH that print the text a test gives them, as in
test_mutants_status; the real scheduler is in tests/slurm).

The bug this file exists to catch (issue 22): with a local launch before or after a SLURM one (mixed executors in
the manifests), squeue was not consulted, so the trials of a still-pending array were submitted again.
"""

from __future__ import annotations

import copy
import os
import stat

import pytest
import test_mutants_status as status_cases
from test_mutants_status import SQUEUE_ARGS, TINY, counts, submit

from contracts.failures import write_failure
from contracts.paths import RunPaths
from grids.grid import grid_from_mapping
from launch.compat import store_grid
from launch.datacheck import check_data
from launch.options import DEFAULT_MAX_ARRAY_SIZE, LaunchOptions, OptionsError
from launch.plan import CostModel, pack_tasks
from launch.preflight import Preflight
from launch.prepare import SubmissionError, only_indices, prepare_launch, queued_trials, select_trials
from launch.status import status_report, watch
from launch.trial_states import LocalProcess, write_local_marker

DEAD = f"local:{os.uname().nodename}:999999999"  # a local launch whose process is gone


# the fixtures of test_mutants_status: stand-in `squeue` and `sacct` first on PATH, and its 4-trial grid stored in a
# run folder
scheduler = status_cases.scheduler
tiny = status_cases.tiny


def live_local(paths, stamp: str) -> str:
    """A local launch whose marker names this (live) process; returns its job id."""
    write_local_marker(paths, stamp, LocalProcess.of(os.getpid()))
    return f"local:{os.uname().nodename}:{os.getpid()}"


@pytest.mark.parametrize("local_first", [True, False])
def test_a_pending_array_is_not_submitted_again_when_a_local_launch_came_before_or_after(tiny, scheduler,
                                                                                       local_first):
    grid, paths = tiny
    ids = grid.trial_ids
    local, array = ("s1", "s2") if local_first else ("s2", "s1")  # manifests are read in stamp order
    submit(paths, local, DEAD, {"l0": [ids[0]]}, executor="local")
    submit(paths, array, "4242", {"k0": [ids[1]], "k1": [ids[2]]})
    scheduler.answer("squeue", "4242_0|PENDING|Priority\n4242_1|PENDING|Priority\n")
    for executor in ("slurm", "local"):
        keep, skipped = select_trials(grid, paths, LaunchOptions(root=paths.root, executor=executor))
        assert scheduler.args("squeue") == SQUEUE_ARGS
        assert [ids[i] for i in keep] == [ids[0], ids[3]], executor  # the dead local launch's trial is lost
        assert skipped == {"done": 0, "queued": 2, "failed": 0}
    assert queued_trials(paths) == {ids[1], ids[2]}


def test_a_live_local_launch_and_a_pending_array_both_hold_their_trials(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "77", {"k0": [ids[0], ids[1]]})
    submit(paths, "s2", live_local(paths, "s2"), {"l0": [ids[2]]}, executor="local")
    scheduler.answer("squeue", "77_0|RUNNING|None\n")  # a single task is submitted as a plain job, not 77_0
    assert queued_trials(paths) == {ids[2]}
    scheduler.answer("squeue", "77|RUNNING|None\n")
    assert queued_trials(paths) == {ids[0], ids[1], ids[2]}
    scheduler.answer("squeue", "")  # the array left the queue: its trials are lost, the local ones still run
    assert queued_trials(paths) == {ids[2]}


def test_array_elements_are_matched_by_index_not_by_job_alone(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", "5", {"k0": [ids[0]], "k1": [ids[1]], "k2": [ids[2], ids[3]]})
    scheduler.answer("squeue", "5_2|RUNNING|None\n5|PENDING|None\n6_0|PENDING|None\n")
    assert queued_trials(paths) == {ids[2], ids[3]}


def test_squeue_silent_blocks_a_relaunch_of_a_mixed_run_folder(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", DEAD, {"l0": [ids[0]]}, executor="local")
    submit(paths, "s2", "9", {"k0": [ids[1]]})
    scheduler.answer("squeue", "", rc=1)
    with pytest.raises(SubmissionError, match=r"^squeue did not answer"):
        select_trials(grid, paths, LaunchOptions(root=paths.root, executor="local"))
    # --force never asks
    assert select_trials(grid, paths, LaunchOptions(root=paths.root, executor="local", force=True)) == (
        [0, 1, 2, 3], {})


def test_only_local_launches_never_ask_squeue(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", DEAD, {"l0": [ids[0]]}, executor="local")
    submit(paths, "s2", live_local(paths, "s2"), {"l1": [ids[1]]}, executor="debug")
    scheduler.answer("squeue", "", rc=1)  # would refuse, were it asked
    assert queued_trials(paths) == {ids[1]} and scheduler.args("squeue") is None


def test_done_queued_and_failed_are_counted_once_each_in_a_mixed_folder(tiny, scheduler):
    grid, paths = tiny
    ids = grid.trial_ids
    submit(paths, "s1", DEAD, {"l0": [ids[0], ids[1]]}, executor="local")
    submit(paths, "s2", "3", {"k0": [ids[1], ids[2]]})
    write_failure(paths, {"trial_id": ids[0], "error": "ValueError: boom"})
    write_failure(paths, {"trial_id": ids[1], "error": "ValueError: boom"})  # failed locally, queued again
    scheduler.answer("squeue", "3|PENDING|Priority\n")  # one task: a plain job
    keep, skipped = select_trials(grid, paths, LaunchOptions(root=paths.root, executor="slurm"))
    assert [ids[i] for i in keep] == [ids[3]] and skipped == {"done": 0, "queued": 2, "failed": 1}


# --- status --watch while squeue is silent --------------------------------------------------------------------

COUNTING_SQUEUE = """#!/bin/sh
n=$(( $(cat "{d}/calls" 2>/dev/null || echo 0) + 1 ))
echo $n > "{d}/calls"
[ $n -le {silent} ] && exit 1
exit 0
"""


def test_watch_keeps_polling_while_squeue_is_silent(tiny, tmp_path, monkeypatch, capsys):
    """A stand-in squeue (a silent controller cannot be made on demand without SLURM) that fails its first two
    calls, then answers with an empty queue: the watch must not return while the queue is unknown."""
    grid, paths = tiny
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, silent in (("squeue", 2), ("sacct", 0)):
        script = bin_dir / name
        script.write_text(COUNTING_SQUEUE.format(d=bin_dir, silent=silent).replace("calls", f"{name}.calls"))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    submit(paths, "s1", "9", {"k0": list(grid.trial_ids)})
    assert status_report("tiny", paths.root).counts == counts(unknown=4)  # the first silent answer
    watch("tiny", paths.root, interval_s=0.01)
    assert (bin_dir / "squeue.calls").read_text().strip() == "3"  # a 2nd silent poll, then the answer
    assert "lost 4" in capsys.readouterr().err


# --- the plan itself ---------------------------------------------------------------------------------------------

def test_a_local_plan_packs_on_the_cpu_cost_model_and_keeps_its_options(tiny):
    grid, paths = tiny
    options = LaunchOptions(root=paths.root, executor="local", task_minutes=1 / 60)
    plan = prepare_launch(grid, options)
    expected = pack_tasks(list(grid.trials), grid="tiny", task_minutes=1 / 60, max_array_size=DEFAULT_MAX_ARRAY_SIZE,
                          cost=CostModel.for_platform("cpu"))
    assert plan.plan == expected and plan.plan.grid == "tiny" and len(plan.plan.tasks) == 4  # a trial per task
    assert plan.options is options and plan.preflight is None and plan.parameters == {}
    assert plan.data == check_data(grid.trials) and plan.sizing.task_minutes == 1 / 60
    big = prepare_launch(grid, LaunchOptions(root=paths.root, executor="local", task_minutes=600))
    assert len(big.plan.tasks) == 1


def test_a_slurm_plan_asks_scontrol_for_the_array_limit_and_keeps_the_verdict(tiny, tmp_path, monkeypatch):
    """A stand-in scontrol (no SLURM in the fast tier) that reports MaxArraySize 2."""
    grid, paths = tiny
    bin_dir = tmp_path / "scontrol-bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 'MaxArraySize            = 2'\n")
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    options = LaunchOptions(root=paths.root, executor="slurm", trials_per_task=1, force=True, container=False)
    verdict = Preflight("p", False, "given")
    plan = prepare_launch(grid, options, verdict=verdict)
    assert plan.sizing.max_array_size == 2 and [len(a) for a in plan.plan.arrays] == [2, 2]
    assert plan.preflight is verdict and plan.options is options and plan.parameters
    expected = pack_tasks(list(grid.trials), grid="tiny", trials_per_task=1, max_array_size=2,
                          cost=CostModel.for_platform("cuda"))
    assert plan.plan == expected
    assert prepare_launch(grid, options, verdict=verdict, max_array_size=3).sizing.max_array_size == 3


def test_a_damaged_calibration_is_named_not_ignored(tiny):
    grid, paths = tiny
    (paths.root / ".calibration").mkdir()
    (paths.root / ".calibration" / "bad.json").write_text("{not json")
    with pytest.raises(OptionsError, match=r"^calibration: .*bad\.json: cannot read a calibration"):
        prepare_launch(grid, LaunchOptions(root=paths.root, executor="local"))


def test_the_run_time_estimate_follows_the_platform_of_the_executor(tmp_path):
    """Trials heavy enough that the estimate tells a CPU from a GPU: a local plan is sized on the CPU model, a
    SLURM plan on CUDA, unless --platform says otherwise."""
    doc = copy.deepcopy(TINY)
    doc["defaults"].update(data={"dataset": "two_moons", "n_samples": 4096, "batch_size": 16},
                           model={"width": 512}, train={"epochs": 50, "T": 2})
    grid = grid_from_mapping(doc, source="heavy.yaml")
    root = tmp_path / "heavy-runs"
    store_grid(grid, RunPaths.of("tiny", root))

    def est(options: LaunchOptions) -> list[float]:
        plan = prepare_launch(grid, options, max_array_size=10, verdict=Preflight("p", False, "given"))
        return [t.est_s for t in plan.plan.tasks]

    def packed(platform: str) -> list[float]:
        return [t.est_s for t in pack_tasks(list(grid.trials), grid="tiny", task_minutes=30, max_array_size=10,
                                            cost=CostModel.for_platform(platform)).tasks]

    assert packed("cpu") != packed("cuda")
    assert est(LaunchOptions(root=root, executor="local")) == packed("cpu")
    assert est(LaunchOptions(root=root, executor="slurm", container=False)) == packed("cuda")
    assert est(LaunchOptions(root=root, executor="local", platform="cuda")) == packed("cuda")


def test_only_ids_are_taken_once_each_in_grid_order():
    grid = grid_from_mapping(copy.deepcopy(TINY))
    first, second, third = grid.trial_ids[:3]
    # given out of order and one twice: each trial once, in grid order (a trial twice would be submitted twice)
    assert only_indices(grid, [third, first, third, second]) == [0, 1, 2]
    assert only_indices(grid, []) == list(range(len(grid.trial_ids)))
    with pytest.raises(OptionsError, match=r"--only nope: not a trial of grid .* \(1 of 2 id\(s\) unknown\)"):
        only_indices(grid, [first, "nope"])
