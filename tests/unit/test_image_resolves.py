"""The image's `%post` requirement set resolves on PyPI for the image's platform (Linux x86_64, CPython 3.11), with
constraints-cuda.txt: the most likely failure of an Apptainer build on a cluster, caught here instead.

The image cannot be built on these machines (no apptainer binary). pip resolves the exact `pip install` of `%post`
with `--dry-run --ignore-installed --report` for the image's platform tags, reading package metadata from PyPI, not
installing anything. Slow (about 15 s) and network-dependent: it needs pypi.org and is skipped, saying so, when
PyPI cannot be reached. The machine's own pip configuration (a local mirror, global constraints) is ignored
(`--isolated`), as the image build has none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from test_pins import CONSTRAINTS, DEF_FILE, def_recipe, pip_install_args, post_commands

pytestmark = pytest.mark.slow

# python:3.11-slim is Debian bookworm, glibc 2.36: pip takes --platform tags literally, so list every manylinux
# tag a wheel may carry up to it (nvidia-cublas-cu12 is manylinux_2_27 only, for one)
PLATFORMS = ["manylinux2014_x86_64", *(f"manylinux_2_{v}_x86_64" for v in range(17, 37))]


def _pypi_reachable() -> str | None:
    try:
        with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=15) as r:
            return None if r.status == 200 else f"pypi.org answered {r.status}"
    except OSError as e:
        return f"pypi.org cannot be reached ({e})"


def _post_install() -> tuple[list[str], list[str]]:
    """(requirements, -c files) of the one `pip install` with requirements in %post."""
    lines = [line for line in def_recipe(DEF_FILE).install if not line.rstrip().endswith(">> /tests.sh")]
    installs = [a for a in (pip_install_args(c) for c in post_commands(lines)) if a is not None and a.requirements]
    assert len(installs) == 1, f"{DEF_FILE}: expected one pip install with requirements in %post"
    return list(installs[0].requirements), list(installs[0].constraints)


def test_the_post_requirements_resolve_for_the_image_platform(tmp_path):
    if why := _pypi_reachable():
        pytest.skip(why)
    requirements, constraint_files = _post_install()
    assert [Path(c).name for c in constraint_files] == [CONSTRAINTS.name]  # %post uses /opt/constraints-cuda.txt
    report = tmp_path / "report.json"
    argv = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--ignore-installed", "--quiet",
            "--report", str(report), "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
            "--abi", "cp311", *(f"--platform={p}" for p in PLATFORMS), "-c", str(CONSTRAINTS), *requirements]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_CONSTRAINT": "", "PIP_FIND_LINKS": ""})
    assert r.returncode == 0, "pip cannot resolve %post for the image:\n" + r.stderr[-3000:]
    installed = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
                 for item in json.loads(report.read_text())["install"]}
    for req in requirements:  # every pin of %post is what gets installed
        name, _, version = req.partition("==")
        assert installed.get(name.split("[")[0].lower()) == version, (req, installed.get(name.split("[")[0]))
    pinned = dict(line.split("==") for line in CONSTRAINTS.read_text().splitlines()
                  if line.strip() and not line.startswith("#"))
    assert "jax-cuda12-plugin" in installed and "nvidia-cublas-cu12" in installed  # the CUDA path is in the set
    for name, version in pinned.items():  # and each CUDA wheel it pulls in is at constraints-cuda.txt's version
        if name in installed:
            assert installed[name] == version, (name, installed[name], version)
