"""Every call to a SLURM command (scontrol, squeue, sacct) goes through `run_scheduler`: bounded, and announced.

A controller that hangs makes each command wait for its timeout. Unannounced, a dry run sat silent for 40 s. Here
a call that has not answered after `ANNOUNCE_AFTER_S` says on stderr what it waits for and for how long at most;
a timeout says what is done without the answer; and once one command of this process has timed out, later calls
do not wait again (the controller is taken as unresponsive for the rest of the command).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

ANNOUNCE_AFTER_S = 2.0
_UNRESPONSIVE: list[str] = []  # the command that timed out in this process, if any


def run_scheduler(argv: list[str], timeout_s: float, without: str) -> subprocess.CompletedProcess | None:
    """Run a scheduler command with a bound; None when it is missing, cannot start or does not answer in time.

    `without`: what the caller does if there is no answer (said on stderr after a timeout), e.g. "preflight
    skipped".
    """
    if shutil.which(argv[0]) is None:
        return None
    if _UNRESPONSIVE:
        return None
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError:
        return None
    start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=min(ANNOUNCE_AFTER_S, timeout_s))
    except subprocess.TimeoutExpired:
        print(f"launch: waiting for `{' '.join(argv)}` (SLURM is slow to answer; at most {timeout_s:.0f} s)",
              file=sys.stderr, flush=True)
        try:
            out, err = proc.communicate(timeout=max(0.0, timeout_s - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            _UNRESPONSIVE.append(argv[0])
            print(f"launch: `{' '.join(argv)}` did not answer in {timeout_s:.0f} s: {without}; SLURM commands are "
                  "not asked again by this command", file=sys.stderr, flush=True)
            return None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def forget_unresponsive() -> None:
    """Ask the scheduler again from now on (tests; a long-lived process such as `status --watch`)."""
    _UNRESPONSIVE.clear()
