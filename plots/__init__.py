"""plots: the figures of Section 5.1 from a collected run (`python -m plots GRID ...`).

Reads only `runs/<grid>/summary.csv` and `results.h5` (and `grid.yaml` for coverage); imports no
jax. One small module per figure (`plots/fig_<name>.py`), named in `plots.registry.FIGURES`.
Heavy imports (pandas, seaborn, matplotlib) happen only when a figure is drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plots.data import Inputs, SkipFigure
    from plots.registry import FIGURES, FigureSpec, Outcome, make_figures

__all__ = ["FIGURES", "FigureSpec", "Inputs", "Outcome", "SkipFigure", "make_figures"]


def __getattr__(name: str) -> Any:
    if name in ("Inputs", "SkipFigure"):
        from plots import data

        return getattr(data, name)
    if name in ("FIGURES", "FigureSpec", "Outcome", "make_figures"):
        from plots import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'plots' has no attribute {name!r}")
