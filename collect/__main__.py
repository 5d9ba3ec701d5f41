"""`python -m collect GRID [--root DIR] [--rebuild] [--strict] [--json] [--no-progress]`."""

import sys

from collect.cli import main

sys.exit(main())
