"""Trial sets (contracts.trialset, grids.launched): what a launch sent is read back by every stage after it, and a
trial that no grid file holds trains, relaunches and is expected like any other."""

from __future__ import annotations

import json

import pytest

from collect.expected import expected_trial_ids
from contracts.config import TrialConfig
from contracts.paths import RunPaths
from contracts.shard import open_shard
from contracts.trialset import (
    TrialSetError,
    read_trial_set,
    read_trial_sets,
    trial_set_files,
    trial_set_path,
    write_trial_set,
)
from grids.grid import grid_from_mapping
from grids.launched import launched_trials
from launch.compat import grid_conflict, store_grid
from launch.options import LaunchOptions
from launch.status import render_status, status_report
from launch.submit import launch
from launch.task import PcsweepTask, TaskError, load_configs

TINY = {
    "name": "sets",
    "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                 "model": {"width": 6}, "train": {"epochs": 1, "T": 2}},
    "sweep": [{"axes": {"seed": [0, 1, 2]}}],
}


@pytest.fixture
def grid():
    return grid_from_mapping(TINY, source="sets.yaml")


@pytest.fixture
def paths(tmp_path, grid):
    return RunPaths.of(grid.name, tmp_path / "runs")


def _configs(grid):
    return [c.to_mapping() for c in grid.trials]


# --- the format and its reader ----------------------------------------------------------------------------------

def test_a_trial_set_reads_back_the_configs_it_was_given(paths, grid):
    path = write_trial_set(paths, "20261207T000000Z", _configs(grid))
    assert path == trial_set_path(paths, "20261207T000000Z") == paths.submissions_dir / "20261207T000000Z.trials.jsonl"
    assert read_trial_set(path, "sets") == dict(zip(grid.trial_ids, _configs(grid)))
    assert read_trial_set(path, wanted={grid.trial_ids[1]}) == {grid.trial_ids[1]: _configs(grid)[1]}
    header = json.loads(path.read_text().splitlines()[0])
    assert header == {"schema": "pcsweep-trials", "schema_version": 1, "grid": "sets", "stamp": "20261207T000000Z",
                      "trials": 3}
    assert not list(paths.submissions_dir.glob("*.tmp.*"))  # written atomically


def _rewrite(path, edit):
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("".join(f"{line}\n" for line in lines))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda lines: lines.__setitem__(2, lines[2].replace('"seed":1', '"seed":7')),
     "line 3: trial id '{id1}' is not the hash of its config"),
    (lambda lines: lines.pop(), "the header promises 3 trials, the file holds 2 (cut short?)"),
    (lambda lines: lines.__setitem__(1, "{not json"), "line 2 is not JSON"),
    (lambda lines: lines.__setitem__(1, "[1, 2]"), "line 2 is not a trial row"),
    (lambda lines: lines.__setitem__(0, '{"schema": "other"}'), "line 1 is not a pcsweep-trials v1 header"),
    (lambda lines: lines.__setitem__(0, lines[0].replace('"sets"', '"other"')), "written for grid 'other'"),
    (lambda lines: lines.clear(), "empty; not a trial set"),
])
def test_a_damaged_or_foreign_trial_set_is_refused_naming_the_file_and_line(paths, grid, edit, message):
    path = write_trial_set(paths, "s1", _configs(grid))
    _rewrite(path, edit)
    with pytest.raises(TrialSetError, match=f"^{path}: ") as info:
        read_trial_set(path, "sets")
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert message.format(id1=grid.trial_ids[1]) in text


def test_a_row_copied_from_another_trial_is_caught_by_the_re_hash(paths, grid):
    path = write_trial_set(paths, "s1", _configs(grid))
    lines = path.read_text().splitlines()
    row = json.loads(lines[2])
    row["trial_id"] = grid.trial_ids[0]  # trial 1's config under trial 0's id
    lines[2] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrialSetError, match=f"line 3: trial id '{grid.trial_ids[0]}' is not the hash"):
        read_trial_set(path)


# --- the run folder's trials: union, legacy grid.yaml, damage -----------------------------------------------------

def test_launched_trials_are_the_union_of_the_trial_sets(paths, grid):
    extra = TrialConfig.from_mapping(_configs(grid)[0]).replace(seed=99)  # in no grid file
    write_trial_set(paths, "s1", _configs(grid)[:2])
    write_trial_set(paths, "s2", [_configs(grid)[1], extra.to_mapping()])
    store_grid(grid, paths)  # present, but trial sets win: it is not expanded
    trials = launched_trials(paths)
    assert trials.source == "trial sets" and trials.notes == []
    assert set(trials.configs) == {*grid.trial_ids[:2], extra.trial_id}
    assert [p.name for p in trial_set_files(paths)] == ["s1.trials.jsonl", "s2.trials.jsonl"]


def test_a_run_folder_from_before_trial_sets_expands_its_grid_yaml(paths, grid):
    assert launched_trials(paths).source == "none" and not launched_trials(paths).known
    store_grid(grid, paths)
    trials = launched_trials(paths, wanted={grid.trial_ids[2]})
    assert trials.source == "grid.yaml" and list(trials.configs) == [grid.trial_ids[2]]
    assert set(launched_trials(paths).configs) == set(grid.trial_ids)


def test_an_unreadable_trial_set_is_a_note_and_never_falls_back_to_the_grid(paths, grid):
    store_grid(grid, paths)
    write_trial_set(paths, "s1", _configs(grid)[:1])
    bad = write_trial_set(paths, "s2", _configs(grid)[1:])
    bad.write_text("garbage\n")
    trials = launched_trials(paths)
    assert set(trials.configs) == {grid.trial_ids[0]} and trials.source == "trial sets"
    assert len(trials.notes) == 1 and trials.notes[0].startswith(f"{bad}: line 1 is not JSON")
    trial_set_path(paths, "s1").write_text("garbage\n")
    only_bad = read_trial_sets(paths)
    assert not only_bad.known and len(only_bad.notes) == 2
    assert not launched_trials(paths).known  # trial sets exist, so grid.yaml is not the truth any more


# --- the stages that read them -------------------------------------------------------------------------------------

def test_a_task_trains_a_trial_that_only_a_trial_set_holds(paths, grid):
    extra = TrialConfig.from_mapping(_configs(grid)[0]).replace(**{"seed": 42, "train.h_lr": 0.05})
    store_grid(grid, paths)
    write_trial_set(paths, "s1", [extra.to_mapping()])
    assert [c.trial_id for c in load_configs(paths, (extra.trial_id,))] == [extra.trial_id]
    PcsweepTask(str(paths.root), paths.grid, "s1-k", (extra.trial_id,))()
    with open_shard(paths.shard("s1-k")) as shard:
        assert shard.trial_ids == [extra.trial_id]
    never = rf"1 trial id\(s\) of this task were never launched .*first: {grid.trial_ids[0]}"
    with pytest.raises(TaskError, match=never):
        load_configs(paths, (grid.trial_ids[0],))  # in grid.yaml, but trial sets are the truth once they exist


def test_relaunch_conflict_collect_and_status_read_the_trial_sets(paths, grid):
    extra = TrialConfig.from_mapping(_configs(grid)[0]).replace(seed=50)
    write_trial_set(paths, "s1", [*_configs(grid), extra.to_mapping()])
    conflict = grid_conflict(grid, paths)  # the grid lacks a launched trial: a relaunch would drop it
    assert conflict is not None and "1 trial(s) already launched" in conflict
    ids, source, notes = expected_trial_ids(paths)
    assert (ids, source, notes) == ({*grid.trial_ids, extra.trial_id}, "trial sets", [])
    report = status_report(paths.grid, paths.root)
    assert report.grid_trials == 4 and report.trials_source == "trial sets"
    assert "4 trials launched, 0 submitted" in render_status(report)


def test_a_local_launch_writes_the_trial_set_its_tasks_read(paths, grid):
    sub = launch(grid, LaunchOptions(root=str(paths.root), executor="local", jobs=1))
    assert sub.failed_tasks == () and sub.trials == 3
    (path,) = trial_set_files(paths)
    assert path.name == f"{sub.stamp}.trials.jsonl"
    assert set(read_trial_set(path, "sets")) == set(grid.trial_ids)
    assert grid_conflict(grid, paths) is None
    again = launch(grid, LaunchOptions(root=str(paths.root), executor="local", jobs=1))
    assert again.trials == 0 and len(trial_set_files(paths)) == 1  # nothing sent, nothing written
