"""Figure name → module registry, and the loop that draws and saves the selected figures.

Each `plots/fig_<name>.py` exposes `draw(summary, results, dataset, **options) -> Figure` and
raises `SkipFigure(reason)` when its data are absent; this module imports each only when it is drawn.
A figure with a `combined` stem also exposes `draw_grids(grids, dataset, **options) -> Figure | None`,
which `make_combined` calls once over several grids (one panel per grid).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # plots.data loads pandas: only when figures are drawn (fast --help, --list)
    from plots.data import Inputs


class SkipFigure(Exception):
    """A figure whose data are absent from the grid: the message says which rows were missing.

    Defined here, the light module every figure module and `plots.data` import, so `plots.style`
    can raise it without an import cycle.
    """


@dataclass(frozen=True)
class FigureSpec:
    """One figure: its `--only` name, drawing module, file stem and whether it is drawn per dataset."""

    name: str
    module: str  # plots.fig_<...>
    stem: str  # file name without extension; "{ds}" is replaced by the dataset
    per_dataset: bool
    about: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)  # fixed keyword arguments of draw
    combined: str | None = None  # file stem of the figure over several grids (the module's draw_grids)

    def draw_fn(self) -> Callable[..., Any]:
        return importlib.import_module(self.module).draw

    def draw_grids_fn(self) -> Callable[..., Any]:
        return importlib.import_module(self.module).draw_grids


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("energy_per_t", "plots.fig_energy_per_t", "energy_per_t_{ds}", True,
               "layer energy norms over inference steps t=0..T, last batch of last epoch (new)"),
    FigureSpec("energy_per_epoch", "plots.fig_energy_per_epoch", "energy_norms_per_epoch_{ds}", True,
               "the paper's 'energy vs T' panel: energy at t=T-1, last batch of each epoch"),
    FigureSpec("accuracy_optimizers", "plots.fig_accuracy_optimizers", "accuracy-h-lr-optimizers-{ds}", True,
               "PC accuracy vs gamma, SGD(0.9) vs AdamW (width 1024, hard_tanh where present)"),
    FigureSpec("energy_ratios", "plots.fig_energy_ratios", "energy-ratios-{ds}", True,
               "PC AdamW adjacent-layer energy ratios vs gamma"),
    FigureSpec("all_accuracies", "plots.fig_all_accuracies", "all_accuracies_{ds}", True,
               "PC accuracy vs gamma per width (columns) and activation (rows), SGD vs AdamW"),
    FigureSpec("lr_scaling", "plots.fig_lr_scaling", "lr-scaling-lineplot-{ds}", True,
               "accuracy vs gamma per width: PC-SGD, PC-AdamW, BP (model.constant_width false)",
               {"constant_width": False}),
    FigureSpec("lr_scaling_constant", "plots.fig_lr_scaling", "lr-scaling-lineplot-{ds}-constant-layer-size",
               True, "the same for the constant-layer-size ablation (model.constant_width true)",
               {"constant_width": True}),
    FigureSpec("state_init", "plots.fig_state_init", "state-init-accuracy-T-{ds}", True,
               "PC best test accuracy vs T per state init (forward, zero, normal): mean and 95% CI over seeds "
               "(replay) or of the top 5 per cell (search); with several grids also one side-by-side figure",
               combined="state-init-side-by-side-{ds}"),
    FigureSpec("coverage", "plots.fig_coverage", "coverage", False,
               "done / diverged / missing trials per condition (new)"),
    FigureSpec("search_history", "plots.fig_search_history", "search-history", False,
               "adaptive search: each study's completed trial values and best so far vs trial number (new)"),
    FigureSpec("search_importance", "plots.fig_search_importance", "search-importance", False,
               "adaptive search: Optuna's parameter importances of the study with most completed trials (new)"),
)
BY_NAME = {spec.name: spec for spec in FIGURES}


def select(only: Sequence[str] | None) -> list[FigureSpec]:
    """The specs named in `only` (also accepted: a `fig_` prefix or the module name); all if empty."""
    if not only:
        return list(FIGURES)
    chosen = []
    for raw in only:
        name = raw.removeprefix("plots.").removeprefix("fig_")
        matches = [s for s in FIGURES if s.name == name] or [
            s for s in FIGURES if s.module.removeprefix("plots.fig_") == name]  # a module: all its figures
        if not matches:
            raise KeyError(f"--only {raw}: unknown figure; available: {', '.join(BY_NAME)}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


@dataclass
class Outcome:
    """What happened to one figure of one grid: the files written, or why it was skipped."""

    grid: str
    figure: str
    dataset: str | None
    written: list[Path] = field(default_factory=list)
    skipped: str | None = None


def make_figures(inputs: Inputs, out: Path, formats: Sequence[str], specs: Sequence[FigureSpec],
                 options: Mapping[str, Any] | None = None,
                 log: Callable[[str], None] = print) -> list[Outcome]:
    """Draw `specs` for one grid into `out`; skip (with one line to `log`) those without data."""
    # matplotlib and seaborn (plots.style) load here, not at import: `--help` and `--list` stay fast
    import matplotlib.pyplot as plt

    from plots import style

    style.apply()
    available = {"grid_yaml": inputs.grid_yaml, "run_paths": inputs.paths, **(options or {})}
    outcomes = []
    for spec in specs:
        draw = spec.draw_fn()
        kwargs = _kwargs(draw, spec, available)
        for ds in (inputs.datasets if spec.per_dataset else [None]):
            stem = spec.stem.format(ds=ds)
            outcome = Outcome(inputs.grid, spec.name, ds)
            try:
                fig = draw(inputs.summary, inputs.results, ds, **kwargs)
                outcome.written = style.save(fig, out / stem, formats)
            except SkipFigure as e:
                plt.close("all")
                outcome.skipped = str(e)
                log(f"skipped {stem} ({inputs.grid}): {e}")
            outcomes.append(outcome)
    return outcomes


def _kwargs(fn: Callable[..., Any], spec: FigureSpec, available: Mapping[str, Any]) -> dict[str, Any]:
    """The options `fn` accepts, then the spec's fixed keyword arguments."""
    accepted = inspect.signature(fn).parameters
    return {**{k: v for k, v in available.items() if k in accepted}, **spec.kwargs}


def make_combined(inputs: Sequence[Inputs], out: Path, formats: Sequence[str], specs: Sequence[FigureSpec],
                  options: Mapping[str, Any] | None = None,
                  log: Callable[[str], None] = print) -> list[Outcome]:
    """Draw the `combined` figures of `specs` over several grids into `out`: one panel per grid (in the order
    given) that has the figure's rows, per dataset present in any grid.

    Nothing with fewer than two grids. A spec's `draw_grids` returns None when no grid has its rows (each
    grid's own skip line says why: nothing is logged) and raises SkipFigure when only one has (logged).
    """
    if len(inputs) < 2:
        return []
    import matplotlib.pyplot as plt

    from plots import style

    style.apply()
    label = ", ".join(one.grid for one in inputs)
    outcomes = []
    for spec in specs:
        if spec.combined is None:
            continue
        draw_grids = spec.draw_grids_fn()
        kwargs = _kwargs(draw_grids, spec, dict(options or {}))
        datasets = sorted(set().union(*(one.datasets for one in inputs))) if spec.per_dataset else [None]
        for ds in datasets:
            stem = spec.combined.format(ds=ds)
            outcome = Outcome(label, spec.name, ds)
            try:
                fig = draw_grids([(one.grid, one.summary) for one in inputs], ds, **kwargs)
            except SkipFigure as e:
                plt.close("all")
                outcome.skipped = str(e)
                log(f"skipped {stem} ({label}): {e}")
                outcomes.append(outcome)
                continue
            if fig is not None:
                outcome.written = style.save(fig, out / stem, formats)
                outcomes.append(outcome)
    return outcomes
