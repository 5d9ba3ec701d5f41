"""Bad command lines of launch, status and cancel: exit 2, one line naming the option or file and the fix,
no traceback, nothing written under --root (run in this process through `launch.cli.main`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from contracts.paths import RunPaths
from launch.cli import main
from launch.manifest import write_manifest

CODE = Path(__file__).resolve().parents[2]
DEMO = str(CODE / "grids" / "demo.yaml")
HOST = socket.gethostname()


def cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        code = e.code
    return code, capsys.readouterr().err


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# (case id, argv after GRID or command, what the line must name, what it must say to do)
LAUNCH_CASES = [
    ("partition-newline", ["--partition", "gpu\n#SBATCH --x"], "--partition", "one line"),
    ("account-cr", ["--account", "proj\r"], "--account", "one line"),
    ("qos-tab", ["--qos", "hi\tgh"], "--qos", "one line"),
    ("constraint-escape", ["--constraint", "a100\x1b[0m"], "--constraint", "one line"),
    ("sbatch-value-newline", ["--sbatch", "mail-type=END\nrm -rf /"], "--sbatch mail-type=VALUE", "one line"),
    ("sbatch-key-newline", ["--sbatch", "mail\n-type=END"], "--sbatch KEY", "one line"),
    ("sbatch-key-unicode", ["--sbatch", "mail\u2028type=END"], "--sbatch KEY", "one line"),
    ("image-newline", ["--image", "a\n.sif"], "--image", "one line"),
    ("root-newline", ["--root", "/tmp/a\nb"], "--root", "one line"),
    ("sbatch-reserved", ["--sbatch", "time=5"], "--sbatch time=5", "use that instead"),
    ("sbatch-prefix-array", ["--sbatch", "arr=0-3"], "array is set by --max-parallel", "--arr as --array"),
    ("sbatch-prefix-partition", ["--sbatch", "parti=gpu"], "partition is set by --partition", "use that instead"),
    ("sbatch-prefix-underscore", ["--sbatch", "cpus_per=8"], "cpus-per-task is set by --cpus", "prefix"),
    ("sbatch-prefix-one-letter", ["--sbatch", "o=/tmp/x"], "output is set by (submitit's log files)", "prefix"),
    ("sbatch-gpus-total", ["--sbatch", "gpus=2"], "gpus is set by --gpus", "use that instead"),
    ("sbatch-no-value", ["--sbatch", "mailtype"], "--sbatch", "expected KEY=VALUE"),
    ("time-zero", ["--time", "0"], "--time", "expected an integer >= 1"),
    ("time-nan", ["--time", "nan"], "--time", "expected an integer"),
    ("time-huge", ["--time", "99999999999"], "--time", "<= 2147483647"),
    ("mem-nan", ["--mem", "nan"], "--mem", "expected a finite number"),
    ("mem-inf", ["--mem", "inf"], "--mem", "expected a finite number"),
    ("mem-negative", ["--mem", "-4"], "--mem", "expected a finite number"),
    ("task-minutes-inf", ["--task-minutes", "inf"], "--task-minutes", "expected a finite number"),
    ("wait-negative", ["--wait", "-1"], "--wait", "expected a finite number >= 0"),
    ("wait-nan", ["--wait", "nan"], "--wait", "expected a finite number"),
    ("max-array-size-zero", ["--max-array-size", "0"], "--max-array-size", "expected an integer >= 1"),
    ("max-array-size-huge", ["--max-array-size", "99999999"], "--max-array-size", "<= 4000001"),
    ("jobs-zero", ["--jobs", "0"], "--jobs", "expected an integer >= 1"),
    ("gpus-negative", ["--gpus", "-1"], "--gpus", "expected an integer >= 0"),
    ("signal-delay-too-long", ["--time", "1", "--signal-delay", "60"], "--signal-delay", "not shorter than --time"),
    ("both-sizes", ["--trials-per-task", "2", "--task-minutes", "3"], "--task-minutes", "not allowed with"),
    ("debug-without-only", ["--executor", "debug"], "--executor debug", "add --only TRIAL_ID"),
    ("unknown-only-id", ["--only", "feedfacefeedface"], "--only feedfacefeedface", "--dry-run --json"),
    ("unknown-option", ["--partitoin", "gpu"], "--partitoin", "--help"),
    ("override-typo", ["model.widht=2"], "model.widht", "did you mean model.width"),
    ("override-swept", ["train.h_lr=2"], "train.h_lr", "varied by the sweep"),
]


@pytest.mark.parametrize("argv, names, fix", [c[1:] for c in LAUNCH_CASES], ids=[c[0] for c in LAUNCH_CASES])
def test_bad_launch_inputs(argv, names, fix, tmp_path, capsys):
    root = tmp_path / "runs"
    has_root = "--root" in argv
    full = [DEMO, "--executor", "local", *argv] + ([] if has_root else ["--root", str(root)])
    code, err = cli(full, capsys)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert names in err and fix in err, err
    assert tree(root) == [] and tree(tmp_path) == (["runs"] if root.exists() else []), "nothing written"


def test_a_missing_grid_file_is_named(tmp_path, capsys):
    code, err = cli([str(tmp_path / "missing.yaml"), "--root", str(tmp_path / "runs")], capsys)
    assert code == 2 and "missing.yaml: no such grid file" in err and len(err.strip().splitlines()) == 1
    assert tree(tmp_path) == []


def _manifest_with_job(root: Path, executor: str, job_id: str) -> None:
    write_manifest(RunPaths.of("demo", root), {
        "grid": "demo", "stamp": "s1", "executor": executor, "tasks": {"k": ["a"]},
        "arrays": [{"job_id": job_id, "task_keys": ["k"]}], "sbatch": {}, "image": None, "python_command": None,
        "git_sha": "x", "git_dirty": False, "versions": {}, "options": {}})


JOB_CASES = [
    ("local-negative-pid", "local", f"local:{HOST}:-1"),
    ("local-zero-pid", "local", f"local:{HOST}:0"),
    ("local-text-pid", "local", f"local:{HOST}:abc"),
    ("local-no-host", "debug", "local::12"),
    ("slurm-not-a-number", "slurm", "12;rm"),
]


@pytest.mark.parametrize("command", ["status", "cancel"])
@pytest.mark.parametrize("executor, job_id", [c[1:] for c in JOB_CASES], ids=[c[0] for c in JOB_CASES])
def test_malformed_job_ids_are_one_line_errors(command, executor, job_id, tmp_path, capsys):
    _manifest_with_job(tmp_path, executor, job_id)
    before = tree(tmp_path)
    code, err = cli([command, "demo", "--root", str(tmp_path)], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "submissions/s1.json" in err and repr(job_id) in err and "move it away" in err
    assert tree(tmp_path) == before


STATUS_CASES = [
    (["status", "demo", "--interval", "nan"], "--interval", "expected a finite number"),
    (["status", "demo", "--interval", "0"], "--interval", "> 0"),
    (["status", "../etc"], "../etc", "give an existing path"),
    (["cancel", "a/b"], "a/b", "give an existing path"),
    (["cancel", ".hidden"], "GRID", "expected a folder name"),
    (["status", "demo", "--json", "--bogus"], "--bogus", "--help"),
]


@pytest.mark.parametrize("argv, names, fix", STATUS_CASES)
def test_bad_status_and_cancel_inputs(argv, names, fix, tmp_path, capsys):
    code, err = cli([*argv, "--root", str(tmp_path / "runs")], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert names in err and fix in err, err
    assert tree(tmp_path) == []


def test_an_unreadable_manifest_is_named(tmp_path, capsys):
    paths = RunPaths.of("demo", tmp_path)
    paths.submissions_dir.mkdir(parents=True)
    paths.submission("s0").write_text("{not json")
    code, err = cli(["status", "demo", "--root", str(tmp_path)], capsys)
    assert code == 2 and str(paths.submission("s0")) in err and "move it away" in err
    assert os.listdir(paths.submissions_dir) == ["s0.json"]


def test_a_manifest_of_the_wrong_shape_is_named(tmp_path, capsys):
    paths = RunPaths.of("demo", tmp_path)
    paths.submissions_dir.mkdir(parents=True)
    paths.submission("s0").write_text('{"stamp": "s0", "tasks": {}, "arrays": [{"task_keys": ["k"]}]}')
    for command in ("status", "cancel"):
        code, err = cli([command, "demo", "--root", str(tmp_path)], capsys)
        assert code == 2 and "s0.json: malformed submission manifest" in err and len(err.strip().splitlines()) == 1
