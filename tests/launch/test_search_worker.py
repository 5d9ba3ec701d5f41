"""The search worker on real Optuna journals and real pcx training (CPU JAX, tiny two-moons trials).

The SearchSpec is built from the data classes of grids.search, not parsed from a grid file. What is checked: a
study stops at exactly its budget of COMPLETE trials (one worker, two worker processes at once, a relaunch);
every COMPLETE trial names a pcsweep trial id whose shard row holds the told value; duplicate configs train once;
a worker killed with SIGKILL leaves a RUNNING trial that the next worker fails and asks again; failing trials are
told FAIL with their reason; the owner check and the value rule as pure functions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from contracts.config import TrialConfig
from contracts.paths import RunPaths
from contracts.shard import read_shard
from grids.launched import launched_trials
from grids.search import Distribution, SearchSpec, Study
from launch.search_worker import (
    ORPHAN_AFTER_S,
    Owner,
    owner_alive,
    run_worker,
    search_trial_ids,
    squeue_lists,
    study_order,
    study_storage,
    trial_value,
)
from launch.task import PcsweepTask

REPO = Path(__file__).resolve().parents[2]
BASE = TrialConfig.from_mapping({"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                                 "model": {"width": 8}, "train": {"epochs": 1, "T": 2}}).to_mapping()
# per-trial keys only: every batch of a study is one compiled program
LRS = (Distribution("train.h_lr", "float", 0.01, 0.5, log=True),
       Distribution("train.w_lr", "float", 1e-4, 1e-2, log=True))


def make_spec(budget: int, batch: int, params=LRS, names=("s1",)) -> SearchSpec:
    return SearchSpec(params=tuple(params), metric="accuracy_best", direction="maximize", budget=budget,
                      batch=batch, studies=tuple(Study(n, {}, BASE) for n in names))


@pytest.fixture
def paths(tmp_path, monkeypatch):
    """An empty run folder; PCSWEEP_DATA points at an empty folder, so an image dataset raises."""
    (tmp_path / "nodata").mkdir()
    monkeypatch.setenv("PCSWEEP_DATA", str(tmp_path / "nodata"))
    return RunPaths.of("searchtest", tmp_path / "runs")


def trials_of(paths: RunPaths, name: str = "s1") -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=study_storage(paths, name))
    return study.get_trials(deepcopy=False)


def shard_rows(paths: RunPaths) -> dict[str, list]:
    """trial id -> [(status, test_accuracy)] over every shard (a trial trained twice has two rows)."""
    rows: dict[str, list] = {}
    for path in sorted(paths.shards_dir.glob("*.h5")):
        for trial in read_shard(path):
            rows.setdefault(trial.trial_id, []).append((trial.status, trial.arrays["test_accuracy"]))
    return rows


def check_complete(paths: RunPaths, budget: int, name: str = "s1") -> list[optuna.trial.FrozenTrial]:
    """Exactly `budget` COMPLETE trials, none left RUNNING, each with its shard row and the value from it."""
    trials = trials_of(paths, name)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == budget, [(t.number, t.state.name) for t in trials]
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert len({t.number for t in trials}) == len(trials)
    rows = shard_rows(paths)
    launched = launched_trials(paths).configs
    mapped = search_trial_ids(paths)
    for t in complete:
        tid = t.user_attrs["trial_id"]
        assert tid in rows and tid in launched, f"trial {t.number}: {tid} has no shard row or no trial set"
        assert (name, t.number) in mapped[tid]
        status, accuracy = rows[tid][-1]
        assert status == "ok" and t.value == pytest.approx(float(np.nanmax(accuracy)))
        for key, value in t.params.items():  # the trained config is the one Optuna suggested
            node = launched[tid]
            for part in key.split("."):
                node = node[part]
            assert node == pytest.approx(value, rel=1e-9)
    return complete


# ----------------------------------------------------------------------------------------------------------------
# One worker in this process


def test_one_worker_stops_at_the_budget_and_a_relaunch_asks_nothing(paths):
    spec = make_spec(budget=6, batch=4)
    first = run_worker(paths, spec, worker=0, max_rounds=1)
    assert (first.asked, first.completed, first.studies["s1"].stopped) == (4, 4, "max rounds")
    second = run_worker(paths, spec, worker=0)  # a relaunch: asks only the two missing trials
    assert (second.asked, second.completed, second.failed) == (2, 2, 0)
    assert second.studies["s1"].stopped == "budget reached" and second.studies["s1"].complete_total == 6
    complete = check_complete(paths, 6)
    owner = complete[0].user_attrs["owner"]
    assert owner["pid"] == os.getpid() and owner["worker"] == 0 and owner["start_time"]
    assert len(list(paths.submissions_dir.glob("search-s1-n*-w0.trials.jsonl"))) == 2

    third = run_worker(paths, spec, worker=0)
    assert (third.asked, third.completed, third.studies["s1"].stopped) == (0, 0, "budget reached")
    assert len(trials_of(paths)) == 6


def test_one_config_asked_several_times_trains_once_and_every_trial_gets_its_value(paths):
    seed_only = (Distribution("seed", "categorical", choices=(3,)),)
    report = run_worker(paths, make_spec(budget=3, batch=3, params=seed_only), worker=0)
    study = report.studies["s1"]
    assert (study.asked, study.completed, study.trained, study.reused) == (3, 3, 1, 0)
    complete = check_complete(paths, 3)
    assert len({t.user_attrs["trial_id"] for t in complete}) == 1 and len({t.value for t in complete}) == 1
    (trial_set,) = paths.submissions_dir.glob("*.trials.jsonl")
    assert json.loads(trial_set.read_text().splitlines()[0])["trials"] == 1

    more = run_worker(paths, make_spec(budget=5, batch=3, params=seed_only), worker=1)
    assert (more.studies["s1"].trained, more.studies["s1"].reused, more.completed) == (0, 1, 2)
    check_complete(paths, 5)
    assert len(shard_rows(paths)[complete[0].user_attrs["trial_id"]]) == 1, "trained once"


def test_failing_and_invalid_trials_are_told_fail_with_their_reason_and_the_worker_moves_on(paths):
    """Two studies: one whose trials raise in the task (mnist is not there), one whose configs never validate.
    Each stops after `budget` failures instead of asking for ever; neither crashes the worker."""
    mnist = {**BASE, "data": {**BASE["data"], "dataset": "mnist"}}
    invalid = {**BASE, "train": {**BASE["train"], "w_momentum": 1.5}}
    spec = SearchSpec(params=LRS[:1], budget=2, batch=2, studies=(Study("mnist", {}, mnist),
                                                                   Study("invalid", {}, invalid)))
    report = run_worker(paths, spec, worker=0)
    assert list(report.studies) == ["mnist", "invalid"] and (report.completed, report.failed) == (0, 4)
    for name, reason in [("mnist", "raised: DataError: mnist: IDX files"),
                         ("invalid", "invalid config: train.w_momentum")]:
        assert report.studies[name].stopped.startswith("too many failures (2)")
        trials = trials_of(paths, name)
        assert [t.state for t in trials] == [TrialState.FAIL] * 2
        assert all(t.user_attrs["fail_reason"].startswith(reason) for t in trials), [t.user_attrs for t in trials]
    assert not list(paths.submissions_dir.glob("search-invalid-*")), "nothing to train, no trial set"


def test_an_interrupted_worker_fails_and_requeues_its_batch(paths, monkeypatch):
    """KeyboardInterrupt (or submitit's SystemExit) in the middle of training: the batch's trials are FAIL and
    their params enqueued now, not left RUNNING for recovery; the next worker trains exactly those."""
    spec = make_spec(budget=2, batch=2)

    def interrupted(self):
        raise KeyboardInterrupt("stop now")

    with monkeypatch.context() as m:
        m.setattr(PcsweepTask, "__call__", interrupted)
        with pytest.raises(KeyboardInterrupt, match="stop now"):
            run_worker(paths, spec, worker=0)
    first = trials_of(paths)
    assert [t.state for t in first] == [TrialState.FAIL, TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]
    assert first[0].user_attrs["fail_reason"] == "worker stopped: KeyboardInterrupt: stop now"
    report = run_worker(paths, spec, worker=0)
    assert (report.asked, report.completed, report.studies["s1"].recovered) == (2, 2, 0)
    retried = {t.user_attrs["retry_of"]: t.params for t in trials_of(paths) if t.state == TrialState.COMPLETE}
    assert retried == {t.number: t.params for t in first[:2]}
    check_complete(paths, 2)


# ----------------------------------------------------------------------------------------------------------------
# Two worker processes, a killed worker

WORKER = textwrap.dedent("""
    import dataclasses, json, pickle, sys
    from contracts.paths import RunPaths
    from launch.search_worker import run_worker
    root, grid, spec_file, worker = sys.argv[1:]
    with open(spec_file, "rb") as f:
        spec = pickle.load(f)
    report = run_worker(RunPaths.of(grid, root), spec, worker=int(worker))
    print(json.dumps(dataclasses.asdict(report)))
""")

ASK_AND_HANG = textwrap.dedent("""
    import json, pickle, sys, time
    from contracts.paths import RunPaths
    from launch.search_worker import Owner, _Held, ask_lock, ask_trials, open_study, trial_config
    root, grid, spec_file = sys.argv[1:]
    with open(spec_file, "rb") as f:
        spec = pickle.load(f)
    paths, meta = RunPaths.of(grid, root), spec.studies[0]
    study = open_study(paths, spec, meta, 7)
    with _Held(ask_lock(paths, meta.name)):
        (trial,) = ask_trials(study, 1, Owner.current(7, {}))
    trial_config(trial, spec, meta)
    print(json.dumps({"number": trial.number, "params": trial.params}), flush=True)
    time.sleep(600)
""")


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _spec_file(tmp_path: Path, spec: SearchSpec) -> str:
    path = tmp_path / "spec.pickle"
    path.write_bytes(pickle.dumps(spec))
    return str(path)


@pytest.mark.slow
def test_two_worker_processes_on_one_study_complete_exactly_its_budget(paths, tmp_path):
    spec_file = _spec_file(tmp_path, make_spec(budget=8, batch=3))
    procs = [_python(WORKER, str(paths.root), paths.grid, spec_file, str(w)) for w in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert sum(r["studies"]["s1"]["asked"] for r in reports) == 8
    assert sum(r["studies"]["s1"]["completed"] for r in reports) == 8
    complete = check_complete(paths, 8)
    assert len(trials_of(paths)) == 8, "no trial was asked beyond the budget"
    assert {t.user_attrs["owner"]["pid"] for t in complete} <= {p.pid for p in procs}


def test_a_sigkilled_workers_running_trial_is_failed_and_asked_again_by_the_next(paths, tmp_path):
    spec = make_spec(budget=2, batch=2)
    hang = _python(ASK_AND_HANG, str(paths.root), paths.grid, _spec_file(tmp_path, spec))
    try:
        asked = json.loads(hang.stdout.readline() or "null")
        assert asked is not None, hang.stderr.read()[-3000:] if hang.poll() is not None else "no output"
    finally:
        hang.send_signal(signal.SIGKILL)
        hang.wait(timeout=30)
    (left,) = trials_of(paths)
    assert left.state == TrialState.RUNNING and left.user_attrs["owner"]["pid"] == hang.pid

    report = run_worker(paths, spec, worker=0)
    assert report.studies["s1"].recovered == 1 and report.completed == 2
    trials = {t.number: t for t in trials_of(paths)}
    dead = trials[asked["number"]]
    assert dead.state == TrialState.FAIL and dead.user_attrs["fail_reason"].startswith("owner gone")
    (retry,) = [t for t in trials.values() if t.user_attrs.get("retry_of") == asked["number"]]
    assert retry.state == TrialState.COMPLETE and retry.params == asked["params"]
    check_complete(paths, 2)


# ----------------------------------------------------------------------------------------------------------------
# Pure functions

ME = Owner(worker=0, host="node-a", pid=4242, start_time="500", slurm_job_id="77", slurm_procid="0")


def _alive(owner, *, age_s=0.0, start_times=None, listed=None):
    def start_time_of(pid):
        return (start_times or {}).get(pid)

    def job_listed(job):
        return (listed or {}).get(job)

    return owner_alive(owner, me=ME, age_s=age_s, start_time_of=start_time_of, job_listed=job_listed)


@pytest.mark.parametrize(("owner", "facts", "alive"), [
    (Owner(1, "node-a", 100, "300"), {}, False),  # this host, the pid is gone
    (Owner(1, "node-a", 100, "300"), {"start_times": {100: "301"}}, False),  # the pid was reused
    (Owner(1, "node-a", 100, "300"), {"start_times": {100: "300"}}, True),  # still running
    (Owner(1, "node-a", 100, None), {"start_times": {100: "1"}}, True),  # no start time recorded: the pid
    (Owner(1, "node-b", 100, "300", slurm_job_id="88"), {}, True),  # squeue does not answer: never broken
    (Owner(1, "node-b", 100, "300", slurm_job_id="88"), {"listed": {"88": False}}, False),  # SLURM forgot it
    (Owner(1, "node-b", 100, "300", slurm_job_id="88"), {"listed": {"88": True}}, True),
    (Owner(1, "node-b", 100, "300", slurm_array_job_id="90", slurm_array_task_id="3"),
     {"listed": {"90_3": False}}, False),  # an array element by <A>_<a>
    (Owner(1, "node-b", 100, "300", slurm_job_id="77", slurm_procid="0"), {"listed": {"77": True}}, False),  # requeued
    (Owner(1, "node-b", 100, "300"), {}, True),  # another host, no SLURM: cannot be checked
    (None, {"age_s": 5.0}, True),  # being stamped right now
    (None, {"age_s": ORPHAN_AFTER_S + 1}, False),  # the asker died before stamping it
    (ME, {}, True),  # this process, whatever /proc says
])
def test_owner_alive(owner, facts, alive):
    assert _alive(owner, **facts) is alive


def test_owner_record_round_trip_and_the_real_process_table(tmp_path):
    me = Owner.current(3, {"SLURM_ARRAY_JOB_ID": "12", "SLURM_ARRAY_TASK_ID": "5"})
    assert Owner.from_attrs(json.loads(json.dumps(me.attrs()))) == me and me.job == "12_5"
    assert Owner.from_attrs({"pid": "x"}) is None and Owner.from_attrs("junk") is None
    with pytest.raises(ValueError, match=r"worker_ids: unknown keys \['SLURM_JOBID'\]"):
        Owner.current(0, {"SLURM_JOBID": "1"})
    from contracts.lock import process_start_time

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    local = Owner.current(0, {})
    dead = dataclasses.replace(local, pid=gone.pid, start_time="1")
    assert not owner_alive(dead, me=local, age_s=0, start_time_of=process_start_time, job_listed=squeue_lists)
    parent = dataclasses.replace(local, pid=os.getppid(), start_time=process_start_time(os.getppid()))
    assert owner_alive(parent, me=local, age_s=0, start_time_of=process_start_time, job_listed=squeue_lists)


def test_squeue_lists_reads_the_answer_and_tolerates_no_scheduler(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert squeue_lists("5") is None  # no squeue at all
    fake = tmp_path / "squeue"
    for script, expected in [("echo 5_1", True), ("true", False),
                             ("echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1", False),
                             ("echo 'Unable to contact slurm controller' >&2; exit 1", None)]:
        fake.write_text(f"#!/bin/sh\n{script}\n")
        fake.chmod(0o755)
        assert squeue_lists("5_1") is expected, script


def test_trial_value_follows_the_summary_columns_and_diverged_trials_get_the_worst_value():
    nan = float("nan")
    assert trial_value("ok", [0.5, 0.75, nan], "accuracy_best", "maximize") == (0.75, "")
    assert trial_value("ok", [0.5, 0.75], "accuracy", "maximize") == (0.75, "")
    value, note = trial_value("ok", [0.5, nan], "accuracy", "maximize")  # early-stopped: no last epoch
    assert value is None and "not finite" in note
    assert trial_value("ok", [nan], "accuracy_best", "maximize")[0] is None
    assert trial_value("diverged", [0.9, nan], "accuracy_best", "maximize")[0] == 0.0
    assert trial_value("diverged", [0.1, nan], "accuracy_best", "minimize")[0] == 1.0
    with pytest.raises(ValueError, match="metric 'loss'"):
        trial_value("ok", [0.5], "loss", "maximize")


def test_studies_are_visited_in_turn_from_a_start_that_depends_on_the_worker():
    studies = [Study(n, {}, BASE) for n in "abc"]
    assert [s.name for s in study_order(studies, 0)] == ["a", "b", "c"]
    assert [s.name for s in study_order(studies, 4)] == ["b", "c", "a"]
    assert study_order([], 3) == []


SEARCH_GRID = """\
name: cli_search
defaults:
  data: {dataset: two_moons, n_samples: 64, batch_size: 16}
  model: {width: 8}
  train: {epochs: 1, T: 2}
search:
  metric: accuracy_best
  budget: 3
  batch: 2
  params:
    train.h_lr: {type: float, low: 0.01, high: 0.5, log: true}
"""


def test_the_worker_cli_searches_a_grid_file_and_collect_merges_its_trials(tmp_path):
    import collect

    grid_file = tmp_path / "cli_search.yaml"
    grid_file.write_text(SEARCH_GRID)
    root = tmp_path / "runs"
    cmd = [sys.executable, "-m", "launch.search_worker", str(grid_file), "--root", str(root), "--worker", "1"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    paths = RunPaths.of("cli_search", root)
    study = optuna.load_study(study_name="study", storage=study_storage(paths, "study"))
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) == 3  # exactly the budget
    report = collect.collect("cli_search", root, progress=False)
    assert report.expected_source == "trial sets" and report.expected == 3 and not report.missing
    best = max(t.value for t in study.trials if t.state == TrialState.COMPLETE)
    assert best == pytest.approx(float(collect.load_summary("cli_search", root)["accuracy_best"].max()))
    # a grid without search: is refused in one line, and nothing is written
    plain = tmp_path / "plain.yaml"
    plain.write_text(SEARCH_GRID.replace("name: cli_search", "name: plain").split("search:")[0])
    bad = subprocess.run([*cmd[:3], str(plain), "--root", str(root)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no search: section" in bad.stderr
    assert "Traceback" not in bad.stderr and not (root / "plain").exists()
