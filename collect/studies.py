"""`runs/<grid>/studies.csv`: one row per Optuna study of an adaptive search (docs/search.md, "Reading the studies").

The search workers (`launch.search_worker`) keep each study in an Optuna journal, `runs/<grid>/optuna/<study>.log`.
Collect reads every journal, read-only (no lock is taken and nothing is written next to it), and summarises each
study: its trials by state, its best value and the pcsweep trial id of that trial (user attr `trial_id`), the
mean and sd of its top-k values and when its last trial completed. The metric and budget come from the grid's
`search:` section, read from `runs/<grid>/grid.yaml` with `grids.load_grid`; without it they are left empty.

`study_row` is pure (over Optuna `FrozenTrial`s, read by duck typing: no optuna import); `read_studies` and
`write_studies` import optuna inside the call, so `import collect` and `python -m collect --help` stay light. A
journal that cannot be read is a note, never an exception.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.atomic import write_text_atomic
from contracts.paths import RunPaths

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from grids.search import SearchSpec

OPTUNA_DIR = "optuna"  # = launch.search_worker.OPTUNA_DIR (not imported: launch.search_worker imports optuna)
STUDIES_CSV = "studies.csv"
TOP_K = 5  # the paper's figure averages the top 5 trials of each study (plots: state_init, search aggregation)


@dataclass(frozen=True)
class StudyRow:
    """One row of studies.csv. Values are None (an empty cell) when there is nothing to compute them from."""

    study: str
    direction: str  # maximize | minimize
    metric: str | None  # the search's metric (grid.yaml's search:), None when grid.yaml cannot be read
    budget: int | None  # COMPLETE trials each study runs to (grid.yaml), None when unknown
    complete: int  # COMPLETE trials (diverged ones included: they are told the worst value)
    running: int  # RUNNING trials (being trained, or left by a killed worker until the next worker recovers them)
    waiting: int  # WAITING trials: parameters enqueued again after a dead owner's trial was failed
    failed: int  # FAIL trials (invalid config, raised, no finite metric, a dead owner's trial)
    best_value: float | None
    best_number: int | None  # the best trial's Optuna number (ties: the lowest number)
    best_trial_id: str | None  # its pcsweep trial id (user attr `trial_id`): `collect.load_trial` reads its arrays
    top_k: int  # how many values top_k_mean and top_k_sd are over: min(k, finite COMPLETE values)
    top_k_mean: float | None  # mean of the k best COMPLETE values
    top_k_sd: float | None  # their sample standard deviation (ddof 1); None for fewer than two values
    last_complete: str | None  # datetime_complete of the last COMPLETE trial, as Optuna stores it (worker's clock)
    journal: str  # the journal's file name under optuna/; empty for a study of grid.yaml with no journal yet

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = tuple(f.name for f in fields(StudyRow))


@dataclass(frozen=True)
class JournalStudy:
    """One study as read from its journal."""

    name: str
    direction: str  # maximize | minimize
    trials: tuple[FrozenTrial, ...]
    journal: Path


@dataclass
class Studies:
    """What `read_studies` found in a run folder."""

    journals: list[Path] = field(default_factory=list)  # every optuna/*.log, read or not
    studies: list[JournalStudy] = field(default_factory=list)  # spec order first, then by name
    spec: SearchSpec | None = None  # the grid's search: section, when grid.yaml has one
    notes: list[str] = field(default_factory=list)  # unreadable journals, unknown metric, ...

    @property
    def metric(self) -> str | None:
        return None if self.spec is None else self.spec.metric

    @property
    def budget(self) -> int | None:
        return None if self.spec is None else self.spec.budget


def _state(trial: Any) -> str:
    state = getattr(trial, "state", None)
    return str(getattr(state, "name", state))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def study_row(study: str, direction: str, trials: Iterable[FrozenTrial], *, metric: str | None = None,
              budget: int | None = None, k: int = TOP_K, journal: str = "") -> StudyRow:
    """Summarise one study's trials (pure: reads `state`, `value`, `number`, `user_attrs`, `datetime_complete`).

    Best and top-k use the COMPLETE trials with a finite value, ranked by value in the study's direction, ties by
    Optuna number. `last_complete` is the latest `datetime_complete` of a COMPLETE trial, ISO to the second.

    Raises:
        ValueError: a direction other than maximize/minimize, or k < 1.
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"study {study}: direction {direction!r}; expected maximize or minimize")
    if k < 1:
        raise ValueError(f"k={k}: expected a number of top trials >= 1")
    trials = list(trials)
    states = [_state(t) for t in trials]
    complete = [t for t, s in zip(trials, states) if s == "COMPLETE"]
    sign = -1.0 if direction == "maximize" else 1.0
    ranked = sorted((t for t in complete if _finite(t.value)), key=lambda t: (sign * float(t.value), t.number))
    best = ranked[0] if ranked else None
    top = [float(t.value) for t in ranked[:k]]
    finished = [t.datetime_complete for t in complete if t.datetime_complete is not None]
    trial_id = None if best is None else best.user_attrs.get("trial_id")
    return StudyRow(
        study=study, direction=direction, metric=metric, budget=budget, complete=len(complete),
        running=states.count("RUNNING"), waiting=states.count("WAITING"), failed=states.count("FAIL"),
        best_value=None if best is None else float(best.value), best_number=None if best is None else best.number,
        best_trial_id=None if trial_id is None else str(trial_id), top_k=len(top),
        top_k_mean=statistics.fmean(top) if top else None, top_k_sd=statistics.stdev(top) if len(top) > 1 else None,
        last_complete=max(finished).isoformat(timespec="seconds") if finished else None, journal=journal)


def journal_files(paths: RunPaths) -> list[Path]:
    """The run folder's study journals, `optuna/*.log`, sorted by name."""
    folder = paths.folder / OPTUNA_DIR
    return sorted(p for p in folder.glob("*.log") if p.is_file()) if folder.is_dir() else []


def read_journal(path: Path) -> list[JournalStudy]:
    """Every study of one journal file, with all its trials (read-only; imports optuna).

    Raises whatever Optuna raises on a file that is not a journal (ValueError for a line that is not JSON,
    KeyError for JSON that is not a journal operation, ...); `read_studies` turns it into a note.
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))  # no lock: reading never takes one
    out = []
    for frozen in storage.get_all_studies():
        if len(frozen.directions) != 1:
            raise ValueError(f"study {frozen.study_name} has {len(frozen.directions)} objectives; pcsweep's "
                             "searches have one")
        study_id = storage.get_study_id_from_name(frozen.study_name)
        trials = tuple(storage.get_all_trials(study_id, deepcopy=False))
        out.append(JournalStudy(frozen.study_name, frozen.directions[0].name.lower(), trials, path))
    return out


def search_spec(paths: RunPaths) -> tuple[SearchSpec | None, str | None]:
    """The grid's `search:` section from `runs/<grid>/grid.yaml` (the grid as the workers stored it), or
    (None, why not)."""
    from grids import GridError, load_grid  # grids imports contracts.config only; kept out of `import collect`

    if not paths.grid_yaml.is_file():
        return None, f"no {paths.grid_yaml}: the studies' metric and budget are unknown"
    try:
        grid = load_grid(paths.grid_yaml)
    except (GridError, ValueError, OSError) as e:  # ValueError: ConfigError, UnicodeDecodeError
        first = " ".join(str(e).split())
        return None, f"cannot read {paths.grid_yaml} ({type(e).__name__}: {first}); metric and budget left empty"
    if grid.search is None:
        return None, f"{paths.grid_yaml} has no search: section; the studies' metric and budget are unknown"
    return grid.search, None


def read_studies(paths: RunPaths) -> Studies:
    """Every study of the run folder's journals, plus the grid's search spec; never raises for a bad journal."""
    found = Studies(journals=journal_files(paths))
    if not found.journals:
        return found
    found.spec, why = search_spec(paths)
    if why:
        found.notes.append(why)
    by_name: dict[str, JournalStudy] = {}
    for path in found.journals:
        try:
            studies = read_journal(path)
        except Exception as e:  # noqa: BLE001 - any failure of a foreign or damaged file is a note, never a crash
            first = " ".join(str(e).split())[:200]
            found.notes.append(f"{path}: cannot read this Optuna journal ({type(e).__name__}: {first}); its "
                               f"study is left out of {STUDIES_CSV}")
            continue
        if not studies:
            found.notes.append(f"{path}: an Optuna journal holding no study yet (a worker stopped as it opened it)")
        for study in studies:
            if study.name in by_name:
                found.notes.append(f"{path}: study {study.name} is also in {by_name[study.name].journal.name}; the "
                                   "first one is kept")
                continue
            by_name[study.name] = study
    order = [s.name for s in found.spec.studies] if found.spec is not None else []
    found.studies = [by_name[n] for n in order if n in by_name] + [
        by_name[n] for n in sorted(set(by_name) - set(order))]
    if found.spec is not None:
        for study in found.studies:
            if study.name in order and study.direction != found.spec.direction:
                found.notes.append(f"study {study.name}: its journal says {study.direction}, grid.yaml "
                                   f"{found.spec.direction}; the journal's is used")
    return found


def study_rows(found: Studies, k: int = TOP_K) -> list[StudyRow]:
    """One row per study: those of the grid's search spec in its order (a study with no journal yet has zero
    trials), then the journals' other studies by name."""
    rows = {s.name: study_row(s.name, s.direction, s.trials, metric=found.metric, budget=found.budget, k=k,
                              journal=s.journal.name) for s in found.studies}
    if found.spec is not None:
        for study in found.spec.studies:
            if study.name not in rows:
                rows[study.name] = study_row(study.name, found.spec.direction, (), metric=found.metric,
                                             budget=found.budget, k=k)
        order = {s.name: i for i, s in enumerate(found.spec.studies)}
        return sorted(rows.values(), key=lambda r: (order.get(r.study, len(order)), r.study))
    return list(rows.values())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision, as summary.csv
    return str(value)


def to_csv(rows: Sequence[StudyRow]) -> str:
    """studies.csv's text: a header of `COLUMNS`, one line per row, empty cells for None."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(getattr(row, c)) for c in COLUMNS])
    return buf.getvalue()


def write_studies(paths: RunPaths) -> tuple[list[StudyRow], Path | None, list[str]]:
    """Write `runs/<grid>/studies.csv` (atomically) when the run folder has journals; returns (rows, the file or
    None when there is no journal, notes)."""
    found = read_studies(paths)
    if not found.journals:
        return [], None, []
    rows = study_rows(found)
    target = paths.folder / STUDIES_CSV
    write_text_atomic(target, to_csv(rows))
    return rows, target, found.notes


__all__ = ["COLUMNS", "JournalStudy", "STUDIES_CSV", "StudyRow", "Studies", "TOP_K", "journal_files", "read_journal",
           "read_studies", "search_spec", "study_row", "study_rows", "to_csv", "write_studies"]
