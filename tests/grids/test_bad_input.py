"""Bad-input tier for grid files, overrides and `python -m pc`: a clean one-line refusal, nothing written.

Each case runs the real command entry (`launch.cli.main ... --dry-run`, `pc.cli.main`) in-process and asserts
exit code 2, exactly one line on stderr that names the file or key and says what to do, no traceback, and an
empty run root afterwards. Bounded reading is checked with a wall-clock-free guard: the alias bomb and huge
ranges must be refused before anything is expanded (the refusal message says so), not merely "eventually".
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from launch.cli import main as launch_main
from pc.cli import main as pc_main

GOOD = """\
name: bad
defaults:
  data: {dataset: two_moons, n_samples: 64, batch_size: 32}
  train: {epochs: 1}
sweep:
  - axes: {seed: [0, 1]}
"""

# nine levels of eight aliases each, all inside `description:` (a "billion laughs": 8^9 values)
ALIAS_BOMB = "name: bomb\ndescription:\n  - &a0 [x, x]\n" + "".join(
    f"  - &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n"
    for i in range(1, 10))
BIG_PRODUCT = "name: big\nsweep:\n  - axes:\n      seed: {range: 1000}\n      train.h_lr: {range: [1, 1001]}\n"

# (case id, file bytes or text, extra CLI words, parts the one-line message must contain)
GRID_FILES = [
    ("nan_h_lr", GOOD + "    set: {train.h_lr: .nan}\n", [], ["train.h_lr", "finite"]),
    ("inf_h_lr", GOOD + "    set: {train.h_lr: .inf}\n", [], ["train.h_lr", "finite"]),
    ("huge_float", GOOD + "    set: {train.h_lr: 1e400}\n", [], ["train.h_lr", "finite"]),
    ("nan_momentum", GOOD.replace("epochs: 1", "epochs: 1, w_momentum: .nan"), [], ["train.w_momentum", "finite"]),
    ("momentum_one", GOOD.replace("epochs: 1", "epochs: 1, w_momentum: 1.0"), [], ["train.w_momentum", "[0, 1)"]),
    ("negative_noise", GOOD.replace("batch_size: 32", "batch_size: 32, noise: -0.5"), [], ["data.noise", ">= 0"]),
    ("negative_data_seed", GOOD.replace("batch_size: 32", "batch_size: 32, seed: -1"), [], ["data.seed", "[0, "]),
    ("seed_2_64", GOOD.replace("seed: [0, 1]", "seed: [18446744073709551616]"), [], ["seed", "4294967296"]),
    ("negative_seed_axis", GOOD.replace("seed: [0, 1]", "seed: [0, -3]"), [], ["seed", "[1]"]),
    ("width_zero", GOOD.replace("epochs: 1", "epochs: 1}\n  model: {width: 0"), [], ["model.width", "positive"]),
    ("width_huge", GOOD.replace("epochs: 1", "epochs: 1}\n  model: {width: 10000000"), [], ["model.width"]),
    ("epochs_huge", GOOD.replace("epochs: 1", "epochs: 100000000"), [], ["train.epochs"]),
    ("width_string", GOOD.replace("epochs: 1", "epochs: 1}\n  model: {width: '64'"), [], ["model.width", "int"]),
    ("bool_as_int", GOOD.replace("epochs: 1", "epochs: true"), [], ["train.epochs", "int"]),
    ("interpolation", GOOD.replace("dataset: two_moons", "dataset: '${oc.env:HOME}'"), [], ["data.dataset",
                                                                                        "interpolation"]),
    ("range_too_big", GOOD.replace("seed: [0, 1]", "seed: {range: 100000000}"), [], ["range", "100,000,000"]),
    ("range_step_zero", GOOD.replace("seed: [0, 1]", "seed: {range: [0, 10, 0]}"), [], ["range", "step"]),
    ("product_too_big", BIG_PRODUCT, [], ["1,000,000 trials", "split"]),
    ("alias_bomb", ALIAS_BOMB, [], ["aliases", "expand"]),
    ("deep_nesting", "name: deep\ndescription: " + "[" * 200 + "]" * 200 + "\n", [], ["nested deeper"]),
    ("deep_mapping", "name: deep\ndescription: " + "{a: " * 60 + "1" + "}" * 60 + "\n", [], ["nested deeper"]),
    ("binary", b"\x00\x01\x02name: x\n", [], ["binary"]),
    ("utf16", codecs.BOM_UTF16_LE + GOOD.encode("utf-16-le"), [], ["UTF-8"]),
    ("latin1", ("name: caf\xe9\n").encode("latin-1"), [], ["UTF-8"]),
    ("too_large", "name: big\ndescription: '" + "x" * (1 << 20) + "'\n", [], ["KiB"]),
    ("not_a_mapping", "- just\n- a list\n", [], ["mapping"]),
    ("empty_file", "", [], ["NoneType", "mapping"]),
    ("not_yaml", "name: [unclosed\n", [], ["not valid YAML"]),
    ("duplicate_key", "name: a\nname: b\n", [], ["duplicate key"]),
    ("name_absolute", GOOD.replace("name: bad", "name: /tmp/x"), [], ["name", "folder name"]),
    ("name_parent", GOOD.replace("name: bad", "name: ../other"), [], ["name", "folder name"]),
    ("name_slash", GOOD.replace("name: bad", "name: a/b"), [], ["name", "folder name"]),
    ("name_newline", GOOD.replace("name: bad", 'name: "a\\nb"'), [], ["name", "folder name"]),
    ("name_missing", GOOD.replace("name: bad\n", ""), [], ["name"]),
    ("unknown_top_key", GOOD + "sweeep: []\n", [], ["sweeep", "unknown key"]),
    ("unknown_config_key", GOOD.replace("epochs: 1", "epochs: 1, wlr: 3"), [], ["train.wlr", "unknown key"]),
    ("description_not_text", GOOD + "description: [1, 2]\n", [], ["description", "text"]),
    ("recursive_alias", "name: x\ndescription: &r [1, *r]\n", [], ["recursive alias"]),
    ("mapping_key_unhashable", "name: x\n? {a: 1}\n: 2\n", [], ["mapping key"]),
    # overrides on the command line, after the grid file
    ("override_nan", GOOD, ["train.h_lr=.nan"], ["train.h_lr", "finite"]),
    ("override_nested_leaf", GOOD, ["model.width.foo=1"], ["model.width.foo", "unknown key"]),
    ("override_no_value", GOOD, ["train.epochs="], ["train.epochs", "empty value"]),
    ("override_list", GOOD, ["train.epochs=[1,2]"], ["train.epochs", "single value"]),
    ("override_swept", GOOD, ["seed=3"], ["seed", "varied by the sweep"]),
    ("override_bad_type", GOOD, ["model.width=wide"], ["model.width", "'wide'"]),
    ("override_twice", GOOD, ["train.epochs=1", "train.epochs=2"], ["train.epochs", "twice"]),
    ("override_interpolation", GOOD, ["data.dataset=${oc.env:HOME}"], ["data.dataset", "interpolation"]),
    ("override_yaml_tag", GOOD, ["train.epochs=!!python/object:os.system x"], ["train.epochs", "YAML tags"]),
    ("override_unclosed_list", GOOD, ["train.epochs=[1,2"], ["train.epochs", "cannot parse"]),
    ("override_unclosed_map", GOOD, ["train.epochs={a: 1"], ["train.epochs", "cannot parse"]),
    ("override_alias", GOOD, ["train.epochs=*a"], ["train.epochs", "undefined alias"]),
    ("override_binary", GOOD, ["train.epochs=!!binary abc"], ["train.epochs", "base64"]),
    ("override_deep_nesting", GOOD, ["train.epochs=" + "[" * 200 + "]" * 200], ["train.epochs", "single value"]),
    ("override_long_value", GOOD, ["model.activation=" + "x" * 5000], ["model.activation", "1000+ characters"]),
]


def _assert_refused(rc: int, err: str, parts: list[str], root: Path) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    assert not root.exists() or not any(root.iterdir()), sorted(root.rglob("*"))


@pytest.mark.parametrize("case, content, extra, parts", GRID_FILES, ids=[c[0] for c in GRID_FILES])
def test_bad_grid_files_and_overrides_are_refused(tmp_path, capsys, case, content, extra, parts):
    grid = tmp_path / "bad.yaml"
    grid.write_bytes(content if isinstance(content, bytes) else content.encode())
    root = tmp_path / "runs"
    rc = launch_main([str(grid), "--dry-run", "--root", str(root), *extra])
    err = capsys.readouterr().err
    _assert_refused(rc, err, parts, root)
    assert str(grid) in err or any(p in err for p in ("override", "train.", "model.", "data.", "seed"))


PC_CASES = [
    ("nan", ["train.h_lr=.nan"], ["train.h_lr", "finite"]),
    ("inf", ["train.w_lr=.inf"], ["train.w_lr", "finite"]),
    ("nested_leaf", ["model.width.foo=1"], ["model.width.foo", "did you mean model.width"]),
    ("unknown", ["model.widht=8"], ["model.widht", "unknown key"]),
    ("no_equals", ["model.width"], ["KEY=VALUE"]),
    ("empty_key", ["=3"], ["KEY=VALUE"]),
    ("bad_choice", ["data.dataset=cifar"], ["data.dataset", "two_moons"]),
    ("seed_range", ["seed=4294967296"], ["seed", "4294967296"]),
    ("bp_needs_T1", ["model.kind=bp"], ["train.T", "T=1"]),
    ("odd_batches", ["data.n_samples=96"], ["data.n_samples // data.batch_size", "even"]),
    ("constant_width", ["model.constant_width=true"], ["model.constant_width"]),
]


@pytest.mark.parametrize("case, words, parts", PC_CASES, ids=[c[0] for c in PC_CASES])
def test_pc_cli_refuses_bad_values(tmp_path, capsys, case, words, parts):
    out = tmp_path / "out" / "trial.h5"
    rc = pc_main([*words, "--out", str(out), "--no-progress"])
    _assert_refused(rc, capsys.readouterr().err, parts, tmp_path / "out")


def test_pc_and_launch_read_overrides_alike(tmp_path):
    """`1e-3` is a float for both (they share contracts.overrides), so both accept it."""
    from contracts.overrides import merge_config, parse_overrides
    from grids import grid_from_mapping

    cfg = merge_config({}, parse_overrides(["train.h_lr=1e-3", "data.resize=null"]))
    grid = grid_from_mapping({"name": "x", "defaults": {"data": {"n_samples": 64}}},
                             overrides=["train.h_lr=1e-3", "data.resize=null"])
    assert cfg.train.h_lr == grid.trials[0].train.h_lr == 0.001


def _out_cases(tmp: Path) -> list[tuple[str, str, list[str]]]:
    (tmp / "a_file").write_text("x")
    (tmp / "a_folder").mkdir()
    return [("parent-is-a-file", str(tmp / "a_file" / "t.h5"), ["a_file is a file, not a folder"]),
            ("out-is-a-folder", str(tmp / "a_folder"), ["is a folder", "trial.h5"]),
            ("out-empty", "", ["--out: got an empty path"])]


@pytest.mark.parametrize("case", ["parent-is-a-file", "out-is-a-folder", "out-empty"])
def test_pc_checks_out_before_training(tmp_path, capsys, case, monkeypatch):
    """A bad --out is refused before the trial trains (it used to fail after, throwing the result away)."""
    import pc.cli
    ((_, out, parts),) = [c for c in _out_cases(tmp_path) if c[0] == case]
    monkeypatch.setattr(pc.cli, "iter_trial_results", lambda *a, **k: pytest.fail("trained before --out was checked"))
    rc = pc_main(["data.n_samples=64", "data.batch_size=16", "--out", out, "--no-progress"])
    _assert_refused(rc, capsys.readouterr().err, ["python -m pc: ", *parts], tmp_path / "nothing")


@pytest.mark.parametrize("platform", ["cuda", "gpu"])
def test_pc_says_in_one_line_when_jax_cannot_start_the_platform(tmp_path, platform):
    import os
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "pc", "data.n_samples=64", "data.batch_size=16", "--out",
                        str(tmp_path / "t.h5"), "--no-progress"], cwd=repo, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": platform, "PYTHONPATH": str(repo)})
    _assert_refused(r.returncode, r.stderr, ["JAX cannot start its backend", f"JAX_PLATFORMS='{platform}'",
                                             "--platform cpu"], tmp_path / "nothing")
    assert not (tmp_path / "t.h5").exists()


@pytest.mark.parametrize("name, value, says", [
    ("PCSWEEP_GROUP_MEM_GB", "abc", "expected a number of GiB > 0"),
    ("PCSWEEP_GROUP_MEM_GB", "-1", "expected a number of GiB > 0"),
    ("PCSWEEP_GROUP_MEM_GB", "nan", "expected a number of GiB > 0"),
    ("PCSWEEP_MAX_GROUP", "0", "expected an integer >= 1"),
    ("PCSWEEP_MAX_GROUP", "lots", "expected an integer >= 1"),
    ("PCSWEEP_TRANSPOSED_W", "maybe", "expected one of auto, on, off"),
])
def test_a_bad_pcsweep_setting_is_named_before_training(tmp_path, capsys, monkeypatch, name, value, says):
    import pc.cli
    monkeypatch.setenv(name, value)
    monkeypatch.setattr(pc.cli, "iter_trial_results", lambda *a, **k: pytest.fail("trained with a bad setting"))
    rc = pc_main(["data.n_samples=64", "data.batch_size=16", "--out", str(tmp_path / "out" / "t.h5"), "--no-progress"])
    _assert_refused(rc, capsys.readouterr().err, [f"${name}: got {value!r}", says], tmp_path / "out")
