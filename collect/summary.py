"""The summary table: one row per trial, computed from stacked blocks with numpy.

Each row holds the trial's status, wall time, final and best test accuracy, its flattened config,
the derived `optim` / `condition` labels, and per-layer values at the last batch of the last
epoch: energies at t = T-1 (as the paper did) and t = T, energy variance at t = T-1, weight norms,
gradient norms and gradient variances, plus adjacent energy ratios. `docs/collect.md` lists every
column. pandas is imported only where a DataFrame is built or read.

`rows_from_block` takes the last-batch values of a whole block (all trials of one shape) with one
numpy index per array, so the cost per trial is a few Python object creations.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from collect.rows import Copied
from contracts.config import valid_keys
from contracts.labels import condition_label, optim_label

if TYPE_CHECKING:
    import pandas as pd  # only for annotations: pandas is imported where a table is built (0.3 s)

RATIO_EPS = 1e-32  # energy_{k-1} / (energy_k + 1e-32), as the paper's notebooks
_F4 = np.dtype("<f4")
PER_LAYER = ("energy", "energy_var", "w_norm", "w_grad_norm", "w_grad_var")


class Parts:
    """Summary values of many blocks, gathered with one numpy index per array per block; `build()` -> table.

    Energies need T+1 >= 2 inference steps (t = T-1 exists); collect's probe rejects shards without.
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.status: list[str] = []
        self.configs: list[dict[str, Any]] = []  # parsed
        self.vectors: dict[str, list[np.ndarray]] = {"wall_s": [], "accuracy": [], "accuracy_best": []}
        self.layers: dict[str, list[np.ndarray]] = {f: [] for f in (*PER_LAYER, "energy_final")}

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    def add_rows(self, rows: Copied) -> None:
        """Add rows given as a `collect.rows.Copied` (columns, parsed configs, test_accuracy, last-batch values)."""
        acc = np.asarray(rows.test_accuracy, dtype=_F4)  # [N, E]
        energy, energy_var = rows.last["energy"], rows.last["energy_var"]  # [N, T+1, L]
        if energy.shape[1] < 2:
            raise ValueError(f"energy has {energy.shape[1]} inference steps; expected T+1 >= 2")
        n, epochs = acc.shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as intended
            best = np.nanmax(acc, axis=1) if epochs else np.full(n, np.nan, _F4)
        self.ids += rows.trial_ids
        self.status += rows.status
        self.configs += rows.parsed
        self.vectors["wall_s"].append(np.asarray(rows.wall_s, dtype=np.float64))
        self.vectors["accuracy"].append((acc[:, -1] if epochs else np.full(n, np.nan, _F4)).astype(np.float64))
        self.vectors["accuracy_best"].append(best.astype(np.float64))
        self.layers["energy"].append(energy[:, -2])
        self.layers["energy_final"].append(energy[:, -1])
        self.layers["energy_var"].append(energy_var[:, -2])
        for name in ("w_norm", "w_grad_norm", "w_grad_var"):
            self.layers[name].append(rows.last[name])

    def build(self) -> pd.DataFrame:
        """One DataFrame, columns in the documented order, rows sorted by trial id."""
        import pandas as pd  # lazy: 0.3 s to import, and `import collect` must stay light

        order = sorted(range(len(self.ids)), key=self.ids.__getitem__)
        idx = np.asarray(order, dtype=np.intp)
        flat = _config_columns([self.configs[i] for i in order])
        keys = valid_keys()
        extra = sorted(set(flat) - set(keys))

        def vector(name: str) -> np.ndarray:
            parts = self.vectors[name]
            return np.concatenate(parts)[idx] if parts else np.zeros(0)

        n = len(order)
        cols: dict[str, Any] = {
            "trial_id": [self.ids[i] for i in order],
            "status": [self.status[i] for i in order],
            "wall_s": vector("wall_s"),
            "accuracy": vector("accuracy"),
            "accuracy_best": vector("accuracy_best"),
        }
        for key in keys + extra:
            cols[key] = flat.get(key, [None] * n)
        opt, mom, kind = (flat.get(k, [None] * n) for k in ("train.w_optimizer", "train.w_momentum", "model.kind"))
        cols["optim"] = [_optim(o, m) for o, m in zip(opt, mom)]
        cols["condition"] = [condition_label(k, o) for k, o in zip(kind, cols["optim"])]
        layers = {f: _padded(parts)[idx] for f, parts in self.layers.items()}
        cols["n_layers_energy"] = np.concatenate(
            [np.full(len(p), p.shape[1], np.int64) for p in self.layers["energy"]] or [np.zeros(0, np.int64)])[idx]
        for f in PER_LAYER:
            for k in range(layers[f].shape[1]):
                cols[f"{f}_{k}"] = layers[f][:, k]
        energy = layers["energy"]
        for k in range(1, energy.shape[1]):
            cols[f"energy_ratio_{k - 1}/{k}"] = energy[:, k - 1] / (energy[:, k] + RATIO_EPS)
        for k in range(layers["energy_final"].shape[1]):
            cols[f"energy_final_{k}"] = layers["energy_final"][:, k]
        return pd.DataFrame(cols)


def _optim(w_optimizer: Any, w_momentum: Any) -> str:
    """`contracts.labels.optim_label`, or both values as text where a config lacks one or it is not a number."""
    if isinstance(w_optimizer, str) and isinstance(w_momentum, (int, float)) and not isinstance(w_momentum, bool):
        return optim_label(w_optimizer, w_momentum)
    return f"{w_optimizer}-{w_momentum}"


def _padded(parts: list[np.ndarray]) -> np.ndarray:
    """[n, Lmax] float64 from per-block [n_i, L_i] float32 arrays, NaN where a trial has fewer layers."""
    width = max((p.shape[1] for p in parts), default=0)
    out = np.full((sum(len(p) for p in parts), width), np.nan)
    at = 0
    for p in parts:
        out[at:at + len(p), : p.shape[1]] = p
        at += len(p)
    return out


def _config_columns(configs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Flattened config key -> one value per config (None where a config lacks the key).

    Configs of one structure (the same sections and keys: canonical JSON sorts them) are
    transposed in one `zip`; any other config goes through `flatten`.
    """
    n = len(configs)
    out: dict[str, list[Any]] = {}
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        sig = tuple((k, tuple(v)) if type(v) is dict else k for k, v in c.items())
        groups.setdefault(sig, []).append(i)
    for sig, members in groups.items():
        keys = []
        for k in sig:
            if type(k) is tuple:
                keys += [f"{k[0]}.{k2}" for k2 in k[1]]
            else:
                keys.append(k)
        rows = [[x for v in configs[i].values() for x in (v.values() if type(v) is dict else (v,))] for i in members]
        columns = list(zip(*rows)) if all(len(r) == len(keys) for r in rows) else None
        if columns is None or any(dict in set(map(type, column)) for column in columns):
            for i in members:  # a third level somewhere: the general path for this group
                for key, value in flatten(configs[i]).items():
                    out.setdefault(key, [None] * n)[i] = value
            continue
        for key, column in zip(keys, columns):
            if len(members) == n:
                out[key] = list(column)
            else:
                target = out.setdefault(key, [None] * n)
                for i, value in zip(members, column):
                    target[i] = value
    return out


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"data": {"dataset": "x"}} -> {"data.dataset": "x"}."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a summary CSV back with the dtypes it was written with (trial ids stay strings)."""
    import pandas as pd  # lazy: 0.3 s to import, and `import collect` must stay light

    df = pd.read_csv(path, dtype={"trial_id": str, "status": str, "optim": str, "condition": str})
    return df.sort_values("trial_id", kind="stable", ignore_index=True)


def merge_tables(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """`old` without the trials `new` replaces, plus `new`; sorted by trial id; columns in order.

    Columns follow `Parts.build`'s order: a union where old and new differ (e.g. a first BP trial).
    """
    import pandas as pd  # lazy: 0.3 s to import, and `import collect` must stay light

    if old.empty:
        return new
    if new.empty:
        return old
    kept = old[~old["trial_id"].isin(set(new["trial_id"]))]
    new = new.astype({c: object for c in new.columns if c in kept.columns and new[c].dtype != kept[c].dtype})
    merged = pd.concat([kept, new], ignore_index=True, sort=False)
    order = column_order(list(merged.columns))
    return merged[order].sort_values("trial_id", kind="stable").reset_index(drop=True)


def column_order(columns: list[str]) -> list[str]:
    """The documented column order for any set of summary columns."""
    fixed = ["trial_id", "status", "wall_s", "accuracy", "accuracy_best"]
    keys = valid_keys()
    config = [c for c in keys if c in columns]
    known = set(fixed) | set(keys) | {"optim", "condition", "n_layers_energy"}
    metric = [c for c in columns if c not in known]
    extra = sorted(c for c in metric if "." in c)

    def layer_key(c: str) -> tuple:
        for i, f in enumerate((*PER_LAYER, "energy_ratio", "energy_final")):
            if c.startswith(f + "_") and c[len(f) + 1:].split("/")[0].isdigit():
                return (i, int(c[len(f) + 1:].split("/")[0]))
        return (99, c)

    metric = sorted((c for c in metric if "." not in c), key=layer_key)
    return [c for c in fixed if c in columns] + config + extra + [
        c for c in ("optim", "condition", "n_layers_energy") if c in columns] + metric


def update_table(path: str | os.PathLike, new: pd.DataFrame) -> None:
    """Add `new` rows to the summary at `path`, atomically.

    The cheap path (new trials only, no new columns) copies the old file and appends; a row
    replacing an existing trial, or a new column, rewrites the whole table. Either way
    `read_table` returns rows sorted by trial id, so the result equals a full rebuild.
    """
    if new.empty:
        return
    path = os.fspath(path)
    with open(path) as f:
        header = f.readline().rstrip("\n").split(",")
    if set(new.columns) <= set(header) and not set(new["trial_id"]) & read_ids(path):
        tmp = f"{path}.tmp.{os.getpid()}"
        try:
            shutil.copyfile(path, tmp)
            with open(tmp, "a", newline="") as f:
                f.write(csv_text(new.reindex(columns=header), header=False))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    write_table(merge_tables(read_table(path), new), path)


def read_ids(path: str | os.PathLike) -> set[str]:
    """The trial ids of a summary CSV (first column), without parsing the rest."""
    with open(path) as f:
        next(f)
        return {line.split(",", 1)[0] for line in f}


def _quote(text: str) -> str:
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _cells(values: np.ndarray) -> list[str]:
    """One CSV cell per value, as pandas writes them: floats by repr (exact), NaN and None empty."""
    kind = values.dtype.kind
    if kind == "f":
        cells = list(map(repr, values.tolist()))
        if np.isnan(values).any():
            cells = ["" if c == "nan" else c for c in cells]
        return cells
    if kind in "iub":
        return list(map(str, values.tolist()))
    items = values.tolist()
    if all(type(x) is str for x in items):
        if any(ch in "".join(items) for ch in ',"\n\r'):
            return [_quote(x) for x in items]
        return items
    out = []
    for x in items:
        if x is None or (isinstance(x, float) and x != x):
            out.append("")
        elif isinstance(x, str):
            out.append(_quote(x))
        elif isinstance(x, float):
            out.append(repr(x))
        else:
            out.append(_quote(str(x)))
    return out


def csv_text(df: pd.DataFrame, *, header: bool = True) -> str:
    """The CSV text of a summary table (what `DataFrame.to_csv(index=False)` writes, column by column)."""
    columns = [_cells(df[c].to_numpy()) for c in df.columns]
    lines = [",".join(_quote(str(c)) for c in df.columns)] if header else []
    lines += [",".join(row) for row in zip(*columns)]
    return "\n".join(lines) + "\n" if lines else ""


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the summary CSV atomically (tmp + os.replace); floats round-trip exactly."""
    path = os.fspath(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w", newline="") as f:
            f.write(csv_text(df))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
