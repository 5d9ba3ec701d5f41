"""Shared test set-up: CPU JAX, strict warnings for our code, headless matplotlib, SLURM gating."""

from __future__ import annotations

import os
import shutil

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


def slurm_required() -> bool:
    """In CI (CI=true) or with PCSWEEP_REQUIRE_SLURM=1 a missing cluster is a failure, not a skip."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("PCSWEEP_REQUIRE_SLURM") == "1"


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Skip (outside CI) or fail (in CI) unless a SLURM cluster answers `sinfo`."""
    import subprocess

    reason = None
    if shutil.which("sbatch") is None:
        reason = "sbatch not on PATH (start one with: scripts/slurm-dev-cluster up)"
    else:
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
        if r.returncode != 0 or not r.stdout.strip():
            reason = f"sinfo failed ({r.stderr.strip()}); start one with: scripts/slurm-dev-cluster up"
        elif subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, timeout=20).returncode:
            # submitit learns final job states only from sacct (docs/slurm-dev-cluster.md)
            reason = "sacct does not answer (no accounting); start one with: scripts/slurm-dev-cluster up"
    if reason:
        if slurm_required():
            pytest.fail(f"SLURM cluster required in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _scheduler_asked_again():
    """A test whose stand-in scontrol never answers must not make later tests skip SLURM (launch.scheduler_call)."""
    yield
    from launch.scheduler_call import forget_unresponsive

    forget_unresponsive()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
