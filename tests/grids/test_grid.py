"""Grid files: the paper's counts, per-dataset values, ids, overrides and validation errors."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest

from contracts.config import TrialConfig
from grids.grid import GridError, dump_grid, fast_trial_id, grid_from_mapping, load_grid, parse_value

GRIDS = Path(__file__).resolve().parents[2] / "grids"
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture(scope="module")
def paper() -> dict:
    names = ("propagation", "stability", "stability_constant_width", "demo")
    return {name: load_grid(GRIDS / f"{name}.yaml") for name in names}


@pytest.mark.parametrize(
    "name, count", [("propagation", 50_560), ("stability", 3_432), ("stability_constant_width", 792), ("demo", 32)]
)
def test_grid_files_have_the_papers_trial_counts(paper, name, count):
    grid = paper[name]
    assert grid.name == name
    assert len(grid.trials) == count
    assert grid.duplicates == 0  # 0.3 replaces the paper's repeated 3e-3, so every trial is distinct
    assert len(set(grid.trial_ids)) == count


@pytest.mark.parametrize("name", ["propagation", "stability", "stability_constant_width", "demo"])
def test_fast_trial_ids_equal_the_contract_trial_id(paper, name):
    grid = paper[name]
    picks = random.Random(0).sample(range(len(grid.trials)), min(400, len(grid.trials)))
    for i in picks:
        assert grid.trial_ids[i] == grid.trials[i].trial_id == fast_trial_id(grid.trials[i])


def _values(grid, key, **where):
    out = set()
    for cfg in grid.trials:
        if all(_get(cfg, k.replace("__", ".")) == v for k, v in where.items()):
            out.add(_get(cfg, key))
    return out


def _get(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_propagation_per_dataset_values(paper):
    g = paper["propagation"]
    moons = dict(data__dataset="two_moons")
    fm = dict(data__dataset="fashion_mnist")
    assert _values(g, "model.width", **moons) == {128, 256, 512, 1024}
    assert _values(g, "model.width", **fm) == {512, 1024, 2048, 4096}
    assert _values(g, "seed", **moons) == set(range(10))
    assert _values(g, "seed", **fm) == {0, 1, 2}
    assert _values(g, "data.batch_size", **moons) == {32} and _values(g, "data.batch_size", **fm) == {128}
    assert _values(g, "train.w_lr", **moons) == {1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 0.3, 1.0}
    assert _values(g, "train.w_lr", **fm) == {1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0}
    assert _values(g, "train.T", model__kind="bp") == {1} and _values(g, "train.h_lr", model__kind="bp") == {1.0}
    assert _values(g, "train.T", model__kind="pc") == {8}
    assert len(_values(g, "train.h_lr", model__kind="pc")) == 7
    assert {(c.train.w_optimizer, c.train.w_momentum) for c in g.trials} == {
        ("sgd", 0.0), ("sgd", 0.5), ("sgd", 0.9), ("sgd", 0.95), ("adamw", 0.9)
    }
    assert _values(g, "model.activation") == {"leaky_relu", "hard_tanh"}
    assert _values(g, "train.epochs") == {8} and _values(g, "data.n_samples") == {1024}


def test_stability_grids_values(paper):
    s, c = paper["stability"], paper["stability_constant_width"]
    assert _values(s, "train.w_lr", data__dataset="two_moons") == {0.03}
    assert _values(s, "train.w_lr", data__dataset="fashion_mnist") == {0.01}
    assert len(_values(s, "train.h_lr", model__kind="pc")) == 10
    assert _values(s, "model.width") == {32, 64, 128, 256, 512, 1024, 2048, 4096}
    assert _values(c, "data.dataset") == {"fashion_mnist"}
    for cfg in c.trials:
        assert cfg.model.constant_width and cfg.data.resize**2 == cfg.data.n_classes == cfg.model.width


def test_trial_order_and_ids_are_deterministic():
    a, b = load_grid(GRIDS / "demo.yaml"), load_grid(GRIDS / "demo.yaml")
    assert a.trial_ids == b.trial_ids and a.trials == b.trials
    # Golden ids: a change here silently orphans every stored shard of the demo grid.
    golden = (GOLDEN / "demo_trial_ids.txt").read_text().split()
    assert list(a.trial_ids) == golden


def _doc(**changes) -> dict:
    doc = {
        "name": "t",
        "defaults": {"data": {"n_samples": 64, "batch_size": 16}, "train": {"epochs": 1}},
        "sweep": [{"axes": {"train.h_lr": [0.1, 0.3], "seed": [0, 1]}}],
    }
    doc.update(changes)
    return doc


def test_duplicate_trials_collapse_to_the_first():
    g = grid_from_mapping(_doc(sweep=[{"axes": {"train.h_lr": [0.3, 0.30000000000000004, 0.3]}},
                                      {"set": {"train.h_lr": 0.3}}]))
    assert len(g.trials) == 1 and g.duplicates == 3


def test_floats_like_1e_3_are_floats_not_strings():
    assert parse_value("1e-3") == 0.001 and parse_value("3") == 3 and parse_value("null") is None
    assert parse_value("adamw") == "adamw" and parse_value("true") is True


def test_overrides_apply_to_every_trial_and_fold_into_raw():
    g = grid_from_mapping(_doc(), overrides=["train.epochs=3", "data.n_samples=128"])
    assert {c.train.epochs for c in g.trials} == {3} and {c.data.n_samples for c in g.trials} == {128}
    assert g.raw["defaults"]["train"]["epochs"] == 3
    again = grid_from_mapping(g.raw)
    assert again.trial_ids == g.trial_ids


def test_dumped_grid_reloads_to_the_same_trials(tmp_path):
    grid = load_grid(GRIDS / "stability_constant_width.yaml", ["train.epochs=1"])
    path = tmp_path / "grid.yaml"
    path.write_text(dump_grid(grid))
    assert load_grid(path).trial_ids == grid.trial_ids


def test_by_case_replaces_block_axes_and_adds_values():
    doc = _doc(sweep=[{
        "axes": {"data.dataset": ["two_moons", "fashion_mnist"], "model.width": [8, 16]},
        "by": {"data.dataset": {"fashion_mnist": {"set": {"data.batch_size": 128}, "axes": {"model.width": [64]}}}},
    }])
    g = grid_from_mapping(doc)
    assert [(c.data.dataset, c.model.width, c.data.batch_size) for c in g.trials] == [
        ("two_moons", 8, 16), ("two_moons", 16, 16), ("fashion_mnist", 64, 128)
    ]


def test_joint_axes_vary_together_and_exclude_drops_trials():
    doc = _doc(sweep=[{
        "axes": {"model.width": [8, 16]},
        "joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.0], ["adamw", 0.9]]},
        "exclude": [{"train.w_optimizer": "adamw", "model.width": 16}],
    }])
    got = [(c.model.width, c.train.w_optimizer, c.train.w_momentum) for c in grid_from_mapping(doc).trials]
    assert got == [(8, "sgd", 0.0), (8, "adamw", 0.9), (16, "sgd", 0.0)]


BAD = [
    # (change to the document, substrings the message must contain)
    (dict(sweep=[{"axes": {"train.wlr": [1]}}]), ["sweep[0].axes.train.wlr", "unknown key", "did you mean train.w_lr"]),
    (dict(sweep=[{"axes": {"train.h_lr": []}}]), ["sweep[0].axes.train.h_lr", "empty axis"]),
    (dict(sweep=[{"axes": {"train.h_lr": [0.1, 0.0]}}]), ["sweep[0].axes.train.h_lr[1]", "train.h_lr", "positive"]),
    (dict(sweep=[{"axes": {"train.w_lr": [-1e-3]}}]), ["train.w_lr", "positive"]),
    (dict(sweep=[{"axes": {"model.width": [128, 1.5]}}]), ["sweep[0].axes.model.width[1]", "model.width", "int"]),
    (dict(sweep=[{"axes": {"model.width": ["wide"]}}]), ["model.width", "'wide'"]),
    (dict(sweep=[{"axes": {"data.dataset": ["cifar10"]}}]), ["data.dataset", "cifar10", "two_moons"]),
    (dict(sweep=[{"axes": {"train.h_lr": 0.1}}]), ["sweep[0].axes.train.h_lr", "expected a list", "set:"]),
    (dict(sweep=[{"axis": {"train.h_lr": [0.1]}}]), ["sweep[0].axis", "unknown key", "axes"]),
    (dict(sweep=[]), ["sweep", "non-empty list"]),
    (dict(sweep=[{"set": {"model.kind": "bp"}}]), ["train.T", "bp", "sweep[0]"]),
    (dict(sweep=[{"axes": {"seed": {"range": "ten"}}}]), ["sweep[0].axes.seed", "range"]),
    (dict(sweep=[{"axes": {"seed": [0, 1.5]}}]), ["seed", "1.5"]),
    (dict(sweep=[{"axes": {"train.h_lr": [0.1]}, "set": {"train.h_lr": 0.2}}]), ["train.h_lr is also given"]),
    (dict(sweep=[{"joint": {"train.w_optimizer, train.w_momentum": [["sgd"]]}}]), ["joint", "[0]", "2 values"]),
    (dict(sweep=[{"joint": {"train.w_optimizer": [["sgd"]]}}]), ["joint", "two or more"]),
    (dict(sweep=[{"axes": {"data.dataset": ["two_moons"]},
                  "by": {"data.dataset": {"mnist": {"set": {"data.batch_size": 8}}}}}]),
     ["by.data.dataset.mnist", "not a value of data.dataset"]),
    (dict(sweep=[{"by": {"data.dataset": {"two_moons": {"axes": {"model.widht": [8]}}}}}]),
     ["model.widht", "unknown key"]),
    (dict(sweep=[{"by": {"data.dataset": {"two_moons": {"sets": {}}}}}]),
     ["by.data.dataset.two_moons.sets", "unknown key"]),
    (dict(sweep=[{"exclude": [{"model.kind": "BP"}]}]), ["exclude[0].model.kind", "'BP'", "pc"]),
    (dict(exclude=[{"train.wlr": 1.0}]), ["exclude[0].train.wlr", "unknown key"]),
    (dict(exclude=[{"train.h_lr": [0.1, 0.3]}, {"seed": [0, 1]}]), ["every trial is excluded"]),
    (dict(name="my grid!"), ["name", "folder name"]),
    (dict(name=None), ["name"]),
    (dict(defaults={"train": {"epochs": 0}}), ["defaults", "train.epochs", "positive"]),
    (dict(defaults={"optim": {"T": 8}}), ["defaults.optim.T", "unknown key"]),
    (dict(sweeps=[]), ["sweeps", "unknown key", "sweep"]),
    (dict(sweep=[{"axes": {"data.n_samples": [64, 48]}}]), ["data.n_samples // data.batch_size", "even"]),
]


@pytest.mark.parametrize("change, expected", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_grids_fail_naming_the_file_and_key(change, expected):
    with pytest.raises(GridError, match=r"^grids/bad\.yaml: ") as err:
        grid_from_mapping(_doc(**change), source="grids/bad.yaml")
    message = str(err.value)
    assert message.startswith("grids/bad.yaml: "), message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["train.h_lr=0.5"], ["override train.h_lr=0.5", "varied by the sweep", "--only"]),
        (["train.epoch=1"], ["train.epoch", "unknown key", "did you mean train.epochs"]),
        (["train.epochs"], ["KEY=VALUE"]),
        (["train.epochs=one"], ["train.epochs", "'one'"]),
        (["train.w_lr=0"], ["train.w_lr", "positive"]),
    ],
)
def test_bad_overrides_are_refused(overrides, expected):
    with pytest.raises(GridError, match=r"^grids/bad\.yaml: ") as err:
        grid_from_mapping(_doc(), source="grids/bad.yaml", overrides=overrides)
    for part in expected:
        assert part in str(err.value), str(err.value)


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "dup.yaml"
    bad.write_text("name: a\nname: b\n")
    with pytest.raises(GridError, match=r"dup.yaml: line 2: duplicate key 'name'"):
        load_grid(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(GridError, match="broken.yaml: not valid YAML"):
        load_grid(broken)
    with pytest.raises(GridError, match="cannot read the grid file"):
        load_grid(tmp_path / "missing.yaml")


def test_flow_sequence_keys_and_comma_keys_are_the_same_joint_axis(tmp_path):
    text = "name: j\nsweep:\n  - joint:\n      [train.w_optimizer, train.w_momentum]: [[sgd, 0.0], [adamw, 0.9]]\n"
    (tmp_path / "a.yaml").write_text(text)
    unbracketed = text.replace("[train.w_optimizer, train.w_momentum]", "train.w_optimizer, train.w_momentum")
    (tmp_path / "b.yaml").write_text(unbracketed)
    assert load_grid(tmp_path / "a.yaml").trial_ids == load_grid(tmp_path / "b.yaml").trial_ids


def test_grid_defaults_are_the_full_trial_mapping():
    g = grid_from_mapping(_doc())
    assert g.defaults == TrialConfig.from_mapping(copy.deepcopy(_doc()["defaults"])).to_mapping()
    assert set(g.swept) == {"train.h_lr", "seed"}
