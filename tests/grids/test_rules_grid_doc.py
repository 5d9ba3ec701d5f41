"""grids.grid as small, explicit examples: the document around the sweep (name, defaults, overrides, exclude, raw).

Fast tier: no paper grid is loaded. tests/grids/test_rules_sweep.py covers the sweep rules themselves.
"""

from __future__ import annotations

import copy

import pytest
import yaml

import grids.grid
import grids.sweep
from contracts.config import TrialConfig
from grids.grid import Grid, GridError, dump_grid, grid_from_mapping, load_grid

SRC = "g.yaml"
BASE = {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16}, "train": {"epochs": 1}}


def doc(**changes) -> dict:
    out = {"name": "t", "defaults": copy.deepcopy(BASE), "sweep": [{"axes": {"seed": [0, 1], "model.width": [8, 16]}}]}
    out.update(changes)
    return out


def refused(document, overrides=()) -> str:
    """The message of the GridError a document gets (every message starts with the file)."""
    with pytest.raises(GridError, match=r"^g\.yaml: ") as err:
        grid_from_mapping(document, source=SRC, overrides=overrides)
    return str(err.value)


def test_a_grid_holds_its_trials_ids_name_and_the_full_defaults():
    g = grid_from_mapping(doc(description="four trials"), source=SRC)
    assert isinstance(g, Grid) and g.name == "t" and g.path is None and g.description == "four trials"
    assert [(c.seed, c.model.width) for c in g.trials] == [(0, 8), (0, 16), (1, 8), (1, 16)]
    assert g.trial_ids == tuple(c.trial_id for c in g.trials)
    assert g.defaults == TrialConfig.from_mapping(BASE).to_mapping()
    assert g.duplicates == 0 and g.search is None
    assert g.swept == ("model.width", "seed")


def test_top_level_exclude_drops_trials_and_adds_to_block_rules():
    sweep = [{"axes": {"seed": [0, 1], "model.width": [8, 16]}, "exclude": [{"seed": 0, "model.width": 8}]}]
    g = grid_from_mapping(doc(sweep=sweep, exclude=[{"model.width": 16, "seed": 1}]), source=SRC)
    assert [(c.seed, c.model.width) for c in g.trials] == [(0, 16), (1, 8)]


def test_without_a_sweep_the_grid_is_the_defaults_alone():
    g = grid_from_mapping({"name": "one", "defaults": BASE, "sweep": None}, source=SRC)
    assert g.trials == (TrialConfig.from_mapping(BASE),) and g.swept == ()
    assert grid_from_mapping({"name": "one", "defaults": BASE}).trial_ids == g.trial_ids
    assert grid_from_mapping({"name": "one", "defaults": BASE, "description": None}).description == ""


def test_duplicates_keep_the_first_and_are_counted():
    sweep = [{"axes": {"seed": [0, 1, 0]}}, {"set": {"seed": 1}}]
    g = grid_from_mapping(doc(sweep=sweep))
    assert [c.seed for c in g.trials] == [0, 1] and g.duplicates == 2


def test_defaults_may_use_dotted_keys_at_any_depth():
    dotted = {"data.dataset": "two_moons", "data": {"n_samples": 64}, "data.batch_size": 16,
              "train": {"epochs": 2}, "model.width": 8}
    g = grid_from_mapping(doc(defaults=dotted, sweep=None))
    cfg = g.trials[0]
    assert (cfg.data.n_samples, cfg.data.batch_size, cfg.train.epochs, cfg.model.width) == (64, 16, 2, 8)
    assert g.raw["defaults"] == {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16},
                                 "train": {"epochs": 2}, "model": {"width": 8}}


def test_nest_turns_dotted_and_nested_keys_into_one_nested_mapping():
    assert grids.grid._nest({"a.b": 1, "a": {"c": {"d": 2}}, "e": 3}) == {"a": {"b": 1, "c": {"d": 2}}, "e": 3}
    assert grids.grid._flat_keys({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == ["a.b", "a.c.d", "e"]


def test_overrides_fold_into_defaults_and_every_trial():
    g = grid_from_mapping(doc(), source=SRC, overrides=["train.epochs=3", "train.h_lr=0.5"])
    assert {(c.train.epochs, c.train.h_lr) for c in g.trials} == {(3, 0.5)}
    assert g.defaults["train"]["epochs"] == 3 and g.defaults["train"]["h_lr"] == 0.5
    assert g.raw["defaults"]["train"] == {"epochs": 3, "h_lr": 0.5}
    assert g.raw["defaults"]["data"] == BASE["data"]
    assert len(g.trials) == 4
    assert grid_from_mapping(g.raw).trial_ids == g.trial_ids


def test_overrides_keep_block_and_top_rules():
    sweep = [{"axes": {"seed": [0, 1], "model.width": [8, 16]}, "exclude": [{"seed": 0}]}]
    g = grid_from_mapping(doc(sweep=sweep, exclude=[{"model.width": 8}]), overrides=["train.epochs=2"])
    assert [(c.seed, c.model.width, c.train.epochs) for c in g.trials] == [(1, 16, 2)]


def test_the_document_is_not_changed_and_raw_writes_joint_keys_as_text():
    document = doc(sweep=[{"joint": {("train.w_optimizer", "train.w_momentum"): [["sgd", 0.5], ["adamw", 0.9]]},
                           "axes": {"seed": [0]}}])
    before = copy.deepcopy(document)
    g = grid_from_mapping(document, overrides=["train.epochs=2"])
    assert document == before
    assert g.raw["sweep"] == [{"joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.5], ["adamw", 0.9]]},
                               "axes": {"seed": [0]}}]
    assert g.raw["name"] == "t" and g.raw["defaults"]["train"]["epochs"] == 2
    assert grid_from_mapping(g.raw).trial_ids == g.trial_ids
    assert grids.grid._plain({("a", "b"): [(1, {"c": (2,)})], "d": "e"}) == {"a, b": [[1, {"c": [2]}]], "d": "e"}


def test_swept_keys_name_where_each_key_is_varied():
    sweep = [{"set": {"model.width": 8}, "axes": {"seed": [0, 1]},
              "joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.5]]},
              "by": {"data.dataset": {"two_moons": {"axes": {"train.h_lr": [0.1]}}}}},
             {"axes": {"seed": [2]}}]
    p = grids.sweep.Parser(SRC)
    blocks = [p.block(b, i) for i, b in enumerate(sweep)]
    assert grids.grid._swept_keys(blocks) == {
        "model.width": "sweep[0].set.model.width",
        "seed": "sweep[1].axes.seed",
        "train.w_optimizer": "sweep[0].joint.[train.w_optimizer, train.w_momentum]",
        "train.w_momentum": "sweep[0].joint.[train.w_optimizer, train.w_momentum]",
        "data.dataset": "sweep[0].by.data.dataset",
        "train.h_lr": "sweep[0].by.data.dataset.two_moons.axes.train.h_lr",
    }
    g = grid_from_mapping(doc(sweep=sweep))
    assert g.swept == ("data.dataset", "model.width", "seed", "train.h_lr", "train.w_momentum", "train.w_optimizer")


@pytest.mark.parametrize("override, says", [
    ("seed=3", "g.yaml: override seed=3: seed is varied by the sweep (sweep[0].axes.seed); an override applies "
               "to every trial and would collapse it. Edit the grid file, or pick trials with --only"),
    ("train.epochs", "g.yaml: override 'train.epochs': expected KEY=VALUE"),
    ("train.epochs=0", "g.yaml: override: train.epochs: got 0; expected"),
    ("model.kind=bp", "g.yaml: override: train.T: got 8 for model.kind=bp"),
])
def test_bad_overrides_are_refused(override, says):
    message = refused(doc(), [override])
    assert message.startswith(says), message


def test_an_override_of_a_searched_key_is_refused():
    search = {"budget": 4, "params": {"train.h_lr": {"type": "float", "low": 0.01, "high": 0.5}}}
    g = grid_from_mapping(doc(search=search), source=SRC)
    assert g.search is not None and [p.key for p in g.search.params] == ["train.h_lr"]
    assert len(g.search.studies) == 4
    assert grid_from_mapping(doc(search=search), overrides=["train.epochs=2"]).search.budget == 4
    message = refused(doc(search=search), ["train.h_lr=0.2"])
    assert message == ("g.yaml: override train.h_lr=0.2: train.h_lr is searched (search.params.train.h_lr); every "
                       "trial sets its own value. Remove the override, or the key from search.params")


@pytest.mark.parametrize("document, says", [
    ([1], "g.yaml: got list; a grid file is a mapping with name, description, defaults, sweep, exclude, search"),
    (doc(swep=[]), "g.yaml: swep: unknown key; expected one of name, description, defaults, sweep, exclude, search"),
    (doc(name="a b"), "g.yaml: name: got 'a b'; expected a folder name"),
    (doc(name=None), "g.yaml: name: got None"),
    (doc(description=3), "g.yaml: description: got int; expected text"),
    (doc(defaults=[1]), "g.yaml: defaults: got [1]; expected a mapping"),
    (doc(defaults={"train": {"epoch": 1}}), "g.yaml: defaults.train.epoch: unknown key 'train.epoch'"),
    (doc(defaults={"train": {"epochs": 0}}), "g.yaml: defaults: train.epochs: got 0; expected"),
    (doc(sweep={"axes": {}}), "g.yaml: sweep: got {'axes': {}}; expected a non-empty list of blocks"),
    (doc(sweep=[]), "g.yaml: sweep: got []; expected a non-empty list of blocks"),
    (doc(sweep=[{}, {"axes": {"sed": [1]}}]), "g.yaml: sweep[1].axes.sed: unknown key"),
    (doc(exclude={"seed": 0}), "g.yaml: exclude: got {'seed': 0}; expected a list of rules"),
    (doc(exclude=[{"seed": [0, 1]}]), "g.yaml: exclude: every trial is excluded; the grid is empty"),
    (doc(sweep=[{"axes": {"seed": [0]}, "exclude": [{"seed": 0}]}]), "g.yaml: exclude: every trial is excluded"),
    (doc(search={"budget": 4, "params": {"seed": {"type": "int", "low": 0, "high": 9}}}), "g.yaml: search"),
])
def test_bad_documents_are_refused_naming_the_file_and_place(document, says):
    message = refused(document)
    assert message.startswith(says), message


def test_too_many_trials_are_refused_before_any_is_built(monkeypatch):
    monkeypatch.setattr(grids.grid, "MAX_TRIALS", 3)
    monkeypatch.setattr(grids.sweep, "MAX_TRIALS", 3)
    monkeypatch.setattr(grids.grid, "expand", lambda *a: pytest.fail("expanded a grid over the cap"))
    message = refused(doc(exclude=[{"seed": 0}]))
    assert message == ("g.yaml: sweep: 4 trials before exclusions, more than the 3 a grid may hold; split it into "
                       "several grid files")


def test_a_grid_at_the_cap_is_accepted(monkeypatch):
    monkeypatch.setattr(grids.grid, "MAX_TRIALS", 4)
    monkeypatch.setattr(grids.sweep, "MAX_TRIALS", 4)
    assert len(grid_from_mapping(doc()).trials) == 4


def test_load_grid_and_dump_grid_round_trip(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(doc(exclude=[{"seed": 1}])))
    g = load_grid(path, ["train.epochs=2"])
    assert g.path == path and g.name == "t"
    assert [(c.seed, c.model.width, c.train.epochs) for c in g.trials] == [(0, 8, 2), (0, 16, 2)]
    again = tmp_path / "again.yaml"
    again.write_text(dump_grid(g))
    assert yaml.safe_load(dump_grid(g)) == g.raw
    assert load_grid(again).trial_ids == g.trial_ids
    with pytest.raises(GridError, match=r"g\.yaml: override seed=1: seed is varied by the sweep"):
        load_grid(path, ["seed=1"])
    path.write_text(yaml.safe_dump(doc(name="bad name")))
    with pytest.raises(GridError, match=rf"^{path}: name: got 'bad name'"):
        load_grid(str(path))


def test_errors_name_the_grid_when_no_source_is_given():
    with pytest.raises(GridError, match=r"^<grid>: sweep: got \[\]; expected a non-empty list"):
        grid_from_mapping(doc(sweep=[]))


@pytest.mark.parametrize("document, overrides, says", [
    (doc(sweep=[{"set": {"model.kind": "bp"}}]), [], "g.yaml: sweep[0]: train.T: got 8 for model.kind=bp"),
    (doc(sweep=[{"set": {"model.kind": "bp"}}], defaults={**BASE, "train": {"epochs": 1, "T": 1}}),
     ["train.T=2"], "g.yaml: sweep[0]: train.T: got 2 for model.kind=bp"),
    (doc(sweep=[{"joint": {"seed, model.width": [[0, 8]]}, "by": {"seed": {0: {}}}}]), [],
     "g.yaml: sweep[0].by.seed: seed is part of a joint axis"),
    (doc(exclude=[{"sed": 0}]), ["train.epochs=2"], "g.yaml: exclude[0].sed: unknown key"),
    (doc(search={"budget": 4, "params": {"model.kind": {"type": "categorical", "choices": ["pc", "bp"]}}}), [],
     "g.yaml: search.params.model.kind.choices[1]: model.kind='bp' makes study"),
])
def test_errors_found_while_expanding_name_the_file(document, overrides, says):
    message = refused(document, overrides)
    assert message.startswith(says), message
