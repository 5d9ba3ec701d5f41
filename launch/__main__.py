"""`python -m launch`: see launch/cli.py and docs/launch-cli.md."""

import sys

from contracts.cli import run_command
from launch.cli import main

sys.exit(run_command("launch", main))
