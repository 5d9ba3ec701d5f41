"""The sweep rules of grids.sweep as small, explicit examples (fast tier; the Hypothesis files cover the same rules).

- exclusions from every level compose: a block's `exclude` adds to the top-level `exclude`, never replaces it;
- a joint axis is never split: a row of the wrong length is refused, and a `by:` case may not split one;
- the trial count is the product of the axis lengths minus the exclusions, in the order the axes are written;
- every value is checked where it is written, and each error names the file and the place.
"""

from __future__ import annotations

import dataclasses

import pytest

import grids.sweep
from contracts.config import TrialConfig, trial_id
from grids.document import GridError
from grids.sweep import (
    MAX_TRIALS,
    Parser,
    _Block,
    _excluded,
    _Group,
    _replace_groups,
    _split_by,
    count_trials,
    expand,
    fast_trial_id,
)

SRC = "g.yaml"
BASE = {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16}, "train": {"epochs": 1}}
DEFAULTS = TrialConfig.from_mapping(BASE).to_mapping()


def parser() -> Parser:
    return Parser(SRC)


def block(spec: dict, index: int = 0) -> _Block:
    return parser().block(spec, index)


def trials(specs: list[dict], top: list | None = None) -> list[TrialConfig]:
    p = parser()
    blocks = [p.block(s, i) for i, s in enumerate(specs)]
    return [cfg for _, cfg in expand(blocks, p.rules(top, "exclude"), DEFAULTS, SRC)]


def cut(cfgs: list[TrialConfig], *keys: str) -> list[tuple]:
    return [tuple(c.get(k) for k in keys) for c in cfgs]


def refused(fn, *args) -> str:
    """The message of the GridError that fn(*args) raises (every message starts with the file)."""
    with pytest.raises(GridError, match=r"^g\.yaml: ") as err:
        fn(*args)
    return str(err.value)


# ---------------------------------------------------------------- exclusions compose


def test_block_exclude_adds_to_the_top_level_exclude():
    spec = {"axes": {"seed": [0, 1, 2], "model.width": [8, 16]}, "exclude": [{"seed": 0}]}
    got = cut(trials([spec], top=[{"model.width": 16}]), "seed", "model.width")
    assert got == [(1, 8), (2, 8)]


def test_top_level_exclude_applies_to_every_block_and_block_rules_only_to_their_own():
    a = {"axes": {"seed": [0, 1]}, "set": {"model.width": 8}, "exclude": [{"seed": 1}]}
    b = {"axes": {"seed": [0, 1, 2]}, "set": {"model.width": 16}}
    got = cut(trials([a, b], top=[{"seed": 2}]), "model.width", "seed")
    assert got == [(8, 0), (16, 0), (16, 1)]


def test_a_rule_matches_only_when_every_key_matches_and_a_list_means_any_value():
    spec = {"axes": {"seed": [0, 1, 2], "model.width": [8, 16]},
            "exclude": [{"seed": [0, 2], "model.width": 8}]}
    assert cut(trials([spec]), "seed", "model.width") == [(0, 16), (1, 8), (1, 16), (2, 16)]


def test_excluded_is_any_rule_of_all_conditions():
    cfg = TrialConfig.from_mapping(BASE).replace(**{"seed": 3, "model.width": 8})
    seed3 = ("seed", frozenset({3}), "w")
    seed4 = ("seed", frozenset({4}), "w")
    width8 = ("model.width", frozenset({8}), "w")
    assert _excluded(cfg, [[seed3, width8]])
    assert not _excluded(cfg, [[seed3, ("model.width", frozenset({16}), "w")]])
    assert _excluded(cfg, [[seed4], [width8]])
    assert not _excluded(cfg, [[seed4]])
    assert not _excluded(cfg, [])


def test_exclude_compares_floats_at_12_digits():
    spec = {"axes": {"train.h_lr": [0.1, 0.3]}, "exclude": [{"train.h_lr": 0.30000000000000004}]}
    assert cut(trials([spec]), "train.h_lr") == [(0.1,)]
    rules = parser().rules([{"train.h_lr": 0.30000000000000004}], "exclude")
    assert rules == [[("train.h_lr", frozenset({0.3}), "exclude[0].train.h_lr")]]


def test_rules_parse_lists_and_single_values_with_their_place():
    rules = parser().rules([{"seed": [1, 2], "model.kind": "bp"}, {"model.width": 8}], "sweep[0].exclude")
    assert rules == [
        [("seed", frozenset({1, 2}), "sweep[0].exclude[0].seed"),
         ("model.kind", frozenset({"bp"}), "sweep[0].exclude[0].model.kind")],
        [("model.width", frozenset({8}), "sweep[0].exclude[1].model.width")],
    ]
    assert parser().rules(None, "exclude") == []


@pytest.mark.parametrize("spec, where, says", [
    ({"seed": 1}, "g.yaml: exclude: ", "expected a list of rules like"),
    ([{}], "g.yaml: exclude[0]: ", "expected a mapping dotted key"),
    ([{"seed": 0}, 3], "g.yaml: exclude[1]: ", "got 3; expected a mapping"),
    ([{"sed": 0}], "g.yaml: exclude[0].sed: ", "unknown key 'sed'; did you mean seed?"),
    ([{"seed": [0, -1]}], "g.yaml: exclude[0].seed: ", "seed"),
])
def test_bad_rules_are_refused_where_they_are_written(spec, where, says):
    message = refused(parser().rules, spec, "exclude")
    assert message.startswith(where) and says in message


# ---------------------------------------------------------------- joint axes are never split


def test_joint_rows_vary_together_as_one_axis_in_the_order_written():
    spec = {"axes": {"seed": [0, 1]},
            "joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.5], ["adamw", 0.9]]}}
    got = cut(trials([spec]), "seed", "train.w_optimizer", "train.w_momentum")
    assert got == [(0, "sgd", 0.5), (0, "adamw", 0.9), (1, "sgd", 0.5), (1, "adamw", 0.9)]


def test_joint_keys_may_be_a_tuple_or_a_comma_string():
    rows = [["sgd", 0.5], ["adamw", 0.9]]
    a = block({"joint": {("train.w_optimizer", "train.w_momentum"): rows}}).groups
    b = block({"joint": {" train.w_optimizer ,train.w_momentum": rows}}).groups
    assert a == b == [_Group(("train.w_optimizer", "train.w_momentum"), [("sgd", 0.5), ("adamw", 0.9)],
                             "sweep[0].joint.[train.w_optimizer, train.w_momentum]")]


@pytest.mark.parametrize("row", [["sgd", 0.5, 0.9], ["sgd"], "sgd, 0.5", ("sgd", 0.5)])
def test_a_joint_row_of_the_wrong_length_or_type_is_refused(row):
    spec = {"joint": {"train.w_optimizer, train.w_momentum": [["adamw", 0.9], row]}}
    message = refused(block, spec)
    assert message == (f"g.yaml: sweep[0].joint.[train.w_optimizer, train.w_momentum][1]: got {row!r}; "
                       "expected a list of 2 values (train.w_optimizer, train.w_momentum)")


@pytest.mark.parametrize("key, rows, says", [
    ("train.w_optimizer", [["sgd"]], "a joint axis needs two or more distinct keys; use `axes:` for one"),
    ("seed, seed", [[0, 1]], "a joint axis needs two or more distinct keys; use `axes:` for one"),
    ("seed, model.width", [], "got []; expected a non-empty list of rows like [seed, model.width]"),
    ("seed, model.width", {"a": 1}, "got {'a': 1}; expected a non-empty list of rows"),
    ("seed, model.widht", [[0, 8]], "unknown key 'model.widht'; did you mean model.width?"),
])
def test_bad_joint_axes_are_refused(key, rows, says):
    message = refused(block, {"joint": {key: rows}})
    assert message.startswith(f"g.yaml: sweep[0].joint.[{key}]: {says}"), message


def test_joint_row_values_are_checked_one_by_one_naming_the_row():
    spec = {"joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.5], ["adam", 0.9]]}}
    message = refused(block, spec)
    assert message.startswith("g.yaml: sweep[0].joint.[train.w_optimizer, train.w_momentum][1]: ")
    assert "'adam'" in message and "Fix this value in the grid file" in message


def test_a_by_case_may_not_split_a_joint_axis():
    spec = {"joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.5], ["adamw", 0.9]]},
            "by": {"train.w_optimizer": {"sgd": {"set": {"seed": 1}}}}}
    message = refused(lambda: list(_split_by(block(spec), SRC)))
    assert message == ("g.yaml: sweep[0].by.train.w_optimizer: train.w_optimizer is part of a joint axis; "
                       "`by` needs a single-key axis or set")


def test_a_by_case_may_not_replace_part_of_a_joint_axis():
    spec = {"axes": {"seed": [0, 1]},
            "joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.5], ["adamw", 0.9]]},
            "by": {"seed": {1: {"axes": {"train.w_momentum": [0.1]}}}}}
    message = refused(lambda: list(_split_by(block(spec), SRC)))
    assert message == ("g.yaml: sweep[0].by.seed.1.axes.train.w_momentum: replaces part of the joint axis at "
                       "sweep[0].joint.[train.w_optimizer, train.w_momentum]; give all of its keys "
                       "(train.w_optimizer, train.w_momentum) together")


def test_a_by_case_replaces_a_whole_joint_axis_in_its_place():
    spec = {"axes": {"seed": [0, 1]},
            "joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.5], ["adamw", 0.9]]},
            "set": {"model.width": 8},
            "by": {"seed": {1: {"joint": {"train.w_momentum, train.w_optimizer": [[0.0, "sgd"]]}}}}}
    got = cut(trials([spec]), "model.width", "seed", "train.w_optimizer", "train.w_momentum")
    assert got == [(8, 0, "sgd", 0.5), (8, 0, "adamw", 0.9), (8, 1, "sgd", 0.0)]


def test_a_case_joint_axis_may_replace_plain_axes_of_its_keys():
    g = [_Group(("a",), [(1,), (2,)], "A"), _Group(("c",), [(0,)], "C"), _Group(("b",), [(3,)], "B")]
    new = _Group(("a", "b"), [(5, 6)], "N")
    assert _replace_groups(g, [new], SRC) == [new, g[1]]


def test_replace_groups_keeps_the_position_of_the_replaced_axis_and_appends_new_keys():
    g = [_Group(("a",), [(1,)], "A"), _Group(("b",), [(2,)], "B"), _Group(("c",), [(3,)], "C")]
    new_b, new_d = _Group(("b",), [(9,)], "B2"), _Group(("d",), [(4,)], "D")
    assert _replace_groups(g, [new_b, new_d], SRC) == [g[0], new_b, g[2], new_d]
    new_c = _Group(("c",), [(8,)], "C2")
    assert _replace_groups(g, [new_c], SRC) == [g[0], g[1], new_c]
    assert _replace_groups(g, [], SRC) == g
    assert g == [_Group(("a",), [(1,)], "A"), _Group(("b",), [(2,)], "B"), _Group(("c",), [(3,)], "C")]


def test_replace_groups_refuses_a_partial_joint_axis_naming_both_places():
    g = [_Group(("a", "b"), [(1, 2)], "J")]
    with pytest.raises(GridError, match=r"^s: N: replaces part of the joint axis at J; give all of its keys \(a, b\)"):
        _replace_groups(g, [_Group(("b", "c"), [(1, 2)], "N")], "s")


# ---------------------------------------------------------------- by: cases


def test_by_uses_the_block_axis_values_in_their_order():
    spec = {"axes": {"seed": [0, 1], "model.width": [8, 16, 32]},
            "by": {"model.width": {16: {"axes": {"seed": [5]}}, 32: {"set": {"train.h_lr": 0.5}}}}}
    got = cut(trials([spec]), "seed", "model.width", "train.h_lr")
    assert got == [(0, 8, 0.1), (1, 8, 0.1), (5, 16, 0.1), (0, 32, 0.5), (1, 32, 0.5)]
    splits = [(where, [(g.keys, g.rows) for g in groups]) for groups, where in _split_by(block(spec), SRC)]
    assert splits == [
        ("sweep[0] model.width=8", [(("seed",), [(0,), (1,)]), (("model.width",), [(8,)])]),
        ("sweep[0] model.width=16", [(("seed",), [(5,)]), (("model.width",), [(16,)])]),
        ("sweep[0] model.width=32", [(("seed",), [(0,), (1,)]), (("model.width",), [(32,)]),
                                     (("train.h_lr",), [(0.5,)])]),
    ]


def test_by_over_a_key_the_block_does_not_set_takes_the_case_names_as_values():
    spec = {"axes": {"seed": [0, 1]},
            "by": {"model.width": {16: {"axes": {"seed": [7]}}, 8: {}}}}
    got = cut(trials([spec]), "model.width", "seed")
    assert got == [(16, 7), (8, 0), (8, 1)]
    first = [(where, [g.keys for g in groups]) for groups, where in _split_by(block(spec), SRC)]
    assert first == [("sweep[0] model.width=16", [("model.width",), ("seed",)]),
                     ("sweep[0] model.width=8", [("model.width",), ("seed",)])]


def test_by_keeps_the_where_of_the_block_axis_and_of_an_added_key():
    spec = {"axes": {"seed": [0, 1]}, "by": {"seed": {0: {}}, "model.width": {8: {}}}}
    (groups, where), _ = list(_split_by(block(spec), SRC))
    assert where == "sweep[0] seed=0 model.width=8"
    assert [g.where for g in groups] == ["sweep[0].by.model.width", "sweep[0].axes.seed"]


def test_several_by_keys_combine_every_case():
    spec = {"axes": {"model.width": [8, 16], "seed": [0, 1]},
            "by": {"model.width": {16: {"set": {"train.h_lr": 0.5}}}, "seed": {1: {"set": {"train.w_lr": 0.5}}}}}
    got = cut(trials([spec]), "model.width", "seed", "train.h_lr", "train.w_lr")
    assert got == [(8, 0, 0.1, 0.01), (8, 1, 0.1, 0.5), (16, 0, 0.5, 0.01), (16, 1, 0.5, 0.5)]


def test_a_case_for_a_value_the_block_key_does_not_take_is_refused():
    spec = {"axes": {"model.width": [8, 16]}, "by": {"model.width": {32: {}}}}
    message = refused(lambda: list(_split_by(block(spec), SRC)))
    assert message == "g.yaml: sweep[0].by.model.width.32: 32 is not a value of model.width in this block ([8, 16])"


@pytest.mark.parametrize("by, where, says", [
    ({"model.width": {}}, "sweep[0].by.model.width",
     "no cases; give value: {axes/set/joint} entries or remove `by`"),
    ({"model.width": None}, "sweep[0].by.model.width", "no cases"),
    ({"model.width": [8]}, "sweep[0].by.model.width", "got [8]; expected a mapping"),
    ({"model.widht": {8: {}}}, "sweep[0].by.model.widht", "unknown key 'model.widht'"),
    ({"model.width": {8.5: {}}}, "sweep[0].by.model.width.8.5", "model.width: got 8.5"),
    ({"model.width": {8: {"exclude": []}}}, "sweep[0].by.model.width.8.exclude", "unknown key; expected one of "
                                                                                  "set, axes, joint"),
    ({"model.width": {8: 3}}, "sweep[0].by.model.width.8", "got 3; expected a mapping"),
    ([1], "sweep[0].by", "got [1]; expected a mapping"),
])
def test_bad_by_sections_are_refused(by, where, says):
    message = refused(block, {"by": by})
    assert message.startswith(f"g.yaml: {where}: {says}"), message


def test_parsed_by_cases_keep_their_groups():
    b = block({"name": "main", "by": {"seed": {1: {"set": {"model.width": 8}}, 2: None}}})
    assert b.where == "sweep[0] (main)"
    assert b.by == [("seed", {1: [_Group(("model.width",), [(8,)], "sweep[0] (main).by.seed.1.set.model.width")],
                              2: []}, "sweep[0] (main).by.seed")]


# ---------------------------------------------------------------- counts and order


def test_count_is_the_product_of_axis_lengths_summed_over_blocks_and_cases():
    p = parser()
    blocks = [
        p.block({"axes": {"seed": [0, 1, 2], "model.width": [8, 16]},
                 "joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.0], ["sgd", 0.9], ["adamw", 0.9]]}}, 0),
        p.block({"axes": {"model.width": [8, 16]}, "by": {"model.width": {16: {"axes": {"seed": [0, 1, 2, 3]}}}}}, 1),
        p.block({}, 2),
    ]
    assert count_trials(blocks, SRC) == 18 + (1 + 4) + 1
    assert count_trials([], SRC) == 0
    got = list(expand(blocks, [], DEFAULTS, SRC))
    assert len(got) == 24


def test_count_ignores_exclusions_but_expansion_drops_them():
    p = parser()
    b = p.block({"axes": {"seed": [0, 1, 2], "model.width": [8, 16]}, "exclude": [{"seed": 1}]}, 0)
    assert count_trials([b], SRC) == 6
    assert len(list(expand([b], p.rules([{"model.width": 8}], "exclude"), DEFAULTS, SRC))) == 2


def test_count_stops_as_soon_as_it_passes_the_cap(monkeypatch):
    monkeypatch.setattr(grids.sweep, "MAX_TRIALS", 6)
    p = parser()
    big = p.block({"axes": {"seed": [0, 1, 2, 3], "model.width": [8, 16]}}, 0)
    small = p.block({"axes": {"seed": [0, 1]}}, 1)
    assert count_trials([big, small], SRC) == 8
    at_cap = p.block({"axes": {"seed": [0, 1, 2], "model.width": [8, 16]}}, 0)
    assert count_trials([at_cap, small], SRC) == 8
    assert count_trials([small, at_cap, big], SRC) == 8


def test_the_last_axis_varies_fastest_and_set_comes_first():
    spec = {"axes": {"seed": [0, 1], "model.width": [8, 16]}, "set": {"train.h_lr": 0.5}}
    b = block(spec)
    assert [g.keys for g in b.groups] == [("train.h_lr",), ("seed",), ("model.width",)]
    assert cut(trials([spec]), "seed", "model.width") == [(0, 8), (0, 16), (1, 8), (1, 16)]


def test_expand_yields_the_contract_trial_ids_and_int_values_of_float_keys_as_floats():
    spec = {"axes": {"train.h_lr": [1, 0.5], "model.init_h_sd": [1, 0.2], "seed": [3]},
            "set": {"train.early_stop": True, "model.kind": "pc"}}
    got = list(expand([block(spec)], [], DEFAULTS, SRC))
    assert [tid for tid, _ in got] == [cfg.trial_id for _, cfg in got]
    assert [trial_id(cfg.to_mapping()) for _, cfg in got] == [tid for tid, _ in got]
    assert cut([c for _, c in got], "train.h_lr", "model.init_h_sd") == [(1.0, 1.0), (1.0, 0.2), (0.5, 1.0),
                                                                          (0.5, 0.2)]
    assert all(type(c.train.h_lr) is float and type(c.model.init_h_sd) is float for _, c in got)
    assert all(c.train.early_stop is True and c.seed == 3 for _, c in got)


def test_expand_starts_from_the_defaults():
    defaults = TrialConfig.from_mapping({**BASE, "train": {"epochs": 3, "w_lr": 0.2}, "seed": 9}).to_mapping()
    p = Parser(SRC)
    (tid, cfg), = expand([p.block({"set": {"model.width": 8}}, 0)], [], defaults, SRC)
    assert (cfg.train.epochs, cfg.train.w_lr, cfg.seed, cfg.model.width, cfg.data.n_samples) == (3, 0.2, 9, 8, 64)
    assert tid == cfg.trial_id


def test_an_invalid_combination_names_the_block_split_and_the_values():
    spec = {"axes": {"model.kind": ["pc", "bp"], "seed": [0]}}
    message = refused(lambda: list(expand([block(spec)], [], DEFAULTS, SRC)))
    assert message.startswith("g.yaml: sweep[0]: train.T: got 8 for model.kind=bp; backprop runs T=1; ")
    assert message.endswith("the trial with model.kind='bp' is invalid; fix the sweep")
    spec = {"axes": {"model.kind": ["pc", "bp"], "train.h_momentum": [0.0, 0.5]}, "set": {"train.T": 1}}
    message = refused(lambda: list(expand([block(spec)], [], DEFAULTS, SRC)))
    assert "the trial with train.T=1, model.kind='bp', train.h_momentum=0.5 is invalid" in message
    assert message.startswith("g.yaml: sweep[0]: model.output_energy, model.init_h and train.h_momentum")


def test_an_invalid_combination_in_a_by_case_names_the_case():
    spec = {"axes": {"model.kind": ["pc", "bp"]}, "by": {"model.kind": {"bp": {"set": {"train.T": 2}}}}}
    message = refused(lambda: list(expand([block(spec)], [], DEFAULTS, SRC)))
    assert message.startswith("g.yaml: sweep[0] model.kind=bp: train.T: got 2 for model.kind=bp")


def test_a_per_trial_value_is_checked_again_when_it_expands():
    b = _Block("sweep[0]", [_Group(("train.h_lr",), [(0.1,), (-1.0,)], "sweep[0].axes.train.h_lr")])
    message = refused(lambda: list(expand([b], [], DEFAULTS, SRC)))
    assert message.startswith("g.yaml: sweep[0].axes.train.h_lr: train.h_lr: got -1.0; expected")
    assert message.endswith("; fix the value in the grid file")


def test_per_trial_values_on_many_sections_hash_like_the_contract():
    spec = {"axes": {"seed": [0, 1], "train.w_lr": [0.1, 0.2], "train.h_momentum": [0.0, 0.3]},
            "joint": {"train.w_optimizer, train.w_weight_decay": [["adamw", 0.01], ["sgd", 0.0]]},
            "set": {"model.init_h": "zero", "data.normalize": True}}
    got = list(expand([block(spec)], [], DEFAULTS, SRC))
    assert len(got) == 16 and len({t for t, _ in got}) == 16
    for tid, cfg in got:
        assert tid == cfg.trial_id == fast_trial_id(cfg)
        assert cfg.model.init_h == "zero"
    first, last = got[0][1], got[-1][1]
    assert (first.seed, first.train.w_lr, first.train.h_momentum, first.train.w_optimizer) == (0, 0.1, 0.0, "adamw")
    assert (last.seed, last.train.w_lr, last.train.h_momentum, last.train.w_optimizer) == (1, 0.2, 0.3, "sgd")


def test_fast_trial_id_equals_the_contract_id_off_the_defaults():
    cfg = TrialConfig.from_mapping(BASE).replace(**{
        "train.h_momentum": 0.25, "model.output_energy": "se", "data.normalize": True, "seed": 11,
        "train.w_lr": 0.30000000000000004,
    })
    assert fast_trial_id(cfg) == cfg.trial_id == trial_id(cfg.to_mapping())
    assert fast_trial_id(cfg) != fast_trial_id(cfg.replace(seed=12))


# ---------------------------------------------------------------- values, keys and places


def test_range_forms_expand_like_python_range():
    p = parser()
    assert p.values("seed", {"range": 3}, "w") == [0, 1, 2]
    assert p.values("seed", {"range": [2, 5]}, "w") == [2, 3, 4]
    assert p.values("seed", {"range": [10, 0, -4]}, "w") == [10, 6, 2]
    assert p.values("seed", {"range": [MAX_TRIALS - 1, MAX_TRIALS + 1]}, "w") == [MAX_TRIALS - 1, MAX_TRIALS]


def test_a_range_may_hold_as_many_values_as_a_grid_may_hold_trials(monkeypatch):
    monkeypatch.setattr(grids.sweep, "MAX_TRIALS", 4)
    assert parser().values("seed", {"range": 4}, "w") == [0, 1, 2, 3]
    with pytest.raises(GridError, match=r"^g.yaml: w: range \[1, 6\] holds 5 values, more than the 4 trials"):
        parser().values("seed", {"range": [1, 6]}, "w")


@pytest.mark.parametrize("spec, says", [
    ({"range": "ten"}, "got range 'ten'; expected N, [start, stop] or [start, stop, step] of ints"),
    ({"range": []}, "got range []; expected N"),
    ({"range": [1, 2, 3, 4]}, "got range [1, 2, 3, 4]; expected N"),
    ({"range": [0, True]}, "got range [0, True]; expected N"),
    ({"range": [0, 2.0]}, "got range [0, 2.0]; expected N"),
    ({"range": (0, 2)}, "got range (0, 2); expected N"),
    ({"range": [0, 4, 0]}, "got range [0, 4, 0]; the step must not be 0"),
    ({"range": MAX_TRIALS + 1}, f"range {MAX_TRIALS + 1} holds {MAX_TRIALS + 1:,} values, more than the "
                                f"{MAX_TRIALS:,} trials a grid may hold; split the grid"),
    ({"range": [0, 3], "step": 1}, "got {'range': [0, 3], 'step': 1}; expected a list of values (use `set:` for "
                                   "one value)"),
    (3, "got 3; expected a list of values (use `set:` for one value)"),
    ([], "empty axis; give at least one value or remove the axis"),
    ({"range": [5, 5]}, "empty axis"),
])
def test_bad_axis_values_are_refused(spec, says):
    with pytest.raises(GridError, match="^g.yaml: sweep.axes.seed: ") as err:
        parser().values("seed", spec, "sweep.axes.seed")
    assert str(err.value).startswith(f"g.yaml: sweep.axes.seed: {says}"), str(err.value)


def test_each_axis_value_is_checked_naming_its_index():
    with pytest.raises(GridError, match=r"^g.yaml: w\[2\]: model.width: got 'x'; .*Fix this value in the grid file"):
        parser().values("model.width", [8, 16, "x"], "w")


@pytest.mark.parametrize("value", [[1], {"a": 1}, (1,)])
def test_a_single_value_may_not_be_a_collection(value):
    message = refused(parser().value, "seed", value, "w")
    assert message == f"g.yaml: w: got {value!r}; expected a single value for seed"


def test_a_single_value_is_returned_as_written():
    assert parser().value("train.h_lr", 1, "w") == 1 and parser().value("model.kind", "bp", "w") == "bp"


def test_unknown_keys_suggest_the_closest_and_list_every_key():
    p = parser()
    assert p.key("model.width", "w") == "model.width"
    message = refused(p.key, "modle.width", "sweep[0].axes.modle.width")
    assert message.startswith("g.yaml: sweep[0].axes.modle.width: unknown key 'modle.width'; did you mean "
                              "model.width? valid keys are data.batch_size, data.dataset, ")
    assert message.endswith(", train.w_weight_decay")
    message = refused(p.key, "zzzz", "w")
    assert message.startswith("g.yaml: w: unknown key 'zzzz'; valid keys are data.batch_size")
    message = refused(p.key, 3, "w")
    assert message.startswith("g.yaml: w: unknown key 3; valid keys are")


def test_mapping_accepts_none_and_names_an_unknown_key():
    p = parser()
    assert p.mapping(None, "w") == {}
    assert p.mapping({"a": 1}, "w") == {"a": 1}
    assert p.mapping({"set": 1}, "w", ("set",)) == {"set": 1}
    assert refused(p.mapping, [1], "w") == "g.yaml: w: got [1]; expected a mapping"
    assert refused(p.mapping, {"ax": 1}, "w", ("axes", "set")) == (
        "g.yaml: w.ax: unknown key; expected one of axes, set")
    assert refused(p.mapping, {"ax": 1}, "", ("axes",)) == "g.yaml: ax: unknown key; expected one of axes"


def test_groups_are_set_then_axes_then_joint_each_key_once():
    spec = {"joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.5]]},
            "axes": {"seed": [0, 1]}, "set": {"model.width": 8}}
    assert block(spec).groups == [
        _Group(("model.width",), [(8,)], "sweep[0].set.model.width"),
        _Group(("seed",), [(0,), (1,)], "sweep[0].axes.seed"),
        _Group(("train.w_optimizer", "train.w_momentum"), [("sgd", 0.5)],
               "sweep[0].joint.[train.w_optimizer, train.w_momentum]"),
    ]
    twice = {"set": {"train.w_momentum": 0.5}, "joint": {"train.w_optimizer, train.w_momentum": [["sgd", 0.5]]}}
    assert refused(block, twice) == (
        "g.yaml: sweep[0].joint.[train.w_optimizer, train.w_momentum]: train.w_momentum is also given at "
        "sweep[0].set.train.w_momentum; give each key once per block")


@pytest.mark.parametrize("spec, says", [
    ({"set": {"seed": [1]}}, "g.yaml: sweep[0].set.seed: got [1]; expected a single value for seed"),
    ({"set": {"sed": 1}}, "g.yaml: sweep[0].set.sed: unknown key 'sed'"),
    ({"set": [1]}, "g.yaml: sweep[0].set: got [1]; expected a mapping"),
    ({"axes": {"sed": [1]}}, "g.yaml: sweep[0].axes.sed: unknown key 'sed'"),
    ({"axes": [1]}, "g.yaml: sweep[0].axes: got [1]; expected a mapping"),
    ({"joint": [1]}, "g.yaml: sweep[0].joint: got [1]; expected a mapping"),
    ({"axes": {"seed": [0, -1]}}, "g.yaml: sweep[0].axes.seed[1]: "),
    ({"exclude": [{"sed": 1}]}, "g.yaml: sweep[0].exclude[0].sed: unknown key"),
    ({"name": "x", "exclude": [3]}, "g.yaml: sweep[0] (x).exclude[0]: got 3"),
    ({"sets": {}}, "g.yaml: sweep[0].sets: unknown key; expected one of name, description, set, axes, joint, by, "
                   "exclude"),
    ([1], "g.yaml: sweep[0]: got [1]; expected a mapping"),
])
def test_bad_blocks_are_refused_where_they_are_written(spec, says):
    assert refused(block, spec).startswith(says)


def test_block_place_counts_from_its_index_and_holds_its_name():
    assert block({"name": "fm", "set": {"seed": 1}}, 3).groups[0].where == "sweep[3] (fm).set.seed"
    assert block({"set": {"seed": 1}}, 2).where == "sweep[2]"
    assert block({"exclude": [{"seed": 1}]}, 1).exclude == [[("seed", frozenset({1}), "sweep[1].exclude[0].seed")]]
    assert block(None).groups == [] and block({"description": "text"}).by == []


# ---------------------------------------------------------------- caches (the paper grids hold 54,784 trials)


def test_section_json_is_computed_once_per_section_and_the_cache_is_bounded(monkeypatch):
    calls = []
    monkeypatch.setattr(grids.sweep, "_SECTION_JSON", {})
    monkeypatch.setattr(grids.sweep, "_SECTION_CACHE_MAX", 2)
    monkeypatch.setattr(grids.sweep, "canonical_json", lambda m: calls.append(m) or trial_id(m))
    cfg = TrialConfig.from_mapping(BASE)
    sections = [cfg.train, cfg.model, cfg.data, dataclasses.replace(cfg.train, h_lr=0.5)]
    assert grids.sweep._section_json(sections[0]) == grids.sweep._section_json(sections[0]) == trial_id(calls[0])
    assert len(calls) == 1
    grids.sweep._section_json(sections[1])
    grids.sweep._section_json(sections[2])
    assert len(grids.sweep._SECTION_JSON) == 3 and len(calls) == 3  # holds up to MAX + 1, then starts over
    grids.sweep._section_json(sections[3])
    assert list(grids.sweep._SECTION_JSON) == [sections[3]]
    grids.sweep._section_json(sections[0])
    assert len(calls) == 5


def test_expand_validates_each_program_combination_once_and_hashes_each_value_once(monkeypatch):
    bases, tops, sections = [], [], []
    base, canonical, section_json = grids.sweep._base, grids.sweep.canonical_json, grids.sweep._section_json
    monkeypatch.setattr(grids.sweep, "_base", lambda ck, *a: bases.append(ck) or base(ck, *a))
    monkeypatch.setattr(grids.sweep, "canonical_json",
                        lambda v: (tops.append(v) if not isinstance(v, dict) else None) or canonical(v))
    monkeypatch.setattr(grids.sweep, "_section_json", lambda s: sections.append(s) or section_json(s))
    spec = {"axes": {"model.width": [8, 16], "seed": [0, 1], "train.h_lr": [0.1, 0.2]}}
    got = list(expand([block(spec)], [], DEFAULTS, SRC))
    assert [tid for tid, _ in got] == [cfg.trial_id for _, cfg in got] and len({t for t, _ in got}) == 8
    assert [ck[0][2] for ck in bases] == [8, 16]  # seed and h_lr are per-trial values: not part of the program
    assert tops == [0, 0, 1, 0]  # base (width 8), seeds 0 and 1 once for the whole sweep, base (width 16)
    assert len(sections) == 2 * 3 + 2 * 2  # 3 sections per base, then the train section per (base, h_lr)


def test_expand_names_the_file_when_a_by_case_splits_a_joint_axis():
    spec = {"joint": {"seed, model.width": [[0, 8]]}, "by": {"seed": {0: {}}}}
    message = refused(lambda: list(expand([block(spec)], [], DEFAULTS, SRC)))
    assert message.startswith("g.yaml: sweep[0].by.seed: seed is part of a joint axis")
