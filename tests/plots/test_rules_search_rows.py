"""The adaptive-search figures' trial choice (`fig_search_history.history`, `fig_search_importance.completed / pick /
param_importances`) on studies built from Optuna's `create_trial` (fast tier: no worker, no journal, no figure).

Each study mixes the trials a journal holds: COMPLETE ones (some diverged, told a value), a COMPLETE one without a
finite value, FAIL, RUNNING and WAITING ones; the tests name the Optuna numbers each function keeps.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from collect.studies import JournalStudy
from plots import fig_search_history, fig_search_importance

DISTS = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}


def trial(number: int, value: float | None, state: TrialState = TrialState.COMPLETE, diverged: bool = False,
          params: dict | None = None) -> FrozenTrial:
    attrs = {"status": "diverged"} if diverged else {"status": "ok"}
    finite = value is not None and math.isfinite(value)
    t = create_trial(state=state, value=(value if finite else 0.0) if state == TrialState.COMPLETE else None,
                     params=params if params is not None else {"x": number / 20, "y": 0.5},
                     distributions=DISTS, user_attrs=attrs)
    t.number = number
    if state == TrialState.COMPLETE and not finite:
        t.value = value  # a journal may hold what create_trial refuses; the figures must leave it out
    return t


def study(name: str, trials: list[FrozenTrial], direction: str = "maximize") -> JournalStudy:
    return JournalStudy(name, direction, tuple(trials), Path(f"{name}.log"))


def mixed() -> JournalStudy:
    return study("s", [
        trial(3, 0.7), trial(1, 0.5), trial(0, 0.6), trial(4, 0.0, diverged=True), trial(2, None, TrialState.FAIL),
        trial(5, 0.9), trial(6, None, TrialState.RUNNING), trial(7, None, TrialState.WAITING),
        trial(8, float("nan")), trial(9, float("inf")), trial(10, 0.8),
    ])


# ---------------------------------------------------------------- history


def test_history_is_the_complete_finite_trials_by_number_with_the_best_so_far() -> None:
    got = fig_search_history.history(mixed())
    want = pd.DataFrame({"number": [0, 1, 3, 4, 5, 10], "value": [0.6, 0.5, 0.7, 0.0, 0.9, 0.8],
                         "diverged": [False, False, False, True, False, False],
                         "best": [0.6, 0.6, 0.7, 0.7, 0.9, 0.9]})
    pd.testing.assert_frame_equal(got, want)


def test_history_of_a_minimised_study_keeps_the_lowest_so_far() -> None:
    got = fig_search_history.history(study("m", list(mixed().trials), direction="minimize"))
    assert list(got["best"]) == [0.6, 0.5, 0.5, 0.0, 0.0, 0.0]


def test_history_of_a_study_without_a_completed_trial_is_empty() -> None:
    got = fig_search_history.history(study("e", [trial(0, None, TrialState.FAIL), trial(1, float("nan"))]))
    assert got.empty and list(got.columns) == ["number", "value", "diverged", "best"]
    assert got["best"].dtype == float  # a float column even when empty


def test_history_reads_a_missing_status_as_not_diverged() -> None:
    t = create_trial(value=0.4, params={"x": 0.1}, distributions={"x": DISTS["x"]})
    got = fig_search_history.history(study("n", [t]))
    assert list(got["diverged"]) == [False] and got["value"].dtype == float


# ---------------------------------------------------------------- completed and pick


def test_completed_trials_are_the_complete_ones_with_a_finite_value() -> None:
    assert [t.number for t in fig_search_importance.completed(mixed())] == [3, 1, 0, 4, 5, 10]
    assert fig_search_importance.completed(study("e", [])) == []


def test_pick_takes_the_study_with_most_completed_trials_and_the_first_on_a_tie() -> None:
    many_failed = study("a", [trial(i, None, TrialState.FAIL) for i in range(9)] + [trial(9, 0.5)])
    three = study("b", [trial(i, 0.1 * i) for i in range(3)])
    three_too = study("c", [trial(i, 0.2 * i) for i in range(3)] + [trial(3, float("nan"))])
    assert fig_search_importance.pick([many_failed, three, three_too]).name == "b"
    assert fig_search_importance.pick([many_failed, three_too, three]).name == "c"
    assert fig_search_importance.pick([many_failed]).name == "a"


# ---------------------------------------------------------------- param_importances


def importance_study(direction: str) -> JournalStudy:
    """x decides the value when maximising (the top trials have x near 1), y when minimising (the bottom ones)."""
    rng = np.random.default_rng(0)
    trials = []
    for i in range(30):
        x, y = rng.uniform(), rng.uniform()
        value = x if x > 0.5 else 3 * y - 3
        trials.append(trial(i, float(value), params={"x": x, "y": y}))
    trials += [trial(30, None, TrialState.FAIL, params={"x": 0.99, "y": 0.01}),
               trial(31, float("nan"), params={"x": 0.01, "y": 0.99})]
    return study(direction, trials, direction=direction)


def optunas_own(s: JournalStudy) -> dict[str, float]:
    scratch = optuna.create_study(direction=s.direction)
    scratch.add_trials([t for t in s.trials if t.state == TrialState.COMPLETE and math.isfinite(t.value)])
    return optuna.importance.get_param_importances(scratch)


def test_importances_are_optunas_over_the_completed_trials_in_the_studys_direction(capfd) -> None:
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        up = fig_search_importance.param_importances(importance_study("maximize"))
        assert capfd.readouterr().err == ""  # no "A new study created in memory" line
        assert optuna.logging.get_verbosity() == optuna.logging.INFO  # the caller's verbosity is back
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    down = fig_search_importance.param_importances(importance_study("minimize"))
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING
    assert up == pytest.approx(optunas_own(importance_study("maximize")), rel=1e-12)
    assert down == pytest.approx(optunas_own(importance_study("minimize")), rel=1e-12)
    assert list(up) == sorted(up, key=up.get, reverse=True) and sum(up.values()) == pytest.approx(1.0)
    assert list(up)[0] != list(down)[0]  # the direction matters: another parameter decides the bottom
    assert all(type(v) is float for v in up.values())


def test_importances_restore_the_verbosity_when_optuna_raises() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with pytest.raises(ValueError, match=r"direction"):
            fig_search_importance.param_importances(study("odd", [trial(0, 0.5)], direction="sideways"))
        assert optuna.logging.get_verbosity() == optuna.logging.ERROR
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
