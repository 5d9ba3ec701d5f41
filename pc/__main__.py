"""`python -m pc`: see pc/cli.py."""

import sys

from pc.cli import main

sys.exit(main())
