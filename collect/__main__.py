"""`python -m collect GRID [--root DIR] [--rebuild] [--strict] [--json] [--no-progress]`."""

import sys

from collect.cli import main
from contracts.cli import run_command

sys.exit(run_command("collect", main))
