"""`python -m launch`: see launch/cli.py and docs/launch-cli.md."""

import sys

from launch.cli import main

sys.exit(main())
