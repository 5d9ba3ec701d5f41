"""The state-initialisation grids: the replay of the study's 21 tuned configurations and the search grid.

The oracle is the study's README table (the paper's repository,
examples/s5_analysis_and_metrics/energy_and_stability/pcn_initialization/README.md at commit 52d9114), written
once below; every trial of grids/state_init.yaml is checked against it, value for value.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.config import TrialConfig, static_key, valid_keys
from grids import GridError
from grids.grid import fast_trial_id, load_grid

CODE = Path(__file__).resolve().parents[2]
GRIDS = CODE / "grids"

# init, T, act_fn, x lr, x momentum, w lr, w wd: the README's best trial of each Optuna study (momentum without
# the README's float noise, e.g. 0.15000000000000002 -> 0.15).
TUNED = """
forward  3 gelu       0.017645706311565725 0.05 0.00029836169585628326 0.001307773142925482
forward  5 gelu       0.010707247994012799 0.15 0.000250810531013389   0.00040768138013852647
forward  7 gelu       0.011634370009349783 0.2  0.0002551975165828075  1.2481848298314534e-05
forward  9 gelu       0.012353149258473414 0.0  0.00028013598038820556 0.00017790347367183153
forward 11 gelu       0.010073678676718305 0.0  0.000299878444821947   2.0002691625448918e-05
forward 15 gelu       0.010049238099531978 0.05 0.00026875770087137174 0.0006046395352801334
forward 20 gelu       0.01039164117033675  0.2  0.00023411900438700673 0.009900931761050152
zero     3 gelu       0.11036598928934052  0.45 0.0001720941249469424  2.3523077868141024e-05
zero     5 gelu       0.1249345615856544   0.75 5.600901289523681e-05  0.0006430435629443783
zero     7 gelu       0.31073058432495276  0.25 8.642938914254075e-05  0.0009372314002807972
zero     9 gelu       0.35941863117294104  0.15 6.677152825441371e-05  1.2552428150513801e-05
zero    11 gelu       0.27889021424657806  0.4  4.227643740455322e-05  0.00038398065912067657
zero    15 leaky_relu 0.2792325235869229   0.35 0.0001779663196416802  1.6567812264230678e-05
zero    20 gelu       0.21232253118339392  0.45 3.891464395163487e-05  2.620471473848808e-05
normal   3 leaky_relu 0.3149283941414952   0.5  5.603921714076118e-05  0.0003336486000090618
normal   5 gelu       0.15471924981830182  0.6  0.00016357019375209944 0.0031812868127717303
normal   7 leaky_relu 0.2379512263064572   0.35 4.799772009342855e-05  0.00034930728274418417
normal   9 leaky_relu 0.31805140851879976  0.25 0.0001736249511939323  0.005844991729379492
normal  11 leaky_relu 0.30318057442118573  0.35 6.82385010154935e-05   0.004611892041495239
normal  15 leaky_relu 0.28531857882110945  0.4  0.00018988454516116981 1.9379565752841875e-05
normal  20 leaky_relu 0.34784140273082864  0.2  3.780568458017943e-05  0.0005471851349459166
"""


def _table() -> dict[tuple[str, int], tuple[str, float, float, float, float]]:
    rows = {}
    for line in TUNED.strip().splitlines():
        init, t, act, h_lr, h_mom, w_lr, wd = line.split()
        assert (init, int(t)) not in rows
        rows[init, int(t)] = (act, float(h_lr), float(h_mom), float(w_lr), float(wd))
    return rows


TABLE = _table()
INITS = ("forward", "zero", "normal")
TS = (3, 5, 7, 9, 11, 15, 20)

# The study's fixed settings, shared by both grids (dotted key -> value).
FIXED = {
    "data.dataset": "fashion_mnist", "data.batch_size": 128, "data.resize": None, "data.n_classes": None,
    "data.seed": 42, "data.normalize": False, "data.train_subset": None,
    "model.kind": "pc", "model.width": 128, "model.n_layers": 4, "model.init_w": "default", "model.init_h_sd": 0.1,
    "model.output_energy": "se", "model.constant_width": False,
    "train.epochs": 32, "train.h_optimizer": "sgd", "train.w_optimizer": "adamw", "train.w_momentum": 0.9,
    "train.early_stop": True, "train.matmul_precision": "default",
}


def _get(cfg: TrialConfig, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.fixture(scope="module")
def replay():
    return load_grid(GRIDS / "state_init.yaml")


@pytest.fixture(scope="module")
def search():
    return load_grid(GRIDS / "state_init_search.yaml")


def test_the_oracle_table_has_the_21_cells():
    assert set(TABLE) == set(itertools.product(INITS, TS))


def test_replay_counts(replay):
    assert replay.name == "state_init"
    assert len(replay.trials) == 105 and replay.duplicates == 0 and len(set(replay.trial_ids)) == 105


def test_replay_holds_each_cell_once_with_the_tables_values_and_five_seeds(replay):
    seeds: dict[tuple[str, int], list[int]] = {}
    for cfg in replay.trials:
        cell = (cfg.model.init_h, cfg.train.T)
        assert cell in TABLE, f"{cell} is not a cell of the study"
        act, h_lr, h_mom, w_lr, wd = TABLE[cell]
        got = (cfg.model.activation, cfg.train.h_lr, cfg.train.h_momentum, cfg.train.w_lr, cfg.train.w_weight_decay)
        # exact equality: the grid carries the README's full-precision floats, not a 12-digit rounding
        assert got == (act, h_lr, h_mom, w_lr, wd), f"{cell}: got {got}"
        for key, value in FIXED.items():
            assert _get(cfg, key) == value, f"{cell}: {key} = {_get(cfg, key)!r}"
        seeds.setdefault(cell, []).append(cfg.seed)
    assert set(seeds) == set(TABLE)
    assert all(sorted(s) == [0, 1, 2, 3, 4] for s in seeds.values())


def test_replay_momenta_are_written_without_float_noise(replay):
    (joint,) = replay.raw["sweep"][0]["joint"].values()
    momenta = [row[4] for row in joint]
    assert len(momenta) == 21 and all(m == round(m, 2) for m in momenta), momenta  # Optuna's 0.05 grid, exactly
    assert {cfg.train.h_momentum for cfg in replay.trials} == {h for _, _, h, _, _ in TABLE.values()}


def test_search_counts_and_axes(search):
    assert search.name == "state_init_search"
    assert len(search.trials) == 2_268 and search.duplicates == 0 and len(set(search.trial_ids)) == 2_268
    axes = {
        "model.init_h": set(INITS),
        "train.T": set(TS),
        "train.h_lr": {0.01, 0.022, 0.047, 0.1, 0.22, 0.47},
        "train.h_momentum": {0.0, 0.25, 0.5},
        "train.w_lr": {3e-5, 1e-4, 3e-4},
        "model.activation": {"gelu", "leaky_relu"},
    }
    combos = {tuple(_get(cfg, k) for k in axes) for cfg in search.trials}
    assert combos == set(itertools.product(*axes.values()))  # the full product, each point once
    assert {cfg.train.w_weight_decay for cfg in search.trials} == {1e-4}
    assert {cfg.seed for cfg in search.trials} == {0}
    for cfg in search.trials:
        for key, value in FIXED.items():
            assert _get(cfg, key) == value, f"{key} = {_get(cfg, key)!r}"
    per_cell = {}
    for cfg in search.trials:
        per_cell[cfg.model.init_h, cfg.train.T] = per_cell.get((cfg.model.init_h, cfg.train.T), 0) + 1
    assert per_cell == {cell: 108 for cell in TABLE}


@pytest.mark.parametrize("name", ["state_init", "state_init_search"])
def test_every_trial_validates_and_has_the_contract_id(name):
    grid = load_grid(GRIDS / f"{name}.yaml")
    for cfg, tid in zip(grid.trials, grid.trial_ids):
        again = TrialConfig.from_mapping(cfg.to_mapping())
        assert again == cfg and tid == again.trial_id == fast_trial_id(cfg)


@pytest.mark.parametrize("name", ["state_init", "state_init_search"])
def test_defaults_set_every_config_key(name):
    """As the other grid files: every key is written, so a changed contracts default changes no trial here."""
    defaults = load_grid(GRIDS / f"{name}.yaml").raw["defaults"]
    written = {f"{section}.{key}" for section, values in defaults.items() if isinstance(values, dict)
               for key in values} | ({"seed"} if "seed" in defaults else set())
    assert written == set(valid_keys())


def test_replay_groups_by_cell(replay):
    """The 21 cells are 21 compiled programs (seeds and rates are per trial)."""
    assert len({static_key(cfg) for cfg in replay.trials}) == 21


@pytest.mark.parametrize("name, count", [("state_init", "105"), ("state_init_search", "2,268")])
def test_launch_dry_run_prints_the_trial_count(tmp_path, name, count):
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    r = subprocess.run([sys.executable, "-m", "launch", f"grids/{name}.yaml", "--dry-run", "--executor", "local",
                        "--root", str(tmp_path)], capture_output=True, text=True, cwd=CODE, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"grid {name} (grids/{name}.yaml): {count} trials, 0 duplicates collapsed" in r.stdout
    assert "dry run: nothing was submitted" in r.stdout
    assert not any(tmp_path.iterdir())  # a dry run writes nothing under the root


def test_state_momentum_on_a_backprop_trial_is_refused_by_the_sweep():
    # train.h_momentum is per trial but a cross-key rule forbids it for backprop: the sweep must validate it with
    # its trial, not alone (a per-value check let a BP trial with momentum through to fail on the node)
    from grids.grid import grid_from_mapping

    doc = {"name": "bpm", "defaults": {"model": {"kind": "bp"}, "train": {"T": 1}},
           "sweep": [{"axes": {"train.h_momentum": [0.0, 0.5]}}]}
    with pytest.raises(GridError, match=r"bpm\.yaml: sweep\[0\]: .*backprop has no states.* train\.h_momentum=0\.5"):
        grid_from_mapping(doc, source="bpm.yaml")
    doc["defaults"]["model"]["kind"] = "pc"
    doc["defaults"]["train"]["T"] = 2
    assert len(grid_from_mapping(doc, source="bpm.yaml").trials) == 2
