"""The collect report's counts where they decide `--strict` (fast tier): a trial that failed once and then
completed is complete, not failed; trials the grid does not list are unexpected; missing is what is neither.

Each test names the mutant it exists to kill (tests/README.md "Mutation testing"). Real shards and records.
"""

from __future__ import annotations

import pytest
from collect_cases import GRID, synthetic_trial

import collect


def test_a_trial_that_failed_once_and_then_completed_is_not_failed(run):
    """Kills: collect reporting as failed a trial that also completed (so --strict would exit 1 wrongly)."""
    retried, failed_for_good = synthetic_trial(1), synthetic_trial(2)
    run.failed(retried.trial_id)  # attempt 0 failed ...
    run.shard("s1", [retried])  # ... the retry wrote its result
    run.manifest([retried.trial_id])
    r = collect.collect(GRID, run.root, strict=True, progress=False)
    assert r.failed == {} and r.complete == 1 and r.missing == [] and r.unexpected == 0 and r.is_clean
    run.failed(failed_for_good.trial_id)
    run.manifest([retried.trial_id, failed_for_good.trial_id], stamp="20260102T000000Z")
    with pytest.raises(collect.IncompleteError, match=r"0 missing, 1 failed and 0 unexpected"):
        collect.collect(GRID, run.root, strict=True, progress=False)
    r = collect.collect(GRID, run.root, progress=False)
    assert list(r.failed) == [failed_for_good.trial_id] and r.missing == [] and r.complete == 1


def test_unexpected_counts_results_the_grid_does_not_list(run):
    """Kills: `unexpected` forced to 0 (and counted against the wrong set)."""
    listed, stray1, stray2, never_ran = (synthetic_trial(s) for s in (1, 2, 3, 4))
    run.shard("s1", [listed, stray1, stray2])
    run.manifest([listed.trial_id, never_ran.trial_id])
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.expected, r.complete, r.unexpected) == (2, 3, 2)
    assert r.missing == [never_ran.trial_id] and r.failed == {} and not r.is_clean
    with pytest.raises(collect.IncompleteError, match=r"1 missing, 0 failed and 2 unexpected"):
        collect.collect(GRID, run.root, strict=True, progress=False)


def test_without_a_grid_nothing_is_missing_or_unexpected(run):
    """No manifest and no grid.yaml: the expected set is unknown, so neither missing nor unexpected is claimed."""
    run.shard("s1", [synthetic_trial(1), synthetic_trial(2)])
    r = collect.collect(GRID, run.root, progress=False)
    assert r.expected is None and r.complete == 2 and r.missing == [] and r.unexpected == 0 and r.is_clean


def test_the_report_names_the_run_folder_and_its_outputs(run):
    run.shard("s1", [synthetic_trial(1)])
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.grid, r.folder, r.mode) == (GRID, str(run.paths.folder), "full")
    assert (r.results, r.summary) == (str(run.paths.results), str(run.paths.summary))
    assert 0 < r.wall_s < 600 and (r.new_shards, r.merged_trials) == (1, 1)


def test_diverged_trials_are_complete_but_not_ok(run):
    ok, diverged = synthetic_trial(1), synthetic_trial(2, diverge_at=(1, 2), status="diverged")
    run.shard("s1", [ok, diverged])
    run.manifest([ok.trial_id, diverged.trial_id])
    r = collect.collect(GRID, run.root, progress=False)
    assert (r.complete, r.ok, r.diverged) == (2, 1, 1) and r.is_clean
