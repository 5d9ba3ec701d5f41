"""Atomic file writes: a reader (or a crash) never sees half a file.

Every file one stage writes and another reads (manifests, failed records, grid.yaml, the summary)
goes to `<name>.tmp.<pid>` in the same folder first and is then `os.replace`d into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def tmp_path(path: Path) -> Path:
    """The temporary sibling a write goes to before `os.replace` (same folder, same file system)."""
    return path.with_name(f"{path.name}.tmp.{os.getpid()}")


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary sibling and `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: Path, obj: Any) -> Path:
    """Write `obj` as indented, key-sorted JSON, atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")
