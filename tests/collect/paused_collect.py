"""`python tests/collect/paused_collect.py SECONDS GRID [collect options]`: `python -m collect` that stops for SECONDS
once its rows are copied and before results.h5 is committed, saying PAUSE_LINE on stderr first.

The crash tests (test_crash_safety.py) kill it there, or start a second collect beside it. The pause wraps
`ResultsWriter.commit` in this process only; collect itself has no test hook.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PAUSE_LINE = "paused_collect: pausing before the commit"


def main(argv: list[str]) -> int:
    from collect.cli import main as collect_main
    from collect.results import ResultsWriter

    seconds = float(argv[0])
    commit = ResultsWriter.commit

    def paused_commit(self: ResultsWriter, expected: set[str]) -> None:
        print(PAUSE_LINE, file=sys.stderr, flush=True)
        time.sleep(seconds)
        commit(self, expected)

    ResultsWriter.commit = paused_commit  # type: ignore[method-assign]
    return collect_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
