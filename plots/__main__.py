"""`python -m plots`: see `plots.cli`."""

from contracts.cli import run_command
from plots.cli import main

raise SystemExit(run_command("plots", main))
