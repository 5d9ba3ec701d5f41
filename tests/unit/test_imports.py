"""Login-node stages stay light (docs/design.md section 1): importing them must not load jax."""

import subprocess
import sys

import pytest

LIGHT_MODULES = [
    "launch",
    "collect",
    "plots",
    "pc",
    "grids",
    "contracts.shard",
    "contracts.config",
    "contracts.paths",
    "contracts.labels",
    "contracts.failures",
    "contracts.atomic",
    "contracts.lock",
]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_import_loads_no_jax(module):
    code = f"import sys, {module}; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"importing {module} loaded jax"


def test_every_subpackage_imports():
    for module in ("launch", "collect", "plots", "pc", "grids", "contracts"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
