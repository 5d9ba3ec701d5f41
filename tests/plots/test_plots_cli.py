"""`python -m plots` end to end in a subprocess, the registry's skip path, and the no-jax guarantee."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from plots import registry
from plots.data import Inputs

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PER_DATASET = ("energy_per_t_{ds}", "energy_norms_per_epoch_{ds}", "accuracy-h-lr-optimizers-{ds}",
               "energy-ratios-{ds}", "all_accuracies_{ds}")
MINI_FILES = [s.format(ds=ds) for ds in ("two_moons", "fashion_mnist")
              for s in (*PER_DATASET, "lr-scaling-lineplot-{ds}")] + ["coverage"]
CONST_FILES = [s.format(ds="fashion_mnist") for s in (*PER_DATASET, "lr-scaling-lineplot-{ds}-constant-layer-size")]
CONST_FILES += ["coverage"]


def run_plots(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plots", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "MPLBACKEND": "Agg", **(env or {})})


@pytest.fixture(scope="module")
def cli_output(mini_run, const_run, tmp_path_factory):
    """One CLI call drawing two grids (from two roots, so the const grid is given as --root too)."""
    const_root = Path(const_run.root)
    # put both grids under one root, as a real runs/ folder would hold them
    root = Path(mini_run.root)
    (root / "const").mkdir(exist_ok=True)
    for f in ("results.h5", "summary.csv"):
        (root / "const" / f).write_bytes((const_root / "const" / f).read_bytes())
    out = tmp_path_factory.mktemp("figures")
    proc = run_plots("mini", "const", "--root", str(root), "--out", str(out))
    return proc, out


@pytest.mark.slow
def test_cli_writes_every_expected_figure_as_valid_pdf_and_png(cli_output) -> None:
    proc, out = cli_output
    assert proc.returncode == 0, proc.stderr
    for grid, stems in (("mini", MINI_FILES), ("const", CONST_FILES)):
        for stem in stems:
            pdf, png = out / grid / f"{stem}.pdf", out / grid / f"{stem}.png"
            assert pdf.read_bytes()[:5] == b"%PDF-", pdf
            assert png.read_bytes()[:8] == PNG_SIGNATURE, png
            with Image.open(png) as im:
                im.verify()
            with Image.open(png) as im:
                assert im.width > 300 and im.height > 200
            assert str(pdf) in proc.stdout and str(png) in proc.stdout
    written = sorted(p.name for p in out.rglob("*.p*"))
    assert len(written) == 2 * (len(MINI_FILES) + len(CONST_FILES))


@pytest.mark.slow
def test_cli_names_each_skipped_figure_and_why(cli_output) -> None:
    proc, _ = cli_output
    skipped = [ln for ln in proc.stdout.splitlines() if ln.startswith("skipped ")]
    # the constant-width variant in mini (2 datasets), the main one in const, and state_init in each (mini: 2
    # datasets, const: 1; neither has state-init rows, so no side-by-side is attempted and no line says so), and
    # both search figures in each (neither is an adaptive search)
    assert len(skipped) == 10, skipped
    for grid in ("mini", "const"):
        for stem in ("search-history", "search-importance"):
            assert any(ln.startswith(f"skipped {stem} ({grid}): not an adaptive search: no Optuna journal")
                       for ln in skipped), skipped
    assert any("lr-scaling-lineplot-two_moons-constant-layer-size (mini)" in ln and "constant_width=True" in ln
               for ln in skipped)
    assert sum(ln.startswith("skipped state-init-accuracy-T-") and "model.init_h" in ln for ln in skipped) == 3
    assert "Traceback" not in proc.stderr


def test_cli_only_list_and_errors(mini_run, tmp_path) -> None:
    proc = run_plots("mini", "--root", str(mini_run.root), "--out", str(tmp_path), "--only", "fig_coverage",
                     "--format", "png")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coverage.png"]

    listing = run_plots("--list")
    assert listing.returncode == 0
    for spec in registry.FIGURES:
        assert spec.name in listing.stdout and spec.stem in listing.stdout

    unknown = run_plots("mini", "--root", str(mini_run.root), "--only", "nope")
    assert unknown.returncode == 2 and "available: energy_per_t" in unknown.stderr
    bad_format = run_plots("mini", "--root", str(mini_run.root), "--format", "svg")
    assert bad_format.returncode == 2 and "--format" in bad_format.stderr
    absent = run_plots("nogrid", "--root", str(tmp_path))
    assert absent.returncode == 1 and "python -m collect nogrid" in absent.stderr


def test_help_explains_every_option() -> None:
    text = run_plots("--help").stdout
    for option in ("GRID", "--root", "--format", "--out", "--only", "--list", "--ratio-min-accuracy",
                   "--state-init-aggregate"):
        assert option in text
    assert "coverage" in text  # the figure names are listed


def test_make_figures_skips_absent_data_with_one_line_each(mini_run, tmp_path) -> None:
    inputs = Inputs.load("mini", mini_run.root)
    bp_only = Inputs("mini", inputs.summary[inputs.summary["model.kind"] == "bp"], inputs.results, None)
    lines: list[str] = []
    outcomes = registry.make_figures(bp_only, tmp_path, ["png"], registry.select(["energy_per_t", "energy_ratios"]),
                                     log=lines.append)
    assert all(o.skipped and not o.written for o in outcomes) and len(outcomes) == 4
    assert len(lines) == 4 and all(ln.startswith("skipped ") and "\n" not in ln for ln in lines)
    assert list(tmp_path.iterdir()) == []


def test_all_diverged_rows_skip_the_accuracy_figures(mini_run, tmp_path) -> None:
    inputs = Inputs.load("mini", mini_run.root)
    diverged = inputs.summary.assign(status="diverged", accuracy=float("nan"))
    lines: list[str] = []
    outcomes = registry.make_figures(Inputs("mini", diverged, inputs.results, None), tmp_path, ["png"],
                                     registry.select(["accuracy_optimizers", "all_accuracies", "energy_per_t"]),
                                     log=lines.append)
    assert [o.written for o in outcomes] == [[]] * 6
    assert all("finite accuracy" in ln or "all diverged" in ln for ln in lines), lines


def test_select_accepts_names_and_module_names() -> None:
    assert [s.name for s in registry.select(["fig_coverage", "lr_scaling"])] == ["coverage", "lr_scaling"]
    assert len(registry.select(None)) == len(registry.FIGURES)
    with pytest.raises(KeyError, match="available"):
        registry.select(["nope"])


def test_importing_plots_and_reading_a_run_loads_no_jax(mini_run) -> None:
    modules = ["plots", "plots.cli", "plots.registry", "plots.data", "plots.style"]
    modules += [spec.module for spec in registry.FIGURES]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += (f"from plots.data import Inputs, read_arrays\ninputs = Inputs.load('mini', {str(mini_run.root)!r})\n"
             "read_arrays(inputs.results, inputs.summary['trial_id'][:2], 'energy')\n")
    code += "bad = [m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'jaxlib'))]\n"
    code += "assert not bad, bad\nprint('ok')\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_summary_fixture_matches_the_documented_columns(mini_run) -> None:
    cols = set(pd.read_csv(mini_run.summary, nrows=1).columns)
    for col in ("trial_id", "status", "accuracy", "optim", "condition", "n_layers_energy", "energy_2",
                "energy_final_0", "energy_ratio_0/1", "energy_ratio_1/2", "model.constant_width"):
        assert col in cols
