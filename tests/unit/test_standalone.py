"""The repository stands alone: no tracked file cites material outside it.

Paper facts live in docs/paper-notes.md (quirks as `docs/paper-notes.md Qn`, pcx traps as
`docs/paper-notes.md trap (x)`, sections as `docs/paper-notes.md section N`) and the stage contracts in
docs/design.md. This test reads every tracked text file (`git ls-files`; binary files skipped) and fails,
naming file:line, on a citation a reader with only the repository cannot follow: a path into a `shared`
notes folder, `DESIGN.md` (the file is docs/design.md), `quirk Qn` or `notes section N` / `notes N.N`
without the in-repo target, and a bare quirk id or pcx trap in a file that never names
docs/paper-notes.md. The checker also runs on made-up lines, so each rule is shown to fire.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = "sha" + "red"  # the outside notes folder, spelled so that grep does not flag this file
THIS = Path(__file__).resolve().relative_to(REPO).as_posix()
NOTES_DOC = "paper-notes.md"  # a file naming it (docs/paper-notes.md, or paper-notes.md from docs/) may use bare ids


class Rule(NamedTuple):
    """One forbidden citation: a pattern and the fix to print."""

    pattern: re.Pattern[str]
    fix: str


LINE_RULES = [
    # the pattern is assembled from pieces so that this file does not itself hold the text it forbids
    Rule(re.compile(r"\.\./" + SHARED + r"\b|\b" + SHARED + r"/notes\b"),
         "cites notes outside the repository; cite docs/paper-notes.md"),
    Rule(re.compile(r"\bDESIGN\.md\b"), "cites DESIGN.md; the file is docs/design.md"),
    Rule(re.compile(r"\bquirk (Q\d+)"), "write `docs/paper-notes.md Qn` instead of `quirk Qn`"),
    Rule(
        re.compile(r"(?<![\w-])notes(?:,? section\b| \d|/)"),
        "cites `notes ...` outside the repository; cite `docs/paper-notes.md section N`",
    ),
]
# Allowed only in a file that names docs/paper-notes.md somewhere, so the reader knows where the id lives.
BARE_ID = Rule(re.compile(r"\btrap \([a-z]\)|(?<![\w.-])Q(?:[1-9]|[12]\d)\b"), "names a paper quirk or pcx trap")


def citation_problems(name: str, text: str) -> list[str]:
    """`name:line: fix: line text` for every forbidden citation in one file's text."""
    problems = []
    names_notes = NOTES_DOC in text
    for number, line in enumerate(text.splitlines(), start=1):
        for rule in LINE_RULES:
            if rule.pattern.search(line):
                problems.append(f"{name}:{number}: {rule.fix}: {line.strip()[:100]}")
        if not names_notes and BARE_ID.pattern.search(line):
            problems.append(
                f"{name}:{number}: {BARE_ID.fix} but the file never names docs/paper-notes.md: {line.strip()[:100]}"
            )
    return problems


def tracked_text_files() -> list[tuple[str, str]]:
    """(path, text) of every tracked file that exists and is text (no NUL byte, valid UTF-8)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    files = []
    for rel in filter(None, listed.decode().split("\0")):
        path = REPO / rel
        if rel == THIS or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            files.append((rel, data.decode("utf-8")))
        except UnicodeDecodeError:
            continue
    return files


def test_no_tracked_file_cites_anything_outside_the_repository():
    files = tracked_text_files()
    assert len(files) > 50, "git ls-files found too few files: is this a git checkout?"
    problems = [p for rel, text in files for p in citation_problems(rel, text)]
    assert not problems, f"{len(problems)} citations point outside the repository:\n" + "\n".join(problems)


def test_the_paper_notes_define_every_quirk_and_trap_they_are_cited_for():
    notes = (REPO / "docs" / NOTES_DOC).read_text()
    for n in range(1, 30):
        assert re.search(rf"^\| Q{n} \|", notes, re.M), f"docs/paper-notes.md lacks the row for Q{n}"
    for trap in "ab":
        assert f"**Trap ({trap}):" in notes, f"docs/paper-notes.md lacks trap ({trap})"
    cited = {int(m) for _, text in tracked_text_files() for m in re.findall(r"paper-notes\.md Q(\d+)", text)}
    assert cited <= set(range(1, 30)), f"cited quirk ids that docs/paper-notes.md does not define: {sorted(cited)}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"Details: `../{SHARED}/notes/section-5.1.md` section 0", "outside the repository"),
        (f"# submitit needs sacct ({SHARED}/notes/slurm-ci.md)", "outside the repository"),
        ('"""Grid files (DESIGN.md section 3)."""', "the file is docs/design.md"),
        ("# AdamW has no momentum (quirk Q16).", "instead of `quirk Qn`"),
        ("the algorithm of notes section 3", "cite `docs/paper-notes.md section N`"),
        ("n_samples: 1024  # the lost data config; notes 2.3", "cite `docs/paper-notes.md section N`"),
        ("(see notes/batching.md)", "cite `docs/paper-notes.md section N`"),
        ("scale_by=B (trap (a))", "never names docs/paper-notes.md"),
        ("BP activation on the logits (Q13)", "never names docs/paper-notes.md"),
    ],
)
def test_each_rule_fires(line, expected):
    problems = citation_problems("x.md", f"first line\n{line}\n")
    assert problems and all(p.startswith("x.md:2: ") for p in problems), problems
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "line",
    [
        "See docs/paper-notes.md Q16 and docs/paper-notes.md trap (b).",
        "Reasons: docs/paper-notes.md section 2.3; contracts: docs/design.md section 5.",
        "[paper notes](paper-notes.md) section 3",
        "QQ1, Q100, HQ2 and version 0.Q1 are no quirk ids",
    ],
)
def test_in_repo_citations_pass(line):
    assert citation_problems("x.md", line) == []


def test_a_bare_id_passes_in_a_file_that_names_the_notes():
    assert citation_problems("x.md", "BP activation (Q13)\nsee docs/paper-notes.md\n") == []
