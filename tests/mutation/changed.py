"""CI's mutation step: score the targets of tests/mutation/targets.toml that a change touches, within a budget.

Usage: .venv/bin/python tests/mutation/changed.py [--base REF] [--budget-s 480] [--fail-under 85] [--list]

A target is touched when one of its module files or test files differs between the previous main and HEAD.
The previous main is `--base` (or `$PCSWEEP_CI_BASE`, for a CI service that knows it), else `origin/main` when
it is an ancestor of HEAD other than HEAD itself (a branch), else the commit before the newest series of commits:
walking back from HEAD, the first commit more than SERIES_GAP_MIN minutes older than its child (a series is
committed in one sitting; CI runs on a clone of main, where nothing else records what main was before).
Targets run smallest `est_s` first while they fit the budget; the ones that do not are named, never silently
dropped. Exit 1 when a scored target is under `--fail-under`, or when mutmut fails.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run  # tests/mutation/run.py: the scoring driver

SERIES_GAP_MIN = 45.0


def git(*args: str) -> str:
    r = subprocess.run(["git", *args], cwd=run.REPO, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"changed.py: git {' '.join(args)} failed ({r.stderr.strip()}); the changed-module mutants "
                         "need a git checkout with history (or --base REF)")
    return r.stdout


def series_base(commit_times: list[tuple[str, int]], gap_min: float = SERIES_GAP_MIN) -> str | None:
    """The commit before the newest series in first-parent history (newest first, (sha, unix time)); None when
    the whole history is one series (then everything counts as changed)."""
    for (_, child_t), (sha, t) in zip(commit_times, commit_times[1:]):
        if child_t - t > gap_min * 60:
            return sha
    return None


def previous_main(base: str | None) -> tuple[str | None, str]:
    """(commit or None for "the whole history", how it was chosen)."""
    if base:
        return git("rev-parse", "--verify", f"{base}^{{commit}}").strip(), f"given: {base}"
    head = git("rev-parse", "HEAD").strip()
    origin = subprocess.run(["git", "rev-parse", "--verify", "-q", "origin/main^{commit}"], cwd=run.REPO,
                            capture_output=True, text=True).stdout.strip()
    if origin and origin != head and subprocess.run(["git", "merge-base", "--is-ancestor", origin, head],
                                                    cwd=run.REPO).returncode == 0:
        return origin, "origin/main"
    times = [(sha, int(t)) for sha, t in (line.split() for line in
                                          git("log", "--first-parent", "--format=%H %ct", "-n", "2000").splitlines())]
    sha = series_base(times)
    return sha, (f"the commit before the newest series (a gap over {SERIES_GAP_MIN:.0f} min)" if sha
                 else "no earlier series: the whole history")


def module_files(module: str) -> list[str]:
    """The files an entry of a target's `modules` mutates: `grids.sweep` -> grids/sweep.py; a package -> its folder
    (`contracts/shard/`); a function's filter `plots.fig_x.x_rows*` -> plots/fig_x.py; `plots.fig_*` -> a glob."""
    dotted = re.split(r"\.x[_\u01c1]", module, maxsplit=1)[0]  # mutmut names functions x_NAME, methods xǁClassǁNAME
    if (run.REPO / dotted.replace(".", "/")).is_dir():
        return [dotted.replace(".", "/") + "/"]
    return [dotted.rstrip(".*").replace(".", "/") + ("*.py" if dotted.endswith("*") else ".py")]


def touched(target: dict, changed: list[str]) -> bool:
    """Whether a changed file is one of the target's module files (a folder: any file under it) or test files."""
    files = [f for m in target["modules"] for f in module_files(m)] + list(target["tests"])
    return any(fnmatch(c, f + "*" if f.endswith("/") else f) for c in changed for f in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=os.environ.get("PCSWEEP_CI_BASE", ""),
                        help="the previous main (default: $PCSWEEP_CI_BASE, origin/main, or the series rule)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall seconds for all scored targets")
    parser.add_argument("--fail-under", type=float, default=85.0)
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--list", action="store_true", help="name the touched targets and stop")
    args = parser.parse_args(argv)
    targets = run.read_targets()
    base, why = previous_main(args.base or None)
    changed = git("diff", "--name-only", base, "HEAD").splitlines() if base else None
    names = [n for n, t in targets.items() if n != "fixed" and (changed is None or touched(t, changed))]
    print(f"previous main: {base[:12] if base else '(none)'} ({why}); {len(changed) if changed is not None else 'all'} "
          f"file(s) changed; touched targets: {', '.join(names) or 'none'}", flush=True)
    if args.list:
        return 0
    t0, failed, skipped = time.monotonic(), [], []
    for name in sorted(names, key=lambda n: targets[n].get("est_s", 600)):
        left = args.budget_s - (time.monotonic() - t0)
        if targets[name].get("est_s", 600) > left:
            skipped.append(f"{name} (est {targets[name].get('est_s', 600)} s, {left:.0f} s left)")
            continue
        print(f"\n--- mutation target {name} ---", flush=True)
        if run.main(["--target", name, "--max-children", str(args.max_children),
                     "--fail-under", str(args.fail_under)]):
            failed.append(name)
    if skipped:
        print(f"\nover the {args.budget_s:.0f} s budget, not scored here (run them with tests/mutation/run.py "
              f"--target NAME): {'; '.join(skipped)}")
    if failed:
        print(f"mutation targets under {args.fail_under:g}% or failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
