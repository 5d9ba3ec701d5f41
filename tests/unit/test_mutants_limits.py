"""contracts.limits at its edges (fast tier): each bound open or closed as the table says, the words of every
kind of range, and the first out-of-range key of a whole config named. Kills the boundary mutants of
`in_range` and the wording mutants of `describe` (tests/README.md "Mutation testing")."""

from __future__ import annotations

import pytest

from contracts.config import DataConfig, TrainConfig, TrialConfig
from contracts.limits import LIMITS, UINT32, check_limits, describe, in_range


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("seed", 0, True), ("seed", -1, False), ("seed", UINT32 - 1, True), ("seed", UINT32, False),
    ("train.h_lr", 0, False), ("train.h_lr", 1e-12, True), ("train.h_lr", 1e300, True), ("train.h_lr", -1e-12, False),
    ("train.w_momentum", 0, True), ("train.w_momentum", 0.999, True), ("train.w_momentum", 1, False),
    ("data.n_samples", 1, True), ("data.n_samples", 0, False), ("data.n_samples", 10**8, True),
    ("data.n_samples", 10**8 + 1, False), ("data.noise", 0, True), ("data.noise", -0.5, False),
    ("data.n_classes", 1, False), ("data.n_classes", 2, True),
])
def test_in_range_at_each_bound(key, value, ok):
    assert in_range(key, value) is ok


@pytest.mark.parametrize(("key", "words"), [
    ("train.h_lr", "a positive number"),
    ("data.noise", "a number >= 0"),
    ("data.n_samples", "a positive integer <= 100,000,000"),
    ("seed", "a value in [0, 4294967296)"),
    ("train.w_momentum", "a value in [0, 1)"),
    ("data.n_classes", "a value in [2, 1000000]"),
])
def test_describe_every_range_kind(key, words):
    assert describe(key) == words


@pytest.mark.parametrize(("bounds", "words", "inside", "outside"), [
    ((0, 1, True, False), "a value in (0, 1]", [1, 0.5], [0, 1.5]),
    ((2, None, False, False), "a number >= 2", [2, 1e9], [1.99]),
    ((2, None, True, False), "a number > 2", [2.01], [2]),
    ((1, 8, True, True), "a value in (1, 8)", [7.9], [1, 8]),
    ((1, 8, False, True), "a value in [1, 8)", [1], [8]),
])
def test_ranges_the_table_does_not_use_yet(monkeypatch, bounds, words, inside, outside):
    """Branches no key takes today, on a key added for the test only (a new LIMITS row must read right)."""
    monkeypatch.setitem(LIMITS, "test.key", bounds)
    assert describe("test.key") == words
    assert all(in_range("test.key", v) for v in inside) and not any(in_range("test.key", v) for v in outside)


def test_check_limits_names_the_first_bad_key_of_a_config():
    assert check_limits(TrialConfig()) is None
    bad = TrialConfig(train=TrainConfig(h_lr=0.0, w_momentum=1.0), seed=-1)
    assert check_limits(bad) == "train.h_lr: got 0.0; expected a positive number"
    assert check_limits(TrialConfig(seed=UINT32)) == "seed: got 4294967296; expected a value in [0, 4294967296)"
    assert check_limits(TrialConfig(data=DataConfig(noise=None))) is None  # None: the dataset's default
