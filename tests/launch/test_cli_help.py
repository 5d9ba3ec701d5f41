"""The command line: --help of every command, one-line errors with exit 2, no jax on import."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launch.cli import cancel_parser, launch_parser, status_parser

CODE = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path = CODE) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    return subprocess.run([sys.executable, "-m", "launch", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


@pytest.mark.parametrize(
    "argv, parser",
    [(["--help"], launch_parser), (["status", "--help"], status_parser), (["cancel", "--help"], cancel_parser)],
)
def test_help_explains_every_option(argv, parser):
    r = run(*argv)
    assert r.returncode == 0, r.stderr
    assert "usage: python -m launch" in r.stdout and "example" in r.stdout
    for action in parser()._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and len(action.help) > 10, f"{action.dest} has no help"
        for flag in action.option_strings:
            assert flag in r.stdout, f"{flag} missing from --help"


def test_dry_run_json_in_a_subprocess():
    r = run("grids/demo.yaml", "train.epochs=1", "--dry-run", "--json", "--executor", "local", "--trials-per-task", "8")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["trials"] == 32 and data["tasks"] == 4 and data["executor"] == "local"


def test_grid_by_name_resolves_to_grids_dir(tmp_path):
    r = run("demo", "--dry-run", "--executor", "local", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "grid demo" in r.stdout and "nothing was submitted" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["grids/missing.yaml", "--dry-run"], "grids/missing.yaml: no such grid file"),
        (["grids/demo.yaml", "train.h_lr=2", "--dry-run"], "train.h_lr is varied by the sweep"),
        (["grids/demo.yaml", "model.widht=2", "--dry-run"], "did you mean model.width"),
        (["grids/demo.yaml", "--executor", "debug", "--dry-run"], "--only TRIAL_ID"),
        (["grids/demo.yaml", "--sbatch", "time=5", "--dry-run"], "time is set by --time"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_argparse_rejects_bad_numbers_with_exit_2():
    r = run("grids/demo.yaml", "--time", "0", "--dry-run")
    assert r.returncode == 2 and "--time" in r.stderr and "expected an integer >= 1" in r.stderr


def test_cli_imports_no_jax_submitit_or_pandas():
    code = ("import sys, launch, launch.cli, launch.dryrun, launch.sbatch, launch.prepare, launch.submit; "
            "print([m for m in ('jax', 'submitit', 'pandas') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CODE, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(CODE)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
