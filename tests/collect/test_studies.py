"""studies.csv and the report's studies, on a real search run folder (tests/search_run.py: a real search worker,
real journals, a real collect); the row rule (`collect.studies.study_row`) on hand-made Optuna trials.

The expected values are recomputed from the journals through Optuna's own API (`optuna.load_study`), and the best
value is checked against collect's summary.csv row of the best trial: the worker's told value, collect's table and
studies.csv must agree.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from search_run import BUDGET, GRID, STUDIES, copy_run, journal_trials, make_search_run

import collect
from collect.report import render
from collect.studies import COLUMNS, TOP_K, study_row
from launch.search_worker import study_storage

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    return make_search_run(tmp_path_factory.mktemp("search") / "runs")


def read_studies_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"best_trial_id": str, "study": str})


def expected_row(paths, study: str) -> dict:
    """The row recomputed from the journal with Optuna's API and plain Python."""
    trials = journal_trials(paths, study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    values = sorted((t.value for t in complete), reverse=True)
    best = max(complete, key=lambda t: (t.value, -t.number))
    return {"complete": len(complete), "failed": sum(t.state == TrialState.FAIL for t in trials),
            "best_value": max(values), "best_number": best.number, "best_trial_id": best.user_attrs["trial_id"],
            "top_k_mean": statistics.fmean(values[:TOP_K]), "top_k_sd": statistics.stdev(values[:TOP_K]),
            "last_complete": max(t.datetime_complete for t in complete).isoformat(timespec="seconds")}


def test_studies_csv_has_one_row_per_study_with_the_journals_numbers(search_run):
    table = read_studies_csv(search_run.folder / "studies.csv")
    assert list(table.columns) == list(COLUMNS)
    assert list(table["study"]) == list(STUDIES)  # the grid's study order
    summary = collect.load_summary(GRID, search_run.root).set_index("trial_id")
    for _, row in table.iterrows():
        want = expected_row(search_run, row["study"])
        assert (row["direction"], row["metric"], row["budget"]) == ("maximize", "accuracy_best", BUDGET)
        assert row["complete"] == want["complete"] == BUDGET
        assert (row["running"], row["waiting"], row["failed"]) == (0, 0, want["failed"]) == (0, 0, 0)
        assert row["best_value"] == want["best_value"]  # written with repr: exact
        assert (row["best_number"], row["best_trial_id"]) == (want["best_number"], want["best_trial_id"])
        assert summary.loc[row["best_trial_id"], "accuracy_best"] == pytest.approx(row["best_value"], abs=1e-7)
        assert row["top_k"] == TOP_K
        assert row["top_k_mean"] == pytest.approx(want["top_k_mean"], rel=1e-12)
        assert row["top_k_sd"] == pytest.approx(want["top_k_sd"], rel=1e-12)
        assert row["top_k_mean"] < row["best_value"]  # the 8 values are not all equal
        assert row["last_complete"] == want["last_complete"]
        assert row["journal"] == row["study"].replace("=", "_") + ".log"


def test_report_text_and_json_list_the_studies(search_run):
    proc = subprocess.run([sys.executable, "-m", "collect", GRID, "--root", str(search_run.root), "--json",
                           "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["mode"] == "unchanged" and doc["studies_csv"] == str(search_run.folder / "studies.csv")
    table = read_studies_csv(search_run.folder / "studies.csv")
    assert [s["study"] for s in doc["studies"]] == list(STUDIES)
    for got, (_, row) in zip(doc["studies"], table.iterrows()):
        assert set(got) == set(COLUMNS)
        assert (got["complete"], got["best_value"], got["best_trial_id"]) == (
            row["complete"], row["best_value"], row["best_trial_id"])

    text = render(collect.collect(GRID, search_run.root, progress=False))
    assert f"  studies    2  ({search_run.folder / 'studies.csv'}; metric accuracy_best)" in text
    for _, row in table.iterrows():
        line = next(ln for ln in text.splitlines() if ln.lstrip().startswith(row["study"] + " "))
        assert f"{BUDGET}/{BUDGET} complete, 0 running, 0 failed" in line
        assert f"best {row['best_value']:.4g} (#{row['best_number']}, {row['best_trial_id']})" in line


def test_a_later_collect_refreshes_studies_when_only_a_journal_changed(search_run, tmp_path):
    """No shard changed (mode unchanged), but a worker added a trial: studies.csv follows the journal."""
    paths = copy_run(search_run, tmp_path)
    study = optuna.load_study(study_name=STUDIES[1], storage=study_storage(paths, STUDIES[1]))
    study.tell(study.ask(), state=TrialState.FAIL)
    study.ask()  # left RUNNING
    study.enqueue_trial({"train.h_lr": 0.1, "train.w_lr": 0.01})
    report = collect.collect(GRID, tmp_path, progress=False)
    assert report.mode == "unchanged"
    rows = {s["study"]: s for s in report.studies}
    assert (rows[STUDIES[1]]["failed"], rows[STUDIES[1]]["running"], rows[STUDIES[1]]["waiting"]) == (1, 1, 1)
    assert (rows[STUDIES[0]]["failed"], rows[STUDIES[0]]["running"]) == (0, 0)
    table = read_studies_csv(paths.folder / "studies.csv")
    assert list(table["failed"]) == [0, 1] and list(table["running"]) == [0, 1]
    assert "1 running, 1 failed, 1 waiting" in render(report)


def test_unreadable_journals_are_notes_and_the_other_studies_stay(search_run, tmp_path):
    paths = copy_run(search_run, tmp_path)
    good = (paths.folder / "optuna" / "seed_1.log").read_bytes().splitlines(keepends=True)
    (paths.folder / "optuna" / "broken.log").write_bytes(good[0] + b'{"op_code": 4, garbage\n' + good[1])
    (paths.folder / "optuna" / "binary.log").write_bytes(b"\x00\xff\xfe\n\x01\n")
    (paths.folder / "optuna" / "empty.log").write_bytes(b"")
    report = collect.collect(GRID, tmp_path, progress=False)
    notes = "\n".join(report.notes)
    assert "broken.log: cannot read this Optuna journal (JSONDecodeError" in notes
    assert "binary.log: cannot read this Optuna journal" in notes
    assert "empty.log: an Optuna journal holding no study yet" in notes
    assert [s["study"] for s in report.studies] == list(STUDIES)
    assert all(s["complete"] == BUDGET for s in report.studies)
    assert "note: " in render(report) and "broken.log" in render(report)


def test_without_grid_yaml_the_metric_and_budget_are_empty(search_run, tmp_path):
    paths = copy_run(search_run, tmp_path)
    paths.grid_yaml.unlink()
    report = collect.collect(GRID, tmp_path, progress=False)
    assert any("metric and budget are unknown" in n for n in report.notes), report.notes
    table = read_studies_csv(paths.folder / "studies.csv")
    assert sorted(table["study"]) == sorted(STUDIES)  # journal order: by name
    assert table["metric"].isna().all() and table["budget"].isna().all()
    assert (table["complete"] == BUDGET).all() and (table["direction"] == "maximize").all()
    assert "?/8" not in render(report) and f"{BUDGET}/? complete" in render(report)


def test_a_run_folder_without_journals_gets_no_studies(search_run, tmp_path):
    paths = copy_run(search_run, tmp_path)
    shutil.rmtree(paths.folder / "optuna")
    (paths.folder / "studies.csv").unlink()
    report = collect.collect(GRID, tmp_path, progress=False)
    assert (report.studies, report.studies_csv) == ([], "")
    assert not (paths.folder / "studies.csv").exists()
    assert "studies" not in render(report) and report.to_json_dict()["studies"] == []


def test_help_does_not_import_optuna():
    code = ("import sys\nfrom collect.cli import build_parser\nimport collect.pipeline\nbuild_parser().format_help()\n"
            "assert 'optuna' not in sys.modules, 'optuna imported'\nprint('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# study_row, the pure rule

LR = {"x": FloatDistribution(0.0, 1.0)}
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def trial(number: int, state: TrialState = TrialState.COMPLETE, value: float | None = None, minute: int = 0,
          **attrs) -> optuna.trial.FrozenTrial:
    done = state in (TrialState.COMPLETE, TrialState.FAIL)
    t = create_trial(state=state, value=value if state == TrialState.COMPLETE else None, params={"x": 0.5},
                     distributions=LR, user_attrs=attrs)
    t.number = number
    t.datetime_complete = T0 + dt.timedelta(minutes=minute) if done else None
    return t


def test_study_row_minimize_ties_and_states():
    trials = [trial(0, value=0.3, minute=5, trial_id="a"), trial(1, value=0.1, minute=1, trial_id="b"),
              trial(2, value=0.1, minute=2, trial_id="c"), trial(3, TrialState.FAIL, minute=9),
              trial(4, TrialState.RUNNING), trial(5, TrialState.WAITING), trial(6, value=0.9, minute=3)]
    row = study_row("s", "minimize", trials, metric="accuracy", budget=4, k=3)
    assert (row.complete, row.running, row.waiting, row.failed) == (4, 1, 1, 1)
    assert (row.best_value, row.best_number, row.best_trial_id) == (0.1, 1, "b")  # a tie: the lower number
    assert row.top_k == 3 and row.top_k_mean == pytest.approx((0.1 + 0.1 + 0.3) / 3)
    assert row.top_k_sd == pytest.approx(statistics.stdev([0.1, 0.1, 0.3]))
    assert row.last_complete == "2026-01-01T12:05:00"  # the last COMPLETE trial, not the later FAIL
    assert (row.metric, row.budget) == ("accuracy", 4)

    top = study_row("s", "maximize", trials, k=2)
    assert (top.best_value, top.best_number, top.top_k_mean) == (0.9, 6, pytest.approx(0.6))
    assert top.best_trial_id is None  # no trial_id attr on that trial


def test_study_row_with_few_or_no_completed_trials():
    one = study_row("s", "maximize", [trial(0, value=0.5), trial(1, TrialState.RUNNING)])
    assert (one.top_k, one.top_k_mean, one.top_k_sd) == (1, 0.5, None)
    none = study_row("s", "maximize", [trial(0, TrialState.FAIL)])
    assert (none.complete, none.failed, none.best_value, none.best_number, none.top_k, none.top_k_mean,
            none.last_complete) == (0, 1, None, None, 0, None, None)
    with pytest.raises(ValueError, match="direction 'max'; expected maximize or minimize"):
        study_row("s", "max", [])
    with pytest.raises(ValueError, match="k=0"):
        study_row("s", "maximize", [], k=0)
