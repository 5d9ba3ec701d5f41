"""contracts.cli, the shared edge of every command: OSErrors as one line naming path, errno and fix; --root never
empty; a closed stdout and Ctrl-C without tracebacks; PCSWEEP_DEBUG=1 lets the traceback through."""

from __future__ import annotations

import argparse
import errno

import pytest

from contracts.cli import DEBUG_ENV, os_error_line, root_path, run_command
from contracts.paths import RunFolderError


@pytest.mark.parametrize("code, name, fix", [
    (errno.ENOSPC, "ENOSPC", "free space"), (errno.EROFS, "EROFS", "read-only"), (errno.EACCES, "EACCES", "ls -ld"),
    (errno.ENAMETOOLONG, "ENAMETOOLONG", "shorter"), (errno.ENOTDIR, "ENOTDIR", "is --root a file?"),
    (errno.EISDIR, "EISDIR", "move the folder away"), (errno.EXDEV, "EXDEV", "check the path"),
])
def test_an_os_error_names_the_path_the_errno_and_a_fix(code, name, fix):
    text = os_error_line(OSError(code, "ignored words", "/runs/g/.lock"))
    assert text.startswith("/runs/g/.lock: ") and f"({name}); " in text and fix in text and "\n" not in text


def test_an_hdf5_message_gives_its_file_and_errno():
    e = OSError("Can't close file (file write failed: time = Mon\n, filename = '/r/g/results.h5.tmp.7', "
                "file descriptor = 3, errno = 28, error message = 'No space left on device')")
    assert os_error_line(e).startswith("/r/g/results.h5.tmp.7: No space left on device (ENOSPC); free space")
    assert os_error_line(OSError("odd\nerror")) == ("(no path given): odd error; check the path, its file system "
                                                     "and its permissions, then run again")
    assert " -> /b: " in os_error_line(OSError(errno.EXDEV, "x", "/a", None, "/b"))


@pytest.mark.parametrize("text", ["", "  ", "\t", "a\x00b"])
def test_root_refuses_an_empty_or_nul_path(text):
    with pytest.raises(argparse.ArgumentTypeError, match="empty path|NUL byte"):
        root_path(text)
    assert str(root_path("runs")) == "runs"


def test_run_command_turns_errors_into_exit_codes_and_one_line(capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)

    def raising(exc: BaseException):
        def main() -> int:
            raise exc
        return main

    assert run_command("x", lambda: 3) == 3 and run_command("x", lambda: None) == 0
    assert run_command("x", raising(OSError(errno.EROFS, "ro", "/r"))) == 2
    assert capsys.readouterr().err == ("x: error: /r: Read-only file system (EROFS); that file system is read-only "
                                       "(often a remount after a fault): ask the admins, or use a writable --root\n")
    assert run_command("x", raising(RunFolderError("bad\nroot"))) == 2
    assert capsys.readouterr().err == "x: error: bad root\n"
    assert run_command("x", raising(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "x: interrupted\n"
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(OSError, match="ro"):
        run_command("x", raising(OSError(errno.EROFS, "ro", "/r")))
    monkeypatch.setenv(DEBUG_ENV, "0")
    assert run_command("x", raising(OSError(errno.EROFS, "ro", "/r"))) == 2
