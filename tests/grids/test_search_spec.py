"""The `search:` section of a grid file (grids/search.py): parsing, the studies and their names, refusals.

Good specs must give `Distribution`s whose `to_optuna()` are the expected Optuna distributions and one study per
expanded sweep config; bad ones a one-line `GridError` naming the file, the `search.params.KEY.FIELD` key and the
fix. `python -m launch` refuses a grid with `search:` (exit 2, one line) until search launches exist.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from optuna import distributions as od

import grids.search
from contracts.config import TrialConfig
from grids import GridError, SearchSpec, dump_grid, grid_from_mapping, load_grid
from grids.search import DEFAULT_BATCH, Distribution, Study, study_names

REPO = Path(__file__).resolve().parents[2]
SOURCE = "grids/s.yaml"

PARAMS = {
    "train.h_lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
    "train.h_momentum": {"type": "float", "low": 0, "high": 1, "step": 0.05},
    "model.width": {"type": "int", "low": 16, "high": 128, "step": 16},
    "train.epochs": {"type": "int", "low": 1, "high": 64, "log": True},
    "model.activation": {"type": "categorical", "choices": ["leaky_relu", "gelu", "hard_tanh"]},
}


def _doc(**search) -> dict:
    """A 3 x 2 sweep (model.init_h x train.T) on two_moons, with a `search:` section updated by `search`."""
    section = {"budget": 16, "params": copy.deepcopy(PARAMS)}
    section.update(search)
    return {
        "name": "s",
        "defaults": {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16}, "train": {"epochs": 1}},
        "sweep": [{"axes": {"model.init_h": ["forward", "zero", "normal"], "train.T": [3, 20]}}],
        "search": section,
    }


def _params(**specs) -> dict:
    """`params:` holding only the given keys (dotted keys written with `__` for `.`)."""
    return {k.replace("__", "."): v for k, v in specs.items()}


def test_good_spec_gives_distributions_and_their_optuna_objects():
    spec = grid_from_mapping(_doc(), source=SOURCE).search
    assert isinstance(spec, SearchSpec)
    assert (spec.metric, spec.direction, spec.budget, spec.batch) == ("accuracy_best", "maximize", 16, DEFAULT_BATCH)
    assert spec.params == (
        Distribution("train.h_lr", "float", 0.01, 0.5, log=True),
        Distribution("train.h_momentum", "float", 0.0, 1.0, step=0.05),
        Distribution("model.width", "int", 16, 128, step=16),
        Distribution("train.epochs", "int", 1, 64, log=True),
        Distribution("model.activation", "categorical", choices=("leaky_relu", "gelu", "hard_tanh")),
    )
    assert all(type(d.low) is float for d in spec.params[:2])  # an int bound of a float key is read as a float
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Optuna warning (a step that does not divide the range warns)
        got = spec.distributions()
    assert got == {
        "train.h_lr": od.FloatDistribution(0.01, 0.5, log=True),
        "train.h_momentum": od.FloatDistribution(0.0, 1.0, step=0.05),
        "model.width": od.IntDistribution(16, 128, step=16),
        "train.epochs": od.IntDistribution(1, 64, log=True),
        "model.activation": od.CategoricalDistribution(("leaky_relu", "gelu", "hard_tanh")),
    }
    assert [d.to_optuna() for d in spec.params] == list(got.values())


@pytest.mark.parametrize("low, high, step", [(0.1, 0.3, 0.2), (0.0, 1.0, 0.1), (0.01, 0.5, 0.07), (0, 1, 1)])
def test_float_steps_that_divide_the_range_in_decimal_are_accepted(low, high, step):
    spec = grid_from_mapping(_doc(params=_params(train__h_momentum={"type": "float", "low": low, "high": high,
                                                                    "step": step}))).search
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spec.params[0].to_optuna() == od.FloatDistribution(float(low), float(high), step=float(step))


def test_metric_direction_and_batch_are_read():
    spec = grid_from_mapping(_doc(metric="accuracy", direction="minimize", batch=4, budget=100_000)).search
    assert (spec.metric, spec.direction, spec.batch, spec.budget) == ("accuracy", "minimize", 4, 100_000)


def test_a_3_by_2_sweep_gives_six_named_studies_in_sweep_order():
    grid = grid_from_mapping(_doc(), source=SOURCE)
    studies = grid.search.studies
    assert [s.name for s in studies] == [
        "init_h=forward.T=3", "init_h=forward.T=20", "init_h=zero.T=3",
        "init_h=zero.T=20", "init_h=normal.T=3", "init_h=normal.T=20",
    ]
    assert [dict(s.cell) for s in studies] == [
        {"model.init_h": h, "train.T": t} for h in ("forward", "zero", "normal") for t in (3, 20)
    ]
    assert [TrialConfig.from_mapping(s.base) for s in studies] == list(grid.trials)
    base = studies[2].base
    assert base["model"]["init_h"] == "zero" and base["train"]["T"] == 3 and base["data"]["n_samples"] == 64
    assert base["train"]["h_lr"] == 0.1  # the default; each trial sets its own
    cfg = studies[2].config({"train.h_lr": 0.2, "model.activation": "gelu"})
    assert (cfg.train.h_lr, cfg.model.activation, cfg.model.init_h, cfg.train.T) == (0.2, "gelu", "zero", 3)
    with pytest.raises(ValueError, match="train.T: fixed by the study's cell"):
        studies[2].config({"train.T": 5})


@pytest.mark.parametrize("sweep, cell", [(None, {}), ([{"set": {"train.T": 3}}], {"train.T": 3})],
                         ids=["no_sweep", "set_only"])
def test_a_single_config_sweep_is_one_study(sweep, cell):
    doc = _doc()
    if sweep is None:
        del doc["sweep"]
    else:
        doc["sweep"] = sweep
    spec = grid_from_mapping(doc).search
    assert [(s.name, dict(s.cell)) for s in spec.studies] == [("study", cell)]


def test_names_use_the_full_key_when_two_keys_share_their_last_part():
    doc = _doc()
    doc["sweep"] = [{"axes": {"data.seed": [1, 2], "seed": [0, 1]}}]
    names = [s.name for s in grid_from_mapping(doc).search.studies]
    assert names == ["data.seed=1.seed=0", "data.seed=1.seed=1", "data.seed=2.seed=0", "data.seed=2.seed=1"]


def test_constant_swept_keys_are_in_the_cell_but_not_in_the_name():
    doc = _doc()
    doc["sweep"] = [{"set": {"train.w_weight_decay": 1e-5}, "axes": {"train.w_lr": [3e-5, 1e-4]}}]
    studies = grid_from_mapping(doc).search.studies
    assert [s.name for s in studies] == ["w_lr=3e-05", "w_lr=0.0001"]
    assert dict(studies[0].cell) == {"train.w_weight_decay": 1e-5, "train.w_lr": 3e-5}


def test_long_names_fall_back_to_a_cut_name_and_the_trial_id():
    doc = _doc(params={"train.h_lr": {"type": "float", "low": 0.01, "high": 0.5}})
    keys = ["model.activation", "model.init_h", "train.w_optimizer", "train.matmul_precision", "data.resize_method",
            "train.early_stop", "train.w_weight_decay", "train.w_lr"]
    doc["sweep"] = [{"joint": {", ".join(keys): [["leaky_relu", "forward", "adamw", "highest", "lanczos", True,
                                                   1.0e-5, 3.0e-4],
                                                  ["hard_tanh", "normal", "adamw", "default", "bicubic", False,
                                                   1.0e-4, 1.0e-3]]}}]
    grid = grid_from_mapping(doc)
    names = [s.name for s in grid.search.studies]
    assert len(set(names)) == 2
    for name, tid in zip(names, grid.trial_ids):
        assert len(name) <= 100 and re.fullmatch(r"[A-Za-z0-9_.=-]+", name), name
        assert name.startswith("activation=") and name.endswith(f"-{tid}"), name


def test_study_names_that_collide_or_hold_other_characters_get_the_trial_id():
    cells = [{"k.a": "x y"}, {"k.a": "x_y"}, {"k.a": "X_Y"}, {"k.a": "z"}]
    ids = ["0000000000000001", "0000000000000002", "0000000000000003", "0000000000000004"]
    assert study_names(cells, ids) == ["a=x_y-0000000000000001", "a=x_y-0000000000000002",
                                       "a=X_Y-0000000000000003", "a=z"]
    assert study_names([{"k": 1.0e20}, {"k": 1.5}], ["a" * 16, "b" * 16]) == ["k=1e20", "k=1.5"]


def test_grids_without_search_have_none():
    assert grid_from_mapping({"name": "x", "defaults": {"data": {"n_samples": 64}}}).search is None
    assert load_grid(REPO / "grids" / "demo.yaml").search is None


YAML = """\
name: s
defaults:
  data: {dataset: two_moons, n_samples: 64, batch_size: 16}
  train: {epochs: 1}
sweep:
  - axes: {model.init_h: [forward, zero, normal], train.T: [3, 20]}
search:
  metric: accuracy_best
  direction: maximize
  budget: 16
  batch: 8
  params:
    train.h_lr: {type: float, low: 1e-2, high: 0.5, log: true}
    train.h_momentum: {type: float, low: 0.0, high: 1.0, step: 0.05}
    model.activation: {type: categorical, choices: [leaky_relu, gelu, hard_tanh]}
"""


def test_a_grid_file_with_search_loads_and_its_stored_copy_reloads_the_same(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(YAML)
    grid = load_grid(path)
    assert grid.search.params[0] == Distribution("train.h_lr", "float", 0.01, 0.5, log=True)
    assert grid.search.batch == 8 and len(grid.search.studies) == 6
    stored = tmp_path / "grid.yaml"
    stored.write_text(dump_grid(grid))
    again = load_grid(stored)
    assert again.search == grid.search and again.trial_ids == grid.trial_ids


def test_overrides_reach_the_study_bases_but_not_a_searched_key():
    grid = grid_from_mapping(_doc(), overrides=["train.w_lr=0.003"])
    assert {s.base["train"]["w_lr"] for s in grid.search.studies} == {0.003}
    with pytest.raises(GridError, match=r"^grids/s\.yaml: override train\.h_lr=0\.2: train\.h_lr is searched"):
        grid_from_mapping(_doc(), source=SOURCE, overrides=["train.h_lr=0.2"])


def _set_param(key: str, spec):
    return {"params": _params(**{key.replace(".", "__"): spec})}


F = {"type": "float", "low": 0.01, "high": 0.5}
BAD = [
    # (case id, changes to the search section (None: `search:` itself), the key the message names, the fix)
    ("search_list", [1, 2], "search", "expected a mapping with metric"),
    ("search_empty", None, "search", "remove the section"),
    ("unknown_search_key", {"budgte": 3}, "search.budgte", "did you mean budget?"),
    ("params_missing", {"params": "DELETE"}, "search.params", "missing; give the searched keys"),
    ("params_empty", {"params": {}}, "search.params", "one or more searched keys"),
    ("params_list", {"params": ["train.h_lr"]}, "search.params", "expected a mapping"),
    ("unknown_param_key", _set_param("train.hlr", F), "search.params.train.hlr", "did you mean train.h_lr?"),
    ("swept_param_key", _set_param("train.T", {"type": "int", "low": 1, "high": 20}), "search.params.train.T",
     "remove it from search.params or from sweep:"),
    ("spec_not_mapping", _set_param("train.h_lr", 0.1), "search.params.train.h_lr", "expected a distribution like"),
    ("type_missing", _set_param("train.h_lr", {"low": 0.1, "high": 0.2}), "search.params.train.h_lr.type",
     "missing; expected one of float, int, categorical"),
    ("type_unknown", _set_param("train.h_lr", {**F, "type": "uniform"}), "search.params.train.h_lr.type",
     "expected one of float, int, categorical"),
    ("unknown_spec_key", _set_param("train.h_lr", {**F, "lo": 0.1}), "search.params.train.h_lr.lo",
     "expected one of type, low, high, log, step"),
    ("range_key_on_categorical", _set_param("model.activation", {"type": "categorical", "choices": ["gelu", "relu"],
                                                                 "low": 1}),
     "search.params.model.activation.low", "expected one of type, choices"),
    ("low_missing", _set_param("train.h_lr", {"type": "float", "high": 0.5}), "search.params.train.h_lr.low",
     "needs low and high"),
    ("high_missing", _set_param("train.epochs", {"type": "int", "low": 1}),
     "search.params.train.epochs.high", "needs low and high"),
    ("h_lr_low_zero", _set_param("train.h_lr", {**F, "low": 0}), "search.params.train.h_lr.low",
     "expected a positive number; every value of the range must be valid: fix low"),
    ("momentum_high_1_5", _set_param("train.h_momentum", {"type": "float", "low": 0.0, "high": 1.5}),
     "search.params.train.h_momentum.high", "expected a value in [0, 1]; every value of the range must be valid"),
    ("low_above_high", _set_param("train.h_lr", {**F, "low": 0.6}), "search.params.train.h_lr",
     "an empty range; give low < high"),
    ("float_low_equals_high", _set_param("train.h_lr", {**F, "low": 0.5}), "search.params.train.h_lr",
     "an empty range; give low < high"),
    ("int_low_equals_high", _set_param("train.epochs", {"type": "int", "low": 3, "high": 3}),
     "search.params.train.epochs", "an empty range; give low < high"),
    ("log_low_zero", _set_param("train.h_momentum", {"type": "float", "low": 0.0, "high": 1.0, "log": True}),
     "search.params.train.h_momentum.low", "a log scale needs low > 0: raise low or drop log"),
    ("log_not_bool", _set_param("train.h_lr", {**F, "log": "yes"}), "search.params.train.h_lr.log",
     "expected true or false"),
    ("step_zero", _set_param("train.h_momentum", {"type": "float", "low": 0.0, "high": 1.0, "step": 0}),
     "search.params.train.h_momentum.step", "expected a number > 0"),
    ("int_step_negative", _set_param("model.width", {"type": "int", "low": 16, "high": 64, "step": -16}),
     "search.params.model.width.step", "expected an integer > 0"),
    ("int_step_float", _set_param("model.width", {"type": "int", "low": 16, "high": 64, "step": 1.5}),
     "search.params.model.width.step", "expected an integer > 0"),
    ("step_with_log", _set_param("train.h_lr", {**F, "log": True, "step": 0.01}), "search.params.train.h_lr",
     "drop step or log"),
    ("step_not_dividing", _set_param("train.h_momentum", {"type": "float", "low": 0.0, "high": 1.0, "step": 0.3}),
     "search.params.train.h_momentum.step", "set high: 0.9 or change the step"),
    ("int_step_not_dividing", _set_param("model.width", {"type": "int", "low": 16, "high": 100, "step": 16}),
     "search.params.model.width.step", "set high: 96"),
    ("step_larger_than_range", _set_param("model.width", {"type": "int", "low": 16, "high": 32, "step": 64}),
     "search.params.model.width.step", "give a smaller step"),
    ("int_bound_float", _set_param("model.width", {"type": "int", "low": 1.5, "high": 64}),
     "search.params.model.width.low", "expected an integer for type int"),
    ("int_bound_bool", _set_param("model.width", {"type": "int", "low": 1, "high": True}),
     "search.params.model.width.high", "(a bool is not a number); expected an integer"),
    ("float_bound_text", _set_param("train.h_lr", {**F, "high": "0.5"}), "search.params.train.h_lr.high",
     "expected a number"),
    ("float_bound_nan", _set_param("train.h_lr", {**F, "high": float("nan")}), "search.params.train.h_lr.high",
     "expected a finite number"),
    ("float_on_int_key", _set_param("train.epochs", {"type": "float", "low": 1, "high": 8}),
     "search.params.train.epochs.type", "not float; use type: int"),
    ("int_on_float_key", _set_param("train.h_lr", {"type": "int", "low": 1, "high": 8}),
     "search.params.train.h_lr.type", "not int; use type: float"),
    ("float_on_text_key", _set_param("model.activation", {"type": "float", "low": 1, "high": 8}),
     "search.params.model.activation.type", "use type: categorical with choices"),
    ("int_on_bool_key", _set_param("train.early_stop", {"type": "int", "low": 0, "high": 1}),
     "search.params.train.early_stop.type", "use type: categorical with choices"),
    ("unknown_activation", _set_param("model.activation", {"type": "categorical", "choices": ["gelu", "relu6"]}),
     "search.params.model.activation.choices[1]", "expected one of leaky_relu, hard_tanh"),
    ("choice_wrong_type", _set_param("train.h_lr", {"type": "categorical", "choices": [0.1, "fast"]}),
     "search.params.train.h_lr.choices[1]", "expected float; fix or remove this choice"),
    ("choice_out_of_range", _set_param("train.h_momentum", {"type": "categorical", "choices": [0.5, 2.0]}),
     "search.params.train.h_momentum.choices[1]", "fix or remove this choice"),
    ("choice_a_list", _set_param("train.h_lr", {"type": "categorical", "choices": [0.1, [0.2]]}),
     "search.params.train.h_lr.choices[1]", "expected a single value"),
    ("choices_missing", _set_param("model.activation", {"type": "categorical"}),
     "search.params.model.activation.choices", "missing; give a list of two or more values"),
    ("choices_empty", _set_param("model.activation", {"type": "categorical", "choices": []}),
     "search.params.model.activation.choices", "a search needs two or more choices"),
    ("choices_one", _set_param("model.activation", {"type": "categorical", "choices": ["gelu"]}),
     "search.params.model.activation.choices", "a fixed value belongs in defaults:"),
    ("choices_not_a_list", _set_param("model.activation", {"type": "categorical", "choices": "gelu"}),
     "search.params.model.activation.choices", "expected a list of two or more values"),
    ("choices_repeated", _set_param("train.h_lr", {"type": "categorical", "choices": [0.1, 1, 1.0]}),
     "search.params.train.h_lr.choices[2]", "repeats choices[1]; give each value once"),
    ("choices_too_many", _set_param("train.w_lr", {"type": "categorical", "choices": [i + 1 for i in range(101)]}),
     "search.params.train.w_lr.choices", "more than 100; search a range"),
    ("metric_unknown", {"metric": "loss"}, "search.metric", "expected one of accuracy_best, accuracy"),
    ("direction_unknown", {"direction": "max"}, "search.direction", "expected one of maximize, minimize"),
    ("budget_missing", {"budget": "DELETE"}, "search.budget", "missing; give the completed trials"),
    ("budget_zero", {"budget": 0}, "search.budget", "expected a whole number of completed trials per study from 1"),
    ("budget_negative", {"budget": -5}, "search.budget", "from 1 to 100,000"),
    ("budget_bool", {"budget": True}, "search.budget", "(a bool is not a number)"),
    ("budget_text", {"budget": "128"}, "search.budget", "expected a whole number"),
    ("budget_fraction", {"budget": 1.5}, "search.budget", "expected a whole number"),
    ("budget_huge", {"budget": 100_001}, "search.budget", "from 1 to 100,000"),
    ("batch_zero", {"batch": 0}, "search.batch", "trials a worker asks at once from 1 to 4,096"),
    ("batch_bool", {"batch": False}, "search.batch", "(a bool is not a number)"),
    ("batch_huge", {"batch": 5000}, "search.batch", "from 1 to 4,096"),
    # rules between keys, checked in every study: backprop needs T = 1, two_moons an even number of batches
    ("kind_bp_in_a_pc_study", _set_param("model.kind", {"type": "categorical", "choices": ["pc", "bp"]}),
     "search.params.model.kind.choices[1]", "backprop runs T=1; every sampled trial must be valid"),
    ("odd_batches_inside_the_range", _set_param("data.n_samples", {"type": "int", "low": 64, "high": 128}),
     "search.params.data.n_samples", "(a value inside the range) makes study init_h=forward.T=3 invalid"),
    ("resize_for_two_moons", _set_param("data.resize", {"type": "int", "low": 8, "high": 28}),
     "search.params.data.resize.low", "only image datasets can be resized"),
]


@pytest.mark.parametrize("case, change, key, fix", BAD, ids=[c[0] for c in BAD])
def test_bad_search_sections_are_refused_in_one_line(case, change, key, fix):
    doc = _doc()
    if isinstance(change, dict):
        for k, v in change.items():
            if v == "DELETE":
                del doc["search"][k]
            else:
                doc["search"][k] = v
    else:
        doc["search"] = change
    with pytest.raises(GridError, match=f"^{re.escape(SOURCE)}: {re.escape(key)}: ") as err:
        grid_from_mapping(doc, source=SOURCE)
    message = str(err.value)
    assert "\n" not in message, message
    assert message.startswith(f"{SOURCE}: {key}: "), message
    assert fix in message, f"{fix!r} not in {message!r}"


def test_too_many_studies_are_refused():
    doc = _doc()
    doc["sweep"] = [{"axes": {"seed": {"range": 10_001}}}]
    with pytest.raises(GridError, match=r"^grids/s\.yaml: search: the sweep expands to 10,001 study cells, more than "
                                        r"the 10,000 a search may hold; vary fewer keys"):
        grid_from_mapping(doc, source=SOURCE)


def test_too_many_config_checks_are_refused_before_checking(monkeypatch):
    monkeypatch.setattr(grids.search, "MAX_CHECKS", 10)
    with pytest.raises(GridError, match=r"^grids/s\.yaml: search: 47 searched values to check in each of 6 studies "
                                        r"\(282 config checks\), more than 10; give fewer choices"):
        grid_from_mapping(_doc(), source=SOURCE)


def test_study_cells_keep_their_grid_order_after_exclusions():
    doc = _doc()
    doc["exclude"] = [{"model.init_h": "zero"}]
    names = [s.name for s in grid_from_mapping(doc).search.studies]
    assert names == ["init_h=forward.T=3", "init_h=forward.T=20", "init_h=normal.T=3", "init_h=normal.T=20"]
    assert isinstance(grid_from_mapping(doc).search.studies[0], Study)


def test_the_dry_run_of_a_search_grid_shows_its_plan_and_writes_nothing(tmp_path):
    grid = tmp_path / "s.yaml"
    grid.write_text(YAML)
    root = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "launch", str(grid), "--dry-run", "--root", str(root),
                           "--executor", "local", "--workers", "3"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "search: 6 stud(ies) x budget 16 = 96 trials; batch" in proc.stdout and "3 worker(s)" in proc.stdout
    assert "projected" in proc.stdout and "no study has started" in proc.stdout
    assert not root.exists() or not any(root.iterdir())
    bad = subprocess.run([sys.executable, "-m", "launch", str(grid), "--dry-run", "--root", str(root),
                          "--workers", "0"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--workers" in bad.stderr and "Traceback" not in bad.stderr
