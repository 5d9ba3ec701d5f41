"""Property-based tests (Hypothesis) of the grid contract: expansion, ids, overrides, and the reader.

- the trial count is the product of the axis lengths (minus exclusions), every id is unique;
- ids do not depend on the order keys are written in or on how a float is spelled;
- an override equals writing the same value into `defaults`;
- any text at all, given as a grid file, gives a grid or a GridError: never another exception.
"""

from __future__ import annotations

import math
import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grids import GridError, grid_from_mapping
from grids.document import parse_yaml, read_grid_document

BASE = {"data": {"dataset": "two_moons", "n_samples": 64, "batch_size": 32}, "train": {"epochs": 1}}

axis_values = {
    "seed": st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4, unique=True),
    "train.h_lr": st.lists(st.sampled_from([0.001, 0.01, 0.03, 0.1, 0.3, 1.0]), min_size=1, max_size=4, unique=True),
    "model.width": st.lists(st.sampled_from([8, 16, 32, 64]), min_size=1, max_size=3, unique=True),
    "model.activation": st.lists(st.sampled_from(["relu", "tanh", "leaky_relu"]), min_size=1, max_size=3, unique=True),
}
axes_strategy = st.fixed_dictionaries({}, optional=axis_values).filter(bool)


@settings(max_examples=60, deadline=None)
@given(axes=axes_strategy, data=st.data())
def test_count_is_the_product_of_axis_lengths_and_ids_are_unique(axes, data):
    grid = grid_from_mapping({"name": "p", "defaults": BASE, "sweep": [{"axes": axes}]})
    assert len(grid.trials) == math.prod(len(v) for v in axes.values())
    assert len(set(grid.trial_ids)) == len(grid.trial_ids)
    assert [t.trial_id for t in grid.trials] == list(grid.trial_ids)
    # excluding one value of one axis removes exactly that share of the trials
    key = data.draw(st.sampled_from(sorted(axes)))
    dropped = axes[key][0]
    ex = grid_from_mapping({"name": "p", "defaults": BASE, "sweep": [{"axes": axes}], "exclude": [{key: dropped}]}) \
        if len(axes[key]) > 1 else None
    if ex is not None:
        assert len(ex.trials) == len(grid.trials) // len(axes[key]) * (len(axes[key]) - 1)
        assert set(ex.trial_ids) < set(grid.trial_ids)


@settings(max_examples=40, deadline=None)
@given(axes=axes_strategy, perm=st.randoms(use_true_random=False))
def test_ids_are_stable_under_key_order_and_float_spelling(axes, perm):
    keys = list(axes)
    perm.shuffle(keys)
    reordered = {k: axes[k] for k in keys}
    respelled = {k: [v + 1e-15 * v if isinstance(v, float) else v for v in vals] for k, vals in reordered.items()}
    a = grid_from_mapping({"name": "p", "defaults": BASE, "sweep": [{"axes": axes}]})
    b = grid_from_mapping({"name": "p", "defaults": BASE, "sweep": [{"axes": respelled}]})
    assert set(a.trial_ids) == set(b.trial_ids)


@settings(max_examples=40, deadline=None)
@given(epochs=st.integers(1, 20), w_lr=st.sampled_from([0.001, 0.01, 0.3]), seeds=axis_values["seed"])
def test_an_override_equals_the_same_value_in_defaults(epochs, w_lr, seeds):
    sweep = [{"axes": {"seed": seeds}}]
    over = grid_from_mapping({"name": "p", "defaults": BASE, "sweep": sweep},
                             overrides=[f"train.epochs={epochs}", f"train.w_lr={w_lr!r}"])
    written = {**BASE, "train": {**BASE["train"], "epochs": epochs, "w_lr": w_lr}}
    direct = grid_from_mapping({"name": "p", "defaults": written, "sweep": sweep})
    assert over.trial_ids == direct.trial_ids


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                         st.text(max_size=8))
yaml_docs = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["name", "defaults", "sweep", "axes", "seed",
                                                                "train.h_lr", "model", "width", "exclude", "set"]),
                                               children, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=yaml_docs)
def test_any_yaml_document_is_a_grid_or_a_grid_error(doc):
    text = yaml.safe_dump(doc)
    try:
        grid_from_mapping(parse_yaml(text), source="random.yaml")
    except GridError as e:
        assert str(e).startswith("random.yaml: ") and "\n" not in str(e), str(e)


@settings(max_examples=150, deadline=None)
@given(raw=st.one_of(st.binary(max_size=200), st.text(alphabet=string.printable + "{}[]&*!|>'\"%@`", max_size=200)))
def test_any_file_content_reads_to_a_document_or_a_grid_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("g") / "g.yaml"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    try:
        doc = read_grid_document(path)
        grid_from_mapping(doc, source=str(path))
    except GridError as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e), str(e)
