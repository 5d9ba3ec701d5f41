"""Hand-made mutants: apply each patch of a folder to a copy of the repository and run the fast tier against it.

Usage: .venv/bin/python tests/mutation/handmade.py PATCH_DIR [--only 01,07] [--quick-only]

Each `*.diff` in PATCH_DIR is one plausible bug (a `git diff` against the current tree). The copy lives in
build/handmade/. A mutant is first run against the tests of the targets it touches (tests/mutation/targets.toml),
`-x`; one that survives them runs against the whole fast tier (the `[tool.mutmut]` pytest arguments and test
selection), so "killed" always means "the fast tier fails". Prints one row per mutant (killed by which test, or
survived) and the share killed. A patch that does not apply is reported and left out of the share.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import changed  # tests/mutation/changed.py: which targets a file touches
import run  # tests/mutation/run.py: targets and paths

COPY = run.BUILD / "handmade"
FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.M)


def fresh_copy() -> Path:
    """build/handmade/: the packages, tests and the files the fast tier reads (as mutmut copies them)."""
    config = tomllib.loads((run.REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    shutil.rmtree(COPY, ignore_errors=True)
    COPY.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in [*config["source_paths"], *config.get("also_copy", []), "tests", "pyproject.toml", "bench"]:
        source = run.REPO / name
        if source.is_dir():
            shutil.copytree(source, COPY / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, COPY / name)
    return COPY


def git_apply(patch: Path, *flags: str) -> int:
    """`git apply` in the copy as a plain patch tool: the copy sits inside the repository's checkout, where git
    would apply paths relative to the checkout and skip the copy's files without a word."""
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(COPY.parent)}
    return subprocess.run(["git", "apply", *flags, str(patch.resolve())], cwd=COPY, env=env,
                          capture_output=True).returncode


def patched_files(diff: str) -> list[str]:
    return re.findall(r"^\+\+\+ b/(\S+)", diff, re.M)


def pytest(tests: list[str], extra: list[str], timeout_s: float) -> tuple[bool, str]:
    """(failed, first failing test) of `pytest -x` over `tests` in the copy."""
    cmd = [sys.executable, "-m", "pytest", *extra, "-x", "-q", "-p", "no:cacheprovider", "-rfE", *tests]
    try:
        r = subprocess.run(cmd, cwd=COPY, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return True, f"(timeout after {timeout_s:.0f} s)"
    out = r.stdout + r.stderr
    if r.returncode in (0, 5):
        return False, ""
    hit = FAILED.search(out)
    return True, hit.group(1) if hit else f"(pytest exit {r.returncode})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("patch_dir", type=Path)
    parser.add_argument("--only", default="", help="comma-separated name prefixes of the patches to run")
    parser.add_argument("--quick-only", action="store_true", help="only the targets' tests, not the whole fast tier")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per pytest run")
    args = parser.parse_args(argv)
    config = tomllib.loads((run.REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    tier_args, tier_tests = config["pytest_add_cli_args"], config["pytest_add_cli_args_test_selection"]
    tier_args = [a for a in tier_args if a not in ("-x", "-q", "-p", "no:cacheprovider")]
    targets = run.read_targets()
    patches = sorted(args.patch_dir.glob("*.diff"))
    if args.only:
        patches = [p for p in patches if any(p.name.startswith(o) for o in args.only.split(","))]
    if not patches:
        raise SystemExit(f"{args.patch_dir}: no *.diff files")
    fresh_copy()
    # a kill counts only if the same tests pass on the unmutated copy: check that first
    touched = [tg for p in patches for tg in targets.values() if changed.touched(tg, patched_files(p.read_text()))]
    baseline = sorted({t for tg in touched for t in tg["tests"]}) + ([] if args.quick_only else tier_tests)
    failed, test = pytest(baseline, tier_args, args.timeout_s)
    if failed:
        raise SystemExit(f"handmade.py: the unmutated copy fails {test}; fix the tree before scoring mutants")
    print(f"baseline: the unmutated copy passes {len(baseline)} test path(s)", flush=True)
    rows, killed, total = [], 0, 0
    for patch in patches:
        diff = patch.read_text()
        files = patched_files(diff)
        before = {f: (COPY / f).read_bytes() for f in files}
        if git_apply(patch, "--check") or git_apply(patch) or all((COPY / f).read_bytes() == before[f] for f in files):
            rows.append(f"| {patch.name} | does not apply | |")
            continue
        t0 = time.monotonic()
        try:
            quick = sorted({t for tg in targets.values() if changed.touched(tg, files) for t in tg["tests"]})
            failed, test = pytest(quick, tier_args, args.timeout_s) if quick else (False, "")
            tier = "targets"
            if not failed and not args.quick_only:
                failed, test = pytest(tier_tests, tier_args, args.timeout_s)
                tier = "fast tier"
        finally:
            if git_apply(patch, "-R") or any((COPY / f).read_bytes() != before[f] for f in files):
                raise SystemExit(f"handmade.py: {patch.name} could not be taken out of {COPY}; start again")
        total += 1
        killed += failed
        verdict = f"killed ({tier}): {test}" if failed else f"SURVIVED ({tier})"
        rows.append(f"| {patch.name} | {verdict} | {time.monotonic() - t0:.0f} s |")
        print(rows[-1], flush=True)
    print("\n| mutant | verdict | wall |\n|---|---|---|\n" + "\n".join(rows))
    print(f"\nkilled {killed} / {total} ({100.0 * killed / max(total, 1):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
