"""plots: the figures of Section 5.1 from a collected run (`python -m plots GRID ...`).

Reads only `runs/<grid>/summary.csv` and `results.h5` (through collect) and the grid file (for coverage);
imports no jax. One small module per figure (`plots/fig_<name>.py`), named in `plots.registry.FIGURES`.
Importing the package loads nothing heavy: the public names below are resolved on first use, so pandas,
seaborn and matplotlib load only when a figure is drawn.

    Inputs.load(grid, root=None) -> Inputs                   summary, results.h5 and grid file of one grid
    make_figures(inputs, out, formats, specs) -> [Outcome]   draw and save the figures
    FIGURES, FigureSpec, SkipFigure                           the registry and the skip signal
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FIGURES", "FigureSpec", "Inputs", "Outcome", "SkipFigure", "make_figures"]

_WHERE = {
    "Inputs": "plots.data",
    "FIGURES": "plots.registry",
    "FigureSpec": "plots.registry",
    "Outcome": "plots.registry",
    "SkipFigure": "plots.registry",
    "make_figures": "plots.registry",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'plots' has no attribute {name!r}; public names: {', '.join(__all__)}")


def __dir__() -> list[str]:
    return sorted(__all__)
