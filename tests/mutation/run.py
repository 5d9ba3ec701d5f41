"""`make mutation`: run mutmut 3 on the modules of `[tool.mutmut] only_mutate` and print a score per module.

Usage: .venv/bin/python tests/mutation/run.py [--modules launch.status,collect.tally] [--tests FILES]
       [--target NAME] [--max-children 1] [--fail-under 85] [--diffs] [--report-only]

mutmut copies the packages into `mutants/`, runs the selected fast-tier tests once to learn which tests reach
which function, then runs, for each mutant, only those tests (`-x`: the first failure kills it). Results are kept
in `mutants/` and reused: a second run retries only mutants of functions that changed, unless `--modules` names
them (then they are all rerun). `--tests` replaces the test selection of `[tool.mutmut]` (e.g. the few fast files
CI runs): mutmut then runs in a copy of the repository, `build/mutation-<hash of the selection>/`, so the
results of the full run in `mutants/` and of other selections stay as they are. The score of a module is
(killed + timeout) / mutants; "no tests" (no selected test reaches the function) counts as not killed.
Exit 1 when mutmut fails or a module scores under `--fail-under`.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MUTMUT = Path(sys.executable).parent / "mutmut"
TARGETS = Path(__file__).with_name("targets.toml")  # named module + test selections (CI scores them)
BUILD = REPO / "build"  # a run with --tests works in build/mutation-<hash of the selection>/, a repository copy
SELECTION = re.compile(r"^pytest_add_cli_args_test_selection = \[[^\]]*\]", re.MULTILINE)
# mutmut's exit codes (mutmut/stats.py), folded into the few verdicts a score needs
VERDICT = {1: "killed", 3: "killed", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout",
           0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked"}


@dataclass
class ModuleScore:
    """One mutated module's mutants by verdict, and the names of those that were not killed."""

    module: str
    verdicts: Counter = field(default_factory=Counter)
    survivors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for v, n in self.verdicts.items() if v not in ("skipped", "not checked"))

    @property
    def killed(self) -> int:
        return self.verdicts["killed"] + self.verdicts["timeout"]

    @property
    def percent(self) -> float:
        return 100.0 * self.killed / self.total if self.total else 100.0


def read_targets(path: Path = TARGETS) -> dict[str, dict]:
    """targets.toml: name -> {modules, tests, est_s}; each target's test files must exist."""
    targets = tomllib.loads(path.read_text())
    for name, target in targets.items():
        if not target.get("modules") or not target.get("tests"):
            raise SystemExit(f"{path}: target [{name}] needs `modules` and `tests`")
    return targets


def module_of(meta: Path, mutants: Path) -> str:
    """`mutants/contracts/shard/reader.py.meta` -> `contracts.shard.reader` (a package's `__init__` -> the package)."""
    parts = list(meta.relative_to(mutants).with_suffix("").with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def patterns(wanted: list[str]) -> list[str]:
    """mutmut's name filters: a dotted module or package `m` -> `m.*`; an entry with `*` is a filter already
    (`plots.fig_lr_scaling.x_panel_rows*`: one function's mutants, as mutmut names them)."""
    return [w if "*" in w else f"{w}.*" for w in wanted]


def selected(name: str, wanted: list[str]) -> bool:
    return not wanted or any(fnmatch.fnmatch(name, p) for p in patterns(wanted))


def scores(mutants: Path, wanted: list[str]) -> list[ModuleScore]:
    """Per-module verdicts read from mutmut's `mutants/**/*.py.meta` files."""
    out = []
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = module_of(meta, mutants)
        codes = {k: v for k, v in json.loads(meta.read_text())["exit_code_by_key"].items() if selected(k, wanted)}
        if not codes:
            continue
        score = ModuleScore(module)
        for name, code in sorted(codes.items()):
            verdict = VERDICT.get(code, "suspicious")
            score.verdicts[verdict] += 1
            if verdict in ("survived", "no tests", "suspicious"):
                score.survivors.append(f"{name} ({verdict})")
        out.append(score)
    return out


def render(results: list[ModuleScore]) -> str:
    """A markdown table (it goes into tests/README.md as it is), then the survivors."""
    lines = ["| module | killed / mutants | score | survived | no tests | timeout |", "|---|---|---|---|---|---|"]
    for s in results:
        lines.append(f"| `{s.module}` | {s.killed} / {s.total} | {s.percent:.1f}% | {s.verdicts['survived']} "
                     f"| {s.verdicts['no tests']} | {s.verdicts['timeout']} |")
    killed, total = sum(s.killed for s in results), sum(s.total for s in results)
    lines.append(f"| all | {killed} / {total} | {100.0 * killed / max(total, 1):.1f}% | | | |")
    for s in results:
        if s.survivors:
            lines += ["", f"{s.module}: {len(s.survivors)} not killed"] + [f"  {name}" for name in s.survivors]
    return "\n".join(lines)


def copy_root(tests: list[str]) -> Path:
    """One copy per test selection, so that runs with different selections keep their results apart."""
    return BUILD / f"mutation-{hashlib.sha256(json.dumps(tests).encode()).hexdigest()[:8]}"


def prepare_copy(tests: list[str]) -> Path:
    """build/mutation-<hash>/: the packages, tests and files mutmut copies, with `tests` as the test selection."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    missing = [t for t in tests if not (REPO / t).exists()]
    if missing:
        raise SystemExit(f"--tests: {missing[0]} does not exist (paths are relative to {REPO})")
    copy = copy_root(tests)
    copy.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in [*config["source_paths"], *config.get("also_copy", []), "tests"]:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=ignore, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copy2(source, copy / name)
    text = (REPO / "pyproject.toml").read_text()
    if not SELECTION.search(text):
        raise SystemExit("pyproject.toml [tool.mutmut] has no pytest_add_cli_args_test_selection line to replace")
    (copy / "pyproject.toml").write_text(SELECTION.sub(f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
                                                       text))
    return copy


def run_mutmut(root: Path, wanted: list[str], max_children: int) -> int:
    """`mutmut run` in `root`, its output in mutants/make-mutation.log (it draws spinners)."""
    mutants = root / "mutants"
    # mutmut regenerates a module's mutants only when its source is newer than the copy in mutants/: a module newly
    # added to only_mutate keeps its old unmutated copy (and "nothing matches"), so a changed list starts afresh
    only_mutate = json.dumps(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"])
    marker = mutants / ".only_mutate.json"
    if mutants.exists() and (not marker.exists() or marker.read_text() != only_mutate):
        shutil.rmtree(mutants)
    mutants.mkdir(exist_ok=True)
    marker.write_text(only_mutate)
    shutil.copy2(Path(__file__).with_name("sitecustomize.py"), mutants / "sitecustomize.py")
    log_path = mutants / "make-mutation.log"
    cmd = [str(MUTMUT), "run", "--max-children", str(max_children), *patterns(wanted)]
    print("$", " ".join(cmd), f"(in {root}; output: {log_path})", flush=True)
    with log_path.open("w") as log:
        rc = subprocess.run(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
        print(f"mutmut run failed (exit {rc}); whole output in {log_path}", file=sys.stderr)
    return rc


def print_diffs(root: Path, results: list[ModuleScore]) -> None:
    for s in results:
        for entry in s.survivors:
            name = entry.split(" ", 1)[0]
            print(subprocess.run([str(MUTMUT), "show", name], cwd=root, capture_output=True, text=True).stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", default="", help="comma-separated dotted modules or packages (default: all "
                        "of [tool.mutmut] only_mutate), e.g. launch.status,contracts.shard; an entry with * is "
                        "a mutmut name filter, e.g. plots.fig_lr_scaling.x_panel_rows*")
    parser.add_argument("--tests", default="", help="comma-separated test files or folders replacing the "
                        "[tool.mutmut] selection (runs in build/mutation-<hash>/)")
    parser.add_argument("--target", default="", help="a named selection of tests/mutation/targets.toml (its "
                        "modules and tests), e.g. fixed")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutants (2 shared cores: 1 or 2)")
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 if a module scores under this %%")
    parser.add_argument("--diffs", action="store_true", help="print the diff of every mutant not killed")
    parser.add_argument("--report-only", action="store_true", help="print the last results, run nothing")
    args = parser.parse_args(argv)
    wanted = [m.strip() for m in args.modules.split(",") if m.strip()]
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    if args.target:
        targets = read_targets()
        if args.target not in targets:
            parser.error(f"--target {args.target}: not in {TARGETS.name} (it has: {', '.join(targets)})")
        wanted, tests = targets[args.target]["modules"], targets[args.target]["tests"]
    t0 = time.monotonic()
    root = copy_root(tests) if tests and args.report_only else (prepare_copy(tests) if tests else REPO)
    if not args.report_only and run_mutmut(root, wanted, args.max_children):
        return 1
    results = scores(root / "mutants", wanted)
    if not results:
        print("no mutation results: run without --report-only, or check --modules", file=sys.stderr)
        return 1
    print(render(results))
    if args.diffs:
        print_diffs(root, results)
    if not args.report_only:
        print(f"\nmutation run took {time.monotonic() - t0:.0f} s")
    low = [s.module for s in results if s.percent < args.fail_under]
    if low:
        print(f"under {args.fail_under:g}% killed: {', '.join(low)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
