"""Collected runs for the plots tests: real shards (`contracts.shard.write_shard`) merged by the real `collect`.

The grid is a real grid file (`MINI_GRID`, stored as the run folder's `grid.yaml`, as launch stores it),
expanded with `grids.load_grid`. Each trial's arrays are synthetic but format-true (docs/design.md
section 5: energy [E, B, T+1, L] with hidden layers exactly 0 until the output error reaches them, as
under forward init: layer 2 at t=0, layer 1 at t=0 and 1). Accuracy peaks before the last epoch and then
falls, so the final accuracy (`accuracy`) and the best one (`accuracy_best`) differ in every trial: a
figure that plotted or filtered on the wrong one fails its test. The summary the tests read is the one
`collect` wrote, through `plots.Inputs.load`; no test re-derives collect's rules.

The state-initialisation runs (`state_init_root`) are two more grids collected under one root: a replay
(forward/zero/normal x 7 T x 5 seeds, one configuration per cell) and a search (the same cells x 3 γ x
3 w_lr, one seed), with diverged, never-finite and early-stopped trials (`STATE_INIT_FATES`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collect
from contracts.config import TrialConfig
from contracts.paths import RunPaths
from contracts.shard import TrialResult, write_shard
from grids import load_grid
from plots.data import Inputs

E, B, T_PC = 3, 4, 4
GAMMAS = (1e-3, 1e-2, 0.1, 0.3)  # 0.3: in the boxplots, not in the LR-scaling lines (paper: γ < 0.3)
WIDTHS = (64, 128)
MISSING_BP_ADAMW = 3  # two_moons BP-AdamW trials never written to a shard: missing in the coverage figure

MINI_GRID = """\
name: {name}
description: plots tests, {datasets} x PC/BP x SGD(0.9)/AdamW x 2 widths x 2 activations x 2 seeds (x 4 gammas)
defaults:
  train: {{epochs: 3, T: 4}}
sweep:
  - axes:
      data.dataset: [{datasets}]
      model.kind: [pc, bp]
      model.width: [{widths}]
      model.activation: [leaky_relu, hard_tanh]
      model.constant_width: [{constant_width}]
      seed: [0, 1]
    joint:
      [train.w_optimizer, train.w_momentum]: [[sgd, 0.9], [adamw, 0.9]]
    by:
      model.kind:
        pc: {{axes: {{train.h_lr: [1.0e-3, 1.0e-2, 0.1, 0.3]}}}}
        bp: {{set: {{train.T: 1, train.h_lr: 1.0}}}}
{more_by}"""
# the ablation: every layer as wide as the (resized) input and the one-hot output, so width = resize**2
CONST_BY = """\
      model.width:
        64: {set: {data.resize: 8, data.n_classes: 64}}
        256: {set: {data.resize: 16, data.n_classes: 256}}
"""


def accuracy_curve(kind: str, adam: bool, gamma: float, width: int, rng: np.random.Generator) -> np.ndarray:
    """Test accuracy per epoch: it rises to a peak at epoch E-1 and falls at the last one, most at large γ
    (the instability the stability study is about). The final value is the summary's `accuracy`, the
    peak its `accuracy_best`; at γ = 0.3 with AdamW the peak is above 0.5 and the final value below."""
    final = 0.8 if kind == "bp" else 0.9 - (3.0 if adam else 1.0) * gamma - 0.0002 * width
    final = float(np.clip(final + rng.normal(0, 0.02), 0.05, 0.9))
    peak = min(0.99, final + (0.05 if kind == "bp" else 0.1 + 2 * gamma))
    return np.array([0.3, peak, final])


def make_trial(cfg: TrialConfig, tid: str, *, diverged: bool = False) -> TrialResult:
    """Deterministic synthetic arrays whose values depend on the config (so figures differ by γ)."""
    rng = np.random.default_rng(int(tid[:8], 16))
    kind, gamma, T = cfg.model.kind, cfg.train.h_lr, cfg.train.T
    L = 3 if kind == "pc" else 1
    test_accuracy = accuracy_curve(kind, cfg.train.w_optimizer == "adamw", gamma, cfg.model.width, rng)
    t = np.arange(T + 1)[None, None, :, None]
    epoch = (1 + np.arange(E))[:, None, None, None]
    k = np.arange(L)[None, None, None, :]
    noise = rng.lognormal(0, 0.1, size=(E, B, T + 1, L))
    # forward init: hidden layer k is exactly 0 until the output error reaches it (t >= L-1-k)
    hidden = (gamma * 10.0 ** (-k)) * (1 - np.exp(-t)) / epoch * (t >= L - 1 - k)
    output = 2.0 * np.exp(-0.2 * t) / epoch
    energy = np.where(k == L - 1, output, hidden) * noise
    w_grad_norm = rng.uniform(0.01, 0.1, size=(E, B, 3))
    arrays = dict(test_accuracy=test_accuracy, energy=energy, energy_var=energy**2 * 0.1,
                  w_norm=rng.uniform(1, 2, size=(E, B, 3)), w_grad_norm=w_grad_norm, w_grad_var=w_grad_norm**2)
    if diverged:  # NaN from the second epoch on, as the group program pads a diverged trial
        arrays = {n: np.where(np.arange(a.shape[0]).reshape((-1,) + (1,) * (a.ndim - 1)) >= 1, np.nan, a)
                  for n, a in arrays.items()}
    return TrialResult(tid, dataclasses.asdict(cfg), "diverged" if diverged else "ok", float(rng.uniform(1, 5)),
                       {n: a.astype(np.float32) for n, a in arrays.items()})


def collected_run(root: Path, grid_text: str, *, diverged: int | None = None, missing: set[int] = frozenset(),
                  make: Callable[[TrialConfig, str], TrialResult] | None = None) -> RunPaths:
    """Store `grid_text` as the run's grid.yaml, write one shard per (dataset, model kind) task with every
    trial but `missing` (trial `diverged` diverged; `make(cfg, tid)` builds each trial when given), and run
    the real `collect` on the folder."""
    grid = load_grid_text(root, grid_text)
    paths = RunPaths.of(grid.name, root)
    tasks: dict[str, list[TrialResult]] = {}
    for i, (cfg, tid) in enumerate(zip(grid.trials, grid.trial_ids)):
        if i not in missing:
            tasks.setdefault(f"{cfg.data.dataset}-{cfg.model.kind}", []).append(
                make(cfg, tid) if make else make_trial(cfg, tid, diverged=i == diverged))
    for key, trials in tasks.items():
        write_shard(paths.shard(key), trials, grid=grid.name, task_key=key)
    report = collect.collect(grid.name, root, progress=False)
    assert report.complete == len(grid.trials) - len(missing), report
    return paths


def load_grid_text(root: Path, text: str):  # -> grids.Grid
    """Write `text` as `<root>/<name>/grid.yaml` (the grid as launched) and load it from there."""
    name = text.split("\n", 1)[0].removeprefix("name: ")
    paths = RunPaths.of(name, root)
    paths.folder.mkdir(parents=True)
    paths.grid_yaml.write_text(text)
    return load_grid(paths.grid_yaml)


def _index(grid, **where) -> list[int]:
    """Indices of the grid's trials whose dotted config keys have the given values."""
    def value(cfg, key):
        section, name = key.split("__")
        return getattr(getattr(cfg, section), name)
    return [i for i, cfg in enumerate(grid.trials) if all(value(cfg, k) == v for k, v in where.items())]


@pytest.fixture(scope="session")
def mini_run(tmp_path_factory) -> RunPaths:
    """The mini grid, collected: 2 datasets x PC/BP x sgd-0.9/adamw-0.9 x 4 γ (PC) x 2 widths x 2 activations
    x 2 seeds; one two_moons PC-SGD trial at γ = 0.1 diverged, three two_moons BP-AdamW trials missing."""
    text = MINI_GRID.format(name="mini", datasets="two_moons, fashion_mnist", widths="64, 128",
                            constant_width="false", more_by="")
    grid = load_grid(_write(tmp_path_factory.mktemp("grid") / "mini.yaml", text))
    diverged = _index(grid, data__dataset="two_moons", model__kind="pc", train__w_optimizer="sgd",
                      train__h_lr=0.1)[0]
    missing = set(_index(grid, data__dataset="two_moons", model__kind="bp",
                         train__w_optimizer="adamw")[:MISSING_BP_ADAMW])
    return collected_run(tmp_path_factory.mktemp("runs"), text, diverged=diverged, missing=missing)


@pytest.fixture(scope="session")
def const_run(tmp_path_factory) -> RunPaths:
    """The constant-layer-size ablation on fashion_mnist (model.constant_width true), collected."""
    text = MINI_GRID.format(name="const", datasets="fashion_mnist", widths="64, 256", constant_width="true",
                            more_by=CONST_BY)
    return collected_run(tmp_path_factory.mktemp("runs_const"), text)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def summary(mini_run: RunPaths) -> pd.DataFrame:
    """The summary collect wrote for the mini grid, as the figures read it."""
    return Inputs.load(mini_run.grid, mini_run.root).summary


# ---------------------------------------------------------------- the state-initialisation study

STATE_INIT_TS = (3, 5, 7, 9, 11, 15, 20)
STATE_INIT_GRID = """\
name: {name}
description: plots tests, the state-initialisation study, {what}
defaults:
  data: {{dataset: fashion_mnist, batch_size: 128}}
  model: {{kind: pc, width: 128}}
  train: {{epochs: 3, w_optimizer: adamw, w_momentum: 0.9, h_lr: 0.1, w_lr: 1.0e-4}}
sweep:
  - axes:
      model.init_h: [forward, zero, normal]
      train.T: [3, 5, 7, 9, 11, 15, 20]
{axes}"""
REPLAY_AXES = "      seed: {range: 5}\n"  # one configuration per cell (init, T), 5 seeds: 105 trials
SEARCH_AXES = "      train.h_lr: [0.01, 0.1, 0.47]\n      train.w_lr: [3.0e-5, 1.0e-4, 3.0e-4]\n"  # 9 per cell: 189
# (init, T, seed, h_lr, w_lr) -> how the trial ends; every other trial is "ok"
STATE_INIT_FATES = {
    ("forward", 5, 0, 0.1, 1e-4): "diverged",  # replay: 0.97 at epoch 1, then NaN: a finite accuracy_best
    ("zero", 9, 1, 0.1, 1e-4): "diverged_at_once",  # replay: NaN from epoch 1, so accuracy_best is NaN too
    ("normal", 3, 2, 0.1, 1e-4): "early_stop",  # replay: stopped early, status ok, final accuracy NaN
    ("normal", 3, 3, 0.1, 1e-4): "early_stop",
    ("normal", 7, 0, 0.01, 3e-5): "diverged",  # search: the cell's worst configuration, 0.97 before diverging
}


def state_init_peak(cfg: TrialConfig, rng: np.random.Generator) -> float:
    """Best test accuracy: rises with T, forward > zero > normal, lower away from γ = 0.1 and w_lr = 1e-4;
    every cell's mean (and top 5) lies inside the paper's y range 0.8-0.9."""
    init, T = cfg.model.init_h, cfg.train.T
    base = 0.83 + 0.05 * (1 - np.exp(-T / 6)) + {"forward": 0.01, "zero": 0.0, "normal": -0.008}[init]
    off = 0.03 * abs(np.log10(cfg.train.h_lr / 0.1)) + 0.02 * abs(np.log10(cfg.train.w_lr / 1e-4))
    return float(base - off + rng.normal(0, 0.003))


def make_state_init_trial(cfg: TrialConfig, tid: str) -> TrialResult:
    """`make_trial`'s arrays with a state-init test accuracy [E]: it peaks at epoch 2 and drops at the last by
    0.03 + 0.2 γ, so `accuracy` (final) and `accuracy_best` differ and rank a search's trials differently."""
    fate = STATE_INIT_FATES.get((cfg.model.init_h, cfg.train.T, cfg.seed, cfg.train.h_lr, cfg.train.w_lr), "ok")
    base = make_trial(cfg, tid, diverged=fate.startswith("diverged"))
    peak = state_init_peak(cfg, np.random.default_rng(int(tid[8:16], 16)))
    nan = np.nan
    curve = {"ok": [peak - 0.25, peak, peak - 0.03 - 0.2 * cfg.train.h_lr], "early_stop": [peak - 0.25, peak, nan],
             "diverged": [0.97, nan, nan], "diverged_at_once": [nan, nan, nan]}[fate]
    arrays = {**base.arrays, "test_accuracy": np.asarray(curve, dtype=np.float32)}
    return dataclasses.replace(base, status="diverged" if fate.startswith("diverged") else "ok", arrays=arrays)


@pytest.fixture(scope="session")
def state_init_root(tmp_path_factory) -> Path:
    """One run root holding two collected state-init grids: `sinit` (replay) and `sinit_search` (search)."""
    root = tmp_path_factory.mktemp("runs_state_init")
    for name, what, axes in (("sinit", "replay, 5 seeds per cell", REPLAY_AXES),
                             ("sinit_search", "search, 3 gammas x 3 w_lr per cell", SEARCH_AXES)):
        collected_run(root, STATE_INIT_GRID.format(name=name, what=what, axes=axes), make=make_state_init_trial)
    return root
