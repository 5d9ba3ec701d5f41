"""A synthetic but format-true collected run: results.h5 + summary.csv for a mini grid.

The per-trial arrays follow DESIGN.md section 5 (energy [E, B, T+1, L] with hidden layers exactly 0
until the output error reaches them, as under forward init: layer 2 at t=0, layer 1 at t=0 and 1),
written with `collect.merge.write_results` (collect's block layout, docs/shard-format.md); the summary
columns are derived from those arrays the way collect derives them (last epoch, last batch, t = T-1
for energies; ratios e_{k-1} / (e_k + 1e-32)).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.config import TrialConfig, trial_id
from contracts.paths import RunPaths
from contracts.shard import TrialResult

E, B, T_PC = 3, 4, 4
DATASETS = ("two_moons", "fashion_mnist")
GAMMAS = (1e-3, 1e-2, 0.1, 0.3)  # 0.3: in the boxplots, not in the LR-scaling lines (paper: γ < 0.3)
WIDTHS = (64, 128)
ACTIVATIONS = ("leaky_relu", "hard_tanh")
SEEDS = (0, 1)
OPTIMS = (("sgd", 0.9), ("adamw", 0.9))


def make_config(dataset: str, kind: str, opt: str, momentum: float, gamma: float, width: int,
                activation: str, seed: int, constant_width: bool = False) -> dict:
    cfg = dataclasses.asdict(TrialConfig())
    cfg["data"]["dataset"] = dataset
    cfg["model"].update(kind=kind, width=width, activation=activation, constant_width=constant_width)
    cfg["train"].update(T=T_PC if kind == "pc" else 1, h_lr=gamma, w_optimizer=opt, w_momentum=momentum,
                        epochs=E)
    cfg["seed"] = seed
    return cfg


def make_trial(cfg: dict, *, diverged: bool = False) -> TrialResult:
    """Deterministic synthetic arrays whose values depend on the config (so figures differ by γ)."""
    tid = trial_id(cfg)
    rng = np.random.default_rng(int(tid[:8], 16))
    kind, gamma = cfg["model"]["kind"], cfg["train"]["h_lr"]
    T = cfg["train"]["T"]
    L = 3 if kind == "pc" else 1
    adam = cfg["train"]["w_optimizer"] == "adamw"
    acc_final = 0.8 if kind == "bp" else 0.9 - (3.0 if adam else 1.0) * gamma - 0.0002 * cfg["model"]["width"]
    acc_final = float(np.clip(acc_final + rng.normal(0, 0.02), 0.05, 0.99))
    test_accuracy = np.linspace(0.3, acc_final, E)
    t = np.arange(T + 1)[None, None, :, None]
    epoch = (1 + np.arange(E))[:, None, None, None]
    k = np.arange(L)[None, None, None, :]
    noise = rng.lognormal(0, 0.1, size=(E, B, T + 1, L))
    # forward init: hidden layer k is exactly 0 until the output error reaches it (t >= L-1-k)
    hidden = (gamma * 10.0 ** (-k)) * (1 - np.exp(-t)) / epoch * (t >= L - 1 - k)
    output = 2.0 * np.exp(-0.2 * t) / epoch
    energy = np.where(k == L - 1, output, hidden) * noise
    energy_var = energy**2 * 0.1
    w_norm = rng.uniform(1, 2, size=(E, B, L))
    w_grad_norm = rng.uniform(0.01, 0.1, size=(E, B, L))
    w_grad_var = w_grad_norm**2
    arrays = dict(test_accuracy=test_accuracy, energy=energy, energy_var=energy_var, w_norm=w_norm,
                  w_grad_norm=w_grad_norm, w_grad_var=w_grad_var)
    if diverged:
        arrays = {n: np.where(np.arange(a.shape[0]).reshape((-1,) + (1,) * (a.ndim - 1)) >= 1, np.nan, a)
                  for n, a in arrays.items()}
    return TrialResult(tid, cfg, "diverged" if diverged else "ok", float(rng.uniform(1, 5)),
                       {n: a.astype(np.float32) for n, a in arrays.items()})


def _flatten(cfg: dict) -> dict:
    out = {}
    for section in ("data", "model", "train"):
        out.update({f"{section}.{key}": value for key, value in cfg[section].items()})
    out["seed"] = cfg["seed"]
    return out


def summary_row(trial: TrialResult) -> dict:
    """One summary row, derived from the arrays as collect does."""
    a = {n: np.asarray(v, dtype=np.float64) for n, v in trial.arrays.items()}
    T = a["energy"].shape[2] - 1
    L = a["energy"].shape[3]
    cfg = trial.config
    optim = f"{cfg['train']['w_optimizer']}-{float(cfg['train']['w_momentum'])}"
    row = {"trial_id": trial.trial_id, "status": trial.status, "wall_s": trial.wall_s,
           "accuracy": a["test_accuracy"][-1], "accuracy_best": np.nanmax(a["test_accuracy"]),
           **_flatten(cfg), "optim": optim, "condition": f"{cfg['model']['kind']}-{optim}",
           "n_layers_energy": L}
    for k in range(3):
        present = k < L
        row[f"energy_{k}"] = a["energy"][-1, -1, T - 1, k] if present else np.nan
        row[f"energy_var_{k}"] = a["energy_var"][-1, -1, T - 1, k] if present else np.nan
        row[f"energy_final_{k}"] = a["energy"][-1, -1, T, k] if present else np.nan
        for m in ("w_norm", "w_grad_norm", "w_grad_var"):
            row[f"{m}_{k}"] = a[m][-1, -1, k] if present else np.nan
    for k in (1, 2):
        row[f"energy_ratio_{k - 1}/{k}"] = (row[f"energy_{k - 1}"] / (row[f"energy_{k}"] + 1e-32)
                                           if L == 3 else np.nan)
    return row


def write_run(root: Path, grid: str, trials: list[TrialResult]) -> RunPaths:
    """results.h5 (collect's block layout) + summary.csv under `root/grid`."""
    from collect.merge import write_results

    paths = RunPaths.of(grid, root)
    paths.folder.mkdir(parents=True, exist_ok=True)
    write_results(paths.results, trials, grid=grid)
    pd.DataFrame([summary_row(t) for t in trials]).to_csv(paths.summary, index=False)
    return paths


def mini_grid_configs(constant_width: bool = False, datasets=DATASETS) -> list[dict]:
    configs = []
    for ds, (opt, mom), width, act, seed in itertools.product(datasets, OPTIMS, WIDTHS, ACTIVATIONS, SEEDS):
        for gamma in GAMMAS:
            configs.append(make_config(ds, "pc", opt, mom, gamma, width, act, seed, constant_width))
        configs.append(make_config(ds, "bp", opt, mom, 1.0, width, act, seed, constant_width))
    return configs


@pytest.fixture(scope="session")
def mini_run(tmp_path_factory) -> RunPaths:
    """The mini grid: 2 datasets x PC/BP x sgd-0.9/adamw-0.9 x 4 γ (PC) x 2 widths x 2 activations
    x 2 seeds, one PC trial diverged."""
    root = tmp_path_factory.mktemp("runs")
    configs = mini_grid_configs()
    diverged = next(i for i, c in enumerate(configs)
                    if c["model"]["kind"] == "pc" and c["train"]["h_lr"] == 0.1 and c["train"]["w_optimizer"] == "sgd")
    trials = [make_trial(c, diverged=(i == diverged)) for i, c in enumerate(configs)]
    return write_run(root, "mini", trials)


@pytest.fixture(scope="session")
def const_run(tmp_path_factory) -> RunPaths:
    """The constant-layer-size ablation on fashion_mnist (model.constant_width true)."""
    root = tmp_path_factory.mktemp("runs_const")
    configs = mini_grid_configs(constant_width=True, datasets=("fashion_mnist",))
    return write_run(root, "const", [make_trial(c) for c in configs])


@pytest.fixture(scope="session")
def summary(mini_run: RunPaths) -> pd.DataFrame:
    from plots.data import Inputs

    return Inputs.load(mini_run.grid, mini_run.root).summary
