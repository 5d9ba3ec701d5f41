"""`python -m plots`: see `plots.cli`."""

from plots.cli import main

raise SystemExit(main())
