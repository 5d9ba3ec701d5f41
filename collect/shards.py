"""The shards of a run folder: which are there to read, and setting bad ones aside into `shards/bad/`.

`shards/*.h5` are task outputs; in-flight writes (`*.tmp.*`) and `shards/bad/` are never read. A shard
that fails validation is moved to `shards/bad/` with a `<name>.reason.txt` beside it; an earlier file
of the same name there is never overwritten (the newcomer gets a numbered name).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from contracts.paths import RunPaths

REASON_SUFFIX = ".reason.txt"


def now() -> str:
    """UTC now, ISO seconds (the stamps collect writes)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def list_shards(paths: RunPaths) -> dict[str, tuple[int, int]]:
    """name -> (size, mtime_ns) of every `shards/*.h5`; in-flight `*.tmp.*` writes and `bad/` are skipped."""
    out: dict[str, tuple[int, int]] = {}
    if not paths.shards_dir.is_dir():
        return out
    with os.scandir(paths.shards_dir) as entries:
        for e in entries:
            if e.name.endswith(".h5") and ".tmp." not in e.name and e.is_file():
                st = e.stat()
                out[e.name] = (st.st_size, st.st_mtime_ns)
    return out


def _free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/<stem>.<k>.h5` for the first k >= 1 whose file and reason are both free."""
    stem = name[: -len(".h5")] if name.endswith(".h5") else name
    candidate, k = folder / name, 0
    while candidate.exists() or candidate.with_name(candidate.name + REASON_SUFFIX).exists():
        k += 1
        candidate = folder / f"{stem}.{k}.h5"
    return candidate


def set_aside(paths: RunPaths, path: Path, reason: str) -> str:
    """Move a bad shard to `shards/bad/` with `<name>.reason.txt` next to it; return its name there.

    An earlier file of that name in `shards/bad/` stays: the shard gets `<stem>.<k>.h5` instead
    (`os.link` refuses to replace an existing file, so two collects cannot overwrite each other).
    """
    paths.bad_shards_dir.mkdir(parents=True, exist_ok=True)
    while True:
        dest = _free_name(paths.bad_shards_dir, path.name)
        try:
            os.link(path, dest)
        except FileExistsError:
            continue  # taken between the check and the link: pick the next name
        except FileNotFoundError:
            return dest.name  # already gone (deleted or moved by someone else): nothing to set aside
        except OSError:  # a file system without hard links
            if dest.exists():
                continue
            try:
                os.replace(path, dest)
            except FileNotFoundError:
                return dest.name
        break
    path.unlink(missing_ok=True)
    dest.with_name(dest.name + REASON_SUFFIX).write_text(
        f"{reason}\nmoved here from {path} by collect at {now()}; fix or delete it, then relaunch the task\n")
    return dest.name


def bad_shards(paths: RunPaths) -> list[tuple[str, str]]:
    """(file, reason) for every shard in `shards/bad/`, reasons read from their `.reason.txt`."""
    if not paths.bad_shards_dir.is_dir():
        return []
    out = []
    for p in sorted(paths.bad_shards_dir.glob("*.h5")):
        note = p.with_name(p.name + REASON_SUFFIX)
        try:
            lines = note.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        out.append((p.name, lines[0] if lines else "no reason recorded"))
    return out
