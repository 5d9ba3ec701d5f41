"""What every `python -m ...` command of pcsweep shares at its edge: `--root` as a checked path, operating-system
errors as one line, and a closed stdout.

A command's `__main__` calls `run_command(prog, main)`. Inside, each command still turns its own errors (a bad grid
file, a held lock) into one line; what reaches this layer is what no command can foresee on a shared cluster file
system: a full disk, a read-only remount, a permission, a name too long, a file where a folder should be, a reader
that closed the pipe (`status | head -1`). Each becomes one line naming the path, what the system said and what to
do, with exit status 2 (130 for Ctrl-C); `PCSWEEP_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

from contracts.paths import RunFolderError

DEBUG_ENV = "PCSWEEP_DEBUG"
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

# errno -> what to do; the system's own words (os.strerror) come first in the line
_FIXES = {
    errno.ENOSPC: "free space on that file system, or point --root at another, and run again (finished work is kept)",
    errno.EDQUOT: "you are over your disk quota there: free space or point --root elsewhere, and run again",
    errno.EROFS: "that file system is read-only (often a remount after a fault): ask the admins, or use a writable "
                 "--root",
    errno.EACCES: "you may not use that path: check its owner and permissions (ls -ld), or use another --root",
    errno.EPERM: "you may not use that path: check its owner and permissions (ls -ld), or use another --root",
    errno.ENAMETOOLONG: "a name in that path is too long for the file system: use a shorter --root or grid name",
    errno.ENOTDIR: "a file stands where a folder is expected (is --root a file?): move it away or use another "
                   "--root",
    errno.EISDIR: "a folder stands where a file is expected: move the folder away and run again",
    errno.ENOENT: "it does not exist (deleted meanwhile?): check the path and run again",
    errno.EIO: "the storage reported an I/O error: check the file system with the admins, then run again",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, `<prog>: error: <what>; see <prog> --help`, exit 2 (no usage
    block: a script reading stderr, or a person in a scrolling job log, gets the reason in one line)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {' '.join(message.split())}; see {self.prog} --help\n")


def debug() -> bool:
    """Whether `$PCSWEEP_DEBUG` asks for tracebacks instead of one-line errors."""
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def os_error_line(error: OSError) -> str:
    """`<path>: <strerror> (<ERRNO>); <what to do>` for an OSError (paths of both ends for a rename)."""
    where = " -> ".join(str(p) for p in (error.filename, error.filename2) if p is not None)
    if not where:  # h5py: the HDF5 message holds the file name and the errno in its text
        found = re.search(r"filename = '([^']+)'", str(error))
        where = found.group(1) if found else "(no path given)"
    code = error.errno
    if code is None:
        found = re.search(r"errno = (\d+)", str(error))
        code = int(found.group(1)) if found else None
    meaning = os.strerror(code) if code else " ".join((error.strerror or str(error)).split())
    name = errno.errorcode.get(code, "") if code else ""
    fix = _FIXES.get(code, "check the path, its file system and its permissions, then run again")
    return f"{where}: {meaning}{f' ({name})' if name else ''}; {fix}"


@contextlib.contextmanager
def errors_name(path: str | os.PathLike) -> Iterator[None]:
    """Inside the block, an OSError that names no file (a write on a raw descriptor: a full disk, a read-only
    remount) is raised again naming `path`, so that the one-line error says which file could not be written."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e


def root_path(text: str) -> Path:
    """argparse type of `--root`: an empty value is refused (Path('') would silently mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("got an empty path (it would mean the current folder); give the folder "
                                         "that holds the run folders, e.g. --root runs")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"got {text!r}, which holds a NUL byte; give a plain path")
    return Path(text)


def writable_file_target(path: str | os.PathLike, flag: str) -> str | None:
    """Why a file cannot be written at `path`, or None: checked before long work, so that a bad `--out` does not
    throw away an hour of training at the end. The first existing ancestor must be a folder this user may write
    to on a writable file system; `path` itself, if it exists, must be a file."""
    target = Path(path)
    if not str(path).strip():
        return f"{flag}: got an empty path; give a file name, e.g. {flag} trial.h5"
    if target.is_dir():
        return f"{flag} {target}: is a folder; give a file name inside it, e.g. {target / 'trial.h5'}"
    folder = target.parent
    while not folder.exists():
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir():
        return f"{flag} {target}: {folder} is a file, not a folder; choose another path"
    if not os.access(folder, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        why = "is on a read-only file system" if read_only else "is not writable by this user"
        return f"{flag} {target}: {folder} {why}; choose another path"
    return None


def _close_stdout_quietly() -> None:
    """After a BrokenPipeError: point stdout at /dev/null so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_command(prog: str, main: Callable[[], int | None]) -> int:
    """Run a command's `main` and return its exit status; the errors above become one line on stderr."""
    try:
        return main() or 0
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say, and no traceback
        _close_stdout_quietly()
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RunFolderError as e:  # e.g. an empty $PCSWEEP_ROOT, found wherever the default root is first needed
        if debug():
            raise
        print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        if debug():
            raise
        print(f"{prog}: error: {os_error_line(e)}", file=sys.stderr)
        return EXIT_ERROR
