"""Login-node stages stay light (DESIGN.md section 1): importing them must not load jax."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["launch", "collect", "plots", "pc", "contracts.shard", "contracts.config", "contracts.paths"])
def test_import_loads_no_jax(module):
    code = f"import sys, {module}; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"importing {module} loaded jax"


def test_every_subpackage_imports():
    for module in ("launch", "collect", "plots", "pc"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
