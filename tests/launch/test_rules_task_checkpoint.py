"""A task's bookkeeping without training (fast tier): which trials it runs, the parts and the shard it writes, the
failure records, and what the time-limit checkpoint keeps and requeues.

`pc.trials.iter_trial_results` is replaced by a stand-in that yields ready-made results group by group, as the real
one does (tests/launch/test_task.py and test_task_groups.py train for real, slowly). The bugs this file exists to
catch (issue 22): a time limit in the middle of a group losing a trial that had already finished (in neither the
shard nor the requeued task), and the checkpoint requeueing a trial that had already raised.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import traceback
import types
from collections.abc import Callable

import pytest
from test_manifest import fake_result

from contracts.config import static_key
from contracts.paths import RunPaths
from contracts.shard import open_shard
from grids.grid import grid_from_mapping
from launch import task as task_mod
from launch.compat import store_grid
from launch.progress import progress_path
from launch.task import (
    TRACEBACK_LINES,
    PcsweepTask,
    TaskError,
    checkpoint_split,
    load_configs,
    main,
    shard_key,
    single_part_is_whole,
)

GRID = {  # two static groups: width 8 (seeds 0-2), then width 12 (seeds 0-2)
    "name": "bookkeeping",
    "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                 "model": {"width": 8}, "train": {"epochs": 2, "T": 2}},
    "sweep": [{"axes": {"model.width": [8, 12], "seed": [0, 1, 2]}}],
}
GIT = ("abc123", True)


# --- the pure rules --------------------------------------------------------------------------------------------

def test_the_checkpoint_settles_finished_and_failed_trials_and_requeues_the_rest_in_task_order():
    ids = ("a", "b", "c", "d", "e")
    assert checkpoint_split(ids, ["d", "a"], ["c"]) == (("a", "c", "d"), ("b", "e"))
    assert checkpoint_split(ids, [], []) == ((), ids)
    assert checkpoint_split(ids, ids, []) == (ids, ())


def test_a_trial_that_raised_is_settled_not_requeued():
    assert checkpoint_split(("a", "b", "c"), [], ["b"]) == (("b",), ("a", "c"))
    assert checkpoint_split(("a", "b"), ["a"], ["b"]) == (("a", "b"), ())


def test_results_of_trials_outside_the_task_change_nothing():
    assert checkpoint_split(("a", "b"), ["x"], ["y"]) == ((), ("a", "b"))
    assert checkpoint_split(("a", "b"), iter(["b"]), iter([])) == (("b",), ("a",))  # any iterable, read once


def test_one_part_is_the_shard_only_when_it_holds_every_finished_trial():
    assert single_part_is_whole([3], 3)
    assert not single_part_is_whole([2], 3)  # a trial finished after the part (the group in flight)
    assert not single_part_is_whole([], 3) and not single_part_is_whole([], 0)
    assert not single_part_is_whole([2, 1], 3) and not single_part_is_whole([3, 0], 3)
    assert not single_part_is_whole([4], 3)


def test_shard_keys_per_attempt():
    assert shard_key("k7", 0) == "k7" and shard_key("k7", 1) == "k7.a1" and shard_key("k7", 12) == "k7.a12"


# --- the task on a stand-in trainer --------------------------------------------------------------------------------

@pytest.fixture
def run(tmp_path, monkeypatch):
    """The grid stored in a run folder, the task's environment restored after the test, and no JAX backend check
    (the stand-in trains nothing)."""
    saved = dict(os.environ)
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID", "PCSWEEP_JOB_ID",
                "PCSWEEP_TASK_LOG", "PCSWEEP_IMAGE_DIGEST"):
        monkeypatch.delenv(key, raising=False)
    import pc.backend

    monkeypatch.setattr(pc.backend, "backend_problem", lambda: None)
    grid = grid_from_mapping(json.loads(json.dumps(GRID)), source="bookkeeping.yaml")
    paths = RunPaths.of(grid.name, tmp_path / "runs")
    store_grid(grid, paths)
    yield grid, paths
    os.environ.clear()
    os.environ.update(saved)


def trainer(monkeypatch, fails: set[str] = frozenset(), after: Callable[[int, object], None] | None = None,
            ghost: bool = False, seen: dict | None = None) -> list[tuple[str, ...]]:
    """Replace pc.trials.iter_trial_results by a stand-in: the configs grouped by static key in order, each group
    announced (on_group), one epoch reported, then its trials yielded (a TrialFailure for those in `fails`).
    `after(k, item)` runs after the k-th item (0-based) was handed to the task; `ghost` announces one more trial
    per group than it yields; `seen` receives the keyword arguments of the call. Returns the groups announced."""
    import pc.trials

    groups: list[tuple[str, ...]] = []

    def stand_in(configs, *, progress=False, on_epoch=None, on_group=None, record=None):
        if seen is not None:
            seen.update(progress=progress, record=record)
        by_key: dict = {}
        for c in configs:
            by_key.setdefault(static_key(c), []).append(c)
        k = 0
        for group in by_key.values():
            ids = tuple(c.trial_id for c in group)
            groups.append(ids)
            on_group(ids + (("ghost",) if ghost else ()))
            on_epoch(0, len(group))
            for c in group:
                if c.trial_id in fails:
                    item = pc.trials.TrialFailure(c.trial_id, c.to_mapping(), "ValueError: boom",
                                                  "Traceback\n  line\nValueError: boom\n")
                else:
                    item = fake_result(c)
                yield item
                if after is not None:
                    after(k, item)
                k += 1

    monkeypatch.setattr(pc.trials, "iter_trial_results", stand_in)
    return groups


def shards(paths: RunPaths) -> dict[str, list[str]]:
    """shard file name -> its trial ids (sorted)."""
    out = {}
    for p in sorted(paths.shards_dir.glob("*.h5")):
        with open_shard(p) as s:
            out[p.name] = sorted(s.trial_ids)
    return out


def test_each_group_is_a_part_then_the_parts_merge_into_one_shard(run, monkeypatch, capsys):
    grid, paths = run
    seen_parts = []
    groups = trainer(monkeypatch, after=lambda k, item: seen_parts.append(sorted(shards(paths))))
    ids = tuple(grid.trial_ids)
    summary = PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT)()
    assert groups == [ids[:3], ids[3:]]
    # after the 3rd trial (the first group's last) its part exists, and no part before it
    assert seen_parts[:3] == [[], [], ["k.g0.h5"]] and seen_parts[5] == ["k.g0.h5", "k.g1.h5"]
    assert summary == {"task_key": "k", "attempt": 0, "shard": str(paths.shard("k")), "done": 6, "failed": 0}
    assert shards(paths) == {"k.h5": sorted(ids)}
    with open_shard(paths.shard("k")) as s:
        assert (s.attrs["task_key"], s.attrs["git_sha"], bool(s.attrs["git_dirty"]), s.attrs["attempt"]) == (
            "k", "abc123", True, 0)
        assert "part" not in s.attrs and s.attrs["job_id"].startswith("local:")
    with open_shard(paths.shards_dir / "k.h5") as s:
        assert s.attrs["grid"] == grid.name
    out = capsys.readouterr().out.splitlines()
    trial_lines = [line for line in out if line.startswith("pcsweep: trial ")]
    assert trial_lines == [f"pcsweep: trial {t} ok in 0.1 s ({i + 1}/6)" for i, t in enumerate(ids)]
    progress = json.loads(progress_path(paths, "k").read_text())
    assert (progress["done"], progress["failed"], progress["finished"], progress["groups"]) == (6, 0, True, 2)
    assert (progress["attempt"], progress["task_key"], progress["trial_epochs_done"]) == (0, "k", 6 * 2)
    assert progress["job_id"] == f"local:{os.uname().nodename}:{os.getpid()}"


def test_parts_carry_their_index_and_the_attempt_key(run, monkeypatch):
    grid, paths = run
    ids = tuple(grid.trial_ids)
    attrs = []
    paths.failed_dir.mkdir(parents=True)
    paths.failed(ids[0]).write_text("{}")  # a stale record: gone as soon as the trial's part is written
    stale = []

    def look(k, item):
        stale.append(paths.failed(ids[0]).exists())
        if k == 5:
            for name in ("k.a2.g0.h5", "k.a2.g1.h5"):
                with open_shard(paths.shards_dir / name) as s:
                    attrs.append((s.attrs["task_key"], s.attrs["part"], s.attrs["attempt"], sorted(s.trial_ids),
                                  s.attrs["grid"]))

    trainer(monkeypatch, after=look)
    summary = PcsweepTask(str(paths.root), grid.name, "k", ids, attempt=2, git=GIT)()
    assert attrs == [("k.a2", 0, 2, sorted(ids[:3]), grid.name), ("k.a2", 1, 2, sorted(ids[3:]), grid.name)]
    assert stale == [True, True, False, False, False, False]
    assert summary["shard"] == str(paths.shard("k.a2")) and shards(paths) == {"k.a2.h5": sorted(ids)}


def test_a_single_group_is_renamed_and_keeps_its_part_attributes(run, monkeypatch):
    grid, paths = run
    trainer(monkeypatch)
    PcsweepTask(str(paths.root), grid.name, "one", tuple(grid.trial_ids[:3]), git=GIT)()
    assert shards(paths) == {"one.h5": sorted(grid.trial_ids[:3])}
    with open_shard(paths.shard("one")) as s:
        assert s.attrs["part"] == 0  # the part itself, renamed, not rewritten


def test_a_second_run_of_an_attempt_never_overwrites_the_first(run, monkeypatch):
    grid, paths = run
    trainer(monkeypatch)
    ids = tuple(grid.trial_ids)
    PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT)()
    PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT)()
    summary = PcsweepTask(str(paths.root), grid.name, "k", ids[:3], git=GIT)()
    assert summary["shard"] == str(paths.shard("k.3"))
    assert shards(paths) == {"k.h5": sorted(ids), "k.2.h5": sorted(ids), "k.3.h5": sorted(ids[:3])}


def test_failures_are_recorded_and_raise_at_the_end_with_the_prior_ones_counted(run, monkeypatch, capsys):
    grid, paths = run
    ids = tuple(grid.trial_ids)
    trainer(monkeypatch, fails={ids[1], ids[4]})
    paths.failed_dir.mkdir(parents=True)
    paths.failed(ids[0]).write_text("{}")  # a stale record of a trial that now finishes
    task = PcsweepTask(str(paths.root), grid.name, "k", ids, attempt=1, prior_failed=("old1",), git=GIT)
    with pytest.raises(TaskError, match=r"^task k: ") as e:
        task()
    assert str(e.value) == (f"task k: 3 of 7 trial(s) raised: old1, {ids[1]}, {ids[4]}; see {paths.failed_dir}/"
                            f"<trial_id>.json (finished trials are in {paths.shard('k.a1')})")
    assert shards(paths) == {"k.a1.h5": sorted(set(ids) - {ids[1], ids[4]})}
    assert sorted(p.stem for p in paths.failed_dir.glob("*.json")) == sorted([ids[1], ids[4]])
    record = json.loads(paths.failed(ids[4]).read_text())
    assert (record["trial_id"], record["task_key"], record["attempt"], record["error"]) == (
        ids[4], "k", 1, "ValueError: boom")
    assert record["traceback_tail"] == "Traceback\n  line\nValueError: boom" and record["log_paths"] == []
    assert record["job_id"].startswith("local:") and record["host"] and record["time"].endswith("+00:00")
    out, err = capsys.readouterr()
    assert f"pcsweep: trial {ids[1]} raised ValueError: boom\nTraceback\n  line\nValueError: boom\n" in err
    assert f"pcsweep: trial {ids[2]} ok in 0.1 s (3/6)" in out.splitlines()  # failed trials count as settled
    assert task._summary(None)["failed"] == 2


def test_a_task_whose_every_trial_raises_names_no_shard_and_lists_five(run, monkeypatch):
    grid, paths = run
    ids = tuple(grid.trial_ids)
    trainer(monkeypatch, fails=set(ids))
    with pytest.raises(TaskError, match=r"^task k: ") as e:
        PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT)()
    assert str(e.value).startswith(f"task k: 6 of 6 trial(s) raised: {', '.join(ids[:5])} ...; see ")
    assert str(e.value).endswith("(finished trials are in no shard)")
    assert not paths.shards_dir.exists() or shards(paths) == {}


def test_five_failures_are_listed_without_an_ellipsis(run, monkeypatch):
    grid, paths = run
    ids = tuple(grid.trial_ids)
    trainer(monkeypatch, fails=set(ids[:5]))
    with pytest.raises(TaskError, match=r"^task k: ") as e:
        PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT)()
    assert str(e.value).startswith(f"task k: 5 of 6 trial(s) raised: {', '.join(ids[:5])}; see ")


def test_a_task_with_prior_failures_only_still_raises(run, monkeypatch):
    grid, paths = run
    trainer(monkeypatch)
    with pytest.raises(TaskError, match=r"^task k: 1 of 4 trial\(s\) raised: old; see "):
        PcsweepTask(str(paths.root), grid.name, "k", tuple(grid.trial_ids[:3]), prior_failed=("old",), git=GIT)()


def test_a_task_without_trials_does_nothing():
    task = PcsweepTask("/nonexistent-root", "g", "k", ())
    assert task() == {"task_key": "k", "attempt": 0, "shard": None, "done": 0, "failed": 0}


def test_a_backend_that_cannot_start_fails_every_trial_with_its_reason(run, monkeypatch, capsys):
    grid, paths = run
    import pc.backend

    monkeypatch.setattr(pc.backend, "backend_problem", lambda: "no GPU here")
    groups = trainer(monkeypatch)
    ids = tuple(grid.trial_ids[:2])
    with pytest.raises(TaskError, match=r"^task k: 2 of 2 trial\(s\) raised: "):
        PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT)()
    assert groups == []  # nothing trained
    assert all(json.loads(paths.failed(t).read_text())["error"] == "no GPU here" for t in ids)
    assert all(json.loads(paths.failed(t).read_text())["traceback_tail"] == "" for t in ids)
    assert "pcsweep: no GPU here" in capsys.readouterr().err.splitlines()


def test_a_bad_pcsweep_setting_fails_every_trial_before_the_backend_is_asked(run, monkeypatch):
    grid, paths = run
    import pc.backend

    monkeypatch.setattr(pc.backend, "environment_problem", lambda: "PCSWEEP_X is bad")
    monkeypatch.setattr(pc.backend, "backend_problem", lambda: pytest.fail("asked the backend"))
    trainer(monkeypatch)
    with pytest.raises(TaskError, match=r"1 of 1 trial\(s\) raised"):
        PcsweepTask(str(paths.root), grid.name, "k", tuple(grid.trial_ids[:1]), git=GIT)()
    assert json.loads(paths.failed(grid.trial_ids[0]).read_text())["error"] == "PCSWEEP_X is bad"


def test_results_never_travel_in_pickles(run, monkeypatch):
    grid, paths = run
    trainer(monkeypatch)
    task = PcsweepTask(str(paths.root), grid.name, "k", tuple(grid.trial_ids), git=GIT)
    task()
    task._pending, task._parts, task._part_sizes, task._group_left = [1], [2], [3], {4}
    task._failed, task._record = ["x"], object()
    copy = pickle.loads(pickle.dumps(task))
    assert (copy._finished, copy._failed, copy._written, copy._pending, copy._parts, copy._part_sizes,
            copy._group_left, copy._record) == ([], [], None, [], [], [], set(), None)
    assert (copy.root, copy.grid, copy.task_key, copy.trial_ids, copy.git) == (
        task.root, task.grid, "k", task.trial_ids, GIT)
    assert task._finished and task._written is not None  # the original keeps its own


# --- the time-limit checkpoint ------------------------------------------------------------------------------------

def interrupt_after(n: int, task_box: list, delayed: list) -> Callable[[int, object], None]:
    """What submitit's USR2 handler does after the n-th settled trial: checkpoint(), then exit."""

    def after(k: int, item: object) -> None:
        if k == n - 1:
            delayed.append(task_box[0].checkpoint())
            raise SystemExit(-1)

    return after


def test_a_time_limit_in_the_middle_of_a_group_keeps_every_finished_trial(run, monkeypatch, capsys):
    grid, paths = run
    ids = tuple(grid.trial_ids)
    box, delayed = [], []
    trainer(monkeypatch, after=interrupt_after(4, box, delayed))  # group 1 done, 1 trial of group 2
    paths.failed_dir.mkdir(parents=True)
    paths.failed(ids[3]).write_text("{}")  # a stale record of the trial that finishes in no part
    box.append(PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT, progress=True))
    with pytest.raises(SystemExit, match="-1"):
        box[0]()
    assert shards(paths) == {"k.h5": sorted(ids[:4])}  # the part merged with the 4th trial, then removed
    assert not paths.failed(ids[3]).exists()
    nxt = delayed[0].function
    assert (nxt.trial_ids, nxt.attempt, nxt.prior_failed, nxt.task_key, nxt.git, nxt.progress) == (
        ids[4:], 1, (), "k", GIT, True)
    assert (nxt.root, nxt.grid) == (box[0].root, grid.name)
    assert "pcsweep: checkpoint of task k attempt 0: 4 finished, 2 requeued" in capsys.readouterr().out


def test_a_trial_finished_but_not_yet_in_a_part_is_kept(run, monkeypatch):
    """The signal lands after a finished trial was counted but before it joined the part in progress."""
    grid, paths = run
    ids = tuple(grid.trial_ids)
    box, delayed = [], []

    def after(k, item):
        if k == 2:  # group 1's part is written; the next trial finishes just as the signal arrives
            box[0]._finished.append(fake_result(grid.trials[3]))
            delayed.append(box[0].checkpoint())
            raise SystemExit(-1)

    trainer(monkeypatch, after=after)
    box.append(PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT))
    with pytest.raises(SystemExit, match="-1"):
        box[0]()
    assert shards(paths) == {"k.h5": sorted(ids[:4])}
    assert delayed[0].function.trial_ids == ids[4:]


def test_the_checkpoint_does_not_requeue_a_trial_that_raised(run, monkeypatch):
    grid, paths = run
    ids = tuple(grid.trial_ids)
    box, delayed = [], []
    trainer(monkeypatch, fails={ids[1], ids[3]}, after=interrupt_after(4, box, delayed))
    box.append(PcsweepTask(str(paths.root), grid.name, "k", ids, attempt=1, prior_failed=("old",), git=GIT))
    with pytest.raises(SystemExit, match="-1"):
        box[0]()
    nxt = delayed[0].function
    assert nxt.trial_ids == ids[4:] and nxt.attempt == 2 and nxt.prior_failed == ("old", ids[1], ids[3])
    assert shards(paths) == {"k.a1.h5": sorted([ids[0], ids[2]])}
    assert paths.failed(ids[1]).exists() and paths.failed(ids[3]).exists()


def test_a_checkpoint_before_any_result_requeues_everything_and_writes_nothing(run, monkeypatch):
    grid, paths = run
    ids = tuple(grid.trial_ids)
    task = PcsweepTask(str(paths.root), grid.name, "k", ids, attempt=3, git=GIT)
    nxt = task.checkpoint().function
    assert nxt.trial_ids == ids and nxt.attempt == 4
    assert not paths.shards_dir.exists() or shards(paths) == {}


def test_a_checkpoint_after_the_shard_is_written_requeues_nothing_and_writes_it_once(run, monkeypatch):
    grid, paths = run
    trainer(monkeypatch)
    ids = tuple(grid.trial_ids)
    task = PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT)
    task()
    assert task.checkpoint().function.trial_ids == ()
    assert shards(paths) == {"k.h5": sorted(ids)}


# --- job ids, log paths, provenance, the CLI ------------------------------------------------------------------

def test_job_ids_from_slurm_the_local_executor_or_this_process(monkeypatch):
    for key in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID", "PCSWEEP_JOB_ID"):
        monkeypatch.delenv(key, raising=False)
    assert task_mod._job_id() == f"local:{os.uname().nodename}:{os.getpid()}"
    monkeypatch.setenv("PCSWEEP_JOB_ID", "local:h:5")
    assert task_mod._job_id() == "local:h:5"
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert task_mod._job_id() == "77"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    assert task_mod._job_id() == "70_0"
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert task_mod._job_id() == "70_3"


def test_log_paths_on_slurm_and_locally(monkeypatch, tmp_path):
    paths = RunPaths.of("g", tmp_path)
    for key in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID", "SLURM_PROCID", "PCSWEEP_TASK_LOG"):
        monkeypatch.delenv(key, raising=False)
    assert task_mod._log_paths(paths) == []
    monkeypatch.setenv("PCSWEEP_TASK_LOG", "/logs/t.log")
    assert task_mod._log_paths(paths) == ["/logs/t.log"]
    monkeypatch.setenv("SLURM_JOB_ID", "9")
    assert task_mod._log_paths(paths) == [str(paths.slurm_dir / "9_0_log.out"), str(paths.slurm_dir / "9_0_log.err")]
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "8")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert task_mod._log_paths(paths) == [str(paths.slurm_dir / "8_2_1_log.out"),
                                          str(paths.slurm_dir / "8_2_1_log.err")]


def test_a_failure_record_keeps_the_last_lines_of_a_traceback_of_any_form(tmp_path, capsys):
    paths = RunPaths.of("g", tmp_path)
    task = PcsweepTask(str(tmp_path), "g", "k", ("t",), attempt=2)
    long_tb = "\n".join(f"line {i}" for i in range(TRACEBACK_LINES + 10)) + "\n"
    task._record_failure(paths, types.SimpleNamespace(trial_id="t1", error=ValueError("bad"), traceback=long_tb))
    record = json.loads(paths.failed("t1").read_text())
    assert record["traceback_tail"].splitlines() == [f"line {i}" for i in range(10, TRACEBACK_LINES + 10)]
    assert record["error"] == "bad" and record["attempt"] == 2
    frames = traceback.extract_stack()[-2:]
    task._record_failure(paths, types.SimpleNamespace(trial_id="t2", error="E", traceback=frames))
    assert json.loads(paths.failed("t2").read_text())["traceback_tail"] == "".join(
        traceback.format_list(frames)).rstrip()
    task._record_failure(paths, types.SimpleNamespace(trial_id="t3", error="E", traceback=None))
    assert json.loads(paths.failed("t3").read_text())["traceback_tail"] == ""
    assert "pcsweep: trial t1 raised bad\nline 0\n" in capsys.readouterr().err


def test_the_device_kind_comes_only_from_a_jax_already_loaded(monkeypatch):
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    assert task_mod._device_kind() == ""
    fake = types.SimpleNamespace(devices=lambda: [types.SimpleNamespace(platform="gpu", device_kind="Fancy GPU")])
    monkeypatch.setitem(sys.modules, "jax", fake)
    assert task_mod._device_kind() == "gpu:Fancy GPU"
    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(devices=lambda: []))
    assert task_mod._device_kind() == ""


def test_the_shard_records_the_image_digest_and_versions(run, monkeypatch):
    grid, paths = run
    trainer(monkeypatch)
    monkeypatch.setenv("PCSWEEP_IMAGE_DIGEST", "sha256:feed")
    PcsweepTask(str(paths.root), grid.name, "k", tuple(grid.trial_ids[:3]), git=GIT)()
    with open_shard(paths.shard("k")) as s:
        assert s.attrs["image_digest"] == "sha256:feed" and "python" in json.loads(s.attrs["versions"])
        assert "compile_s" in s.attrs


def test_configs_of_trials_never_launched_are_refused(run, monkeypatch):
    grid, paths = run
    with pytest.raises(TaskError, match=r"never launched into this run folder") as e:
        load_configs(paths, (grid.trial_ids[0], "f00d"))
    assert str(e.value) == (f"{paths.folder}: 1 trial id(s) of this task were never launched into this run folder "
                            f"(first: f00d): no trial set under {paths.submissions_dir} holds them. Relaunch the "
                            "grid to submit its trials again.")
    assert [c.trial_id for c in load_configs(paths, tuple(reversed(grid.trial_ids[:2])))] == list(
        reversed(grid.trial_ids[:2]))
    notes = types.SimpleNamespace(configs={}, notes=["one note", "another"])
    monkeypatch.setattr(task_mod, "launched_trials", lambda paths, wanted: notes)
    with pytest.raises(TaskError, match=r"\(first: f00d\): one note; another\. Relaunch the grid"):
        load_configs(paths, ("f00d",))


def test_a_launched_config_that_no_longer_validates_is_refused(run, monkeypatch):
    grid, paths = run
    bad = types.SimpleNamespace(configs={"t1": {"model": {"width": -3}}}, notes=[])
    monkeypatch.setattr(task_mod, "launched_trials", lambda paths, wanted: bad)
    with pytest.raises(TaskError, match=r"a launched config no longer validates") as e:
        load_configs(paths, ("t1",))
    assert str(e.value).startswith(f"{paths.submissions_dir}: a launched config no longer validates (")
    assert str(e.value).endswith("); relaunch the grid with this version of pcsweep")


def test_the_cli_runs_one_task_and_exits_1_when_a_trial_raised(run, monkeypatch, capsys):
    grid, paths = run
    ids = grid.trial_ids
    trainer(monkeypatch, fails={ids[4]})
    monkeypatch.setattr(task_mod, "git_state", lambda: GIT)
    args = ["--root", str(paths.root), "--grid", grid.name, "--task-key", "c"]
    assert main([*args, "--attempt", "2", ids[0], ids[1]]) == 0
    out = capsys.readouterr().out
    assert "pcsweep task done: {'task_key': 'c', 'attempt': 2, 'shard': " in out and "'done': 2" in out
    assert main([*args, ids[4]]) == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("pcsweep task failed: task c: 1 of 1 trial(s) raised")


def test_a_group_that_yields_fewer_trials_than_announced_is_kept_when_the_next_begins(run, monkeypatch):
    """A trial id given twice is trained and yielded once: the group never empties, so its finished trials are
    written as a part when the next group is announced, not lost with the group in flight."""
    grid, paths = run
    ids = tuple(grid.trial_ids)
    parts_seen = []
    trainer(monkeypatch, ghost=True, after=lambda k, item: parts_seen.append(sorted(shards(paths))))
    PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT)()
    assert parts_seen[2] == [] and parts_seen[3] == ["k.g0.h5"]
    assert shards(paths) == {"k.h5": sorted(ids)}


def test_the_trainer_gets_the_progress_flag_and_the_run_record(run, monkeypatch):
    grid, paths = run
    from pc.record import RunRecord

    for progress in (True, False):
        seen = {}
        trainer(monkeypatch, seen=seen)
        task = PcsweepTask(str(paths.root), grid.name, f"k{progress}", tuple(grid.trial_ids[:1]), git=GIT,
                           progress=progress)
        task()
        assert seen["progress"] is progress and isinstance(seen["record"], RunRecord)
        assert seen["record"] is task._record


class FlushRecorder:
    """A stdout/stderr that records what each flush pushed out (a task's log lines must reach its log file as they
    are printed: a task killed at its time limit keeps its last lines)."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.pending = ""

    def write(self, text: str) -> int:
        self.pending += text
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.chunks.append(self.pending)
        self.pending = ""


def test_every_log_line_is_flushed_as_it_is_printed(run, monkeypatch):
    grid, paths = run
    ids = tuple(grid.trial_ids)
    out, err = FlushRecorder(), FlushRecorder()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    box, delayed = [], []
    trainer(monkeypatch, fails={ids[0]}, after=interrupt_after(4, box, delayed))
    box.append(PcsweepTask(str(paths.root), grid.name, "k", ids, git=GIT))
    with pytest.raises(SystemExit, match="-1"):
        box[0]()
    import pc.backend

    monkeypatch.setattr(pc.backend, "backend_problem", lambda: "no GPU here")
    with pytest.raises(TaskError, match=r"^task k2: 1 of 1 trial"):
        PcsweepTask(str(paths.root), grid.name, "k2", ids[:1], git=GIT)()
    monkeypatch.undo()
    assert out.pending == "" and err.pending == ""
    assert all(chunk.endswith("\n") and chunk.count("pcsweep: ") == 1 for chunk in out.chunks + err.chunks)
    assert sum("pcsweep: trial " in c and " ok in " in c for c in out.chunks) == 3
    assert any(c.startswith("pcsweep: checkpoint of task k") for c in out.chunks)
    assert any(c.startswith(f"pcsweep: trial {ids[0]} raised") for c in err.chunks)
    assert "pcsweep: no GPU here\n" in err.chunks


def test_shard_attributes_without_a_run_record(monkeypatch):
    monkeypatch.delenv("PCSWEEP_IMAGE_DIGEST", raising=False)
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    attrs = PcsweepTask("/r", "g", "k", ("t",), attempt=3, git=("s", False))._attrs()
    assert set(attrs) == {"git_sha", "git_dirty", "versions", "attempt", "job_id", "device_kind", "image_digest"}
    assert (attrs["git_sha"], attrs["git_dirty"], attrs["attempt"], attrs["device_kind"], attrs["image_digest"]) == (
        "s", False, 3, "", "")


def test_a_failure_without_a_traceback_and_one_indented(tmp_path, monkeypatch, capsys):
    for key in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_PROCID", "PCSWEEP_TASK_LOG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "31")
    paths = RunPaths.of("g", tmp_path)
    task = PcsweepTask(str(tmp_path), "g", "k", ("t",))
    task._record_failure(paths, types.SimpleNamespace(trial_id="t1", error="E"))
    record = json.loads(paths.failed("t1").read_text())
    assert record["traceback_tail"] == "" and record["job_id"] == "31"
    assert record["log_paths"] == [str(paths.slurm_dir / "31_0_log.out"), str(paths.slurm_dir / "31_0_log.err")]
    capsys.readouterr()
    task._record_failure(paths, types.SimpleNamespace(trial_id="t2", error="E", traceback="  File x\nE\n\n"))
    assert capsys.readouterr().err == "pcsweep: trial t2 raised E\n  File x\nE\n"


HELP = ["Run one task in this process (the local executor's subprocess entry).",
        "--root ROOT run root (the folder holding <grid>/)", "--grid GRID grid name",
        "--task-key TASK_KEY task key from the submission manifest", "--attempt ATTEMPT attempt number (0 = first)",
        "--progress show per-trial progress", "trial_ids trial ids of this task"]


def test_the_cli_help_names_every_argument(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "120")
    with pytest.raises(SystemExit, match="0"):
        main(["--help"])
    text = capsys.readouterr().out
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert [h for h in HELP if h not in lines] == []
    assert " ".join(text.split()).startswith(
        "usage: python -m launch.task [-h] --root ROOT --grid GRID --task-key TASK_KEY [--attempt ATTEMPT] "
        "[--progress] trial_ids [trial_ids ...]")


@pytest.mark.parametrize("missing", ["--root", "--grid", "--task-key"])
def test_the_cli_requires_root_grid_and_task_key(missing, capsys):
    args = {"--root": "/r", "--grid": "g", "--task-key": "k"}
    del args[missing]
    with pytest.raises(SystemExit, match="2"):
        main([*(x for kv in args.items() for x in kv), "t1"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"python -m launch.task: error: the following arguments are required: {missing}")
    with pytest.raises(SystemExit, match="2"):
        main(["--root", "/r", "--grid", "g", "--task-key", "k"])
    assert "the following arguments are required: trial_ids" in capsys.readouterr().err


def test_the_cli_passes_progress_and_attempt_0_by_default(run, monkeypatch, capsys):
    grid, paths = run
    monkeypatch.setattr(task_mod, "git_state", lambda: GIT)
    args = ["--root", str(paths.root), "--grid", grid.name, "--task-key", "p", grid.trial_ids[0]]
    for extra, progress in (([], False), (["--progress"], True)):
        seen = {}
        trainer(monkeypatch, seen=seen)
        assert main([*extra, *args]) == 0 and seen["progress"] is progress
        assert "'attempt': 0," in capsys.readouterr().out
