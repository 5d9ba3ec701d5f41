"""contracts.shard at its edges (fast tier, real HDF5 files, no JAX): the exact words of every rejection, blocks
in numeric order past nine, partial reads of a block, dtypes converted on read, the records' own checks, and the
file attributes a writer leaves. Kills the mutants of `contracts.shard.*` that the round-trip tests let through
(tests/README.md "Mutation testing")."""

from __future__ import annotations

import json
import os
import re
import resource
import socket
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from contracts.shard import (
    ARRAY_NAMES,
    Block,
    BlockInfo,
    Shard,
    ShardError,
    TrialResult,
    check_blocks,
    checked_blocks,
    decode_attr,
    group_by_shape,
    open_shard,
    read_attr,
    read_block,
    read_shard,
    shape_key,
    trial_id_dtype,
    write_shard,
)
from contracts.shard import write as shard_write

STATUS_WORDS = "('ok', 'diverged')"


def arrays_of(E: int = 2, B: int = 3, T: int = 2, L: int = 3, fill: float = 0.0) -> dict[str, np.ndarray]:
    """The six arrays of one trial, each element `fill` plus its flat index (so every row differs)."""
    dims = {"test_accuracy": (E,), "energy": (E, B, T + 1, L), "energy_var": (E, B, T + 1, L),
            "w_norm": (E, B, 3), "w_grad_norm": (E, B, 3), "w_grad_var": (E, B, 3)}
    return {n: fill + np.arange(np.prod(d), dtype=np.float32).reshape(d) for n, d in dims.items()}


def trial(tid: str, *, status: str = "ok", wall_s: float = 1.5, **shape: int) -> TrialResult:
    return TrialResult(tid, {"id": tid, "lr": 0.1}, status, wall_s, arrays_of(fill=float(len(tid)), **shape))


def three(tmp_path: Path, name: str = "s.h5") -> Path:
    """A shard with block 0 (three trials, L = 3) and block 1 (one trial, L = 1)."""
    return write_shard(tmp_path / name, [trial("a" * 16), trial("b" * 16, status="diverged"),
                                         trial("c" * 16, L=1), trial("d" * 16)])


def rejected(message: str) -> pytest.RaisesContext:
    """ShardError whose message ends with exactly `message`."""
    return pytest.raises(ShardError, match=f"{re.escape(message)}$")


# --- records: TrialResult, Block, BlockInfo, shape_key, trial_id_dtype, group_by_shape ----------------------

def test_trial_result_refuses_a_bad_status_missing_arrays_and_wrong_ranks():
    with pytest.raises(ValueError, match=re.escape("status: got 'done'; expected one of ('ok', 'diverged')")):
        TrialResult("t", {}, "done", 0.0, arrays_of())
    partial = arrays_of()
    del partial["energy"], partial["w_grad_var"]
    with pytest.raises(ValueError, match=re.escape("trial t: missing arrays ['energy', 'w_grad_var']")):
        TrialResult("t", {}, "ok", 0.0, partial)
    flat = {**arrays_of(), "energy": np.zeros((2, 3, 3))}
    with pytest.raises(ValueError, match=r"^trial t: energy has 3 dims; expected 4$"):
        TrialResult("t", {}, "ok", 0.0, flat)
    deep = {**arrays_of(), "test_accuracy": np.zeros((2, 1))}
    with pytest.raises(ValueError, match=r"^trial t: test_accuracy has 2 dims; expected 1$"):
        TrialResult("t", {}, "ok", 0.0, deep)
    assert TrialResult("t", {}, "diverged", 0.0, arrays_of()).status == "diverged"


def test_block_rows_as_trials_and_taken_in_any_order():
    stacked = {n: np.stack([arrays_of(fill=10.0 * i)[n] for i in range(3)]) for n in ARRAY_NAMES}
    block = Block(["x", "y", "z"], ['{"a":0}', '{"a":1}', '{"a":2}'], ["ok", "diverged", "ok"],
                  np.array([1.0, 2.0, 3.0]), stacked, {"host": ["h0", "h1", "h2"]})
    assert len(block) == 3
    assert block.shape_key == ((2,), (2, 3, 3, 3), (2, 3, 3, 3), (2, 3, 3), (2, 3, 3), (2, 3, 3))
    one = block.trial(1)
    assert (one.trial_id, one.config, one.status, one.wall_s) == ("y", {"a": 1}, "diverged", 2.0)
    assert type(one.wall_s) is float
    np.testing.assert_array_equal(one.arrays["energy"], arrays_of(fill=10.0)["energy"])
    one.arrays["energy"][...] = -1  # a copy: the block keeps its values
    assert block.arrays["energy"][1].min() == 10.0
    assert len(BlockInfo("0", ("x", "y"), block.shape_key)) == 2


def test_shape_key_is_the_shape_of_each_array_in_order():
    assert shape_key(arrays_of(E=1, B=2, T=3, L=4)) == ((1,), (1, 2, 4, 4), (1, 2, 4, 4), (1, 2, 3), (1, 2, 3),
                                                         (1, 2, 3))
    assert shape_key({n: [[0.0]] for n in ARRAY_NAMES}) == ((1, 1),) * 6


@pytest.mark.parametrize(("ids", "width"), [([], 16), (["a"], 16), (["a" * 16, "b" * 17], 17), (["a" * 64], 64)])
def test_trial_id_dtype_is_at_least_16_wide(ids, width):
    assert trial_id_dtype(ids) == np.dtype(f"S{width}")


@pytest.mark.parametrize("bad", ["", "a" * 65, "\u00e9" * 16, 12, None, b"ab"])
def test_trial_id_dtype_refuses_what_is_not_short_ascii(bad):
    words = (f"trial id {bad!r}: expected a non-empty ASCII string of at most 64 characters "
             "(a 16-hex-digit id from contracts.config.trial_id)")
    with pytest.raises(ValueError, match=f"^{re.escape(words)}$"):
        trial_id_dtype(["ok", bad])


def test_group_by_shape_keeps_first_appearance_and_input_order():
    t = [trial("a"), trial("b", L=1), trial("c"), trial("d", E=1), trial("e", L=1)]
    assert [[x.trial_id for x in g] for g in group_by_shape(t)] == [["a", "c"], ["b", "e"], ["d"]]
    assert group_by_shape([]) == []
    with pytest.raises(ValueError, match=r"^trial c given twice; a shard holds each trial once$"):
        group_by_shape([trial("c"), trial("b"), trial("c", L=1)])


# --- attributes: decode_attr, read_attr, what the writer stores -----------------------------------------------

def test_decode_attr_gives_plain_python():
    assert decode_attr(np.bool_(True)) is True and decode_attr(np.bool_(False)) is False
    assert decode_attr(b"caf\xc3\xa9") == "caf\u00e9"
    got = decode_attr(np.int64(3))
    assert got == 3 and type(got) is int
    got = decode_attr(np.float32(0.5))
    assert got == 0.5 and type(got) is float
    assert decode_attr("s") == "s" and decode_attr([1, 2]) == [1, 2]


def test_read_attr_decodes_one_attribute_and_gives_none_when_absent(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.attrs["n"] = 7
        f.attrs["s"] = "text"
        f.attrs["flag"] = True
        f.attrs["raw"] = np.bytes_(b"fixed")
        assert read_attr(f.id, "n") == 7 and type(read_attr(f.id, "n")) is int
        assert read_attr(f.id, "s") == "text" and read_attr(f.id, "raw") == "fixed"
        assert read_attr(f.id, "flag") is True
        assert read_attr(f.id, "absent") is None


def test_writer_attributes_provenance_and_caller_extras(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    before = datetime.now(UTC).replace(microsecond=0)
    path = write_shard(str(tmp_path / "deep" / "er" / "s.h5"), [trial("a")], grid="g.yaml", task_key="task-3",
                       attrs={"versions": {"jax": "0.4"}, "tags": ["x", 1], "git_dirty": False, "n": 5})
    assert path == tmp_path / "deep" / "er" / "s.h5" and isinstance(path, Path)
    with open_shard(path) as shard:
        attrs = shard.attrs
    created = datetime.fromisoformat(attrs.pop("created"))
    assert created.tzinfo == UTC and created.microsecond == 0
    assert before <= created <= datetime.now(UTC)
    assert attrs == {"schema": "pcsweep-shard", "schema_version": 2, "grid": "g.yaml", "task_key": "task-3",
                     "hostname": socket.gethostname(), "slurm_job_id": "77", "slurm_array_job_id": "70",
                     "slurm_array_task_id": "3", "versions": '{"jax": "0.4"}', "tags": '["x", 1]',
                     "git_dirty": False, "n": 5, "complete": True}
    assert json.loads(attrs["tags"]) == ["x", 1]


def test_writer_defaults_outside_slurm_and_extras_win(tmp_path, monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    path = write_shard(tmp_path / "s.h5", [trial("a")], attrs={"hostname": "node7"})
    with open_shard(path) as shard:
        assert (shard.attr("grid"), shard.attr("task_key"), shard.attr("hostname")) == ("", "", "node7")
        assert [shard.attr(k) for k in ("slurm_job_id", "slurm_array_job_id", "slurm_array_task_id")] == ["", "", ""]


def test_writer_goes_through_a_pid_named_temporary_file(tmp_path, monkeypatch):
    moves = []
    real_replace = os.replace

    def spy(src, dst):
        moves.append((Path(src), Path(dst), h5py.is_hdf5(src)))
        real_replace(src, dst)

    monkeypatch.setattr(shard_write.os, "replace", spy)
    path = write_shard(tmp_path / "s.h5", [trial("a")])
    assert moves == [(tmp_path / f"s.h5.tmp.{os.getpid()}", path, True)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_a_failed_write_leaves_no_file_and_keeps_the_old_shard(tmp_path):
    old = three(tmp_path)
    with pytest.raises(ValueError, match="trial id 'xx+': expected a non-empty ASCII string"):
        write_shard(old, [trial("ok"), trial("x" * 65, L=1)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]
    assert len(read_shard(old)) == 4  # the shard written before is untouched
    again = write_shard(old, [trial("z")])  # a successful rewrite replaces it
    assert [t.trial_id for t in read_shard(again)] == ["z"]


def test_a_temporary_file_that_cannot_be_created_is_the_error_reported(tmp_path):
    """Out of file descriptors (a busy node): HDF5's create error comes out, not a cleanup error about a missing tmp."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # the next open() fails with EMFILE
    try:
        with pytest.raises(OSError, match=r"Unable to .*create file.*Too many open files") as raised:
            write_shard(tmp_path / "s.h5", [trial("a")])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not isinstance(raised.value, FileNotFoundError)
    assert list(tmp_path.iterdir()) == []


def test_writer_stores_wall_times_as_float64_and_arrays_as_float32(tmp_path):
    t = TrialResult("a", {"k": [0.1 + 0.2]}, "ok", 3, {n: a.astype(np.float64) for n, a in arrays_of().items()})
    path = write_shard(tmp_path / "s.h5", [t])
    with h5py.File(path, "r") as f:
        g = f["blocks"]["0"]
        assert g["wall_s"].dtype == np.float64 and g["wall_s"][0] == 3.0
        assert all(g[n].dtype == np.float32 for n in ARRAY_NAMES)
        assert g["config"][0].decode() == '{"k":[0.3]}' and g["status"][0] == b"ok"
        assert g["trial_id"].dtype == np.dtype("S16") and g["trial_id"][0] == b"a"
    (back,) = read_shard(path)
    assert back.wall_s == 3.0 and type(back.wall_s) is float and back.config == {"k": [0.3]}


# --- the blocks of a file: order, and every rejection -----------------------------------------------------------

def test_blocks_come_back_in_numeric_order_past_nine(tmp_path):
    trials = [trial(f"t{e:02d}", E=e) for e in range(1, 13)]  # twelve shapes: blocks 0 .. 11
    path = write_shard(tmp_path / "s.h5", trials)
    with open_shard(path) as shard:
        assert [b.name for b in shard.block_infos] == [str(k) for k in range(12)]
        assert [b.trial_ids for b in shard.blocks()] == [[t.trial_id] for t in trials]
        assert [t.trial_id for t in shard.trials()] == [t.trial_id for t in trials]
        assert shard.block_infos[10].shape_key == shape_key(arrays_of(E=11))


def edit(path: Path, change) -> None:
    with h5py.File(path, "a") as f:
        change(f)


def replace(g: h5py.Group, name: str, data, **kw) -> None:
    del g[name]
    g.create_dataset(name, data=data, **kw)


def numbers_as_status(g: h5py.Group) -> None:
    """A status column of variable-length float rows: it has the kind of a string column ("O") but holds numbers."""
    del g["status"]
    column = g.create_dataset("status", (3,), dtype=h5py.vlen_dtype(np.float64))
    for i in range(3):
        column[i] = np.ones(i + 1)


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f["blocks"].create_group("x1"), "/blocks/x1: block names are decimal integers"),
    (lambda f: f["blocks"].create_group("-1"), "/blocks/-1: block names are decimal integers"),
    (lambda f: f.__delitem__("blocks"), "no /blocks group"),
    (lambda f: (f.__delitem__("blocks"), f.create_dataset("blocks", data=[1])), "/blocks is not a group"),
    (lambda f: (f["blocks"].__delitem__("1"), f["blocks"].create_dataset("1", data=[1])), "block 1: not a group"),
    (lambda f: (f["blocks/0"].__delitem__("status"), f["blocks/0"].__delitem__("energy")),
     "block 0: no dataset status, energy (malformed block)"),
    (lambda f: replace(f["blocks/1"], "test_accuracy", np.zeros(1)),
     "block 1: test_accuracy has 1 dims; expected 2 (malformed block)"),
    (lambda f: replace(f["blocks/0"], "wall_s", np.zeros((3, 1))),
     "block 0: wall_s has 2 dims; expected 1 (malformed block)"),
    (lambda f: replace(f["blocks/0"], "wall_s", 1.0), "block 0: wall_s has 0 dims; expected 1 (malformed block)"),
    (lambda f: replace(f["blocks/0"], "wall_s", h5py.Empty("f8")),
     "block 0: wall_s has 0 dims; expected 1 (malformed block)"),
    (lambda f: replace(f["blocks/0"], "energy", np.zeros((3, 2, 3, 3, 3), np.int32)),
     "block 0: energy has dtype int32; expected floats"),
    (lambda f: replace(f["blocks/0"], "wall_s", np.array([b"1", b"2", b"3"])),
     "block 0: wall_s has dtype |S1; expected floats"),
    (lambda f: replace(f["blocks/0"], "config", np.zeros(3)), "block 0: config has dtype float64; expected strings"),
    (lambda f: replace(f["blocks/0"], "status", np.zeros(3, np.int8)),
     "block 0: status has dtype int8; expected strings"),
    (lambda f: replace(f["blocks/0"], "trial_id", ["a" * 16, "b" * 16, "d" * 16], dtype=h5py.string_dtype()),
     "block 0: trial_id has dtype object; expected fixed-length ASCII"),
    (lambda f: replace(f["blocks/0"], "trial_id", np.zeros(3)),
     "block 0: trial_id has dtype float64; expected fixed-length ASCII"),
    (lambda f: replace(f["blocks/0"], "wall_s", np.zeros(4)),
     "block 0: wall_s has 4 rows but trial_id has 3 (length mismatch: malformed block)"),
    (lambda f: replace(f["blocks/0"], "energy_var", np.zeros((3, 2, 3, 3, 2), np.float32)),
     "block 0: energy/energy_var or w_norm/w_grad_norm/w_grad_var differ in shape"),
    (lambda f: replace(f["blocks/0"], "w_grad_norm", np.zeros((3, 2, 3, 2), np.float32)),
     "block 0: energy/energy_var or w_norm/w_grad_norm/w_grad_var differ in shape"),
    (lambda f: replace(f["blocks/0"], "w_grad_var", np.zeros((3, 2, 3, 4), np.float32)),
     "block 0: energy/energy_var or w_norm/w_grad_norm/w_grad_var differ in shape"),
    (lambda f: replace(f["blocks/0"], "test_accuracy", np.zeros((3, 3), np.float32)),
     "block 0: epochs or batches differ between test_accuracy (3, 3), energy (3, 2, 3, 3, 3) and w_norm (3, 2, 3, 3)"),
    (lambda f: [replace(f["blocks/0"], n, np.zeros((3, 1, 3, 3), np.float32)) for n in ("w_norm", "w_grad_norm",
                                                                                         "w_grad_var")],
     "block 0: epochs or batches differ between test_accuracy (3, 2), energy (3, 2, 3, 3, 3) and w_norm (3, 1, 3, 3)"),
    (lambda f: [replace(f["blocks/0"], n, np.zeros((3, 2, 2, 3), np.float32)) for n in ("w_norm", "w_grad_norm",
                                                                                         "w_grad_var")],
     "block 0: epochs or batches differ between test_accuracy (3, 2), energy (3, 2, 3, 3, 3) and w_norm (3, 2, 2, 3)"),
    (lambda f: f["blocks/1/trial_id"].__setitem__(0, b""), "block 1: an empty trial_id (malformed block)"),
    (lambda f: f["blocks/0/status"].__setitem__(2, b"weird"),
     f"block 0: trial {'d' * 16}: status 'weird' is not one of {STATUS_WORDS}"),
    (lambda f: f["blocks/0/status"].__setitem__(1, b"\xff"), "block 0: trial_id or status unreadable ("),
    (lambda f: numbers_as_status(f["blocks/0"]), "block 0: status has dtype object; expected strings"),
    (lambda f: f["blocks/0/trial_id"].__setitem__(2, b"a" * 16),
     f"block 0: trial {'a' * 16} appears more than once in the file"),
])
def test_malformed_files_are_rejected_naming_file_block_and_reason(tmp_path, change, message):
    path = three(tmp_path)
    edit(path, change)
    words = re.escape(f"{path}: {message}") + ("" if message.endswith("(") else "$")  # "(": the HDF5 error follows
    with pytest.raises(ShardError, match=f"^{words}"):
        open_shard(path)


def test_deleted_rows_pass_only_where_allowed(tmp_path):
    path = three(tmp_path)
    edit(path, lambda f: [f["blocks/0/trial_id"].__setitem__(i, b"") for i in (0, 1)])
    edit(path, lambda f: f["blocks/0/status"].__setitem__(0, b"junk"))  # a deleted row's status is not checked
    with h5py.File(path, "r") as f:
        infos = check_blocks(f, "results.h5", allow_deleted=True)
        assert [i.trial_ids for i in infos] == [("", "", "d" * 16), ("c" * 16,)]
        assert infos[0] == BlockInfo("0", ("", "", "d" * 16), shape_key(arrays_of()))
        with pytest.raises(ShardError, match=r"^results\.h5: block 0: an empty trial_id \(malformed block\)$"):
            check_blocks(f, "results.h5")
    # the rows after a deleted row are still checked: a bad status, and an id seen again
    edit(path, lambda f: f["blocks/0/status"].__setitem__(2, b"junk"))
    with h5py.File(path, "r") as f, pytest.raises(ShardError, match=f"^r: block 0: trial {'d' * 16}: status 'junk'"):
        check_blocks(f, "r", allow_deleted=True)
    edit(path, lambda f: (f["blocks/0/status"].__setitem__(2, b"ok"), f["blocks/1/trial_id"].__setitem__(0, b"d" * 16)))
    with h5py.File(path, "r") as f, pytest.raises(ShardError, match=f"^r: block 1: trial {'d' * 16} appears more than"):
        check_blocks(f, "r", allow_deleted=True)


def test_extra_columns_are_required_and_read_decoded(tmp_path):
    path = three(tmp_path)
    with h5py.File(path, "r") as f, pytest.raises(ShardError, match=r"^where: block 0: no dataset host \(malformed"):
        check_blocks(f, "where", ["host"])
    edit(path, lambda f: [f[f"blocks/{k}"].create_dataset("host", data=[f"h{k}{i}" for i in range(n)],
                                                          dtype=h5py.string_dtype()) for k, n in (("0", 3), ("1", 1))])
    edit(path, lambda f: f["blocks/1"].create_dataset("zone", data=np.array([b"z"])))
    edit(path, lambda f: f["blocks/0"].create_dataset("zone", data=np.array([b"x", b"y", b"w"])))
    with h5py.File(path, "r") as f:
        (info0, ds0), (info1, _) = checked_blocks(f, "where", ["host", "zone"])
        assert (info0.name, info1.name, len(info0)) == ("0", "1", 3)
        block = read_block(ds0, info0, [0, 2], ["host", "zone"])
        assert block.columns == {"host": ["h00", "h02"], "zone": ["x", "w"]}
        assert read_block(f["blocks/1"], info1, None, ["zone"]).columns == {"zone": ["z"]}


# --- reading a block: all rows, some rows, no rows, without arrays --------------------------------------------

def ten_rows(tmp_path: Path) -> Path:
    return write_shard(tmp_path / "ten.h5", [trial(f"t{i}", wall_s=float(i)) for i in range(10)])


@pytest.mark.parametrize("rows", [[3, 7], [0], [9], [4, 5], [0, 1, 2], [2, 5, 6, 9], list(range(1, 10)),
                                  [0, 2, 4, 6, 8], None, list(range(10))])
def test_read_block_rows_are_exactly_those_rows(tmp_path, rows):
    path = ten_rows(tmp_path)
    full = read_shard(path)
    want = list(range(10)) if rows is None else rows
    with open_shard(path) as shard:
        ((info, datasets),) = shard.checked_blocks()
        for source in (datasets, shard.file["blocks/0"]):
            block = read_block(source, info, rows)
            assert block.trial_ids == [f"t{i}" for i in want] and len(block) == len(want)
            assert block.wall_s.tolist() == [float(i) for i in want] and block.wall_s.dtype == np.float64
            assert block.status == ["ok"] * len(want) and block.configs == [json.dumps(
                {"id": f"t{i}", "lr": 0.1}, separators=(",", ":")) for i in want]
            for n in ARRAY_NAMES:
                assert block.arrays[n].dtype == np.float32
                np.testing.assert_array_equal(block.arrays[n], np.stack([full[i].arrays[n] for i in want]))


def test_read_block_of_no_rows_and_without_arrays(tmp_path):
    path = ten_rows(tmp_path)
    with open_shard(path) as shard:
        ((info, datasets),) = shard.checked_blocks()
        empty = read_block(datasets, info, [])
        assert (empty.trial_ids, empty.configs, empty.status, len(empty)) == ([], [], [], 0)
        assert empty.wall_s.shape == (0,) and empty.wall_s.dtype == np.float64
        assert empty.arrays["energy"].shape == (0, 2, 3, 3, 3) and empty.arrays["energy"].dtype == np.float32
        assert empty.arrays["test_accuracy"].shape == (0, 2)
        light = read_block(datasets, info, [1, 8], arrays=False)
        assert light.arrays == {} and light.trial_ids == ["t1", "t8"] and light.wall_s.tolist() == [1.0, 8.0]


def test_read_converts_float64_arrays_and_float32_wall_times(tmp_path):
    path = ten_rows(tmp_path)

    def widen(f: h5py.File) -> None:
        g = f["blocks/0"]
        for n in ARRAY_NAMES:
            replace(g, n, g[n][()].astype(np.float64) + 0.25)
        replace(g, "wall_s", g["wall_s"][()].astype(np.float32) + np.float32(0.5))

    edit(path, widen)
    with open_shard(path) as shard:
        ((info, datasets),) = shard.checked_blocks()
        for rows in (None, [2], [1, 6]):
            block = read_block(datasets, info, rows)
            assert block.wall_s.dtype == np.float64 and block.arrays["energy"].dtype == np.float32
            assert block.wall_s.tolist() == [i + 0.5 for i in (range(10) if rows is None else rows)]
        assert shard.trial("t3").arrays["w_norm"].dtype == np.float32 and shard.trial("t3").wall_s == 3.5


# --- Shard and open_shard -----------------------------------------------------------------------------------

def test_shard_attributes_one_at_a_time_or_all(tmp_path):
    path = write_shard(tmp_path / "s.h5", [trial("a")], grid="g", attrs={"n": 3})
    with open_shard(path) as shard:
        assert shard.attr("grid") == "g" and shard.attr("n") == 3 and shard.attr("complete") is True
        assert shard.attr("absent") is None and shard.attr("absent", "dflt") == "dflt"
        assert shard.attr("grid", "dflt") == "g"
        assert shard.attrs["n"] == 3 and shard.attrs is shard.attrs  # read once, then kept
        assert shard.attr("absent", "dflt") == "dflt" and shard.attr("n", 0) == 3
    given = Shard(path, h5py.File(path, "r"), {"grid": "from-caller"})
    with given:
        assert given.attrs == {"grid": "from-caller"} and given.attr("grid") == "from-caller"
        assert given.attr("n") is None and given.attr("n", 9) == 9  # only the attributes given
        assert [b.trial_ids for b in given.block_infos] == [("a",)]  # its blocks checked on construction
    assert not given.file.id.valid  # the context manager closed it


def test_shard_checks_blocks_when_built_from_an_open_file(tmp_path):
    path = three(tmp_path)
    edit(path, lambda f: f["blocks/0/status"].__setitem__(0, b"weird"))
    f = h5py.File(path, "r")
    with pytest.raises(ShardError, match=f"^{re.escape(str(path))}: block 0: trial a+: status 'weird'"):
        Shard(path, f)
    f.close()


def test_shard_lists_finds_and_selects_trials(tmp_path):
    path = write_shard(tmp_path / "s.h5", [trial("z" * 16), trial("c" * 16, L=1), trial("a" * 16), trial("m" * 16)])
    with open_shard(path) as shard:
        assert shard.trial_ids == ["a" * 16, "c" * 16, "m" * 16, "z" * 16]
        assert [len(info) for info, _ in shard.checked_blocks()] == [3, 1]
        got = shard.trial("m" * 16)
        assert (got.trial_id, got.config, got.status, got.wall_s) == ("m" * 16, {"id": "m" * 16, "lr": 0.1}, "ok", 1.5)
        np.testing.assert_array_equal(got.arrays["energy"], arrays_of(fill=16.0)["energy"])
        with pytest.raises(ShardError, match=f"^{re.escape(str(path))}: no trial {'b' * 16}$"):
            shard.trial("b" * 16)
        assert [b.trial_ids for b in shard.blocks(["m" * 16, "c" * 16, "nope"])] == [["m" * 16], ["c" * 16]]
        assert [b.trial_ids for b in shard.blocks(["a" * 16, "z" * 16])] == [["z" * 16, "a" * 16]]
        assert list(shard.blocks([])) == [] and list(shard.blocks(["nope"])) == []
        assert [t.trial_id for t in shard.trials()] == ["z" * 16, "a" * 16, "m" * 16, "c" * 16]
        assert shard.checked_blocks() is not shard.checked_blocks()  # a copy the caller may change


def test_unreadable_rows_are_shard_errors_naming_the_file(tmp_path):
    path = three(tmp_path)
    with open_shard(path) as shard:
        (info, _), second = shard.checked_blocks()
        broken = Shard(path, shard.file, {}, [(info, {}), second])  # block 0's datasets unavailable
        with pytest.raises(ShardError, match=f"^{re.escape(str(path))}: trial a+: unreadable \\('config'\\)$"):
            broken.trial("a" * 16)
        with pytest.raises(ShardError, match=f"^{re.escape(str(path))}: block 0: unreadable \\('config'\\)$"):
            list(broken.blocks())
        assert [b.trial_ids for b in broken.blocks(["c" * 16])] == [["c" * 16]]


@pytest.mark.parametrize(("attr", "value", "message"), [
    ("schema", None, "schema is None; expected 'pcsweep-shard'"),
    ("schema_version", "2", "schema_version is '2'; this pcsweep reads version 2 only (a version-1 shard has one "
                            "group per trial: rerun its task to rewrite it)"),
    ("schema_version", None, "schema_version is None; this pcsweep reads version 2 only"),
    ("complete", False, "no 'complete' flag: the write did not finish (partial shard)"),
    ("complete", 1, "no 'complete' flag: the write did not finish (partial shard)"),
    ("complete", "yes", "no 'complete' flag: the write did not finish (partial shard)"),
])
def test_open_shard_rejects_wrong_attributes_and_closes_the_file(tmp_path, attr, value, message):
    path = three(tmp_path)

    def change(f: h5py.File) -> None:
        if value is None:
            del f.attrs[attr]
        else:
            f.attrs[attr] = value

    edit(path, change)
    with pytest.raises(ShardError, match=f"^{re.escape(f'{path}: {message}')}"):
        open_shard(path)
    with h5py.File(path, "a") as f:  # no read-only handle left open: HDF5 would refuse to open it for writing
        f.attrs["touched"] = 1


def test_open_shard_rejects_unreadable_metadata_and_closes_the_file(tmp_path):
    path = three(tmp_path)
    edit(path, lambda f: (f["blocks"].__delitem__("1"), f["blocks"].__setitem__("1", h5py.SoftLink("/nowhere"))))
    words = f"{path}: unreadable HDF5 metadata (truncated or corrupt): "
    with pytest.raises(ShardError, match=f"^{re.escape(words)}"):
        open_shard(path)
    edit(path, lambda f: f.attrs.__setitem__("touched", 1))
    edit(path, lambda f: f["blocks"].create_group("x"))
    with pytest.raises(ShardError, match="block names are decimal integers"):
        open_shard(path)
    edit(path, lambda f: f.attrs.__setitem__("touched", 2))


def test_open_shard_rejects_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("not hdf5\n" * 100)
    words = f"{path}: not a readable HDF5 file (truncated or corrupt): "
    with pytest.raises(ShardError, match=f"^{re.escape(words)}"):
        open_shard(str(path))
    with pytest.raises(ShardError, match=r"missing\.h5: not a readable HDF5 file"):
        read_shard(tmp_path / "missing.h5")


def test_read_shard_reads_every_trial_and_closes(tmp_path):
    path = three(tmp_path)
    got = read_shard(str(path))
    assert [t.trial_id for t in got] == ["a" * 16, "b" * 16, "d" * 16, "c" * 16]
    assert [t.status for t in got] == ["ok", "diverged", "ok", "ok"]
    edit(path, lambda f: f.attrs.__setitem__("touched", 1))
