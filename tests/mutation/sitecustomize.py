"""Copied to `mutants/sitecustomize.py` by tests/mutation/run.py; never imported outside a mutmut run.

Why: while mutmut learns which tests reach which function (MUTANT_UNDER_TEST=stats, inherited by child
processes), every mutated function calls `mutmut.configuration.config()`, which reads `pyproject.toml` from the
current directory. Tests start `python -m collect`/`launch.task` children with PYTHONPATH=mutants but another
working directory, where that read fails and the child dies. This file is on those children's PYTHONPATH, so it
loads the configuration once from `mutants/` before anything runs. It does nothing without MUTANT_UNDER_TEST.
"""

import os

if os.environ.get("MUTANT_UNDER_TEST"):
    from pathlib import Path

    from mutmut import configuration

    _cwd = os.getcwd()
    try:
        os.chdir(Path(__file__).resolve().parent)
        configuration.config()
    finally:
        os.chdir(_cwd)
