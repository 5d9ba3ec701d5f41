"""Property-based tests (Hypothesis) of the sweep rules of grids.sweep, against an oracle written out by hand.

Random grids of one or two blocks, each with plain axes, a joint axis, `by:` cases that replace an axis for some
values, and `exclude` rules at the block and the top level:
- the trials are exactly the oracle's: the product of the axes (a case's axis in place of the block's for its
  value) minus every trial that some rule of its block *or* of the top level matches: exclusions compose, a
  block's rules never replace the top-level ones;
- a joint axis is never split: every trial's (w_optimizer, w_momentum) is one of the rows, and each row appears
  with every combination of the other axes that no rule removes;
- the count equals the product of the axis lengths minus the exclusions, and every id is unique.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from grids import grid_from_mapping

BASE = {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 16}, "train": {"epochs": 1, "T": 2}}
ROWS = [("sgd", 0.0), ("sgd", 0.9), ("adamw", 0.9), ("adamw", 0.5)]
ACTS = ["relu", "tanh", "leaky_relu"]
LRS = [0.01, 0.03, 0.1, 0.3]
seed_lists = st.lists(st.integers(0, 40), min_size=1, max_size=3, unique=True)

RULE_VALUES = {
    "seed": st.one_of(st.integers(0, 40), st.lists(st.integers(0, 40), min_size=1, max_size=3, unique=True)),
    "train.h_lr": st.sampled_from(LRS),
    "train.w_optimizer": st.sampled_from(["sgd", "adamw"]),
    "model.activation": st.one_of(st.sampled_from(ACTS), st.lists(st.sampled_from(ACTS), min_size=1, unique=True)),
}
rules = st.lists(st.lists(st.sampled_from(sorted(RULE_VALUES)), min_size=1, max_size=2, unique=True)
                 .flatmap(lambda keys: st.fixed_dictionaries({k: RULE_VALUES[k] for k in keys})), max_size=2)


@st.composite
def blocks(draw: st.DrawFn) -> dict[str, Any]:
    acts = draw(st.lists(st.sampled_from(ACTS), min_size=1, max_size=3, unique=True))
    case_acts = draw(st.lists(st.sampled_from(acts), max_size=len(acts), unique=True))
    return {
        "acts": acts,
        "seeds": draw(seed_lists),
        "lrs": draw(st.lists(st.sampled_from(LRS), min_size=1, max_size=3, unique=True)),
        "rows": draw(st.lists(st.sampled_from(ROWS), min_size=1, max_size=3, unique=True)),
        "cases": {a: draw(seed_lists) for a in case_acts},
        "exclude": draw(rules),
    }


def block_doc(b: dict[str, Any], width: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "set": {"model.width": width},
        "axes": {"model.activation": b["acts"], "seed": b["seeds"], "train.h_lr": b["lrs"]},
        "joint": {"train.w_optimizer, train.w_momentum": [list(r) for r in b["rows"]]},
    }
    if b["cases"]:
        doc["by"] = {"model.activation": {a: {"axes": {"seed": s}} for a, s in b["cases"].items()}}
    if b["exclude"]:
        doc["exclude"] = b["exclude"]
    return doc


def matches(rule: dict[str, Any], trial: dict[str, Any]) -> bool:
    return all(trial[k] in (v if isinstance(v, list) else [v]) for k, v in rule.items())


def oracle(grid_blocks: list[dict[str, Any]], top: list[dict[str, Any]]) -> set[tuple]:
    """The trials the rules call for, as (width, activation, seed, h_lr, optimizer, momentum) tuples."""
    out = set()
    for width, b in zip((8, 16), grid_blocks):
        for act in b["acts"]:
            for seed, lr, (opt, mom) in itertools.product(b["cases"].get(act, b["seeds"]), b["lrs"], b["rows"]):
                trial = {"model.activation": act, "seed": seed, "train.h_lr": lr, "train.w_optimizer": opt}
                if not any(matches(r, trial) for r in b["exclude"] + top):
                    out.add((width, act, seed, lr, opt, mom))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grid_blocks=st.lists(blocks(), min_size=1, max_size=2), top=rules)
def test_expansion_is_the_product_of_the_axes_minus_every_level_of_exclusion(grid_blocks, top):
    doc = {"name": "prop", "defaults": BASE, "sweep": [block_doc(b, w) for w, b in zip((8, 16), grid_blocks)]}
    if top:
        doc["exclude"] = top
    want = oracle(grid_blocks, top)
    assume(want)  # a grid whose rules remove every trial is refused; test_grid.py covers that message
    grid = grid_from_mapping(doc)
    got = {(c.model.width, c.model.activation, c.seed, c.train.h_lr, c.train.w_optimizer, c.train.w_momentum)
           for c in grid.trials}
    assert got == want
    assert len(grid.trials) == len(want) == len(set(grid.trial_ids))
    for c in grid.trials:  # the joint axis is never split
        b = grid_blocks[(8, 16).index(c.model.width)]
        assert (c.train.w_optimizer, c.train.w_momentum) in b["rows"]


@settings(max_examples=60, deadline=None)
@given(b=blocks())
def test_without_rules_the_count_is_the_product_of_the_axis_lengths(b):
    b = {**b, "exclude": []}
    grid = grid_from_mapping({"name": "prop", "defaults": BASE, "sweep": [block_doc(b, 8)]})
    per_act = [len(b["cases"].get(a, b["seeds"])) for a in b["acts"]]
    assert len(grid.trials) == sum(per_act) * len(b["lrs"]) * len(b["rows"])
