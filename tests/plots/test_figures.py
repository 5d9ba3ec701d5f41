"""Each figure's content, read back from the matplotlib objects (not pixels).

The oracle is always a groupby of the summary (or the stored arrays) computed here, independently
of the figure code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch

from plots import (
    data,
    fig_accuracy_optimizers,
    fig_all_accuracies,
    fig_coverage,
    fig_energy_per_epoch,
    fig_energy_per_t,
    fig_energy_ratios,
    fig_lr_scaling,
    style,
)

# the mini grid's shape (tests/plots/conftest.py), restated so this file imports no conftest
E, T_PC = 3, 4
GAMMAS = (1e-3, 1e-2, 0.1, 0.3)
WIDTHS = (64, 128)


def test_the_mini_grid_has_the_shape_these_tests_assume(summary) -> None:
    pc = summary[summary["model.kind"] == "pc"]
    assert set(summary["train.epochs"]) == {E} and set(pc["train.T"]) == {T_PC}
    assert tuple(sorted(pc["train.h_lr"].unique())) == GAMMAS
    assert tuple(sorted(summary["model.width"].unique())) == WIDTHS


def test_final_and_best_accuracy_differ_in_the_collected_summary(summary) -> None:
    """What makes a figure that reads `accuracy_best` instead of `accuracy` fail the tests below."""
    ok = summary[summary["status"] == "ok"]
    assert (ok["accuracy_best"] > ok["accuracy"] + 0.04).all()
    adam_03 = ok[(ok["condition"] == "pc-adamw-0.9") & (ok["train.h_lr"] == 0.3)]
    assert len(adam_03) and (adam_03["accuracy"] < 0.5).all() and (adam_03["accuracy_best"] > 0.5).all()


@pytest.fixture(autouse=True)
def _theme() -> None:
    style.apply()


def _boxes(ax) -> np.ndarray:
    """[n, 2] (q1, q3) of every box on the axes, sorted: seaborn draws each box as one PathPatch."""
    out = [(p.get_path().vertices[:, 1].min(), p.get_path().vertices[:, 1].max())
           for p in ax.patches if isinstance(p, PathPatch)]
    return np.array(sorted(out))


def _expected_boxes(groups, log: bool = False) -> np.ndarray:
    """Quartiles of each group; on a log axis seaborn takes them of log10 values (geometric)."""
    out = []
    for v in groups:
        v = np.log10(v) if log else np.asarray(v)
        q = np.percentile(v, [25, 75])
        out.append(tuple(10**q if log else q))
    return np.array(sorted(out))


def assert_boxes(ax, groups, log: bool = False) -> None:
    np.testing.assert_allclose(_boxes(ax), _expected_boxes(groups, log), rtol=1e-6)


def _texts(fig: Figure) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text") and not isinstance(o, Figure)))


def _mean_energy(mini_run, rows: pd.DataFrame, index) -> np.ndarray:
    arrays = data.read_arrays(mini_run.results, rows["trial_id"], "energy")
    return np.mean([a[index] for a in arrays.values()], axis=0)


# ---------------------------------------------------------------- energies


def test_energy_per_t_plots_the_mean_over_seeds_at_every_step(summary, mini_run) -> None:
    fig = fig_energy_per_t.draw(summary, mini_run.results, "fashion_mnist")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "Inference step" in ax.get_xlabel()
    rows = data.paper_energy_trials(summary, "fashion_mnist")
    expected = _mean_energy(mini_run, rows, (-1, -1))  # [T+1, L]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
    assert len(lines) == 3
    out, second, first = sorted(lines, key=lambda ln: ln.get_xdata()[0])
    # only non-zero steps are drawn: output from t = 0, layer 2 from t = 1, layer 1 from t = 2
    for ln, k, start in ((out, 2, 0), (second, 1, 1), (first, 0, 2)):
        np.testing.assert_array_equal(ln.get_xdata(), np.arange(start, T_PC + 1))
        np.testing.assert_allclose(ln.get_ydata(), expected[start:, k], rtol=1e-6)
    assert "not drawn on the log axis: layer 1 at t=0,1; layer 2 at t=0" in _texts(fig).replace("\n", " ")
    # the summary's energy (t = T-1) is the curve's value at t = T-1
    np.testing.assert_allclose(out.get_ydata()[T_PC - 1], rows["energy_2"].mean(), rtol=1e-6)


def test_energy_per_epoch_is_labelled_epoch_and_uses_t_equal_T_minus_1(summary, mini_run) -> None:
    fig = fig_energy_per_epoch.draw(summary, mini_run.results, "two_moons")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel().startswith("Epoch")
    assert "T (Inference" not in ax.get_xlabel()
    rows = data.paper_energy_trials(summary, "two_moons")
    expected = _mean_energy(mini_run, rows, (slice(None), -1, T_PC - 1))  # [E, L]
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == E]
    assert len(lines) == 3
    got = sorted(tuple(np.round(ln.get_ydata(), 9)) for ln in lines)
    assert got == sorted(tuple(np.round(expected[:, k], 9)) for k in range(3))
    for ln in lines:
        np.testing.assert_array_equal(ln.get_xdata(), np.arange(1, E + 1))
    last = sorted(ln.get_ydata()[-1] for ln in lines)
    np.testing.assert_allclose(last, sorted(rows[[f"energy_{k}" for k in range(3)]].mean()), rtol=1e-6)


# ---------------------------------------------------------------- accuracy boxplots


def test_accuracy_optimizers_falls_back_to_the_widest_width_and_says_so(summary, mini_run) -> None:
    fig = fig_accuracy_optimizers.draw(summary, mini_run.results, "two_moons")
    ax = fig.axes[0]
    assert ax.get_ylim() == (0, 1) and ax.get_ylabel() == "Accuracy"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1e-3", "1e-2", "0.1", "0.3"]
    assert "h=128" in _texts(fig) and "paper: h=1024" in _texts(fig)
    rows = summary[(summary["data.dataset"] == "two_moons") & (summary["model.kind"] == "pc")
                   & (summary["model.width"] == max(WIDTHS)) & (summary["model.activation"] == "hard_tanh")]
    groups = [g["accuracy"].dropna() for _, g in rows.groupby(["optim", "train.h_lr"])]
    assert len(_boxes(ax)) == 2 * len(GAMMAS)
    assert_boxes(ax, groups)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SGD", "AdamW"]


def test_accuracy_optimizers_never_mixes_in_bp_rows(summary, mini_run) -> None:
    only_bp = summary[summary["model.kind"] == "bp"]
    with pytest.raises(data.SkipFigure, match="model.kind=pc"):
        fig_accuracy_optimizers.draw(only_bp, mini_run.results, "two_moons")


def test_all_accuracies_has_one_panel_per_width_and_activation(summary, mini_run) -> None:
    fig = fig_all_accuracies.draw(summary, mini_run.results, "fashion_mnist")
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(axes) == len(WIDTHS) * 2
    titles = {ax.get_title() for ax in axes}
    assert titles == {f"{a} | h = {w}" for a in ("LeakyReLU", "HardTanh") for w in WIDTHS}
    rows = summary[(summary["data.dataset"] == "fashion_mnist") & (summary["model.kind"] == "pc")]
    for ax in axes:
        act_label, width = ax.get_title().split(" | h = ")
        act = {v: k for k, v in style.ACTIVATION_LABELS.items()}[act_label]
        cell = rows[(rows["model.activation"] == act) & (rows["model.width"] == int(width))]
        assert_boxes(ax, [g["accuracy"].dropna() for _, g in cell.groupby(["optim", "train.h_lr"])])
        assert ax.get_ylim() == (0, 1)


# ---------------------------------------------------------------- energy ratios


def test_energy_ratios_boxes_are_the_filtered_adamw_ratios(summary, mini_run) -> None:
    fig = fig_energy_ratios.draw(summary, mini_run.results, "two_moons")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_title() == "Energy Layer Ratio"
    hlines = {round(ln.get_ydata()[0], 6): ln.get_linestyle() for ln in ax.get_lines()
              if len(set(ln.get_ydata())) == 1 and ln.get_xdata()[0] == 0 and ln.get_xdata()[-1] == 1}
    assert hlines == {1.0: "--", 0.01: ":", 100.0: ":"}
    rows = summary[(summary["data.dataset"] == "two_moons") & (summary["condition"] == "pc-adamw-0.9")
                   & (summary["accuracy"] > 0.5)]
    groups = [g[c] for c in ("energy_ratio_0/1", "energy_ratio_1/2") for _, g in rows.groupby("train.h_lr")]
    assert_boxes(ax, groups, log=True)
    # the filter is on the final accuracy: γ = 0.3 (best accuracy > 0.5, final < 0.5) has no box
    kept = sorted(rows["train.h_lr"].unique())
    assert 0.3 not in kept and len(_boxes(ax)) == 2 * len(kept)
    assert [t.get_text() for t in ax.get_xticklabels()] == [style.gamma_label(g) for g in kept]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [r"$\epsilon_1^2/\epsilon_2^2$", r"$\epsilon_2^2/\epsilon_3^2$"]


def test_energy_ratio_threshold_is_an_option(summary, mini_run) -> None:
    strict = fig_energy_ratios.ratio_table(summary, "two_moons", min_accuracy=0.8)
    loose = fig_energy_ratios.ratio_table(summary, "two_moons", min_accuracy=0.0)
    assert 0 < len(strict) < len(loose)
    with pytest.raises(data.SkipFigure, match="accuracy > 0.99"):
        fig_energy_ratios.draw(summary, mini_run.results, "two_moons", min_accuracy=0.99)


# ---------------------------------------------------------------- LR scaling


def test_lr_scaling_lines_are_mean_accuracy_per_width_and_gamma(summary, mini_run) -> None:
    fig = fig_lr_scaling.draw(summary, mini_run.results, "two_moons")  # holds the diverged trial: not in the means
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["PC - SGD (1 diverged)", "PC - Adam", "BP"]
    widths = [ax.get_position().width for ax in axes]
    assert widths[0] == pytest.approx(widths[1]) and widths[0] / widths[2] == pytest.approx(5, rel=0.15)
    assert axes[0].get_yscale() == "linear" and axes[0].get_xscale() == "log" and axes[2].get_xticks().size == 0
    assert all(ax.get_ylim() == (0, 1) for ax in axes)
    assert axes[0].get_legend() is not None and axes[1].get_legend() is None and axes[2].get_legend() is None
    rows = summary[(summary["data.dataset"] == "two_moons") & ~summary["model.constant_width"]]
    for ax, condition in zip(axes, ("pc-sgd-0.9", "pc-adamw-0.9", "bp-sgd-0.9")):
        cond = rows[(rows["condition"] == condition) & rows["accuracy"].notna()
                    & ((rows["model.kind"] == "bp") | (rows["train.h_lr"] < 0.3))]
        means = cond.groupby(["model.width", "train.h_lr"])["accuracy"].mean()
        lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
        assert len(lines) == len(WIDTHS)
        got = sorted(tuple(np.round(ln.get_ydata(), 9)) for ln in lines)
        if condition.startswith("bp"):  # a flat segment from γ = 1 to 1.1
            for ln in lines:
                np.testing.assert_allclose(ln.get_xdata(), [1.0, 1.1])
            want = sorted((round(m, 9),) * 2 for m in means.to_numpy())
        else:
            want = sorted(tuple(np.round(means.loc[w].to_numpy(), 9)) for w in WIDTHS)
            assert len(want[0]) == len(GAMMAS) - 1  # γ = 0.3 is left out, as the paper's `h_lr < 0.3`
        assert got == want


def test_lr_scaling_counts_diverged_trials_instead_of_averaging_them(summary, mini_run) -> None:
    fig = fig_lr_scaling.draw(summary, mini_run.results, "two_moons")
    assert [ax.get_title() for ax in fig.axes] == ["PC - SGD (1 diverged)", "PC - Adam", "BP"]


def test_lr_scaling_constant_width_uses_only_the_ablation_rows(summary, mini_run, const_run) -> None:
    with pytest.raises(data.SkipFigure, match="constant_width=True"):
        fig_lr_scaling.draw(summary, mini_run.results, "two_moons", constant_width=True)
    const = data.Inputs.load(const_run.grid, const_run.root).summary
    fig = fig_lr_scaling.draw(const, const_run.results, "fashion_mnist", constant_width=True)
    assert "constant layer size" in fig._suptitle.get_text()


# ---------------------------------------------------------------- coverage


def test_coverage_counts_done_diverged_and_missing_per_condition(summary, mini_run, monkeypatch) -> None:
    ids = list(summary["trial_id"])
    extra = pd.DataFrame({"trial_id": [f"{i:016x}" for i in range(5)], "data.dataset": "two_moons",
                          "model.kind": "pc", "optim": "adamw-0.9", "model.constant_width": False})
    present = summary[["trial_id", "data.dataset", "model.kind", "optim", "model.constant_width"]]
    monkeypatch.setattr(data, "expected_trials", lambda *_: (pd.concat([present, extra]), "expected from grid.yaml"))
    fig = fig_coverage.draw(summary, mini_run.results, None, grid_yaml=None)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    done, diverged, missing = ax.containers
    shares = {lab: (d.get_width(), v.get_width(), m.get_width())
              for lab, d, v, m in zip(labels, done, diverged, missing)}
    counts = {t.get_position()[1]: t.get_text() for t in ax.texts}
    by_label = {lab: counts[y] for y, lab in enumerate(labels)}
    assert shares["two_moons · PC · adamw-0.9"] == pytest.approx((32 / 37, 0, 5 / 37))
    assert by_label["two_moons · PC · adamw-0.9"] == "32/37"
    assert shares["two_moons · PC · sgd-0.9"] == pytest.approx((31 / 32, 1 / 32, 0))
    assert by_label["two_moons · PC · sgd-0.9"] == "32/32"
    assert all(sum(v) == pytest.approx(1) for v in shares.values())
    assert sum(int(c.split("/")[1]) for c in by_label.values()) == len(ids) + 5
    assert "5 missing" in _texts(fig)


def test_coverage_without_a_grid_file_counts_what_is_present(summary, mini_run) -> None:
    fig = fig_coverage.draw(summary, mini_run.results, None, grid_yaml=None)
    assert "expected = present" in _texts(fig)
    assert sum(p.get_width() for p in fig.axes[0].containers[2]) == 0  # nothing missing


def test_coverage_of_the_collected_run_against_its_launched_grid(mini_run, summary) -> None:
    """Expected trials from the run's grid.yaml (grids.load_grid), present ones from collect's summary."""
    inputs = data.Inputs.load(mini_run.grid, mini_run.root)
    assert inputs.grid_yaml == mini_run.grid_yaml
    fig = fig_coverage.draw(summary, mini_run.results, None, grid_yaml=inputs.grid_yaml)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    done, diverged, missing = ax.containers
    shares = {lab: (d.get_width(), v.get_width(), m.get_width())
              for lab, d, v, m in zip(labels, done, diverged, missing)}
    counts = {lab: ax.texts[y].get_text() for y, lab in enumerate(labels)}
    expected = data.expected_trials(mini_run.grid_yaml)[0]
    n_expected = expected.groupby(["data.dataset", "model.kind", "optim"]).size()
    present = summary.groupby(["data.dataset", "model.kind", "optim", "status"]).size()
    assert len(labels) == len(n_expected) == 8
    for (ds, kind, optim), n in n_expected.items():
        label = f"{ds} · {kind.upper()} · {optim}"
        ok, bad = present.get((ds, kind, optim, "ok"), 0), present.get((ds, kind, optim, "diverged"), 0)
        assert shares[label] == pytest.approx((ok / n, bad / n, (n - ok - bad) / n)), label
        assert counts[label] == f"{ok + bad}/{n}"
    assert shares["two_moons · BP · adamw-0.9"] == pytest.approx((5 / 8, 0, 3 / 8))
    assert shares["two_moons · PC · sgd-0.9"] == pytest.approx((31 / 32, 1 / 32, 0))
    assert "156 done, 1 diverged, 3 missing of 160" in _texts(fig).replace("\n", " ")
