"""`python -m pc`: see pc/cli.py."""

import sys

from contracts.cli import run_command
from pc.cli import main

sys.exit(run_command("pc", main))
