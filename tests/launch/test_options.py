"""launch.options: which --sbatch keys sbatch could read as an option pcsweep sets itself (any unambiguous prefix
of a long option reaches it, as in every getopt_long program)."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.options import LaunchOptions, check_options, reserved_sbatch_key


@pytest.mark.parametrize("key, reserved", [
    ("array", "array"), ("arr", "array"), ("acc", "account"), ("parti", "partition"), ("cpus_per", "cpus-per-task"),
    ("gpus", "gpus"), ("gpus-per", "gpus-per-node"), ("job", "job-name"), ("sig", "signal"), ("ti", "time"),
])
def test_a_key_sbatch_could_read_as_a_reserved_option_is_found(key, reserved):
    assert reserved_sbatch_key(key) is not None and reserved_sbatch_key(key)[0] == reserved


@pytest.mark.parametrize("key", ["mail-type", "time-min", "gres", "mem-per-cpu", "exclusive", "nodelist", "begin"])
def test_other_sbatch_options_pass(key):
    assert reserved_sbatch_key(key) is None
    check_options(LaunchOptions(root=Path("runs"), sbatch={key: "x"}))
