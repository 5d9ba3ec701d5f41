"""Shared trainings for the pc tests: each compiled program is built once per session.

Compiling a group program costs seconds, so the trainings the tests inspect are run here once
(session fixtures) and reused; every test still checks a claim of its own.
"""

from __future__ import annotations

import pytest
from pc_cases import ADAM_A, ADAM_B, BP_A, SGD_A, SGD_B, SGD_DIVERGE, SGD_SMALL_GAMMA

import pc  # noqa: F401 - importing pc sets the XLA CPU runtime flag before any test starts jax


def run(configs):
    from pc.trials import TrialFailure, iter_trial_results

    results = list(iter_trial_results(configs))
    for r in results:
        if isinstance(r, TrialFailure):
            raise AssertionError(f"trial {r.trial_id} raised: {r.error}\n{r.traceback}")
    return results


@pytest.fixture(scope="session")
def sgd_alone():
    (a,) = run([SGD_A])
    return a


@pytest.fixture(scope="session")
def sgd_group():
    """[A, B, small-gamma] padded to 4: the same program as the divergence group."""
    return run([SGD_A, SGD_B, SGD_SMALL_GAMMA])


@pytest.fixture(scope="session")
def sgd_diverge_group():
    return run([SGD_A, SGD_DIVERGE, SGD_B])


@pytest.fixture(scope="session")
def adam_alone():
    (a,) = run([ADAM_A])
    return a


@pytest.fixture(scope="session")
def adam_group():
    return run([ADAM_B, ADAM_A])


@pytest.fixture(scope="session")
def bp_alone():
    (a,) = run([BP_A])
    return a
