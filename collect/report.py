"""What one collect found: the `CollectReport` dataclass and its text rendering.

Pure standard library. `python -m collect --json` prints `dataclasses.asdict(report)`; the text
form below is what a person reads after a sweep.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SHOW_IDS = 5  # how many ids the text report lists per category
SHOW_STUDIES = 25  # how many studies the text report lists (the paper's search had 21)


@dataclass(frozen=True)
class CollectReport:
    """The outcome of `collect.collect`: counts and ids, never arrays.

    `expected` is None when neither grid.yaml nor a submission manifest says what the grid holds.
    `failed` lists only trials with a `failed/<id>.json` record and no result (a trial that failed
    once and then succeeded is complete, not failed). `missing` = expected trials with neither a
    result nor a failed record. `duplicate` counts trials held by more than one valid shard (the
    newest copy is kept: by the shard's `created` attribute, then its file mtime).
    """

    grid: str
    folder: str
    mode: str  # "full" | "incremental" | "unchanged"
    expected: int | None
    expected_source: str  # "trial sets" | "grid.yaml" | "submissions" | "unknown"
    complete: int  # trials in results.h5
    ok: int
    diverged: int
    failed: dict[str, str] = field(default_factory=dict)  # trial id -> reason
    missing: list[str] = field(default_factory=list)  # sorted trial ids
    unexpected: int = 0  # trials in results.h5 that the grid does not list
    duplicate: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    corrupt: list[tuple[str, str]] = field(default_factory=list)  # (file in shards/bad/, reason)
    new_shards: int = 0  # shards read by this run
    merged_trials: int = 0  # trial copies written into results.h5 by this run
    results: str = ""
    summary: str = ""
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)  # e.g. why an incremental run became a full one
    studies: list[dict[str, Any]] = field(default_factory=list)  # adaptive search: studies.csv's rows (collect.studies)
    studies_csv: str = ""  # its path; empty when the run folder has no Optuna journal

    @property
    def is_clean(self) -> bool:
        """True when nothing is missing, failed or unexpected (what `--strict` checks)."""
        return not self.missing and not self.failed and not self.unexpected

    def to_json_dict(self) -> dict[str, Any]:
        """`dataclasses.asdict`, plus the counts a script would otherwise have to compute."""
        d = dataclasses.asdict(self)
        d["n_failed"] = len(self.failed)
        d["n_missing"] = len(self.missing)
        d["n_corrupt"] = len(self.corrupt)
        d["corrupt"] = [list(c) for c in self.corrupt]
        return d


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOW_IDS])
    return shown + (f", ... ({len(ids) - SHOW_IDS} more)" if len(ids) > SHOW_IDS else "")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _studies(r: CollectReport) -> list[str]:
    """One line per study: trials by state against the budget, best value and its trial id, top-k, last done."""
    metric = next((s["metric"] for s in r.studies if s.get("metric")), None) or "value"
    lines = [f"  studies    {len(r.studies)}  ({r.studies_csv}; metric {metric})"]
    width = max((len(s["study"]) for s in r.studies[:SHOW_STUDIES]), default=0)
    for s in r.studies[:SHOW_STUDIES]:
        budget = "?" if s["budget"] is None else s["budget"]
        text = (f"    {s['study']:<{width}}  {s['complete']}/{budget} complete, {s['running']} running, "
                f"{s['failed']} failed")
        if s["waiting"]:
            text += f", {s['waiting']} waiting"
        if s["best_value"] is not None:
            sd = "" if s["top_k_sd"] is None else f" ± {_number(s['top_k_sd'])}"
            text += (f"; best {_number(s['best_value'])} (#{s['best_number']}, {s['best_trial_id'] or 'no trial id'}); "
                     f"top {s['top_k']} {_number(s['top_k_mean'])}{sd}; last {s['last_complete']}")
        elif not s["journal"]:
            text += "; not started (no journal yet)"
        lines.append(text)
    if len(r.studies) > SHOW_STUDIES:
        lines.append(f"    ... {len(r.studies) - SHOW_STUDIES} more in {r.studies_csv}")
    return lines


def render(report: CollectReport) -> str:
    """The human-readable report printed by `python -m collect`."""
    r = report
    expected = "unknown (no grid.yaml and no submissions/*.json)" if r.expected is None else (
        f"{r.expected} (from {r.expected_source})")
    lines = [
        f"collect {r.grid}: {r.folder}  [{r.mode}, {r.new_shards} shard(s) read, "
        f"{r.merged_trials} trial(s) merged, {r.wall_s:.2f} s]",
        f"  expected   {expected}",
        f"  complete   {r.complete}  (ok {r.ok}, diverged {r.diverged})",
        f"  failed     {len(r.failed)}",
    ]
    for tid, reason in list(r.failed.items())[:SHOW_IDS]:
        lines.append(f"    {tid}: {reason}")
    if len(r.failed) > SHOW_IDS:
        lines.append(f"    ... {len(r.failed) - SHOW_IDS} more in failed/")
    lines.append(f"  missing    {len(r.missing)}" + (f"  ({_ids(r.missing)})" if r.missing else ""))
    if r.unexpected:
        lines.append(f"  unexpected {r.unexpected}  (in results but not in the grid)")
    lines.append(f"  duplicate  {r.duplicate}" + (f"  ({_ids(r.duplicate_ids)}; newest kept)" if r.duplicate else ""))
    aside = "  (set aside in shards/bad/ with a .reason.txt; relaunch the grid to rerun their trials)"
    lines.append(f"  corrupt    {len(r.corrupt)}" + (aside if r.corrupt else ""))
    for name, reason in r.corrupt[:SHOW_IDS]:
        lines.append(f"    {name}: {reason}")
    if r.studies_csv:
        lines += _studies(r)
    for note in r.notes:
        lines.append(f"  note: {note}")
    lines.append(f"  results    {r.results}")
    lines.append(f"  summary    {r.summary}")
    return "\n".join(lines)
