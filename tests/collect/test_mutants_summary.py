"""collect.summary where the mutation run found survivors (fast tier; tests/README.md "Mutation testing").

Inputs go through the real writers: trials are written to real HDF5 shards by `contracts.shard.write_shard`
and read back as blocks by `contracts.shard.open_shard`; summary files are written by `write_table` /
`update_table` / a real `collect`. The oracle is computed here, independently: from the trial arrays with
numpy, and from pandas (`DataFrame.to_csv`, `pd.concat`) for the CSV text and the merged tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from collect_cases import GRID, synthetic_trial

import collect
from collect import summary
from collect.rows import Copied
from contracts.config import TrialConfig, valid_keys
from contracts.shard import TrialResult, open_shard, write_shard

PER_LAYER = ("energy", "energy_var", "w_norm", "w_grad_norm", "w_grad_var")


def build_table(blocks) -> pd.DataFrame:
    """The summary table of `blocks`, built as collect builds it (rows of each block into one `summary.Parts`)."""
    parts = summary.Parts()
    for block in blocks:
        parts.add_rows(Copied.of(block))
    return parts.build()


def _blocks(path: Path, trials: list[TrialResult]) -> list:
    """The trials written to a real shard and read back as blocks (one per array shape)."""
    write_shard(path, trials, grid=GRID, task_key=path.stem)
    with open_shard(path) as shard:
        return list(shard.blocks())


def _trial(trial_id: str, config: dict, *, E: int = 2, B: int = 2, T: int = 2, L: int = 2, Lw: int = 3,
           seed: int = 0, status: str = "ok", accuracy: np.ndarray | None = None) -> TrialResult:
    """A trial with any config mapping (the writer stores whatever it is given) and random distinct values."""
    rng = np.random.default_rng(seed)
    arrays = {
        "test_accuracy": rng.uniform(0.1, 0.9, size=E) if accuracy is None else np.asarray(accuracy),
        "energy": rng.uniform(0.5, 5.0, size=(E, B, T + 1, L)),
        "energy_var": rng.uniform(0.5, 5.0, size=(E, B, T + 1, L)),
        "w_norm": rng.uniform(1.0, 2.0, size=(E, B, Lw)),
        "w_grad_norm": rng.uniform(0.0, 1.0, size=(E, B, Lw)),
        "w_grad_var": rng.uniform(0.0, 1.0, size=(E, B, Lw)),
    }
    return TrialResult(trial_id, config, status, 1.25 + seed, {n: a.astype(np.float32) for n, a in arrays.items()})


def _expected_row(t: TrialResult) -> dict:
    """One trial's summary values, computed from its arrays (not through collect.summary)."""
    acc = t.arrays["test_accuracy"].astype(np.float64)
    row = {"trial_id": t.trial_id, "status": t.status, "wall_s": t.wall_s,
           "accuracy": acc[-1] if len(acc) else math.nan,
           "accuracy_best": np.nanmax(acc) if len(acc) and not np.isnan(acc).all() else math.nan}
    energy = t.arrays["energy"]
    row["n_layers_energy"] = energy.shape[-1]
    for name in PER_LAYER:
        a = t.arrays[name]
        last = a[-1, -1, -2] if name in ("energy", "energy_var") else a[-1, -1]
        for k, v in enumerate(last.astype(np.float64)):
            row[f"{name}_{k}"] = v
    e = energy[-1, -1, -2].astype(np.float64)
    for k in range(1, len(e)):
        row[f"energy_ratio_{k - 1}/{k}"] = e[k - 1] / (e[k] + 1e-32)
    for k, v in enumerate(energy[-1, -1, -1].astype(np.float64)):
        row[f"energy_final_{k}"] = v
    return row


def test_table_of_two_shapes_equals_the_values_computed_from_the_arrays(tmp_path):
    """Rows sorted by id across blocks, last-batch values at t = T-1 and t = T, NaN padding, ratios, labels."""
    def cfg(seed: int, kind: str, T: int, opt: str, mom: float) -> dict:
        return TrialConfig.from_mapping({}).replace(**{"seed": seed, "model.kind": kind, "train.T": T,
                                                       "train.w_optimizer": opt, "train.w_momentum": mom}
                                                    ).to_mapping()
    # ids out of order within and across blocks; the second shape has fewer energy layers and w layers
    # E = 3 epochs, so the last epoch is not also epoch 1; a hidden layer whose energy at t = T-1 is exactly 0
    # (forward init) makes the ratio above it energy / 1e-32, positive
    wide = [_trial("c3", cfg(1, "pc", 3, "sgd", 0.9), E=3, T=3, L=4, seed=1),
            _trial("a1", cfg(2, "pc", 3, "adamw", 0.9), E=3, T=3, L=4, seed=2),
            _trial("e5", cfg(3, "pc", 3, "sgd", 0.0), E=3, T=3, L=4, seed=3)]
    wide[0].arrays["energy"][-1, -1, -2, 1] = 0.0
    narrow = [_trial("d4", cfg(4, "bp", 1, "sgd", 0.9), E=3, T=1, L=1, Lw=2, seed=4),
              _trial("b2", cfg(5, "bp", 1, "adamw", 0.0), E=3, T=1, L=1, Lw=2, seed=5)]
    blocks = _blocks(tmp_path / "s.h5", wide + narrow)
    assert [len(b) for b in blocks] == [3, 2]
    table = build_table(blocks)
    trials = sorted(wide + narrow, key=lambda t: t.trial_id)
    expected = pd.DataFrame([_expected_row(t) for t in trials])
    assert list(table["trial_id"]) == ["a1", "b2", "c3", "d4", "e5"]
    got = table[list(expected.columns)]
    pd.testing.assert_frame_equal(got.drop(columns=["n_layers_energy"]), expected.drop(columns=["n_layers_energy"]),
                                  check_dtype=False, rtol=1e-12)
    assert table["n_layers_energy"].tolist() == [4, 1, 4, 1, 4] and table["n_layers_energy"].dtype == np.int64
    for name in ("wall_s", "accuracy", "accuracy_best", "energy_0", "w_norm_2"):
        assert table[name].dtype == np.float64, name
    # every column the table has is one the oracle computed, or a config column or a label
    assert set(table.columns) == set(expected.columns) | set(valid_keys()) | {"optim", "condition"}
    assert list(table.columns[:5]) == ["trial_id", "status", "wall_s", "accuracy", "accuracy_best"]
    assert list(table["optim"]) == ["adamw-0.9", "adamw-0.0", "sgd-0.9", "sgd-0.9", "sgd-0.0"]
    assert list(table["condition"]) == ["pc-adamw-0.9", "bp-adamw-0.0", "pc-sgd-0.9", "bp-sgd-0.9", "pc-sgd-0.0"]
    assert list(table["seed"]) == [2, 5, 1, 4, 3] and list(table["train.T"]) == [3, 1, 3, 1, 3]
    ratio = table.set_index("trial_id").loc["c3", "energy_ratio_0/1"]
    assert ratio == float(wide[0].arrays["energy"][-1, -1, -2, 0]) / 1e-32 and ratio > 1e30


def test_a_trial_without_epochs_has_nan_accuracies_and_values(tmp_path):
    """E = 0 (no epoch ran): accuracy, accuracy_best and every last-batch value are NaN, not an error."""
    base = TrialConfig.from_mapping({}).to_mapping()
    trials = [_trial("z0", base, E=0, seed=1), _trial("y1", base, E=2, seed=2)]
    table = build_table(_blocks(tmp_path / "s.h5", trials)).set_index("trial_id")
    empty = table.loc["z0"]
    assert math.isnan(empty["accuracy"]) and math.isnan(empty["accuracy_best"])
    assert all(math.isnan(empty[f"{name}_0"]) for name in PER_LAYER) and math.isnan(empty["energy_final_1"])
    assert table["accuracy"].dtype == np.float64 and table["accuracy_best"].dtype == np.float64
    full = table.loc["y1"]
    acc = trials[1].arrays["test_accuracy"].astype(np.float64)
    assert (full["accuracy"], full["accuracy_best"]) == (acc[-1], acc.max())


def test_a_block_of_only_empty_trials_still_builds(tmp_path):
    base = TrialConfig.from_mapping({}).to_mapping()
    table = build_table(_blocks(tmp_path / "s.h5", [_trial("z0", base, E=0)]))
    assert len(table) == 1 and math.isnan(table["accuracy"][0]) and math.isnan(table["accuracy_best"][0])


def test_an_all_nan_accuracy_gives_nan_best_without_a_warning(tmp_path):
    base = TrialConfig.from_mapping({}).to_mapping()
    trials = [_trial("n0", base, accuracy=[np.nan, np.nan]), _trial("n1", base, accuracy=[0.25, np.nan], seed=1)]
    blocks = _blocks(tmp_path / "s.h5", trials)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = build_table(blocks).set_index("trial_id")
    assert math.isnan(table.loc["n0", "accuracy_best"]) and math.isnan(table.loc["n0", "accuracy"])
    assert table.loc["n1", "accuracy_best"] == 0.25 and math.isnan(table.loc["n1", "accuracy"])


def test_energy_needs_two_inference_steps(tmp_path):
    base = TrialConfig.from_mapping({}).to_mapping()
    blocks = _blocks(tmp_path / "s.h5", [_trial("t0", base, T=0)])
    with pytest.raises(ValueError, match=r"^energy has 1 inference steps; expected T\+1 >= 2$"):
        build_table(blocks)
    two = build_table(_blocks(tmp_path / "s2.h5", [_trial("t1", base, T=1)]))  # T+1 = 2 is enough
    assert len(two) == 1


def test_an_empty_table_has_the_fixed_columns_and_no_rows():
    table = summary.Parts().build()
    assert len(table) == 0 and summary.Parts().n_rows == 0
    assert table["n_layers_energy"].dtype == np.int64 and table["accuracy"].dtype == np.float64
    assert list(table.columns[:5]) == ["trial_id", "status", "wall_s", "accuracy", "accuracy_best"]
    assert not any(c.startswith("energy") for c in table.columns)


def test_configs_of_other_structures_are_flattened_and_filled_with_none(tmp_path):
    """Configs with extra keys, a missing section, a third level, a bool momentum: all flattened, None elsewhere."""
    base = TrialConfig.from_mapping({}).to_mapping()
    extra = json.loads(json.dumps(base))
    extra["train"]["zeta"] = 7
    extra["alpha"] = {"beta": "x"}
    nested = json.loads(json.dumps(base))
    nested["model"]["deep"] = {"k": 3, "j": {"i": 1}}
    bare = {"seed": 9, "model": {"kind": "pc"}}  # no train section: no optimizer, no momentum
    boolean = json.loads(json.dumps(base))
    boolean["train"]["w_momentum"] = True
    text = json.loads(json.dumps(base))
    text["train"]["w_momentum"] = "high"
    configs = {"b0": base, "b1": base, "x0": extra, "n0": nested, "m0": bare, "q0": boolean, "s0": text}
    trials = [_trial(tid, c, seed=i) for i, (tid, c) in enumerate(configs.items())]
    table = build_table(_blocks(tmp_path / "s.h5", trials)).set_index("trial_id")
    ids = sorted(configs)
    for tid in ids:  # every config value lands in its own row (flattened here, independently)
        flat = pd.json_normalize(configs[tid]).iloc[0].to_dict()
        for key, value in flat.items():
            assert table.loc[tid, key] == value, (tid, key)
        for key in set(table.columns) & (set(valid_keys()) | {"alpha.beta", "train.zeta", "model.deep.k",
                                                              "model.deep.j.i"}):
            if key not in flat:
                assert pd.isna(table.loc[tid, key]), (tid, key)
    keys = list(table.columns)
    extras = ["alpha.beta", "model.deep.j.i", "model.deep.k", "train.zeta"]
    assert [k for k in keys if "." in k and k not in valid_keys()] == extras  # sorted, after the valid keys
    assert keys.index(extras[0]) == keys.index(valid_keys()[-1]) + 1
    assert keys.index("optim") == keys.index(extras[-1]) + 1
    assert table.loc["m0", "optim"] == "None-None" and table.loc["m0", "condition"] == "pc-None-None"
    assert table.loc["q0", "optim"] == f"{base['train']['w_optimizer']}-True"
    assert table.loc["s0", "optim"] == f"{base['train']['w_optimizer']}-high"
    assert table.loc["b0", "optim"] == f"{base['train']['w_optimizer']}-{float(base['train']['w_momentum'])}"


def test_optim_label_of_an_integer_momentum_is_the_float_label():
    assert summary._optim("sgd", 0) == "sgd-0.0" and summary._optim("adamw", 1) == "adamw-1.0"
    assert summary._optim("sgd", False) == "sgd-False" and summary._optim(None, 0.9) == "None-0.9"


def test_column_order_sorts_layers_numerically_and_extras_by_name():
    keys = valid_keys()
    shuffled = ["energy_final_1", "energy_ratio_10/11", "w_grad_var_0", "energy_10", "zz.extra", "energy_ratio_1/2",
                "energy_2", "n_layers_energy", "energy_var_0", "condition", "w_norm_1", "aa.extra", "accuracy_best",
                "other", "energy_final_0", "w_grad_norm_3", "optim", "energy_var_x", keys[3], "status", keys[0],
                "trial_id", "accuracy", "wall_s", "energy_ratio_2/3", "w_norm_0", "another"]
    assert summary.column_order(shuffled) == [
        "trial_id", "status", "wall_s", "accuracy", "accuracy_best", keys[0], keys[3], "aa.extra", "zz.extra",
        "optim", "condition", "n_layers_energy",
        "energy_2", "energy_10", "energy_var_0", "w_norm_0", "w_norm_1", "w_grad_norm_3", "w_grad_var_0",
        "energy_ratio_1/2", "energy_ratio_2/3", "energy_ratio_10/11", "energy_final_0", "energy_final_1",
        "another", "energy_var_x", "other"]


def test_column_order_of_a_built_table_is_its_own_order(tmp_path):
    trials = [synthetic_trial(1), synthetic_trial(2, kind="bp")]
    write_shard(tmp_path / "s.h5", trials, grid=GRID)
    with open_shard(tmp_path / "s.h5") as shard:
        table = build_table(shard.blocks())
    assert summary.column_order(list(table.columns)) == list(table.columns)
    assert summary.column_order(list(reversed(table.columns))) == list(table.columns)


# ------------------------------------------------------------------ CSV text, read back and merged

class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this value")


def _frame() -> pd.DataFrame:
    """Every kind of column a summary can hold: floats with NaN, ints, bools, text needing quotes, mixed objects."""
    return pd.DataFrame({
        "trial_id": ["0012", "a,b", 'q"x'],
        "status": ["ok", "diverged", "ok"],
        "wall_s": [1.5, np.nan, 1e-30],
        "plain": ["x", "y", "z"],
        "capitals": ["X1", "a,b", "XX"],  # quoted only for the comma
        "lines": ["one\ntwo", "plain", "p"],
        "n": np.array([1, -2, 3], dtype=np.int64),
        "u": np.array([1, 2, 3], dtype=np.uint8),
        "flag": np.array([True, False, True]),
        "mixed": pd.Series([None, "a,b", 0.1], dtype=object),
        "mixed2": pd.Series([float("nan"), 3, True], dtype=object),
        "mixed3": pd.Series(['say "hi"', None, 2.5], dtype=object),
        "f_nonan": np.array([0.1, 1 / 3, 2.0]),
    })


def test_csv_text_is_what_pandas_writes():
    df = _frame()
    assert summary.csv_text(df) == df.to_csv(index=False)
    assert summary.csv_text(df, header=False) == df.to_csv(index=False, header=False)
    assert summary.csv_text(df[["plain"]]) == "plain\nx\ny\nz\n"
    odd = pd.DataFrame({'a,"b"': [1], "c": ["d"]})
    assert summary.csv_text(odd) == odd.to_csv(index=False) == '"a,""b""",c\n1,d\n'
    assert summary.csv_text(df.iloc[:0], header=False) == ""
    assert summary.csv_text(df.iloc[:0]) == df.iloc[:0].to_csv(index=False)


def test_a_table_written_and_read_back_keeps_ids_text_and_floats_exact(tmp_path):
    df = _frame()
    path = tmp_path / "summary.csv"
    summary.write_table(df, path)
    assert path.read_text() == df.to_csv(index=False)
    back = summary.read_table(path)
    assert list(back["trial_id"]) == sorted(df["trial_id"])  # "0012" stays text, rows sorted by id
    by_id = back.set_index("trial_id")
    assert by_id.loc["0012", "f_nonan"] == 0.1 and by_id.loc["a,b", "f_nonan"] == 1 / 3
    assert by_id.loc["0012", "lines"] == "one\ntwo" and math.isnan(by_id.loc["a,b", "wall_s"])
    assert list(tmp_path.iterdir()) == [path]


def test_a_carriage_return_in_text_is_quoted_so_the_table_reads_back(tmp_path):
    """pandas' to_csv leaves a lone CR unquoted, and its reader then splits the row there; csv_text quotes it."""
    df = pd.DataFrame({"trial_id": ["a", "b"], "text": ["x\ry", "z"],
                       "mixed": pd.Series(["p\rq", 1.5], dtype=object)})
    assert summary.csv_text(df) == 'trial_id,text,mixed\na,"x\ry","p\rq"\nb,z,1.5\n'
    path = tmp_path / "summary.csv"
    summary.write_table(df, path)
    back = summary.read_table(path)
    assert list(back["text"]) == ["x\ry", "z"] and list(back["mixed"]) == ["p\rq", "1.5"]


def test_text_columns_stay_text_when_they_look_like_numbers(tmp_path):
    """read_table reads trial_id, status, optim and condition as text: "0012" is not the number 12."""
    df = pd.DataFrame({"trial_id": ["0012", "0100"], "status": ["1", "0"], "wall_s": [1.0, 2.0],
                       "optim": ["1.0", "2"], "condition": ["007", "1e3"], "seed": [1, 2]})
    path = tmp_path / "summary.csv"
    summary.write_table(df, path)
    back = summary.read_table(path)
    for column in ("trial_id", "status", "optim", "condition"):
        assert list(back[column]) == list(df[column]), column
    assert list(back["seed"]) == [1, 2] and back["seed"].dtype == np.int64


def test_rows_of_one_trial_id_keep_their_file_order(tmp_path):
    """Sorting by trial id is stable: rows with equal ids (never written by collect) stay in file order."""
    ids = np.random.default_rng(0).choice(["c", "a", "b"], size=200)
    df = pd.DataFrame({"trial_id": ids, "row": np.arange(200)})
    path = tmp_path / "summary.csv"
    summary.write_table(df, path)
    back = summary.read_table(path)
    expected = df.sort_values("trial_id", kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(back, expected)
    merged = summary.merge_tables(df, pd.DataFrame({"trial_id": ["z"], "row": [-1]}))
    pd.testing.assert_frame_equal(merged, pd.concat([expected, pd.DataFrame({"trial_id": ["z"], "row": [-1]})],
                                                    ignore_index=True))


@pytest.mark.parametrize("last", ["noteX", "note "], ids=["ends-in-X", "ends-in-space"])
def test_update_takes_the_header_names_verbatim(tmp_path, last):
    """New rows with the file's columns (the last one named oddly) are appended in the file's own column order."""
    path = tmp_path / "summary.csv"
    old = pd.DataFrame({"trial_id": ["b"], "wall_s": [1.0], "status": ["ok"], last: ["p"]})  # not column_order's
    summary.write_table(old, path)
    before = path.read_text()
    summary.update_table(path, pd.DataFrame({"trial_id": ["a"], "status": ["ok"], "wall_s": [2.0], last: ["q"]}))
    assert path.read_text() == before + "a,2.0,ok,q\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.csv"
    path.write_text("old\n")
    bad = pd.DataFrame({"trial_id": ["a"], "x": pd.Series([_Unprintable()], dtype=object)})
    with pytest.raises(RuntimeError, match="no text for this value"):
        summary.write_table(bad, path)
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]


def _table(ids: list[str], **columns) -> pd.DataFrame:
    return pd.DataFrame({"trial_id": ids, "status": ["ok"] * len(ids), **columns})


def test_update_with_new_trials_appends_and_equals_a_merge(tmp_path):
    path = tmp_path / "summary.csv"
    old = _table(["b", "d"], wall_s=[1.0, 2.0], energy_0=[0.5, 0.25])
    summary.write_table(old, path)
    new = _table(["a", "c"], wall_s=[3.0, 4.0], energy_0=[0.125, np.nan])[["energy_0", "trial_id", "wall_s", "status"]]
    summary.update_table(path, new)
    # the cheap path: the old file's bytes first, the new rows appended in the file's column order
    assert path.read_text() == old.to_csv(index=False) + "a,ok,3.0,0.125\nc,ok,4.0,\n"
    expected = pd.concat([old, new[list(old.columns)]]).sort_values("trial_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(summary.read_table(path), expected)
    assert list(tmp_path.iterdir()) == [path]
    assert summary.read_ids(path) == {"a", "b", "c", "d"}
    summary.update_table(path, new.iloc[:0])  # nothing new: the file is untouched
    pd.testing.assert_frame_equal(summary.read_table(path), expected)


def test_update_replacing_a_trial_or_adding_a_column_rewrites_the_table(tmp_path):
    path = tmp_path / "summary.csv"
    old = _table(["b", "d"], wall_s=[1.0, 2.0], energy_0=[0.5, 0.25])
    summary.write_table(old, path)
    summary.update_table(path, _table(["d"], wall_s=[9.0], energy_0=[0.75]))
    back = summary.read_table(path)
    assert list(back["trial_id"]) == ["b", "d"] and list(back["wall_s"]) == [1.0, 9.0]
    assert list(back["energy_0"]) == [0.5, 0.75]
    summary.update_table(path, _table(["c"], wall_s=[3.0], energy_0=[1.0], energy_1=[2.0]))
    back = summary.read_table(path)
    assert list(back.columns) == ["trial_id", "status", "wall_s", "energy_0", "energy_1"]
    assert list(back["trial_id"]) == ["b", "c", "d"] and back["energy_1"].isna().tolist() == [True, False, True]
    assert list(tmp_path.iterdir()) == [path]


def test_a_failed_append_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.csv"
    old = _table(["b"], x=["q"])
    summary.write_table(old, path)
    before = path.read_text()
    with pytest.raises(RuntimeError, match="no text for this value"):
        summary.update_table(path, _table(["c"], x=pd.Series([_Unprintable()], dtype=object)))
    assert path.read_text() == before and list(tmp_path.iterdir()) == [path]


def test_merge_tables_keeps_old_rows_replaces_new_ones_and_orders_columns():
    keys = valid_keys()
    old = pd.DataFrame({"trial_id": ["c", "a", "b"], "energy_1": [1.0, 2.0, 3.0], keys[0]: [1, 2, 3],
                        "status": ["ok"] * 3})
    new = pd.DataFrame({"trial_id": ["b", "d"], "status": ["diverged", "ok"], keys[0]: ["x", "y"],
                        "energy_0": [7.0, 8.0]})
    merged = summary.merge_tables(old, new)
    assert list(merged.columns) == ["trial_id", "status", keys[0], "energy_0", "energy_1"]
    assert list(merged["trial_id"]) == ["a", "b", "c", "d"] and list(merged.index) == [0, 1, 2, 3]
    assert list(merged["status"]) == ["ok", "diverged", "ok", "ok"]
    assert list(merged[keys[0]]) == [2, "x", 1, "y"]  # int and text: kept as objects, not coerced
    assert merged["energy_0"].isna().tolist() == [True, False, True, False]
    assert summary.merge_tables(old.iloc[:0], new) is new and summary.merge_tables(old, new.iloc[:0]) is old


def test_merge_tables_casts_only_columns_whose_dtype_differs():
    old = pd.DataFrame({"trial_id": ["a"], "n": np.array([1], dtype=np.int64), "f": [0.5]})
    new = pd.DataFrame({"trial_id": ["b"], "n": [2.5], "f": [0.25]})
    merged = summary.merge_tables(old, new)
    assert merged["f"].dtype == np.float64 and list(merged["f"]) == [0.5, 0.25]
    assert list(merged["n"]) == [1, 2.5]


def test_a_collect_of_many_trials_writes_what_csv_text_and_build_table_give(run):
    """End to end: the summary a real collect writes equals build_table of the shards' blocks, as pandas writes it."""
    trials = [synthetic_trial(s) for s in range(1, 6)] + [synthetic_trial(9, kind="bp")]
    run.shard("s1", trials)
    collect.collect(GRID, run.root, progress=False)
    with open_shard(run.paths.shard("s1")) as shard:
        table = build_table(shard.blocks())
    assert run.paths.summary.read_text() == table.to_csv(index=False)
