"""Publication style, set once: NeurIPS sizes, fonts, palettes, γ tick labels, saving.

The paper used `tueplots.bundles.neurips2024` (usetex off) with every font size +3; tueplots is not a
dependency, so its numbers are reproduced here: text width 5.5 in, half width 2.75 in, base font
10 pt (ticks and legend 8 pt), each +3.
"""

from __future__ import annotations

import math
import textwrap
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from plots.registry import SkipFigure

if TYPE_CHECKING:
    import pandas as pd

FULL_WIDTH_IN = 5.5  # NeurIPS text width
HALF_WIDTH_IN = FULL_WIDTH_IN / 2
GOLDEN = (math.sqrt(5) - 1) / 2
FONT_BUMP = 3  # the paper's notebooks added 3 pt to every tueplots size
PNG_DPI = 200
CAPTION_PT = 8  # notes under a figure: smaller than tick labels, still legible in print

# One colour per weight optimiser, the same in every figure (seaborn's colour-blind palette).
_CB = sns.color_palette("colorblind")
OPTIMIZER_LABELS = {"sgd-0.9": "SGD", "adamw-0.9": "AdamW", "sgd-0.0": "SGD (no momentum)"}
OPTIMIZER_COLORS = {"SGD": _CB[0], "AdamW": _CB[1], "SGD (no momentum)": _CB[4]}
STATUS_COLORS = {"done": _CB[2], "diverged": _CB[3], "missing": (0.75, 0.75, 0.75)}
LAYER_COLORS = [_CB[0], _CB[1], _CB[2], _CB[4], _CB[5]]
ACTIVATION_LABELS = {"leaky_relu": "LeakyReLU", "hard_tanh": "HardTanh", "relu": "ReLU",
                     "tanh": "Tanh", "sigmoid": "Sigmoid"}


def rc_params() -> dict[str, object]:
    """The rcParams of the theme (tueplots neurips2024, fonts +3, no LaTeX)."""
    base, small = 10 + FONT_BUMP, 8 + FONT_BUMP
    return {
        "font.family": "serif",
        "font.serif": ["Times New Roman", "Times", "Nimbus Roman", "DejaVu Serif"],
        "mathtext.fontset": "stix",
        "text.usetex": False,
        "font.size": base,
        "axes.labelsize": base,
        "axes.titlesize": base,
        "legend.fontsize": small,
        "legend.title_fontsize": small,
        "xtick.labelsize": small,
        "ytick.labelsize": small,
        "figure.figsize": (HALF_WIDTH_IN, HALF_WIDTH_IN * GOLDEN),
        "figure.constrained_layout.use": True,
        "axes.grid": True,
        "grid.alpha": 0.35,
        "grid.linewidth": 0.5,
        "axes.linewidth": 0.6,
        "lines.linewidth": 1.2,
        "lines.markersize": 3.5,
        "savefig.dpi": PNG_DPI,
        "pdf.fonttype": 42,  # embed TrueType, so the PDF text stays editable and searchable
    }


def apply() -> None:
    """Set the theme for every figure drawn after this call."""
    sns.set_theme(style="whitegrid", palette="colorblind", rc=rc_params())
    # seaborn 0.13.2 still passes `vert=` to matplotlib 3.11's bxp; harmless, and not ours to fix
    warnings.filterwarnings("ignore", message="vert: bool was deprecated", category=MatplotlibDeprecationWarning)


def figsize(width: str | float = "half", height_ratio: float = GOLDEN) -> tuple[float, float]:
    """(width, height) in inches; width "full", "half" or inches; height = width * height_ratio."""
    w = {"full": FULL_WIDTH_IN, "half": HALF_WIDTH_IN}.get(width, width) if isinstance(width, str) else width
    return float(w), float(w) * height_ratio


def gamma_label(value: float) -> str:
    """Short tick label for a learning rate: 1e-3, 3e-3, 0.01 → "1e-2", 0.1, 0.3, 1."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if 0.1 <= abs(value) < 10:
        return f"{float(f'{value:.3g}'):g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = float(f"{value / 10**exponent:.3g}")
    if mantissa >= 10:  # 9.9996e-4 rounds up to 10e-4
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:g}e{exponent}"


def gamma_ticklabels(ax: Axes, values: Sequence[float], axis: str = "x") -> None:
    """Label a categorical γ axis (seaborn boxplot positions 0..n-1) with `gamma_label`."""
    getattr(ax, f"set_{axis}ticks")(range(len(values)))
    getattr(ax, f"set_{axis}ticklabels")([gamma_label(v) for v in values])


def log_gamma_axis(ax: Axes, values: Iterable[float]) -> None:
    """Log x axis with a tick at each γ that was run, labelled by `gamma_label`."""
    values = sorted(set(values))
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: gamma_label(v)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.margins(x=0.08)  # keep the end labels of side-by-side panels apart
    if len(values) > 5:
        ax.tick_params(axis="x", labelrotation=60)


def condition_title(rows: pd.DataFrame) -> str:
    """Short description of one condition (the first row's config): "PC AdamW, γ=1e-2, w_lr=1e-2, h=128, LeakyReLU"."""
    r = rows.iloc[0]
    opt = OPTIMIZER_LABELS.get(r["optim"], r["optim"])
    act = ACTIVATION_LABELS.get(r["model.activation"], r["model.activation"])
    return (f"{str(r['model.kind']).upper()} {opt}, $\\gamma$={gamma_label(r['train.h_lr'])}, "
            f"w_lr={gamma_label(r['train.w_lr'])}, h={int(r['model.width'])}, {act}")


def legend_above(ax: Axes) -> None:
    """Move `ax`'s legend to one row between the title and the axes, so it never hides data."""
    legend = ax.get_legend()
    if legend is None:
        return
    handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
    legend.remove()
    ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(labels), frameon=False,
              fontsize="x-small", handlelength=1.2, columnspacing=1.0, borderaxespad=0.1)
    ax.set_title(ax.get_title(), pad=20)  # points: room for the legend row under the title


def layer_energy_figure(table: pd.DataFrame, x: str, xlabel: str, title: str) -> tuple[Figure, Axes]:
    """Energy norm per layer against `x` (log y; mean and 95% CI over seeds): both energy figures.

    Zero and non-finite values cannot sit on a log axis and are left out; the caller says so.
    """
    shown = table[np.isfinite(table["energy"]) & (table["energy"] > 0)]
    if shown.empty:
        raise SkipFigure("every energy of the chosen trials is zero or not finite")
    fig, ax = plt.subplots(figsize=figsize("half", 1.4 * GOLDEN))
    layers = sorted(shown["layer"].unique(), key=int)
    sns.lineplot(shown, x=x, y="energy", hue="layer", hue_order=layers, marker="o",
                 palette=LAYER_COLORS[: len(layers)], errorbar=("ci", 95), seed=0, ax=ax)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Energy norm")
    ax.set_title(title)
    ax.legend(title="Layer", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
              fontsize="x-small", title_fontsize="x-small", handlelength=1.2)
    return fig, ax


def caption(fig: Figure, text: str) -> None:
    """A small note under the axes (condition, filters, caveats), wrapped to the figure's width."""
    width_chars = max(30, int(fig.get_figwidth() * 72 / (CAPTION_PT * 0.5)))
    lines = [textwrap.fill(part, width_chars) for part in text.split("\n")]
    fig.text(0.5, 0, "\n".join(lines), ha="center", va="top", fontsize=CAPTION_PT, color="0.25")


def save(fig: Figure, stem: Path, formats: Sequence[str]) -> list[Path]:
    """Write `stem.<fmt>` for each format (PNG at PNG_DPI, PDF without a timestamp); return the paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        fig.savefig(path, format=fmt, dpi=PNG_DPI, bbox_inches="tight", pad_inches=0.03, metadata=metadata)
        written.append(path)
    plt.close(fig)
    return written


__all__ = [
    "ACTIVATION_LABELS", "FULL_WIDTH_IN", "HALF_WIDTH_IN", "LAYER_COLORS", "OPTIMIZER_COLORS", "OPTIMIZER_LABELS",
    "PNG_DPI", "STATUS_COLORS", "apply", "caption", "condition_title", "figsize", "gamma_label", "gamma_ticklabels",
    "legend_above", "log_gamma_axis", "rc_params", "save",
]
