"""First contact on the real local cluster: the README's commands run as written, a request the partition
cannot satisfy is refused at launch, and `status --watch` shows a multi-group task's progress.

The commands are extracted from README.md's "Quickstart" and "Cluster guide" sections, so a changed README
is what is tested. They run with `cwd` = the checkout and `$PCSWEEP_ROOT` = a fresh folder (README commands
give no `--root`), with one substitution: `--image pcsweep.sif` becomes `--no-container`, because the image
cannot exist here. Not run: `make ...` (the suite itself, the venv, the cluster: all already here),
`apptainer ...` and `scripts/gpu-check` (they need the image and a GPU). The paper grids' tasks cannot train
here (no GPU: `JAX_PLATFORMS=cuda` fails them at once), so their launch is checked to submit and is cancelled;
`plots` over paper grids that were never collected must fail with its "no summary" line (exit 1).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from contracts.paths import RunPaths
from launch.status import status_report

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("## Quickstart", "## Cluster guide")
RUN = ("python -m ", "squeue ")
NOT_RUN = ("make ", "apptainer ", "scripts/")
PAPER_GRIDS = ("propagation", "stability", "stability_constant_width")


def readme_commands() -> list[str]:
    """Every command in a code span of README's quickstart and cluster guide, in order."""
    text = (REPO / "README.md").read_text()
    spans = []
    for head in SECTIONS:
        start = text.index(head)
        end = text.find("\n## ", start + len(head))
        body = text[start:end if end > 0 else None]
        spans += [m.group(1).strip() for m in re.finditer(r"`([^`\n]+)`", body)]
        spans += [line.split("#")[0].strip() for block in re.findall(r"```bash\n(.*?)```", body, re.S)
                  for line in block.splitlines() if line.strip()]
    return [s for s in spans if s.startswith(RUN + NOT_RUN)]


def run_cmd(command: str, root: Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    words = shlex.split(command.replace("--image pcsweep.sif", "--no-container"))
    if words[0] == "python":
        words[0] = sys.executable
    env = {**os.environ, "PCSWEEP_ROOT": str(root)}
    return subprocess.run(words, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)


def test_readme_lists_the_first_contact_command_and_no_unknown_kind_of_command():
    commands = readme_commands()
    assert commands[commands.index("make demo"):][:2] == ["make demo", "make test"]
    first = "python -m launch grids/demo.yaml --partition cpu --no-container --platform cpu train.epochs=1"
    assert first in commands  # issue 11 item 1, typed exactly
    assert all(c.startswith(RUN + NOT_RUN) for c in commands)


def test_a_request_the_partition_cannot_satisfy_is_refused_at_launch(slurm_cluster, tmp_path):
    name_root = tmp_path / f"r{uuid.uuid4().hex[:6]}"
    for flags, expected in ((["--cpus", "64"], "--cpus 64: at most"),
                            (["--partition", "no-such-partition"], "no such partition"),
                            (["--gpus", "64"], "--gpus 64: its nodes have at most")):
        r = run_cmd(shlex.join(["python", "-m", "launch", "grids/demo.yaml", "--partition", "cpu", "--no-container",
                                "--platform", "cpu", *flags, "train.epochs=1"]), name_root, timeout_s=120)
        assert r.returncode == 2, r.stdout + r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and expected in r.stderr and "offers" in r.stderr
        assert "--no-preflight" in r.stderr and "Traceback" not in r.stderr
        assert not name_root.exists(), "a refused launch writes nothing"
    dry = run_cmd("python -m launch grids/demo.yaml --partition cpu --platform cpu --cpus 64 --dry-run", name_root)
    assert dry.returncode == 0 and "preflight: REFUSED" in dry.stdout and "--cpus 64" in dry.stdout


class Poller(threading.Thread):
    """Polls the demo's status while `status --watch` runs: did it ever see trials done while a task ran,
    and a running task's progress file?"""

    def __init__(self, root: Path):
        super().__init__(daemon=True)
        self.root, self.stop, self.done_while_running, self.progress = root, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                r = status_report("demo", self.root)
            except Exception:  # noqa: BLE001 - the folder may be mid-write; the next poll sees it
                r = None
            if r is not None and r.counts["running"] and r.counts["done"]:
                self.done_while_running = max(self.done_while_running, r.counts["done"])
            if r is not None and r.progress:
                self.progress = r.progress
            self.stop.wait(1.0)


def test_readme_commands_run_as_written(slurm_cluster, tmp_path):
    """Demo section first (item 1 of issue 11 to done, watched), then the paper-grid commands."""
    root = tmp_path / "runs"
    commands = [c for c in readme_commands() if c.startswith(RUN)]
    timings = {}
    deferred = []  # --watch of a paper grid runs after its cancel (its tasks cannot train here)
    for command in commands:
        if "--watch" in command and "demo" not in command:
            deferred.append(command)
            continue
        if command.startswith("python -m launch status demo --watch"):
            poller = Poller(root)
            poller.start()
            t0 = time.monotonic()
            r = run_cmd(command, root, timeout_s=900)
            poller.stop.set()
            timings[command] = time.monotonic() - t0
            assert r.returncode == 0, r.stdout + r.stderr
            assert "done 32" in r.stdout and "trials" in r.stderr and "ETA" in r.stderr, r.stdout + r.stderr
            assert poller.done_while_running > 0, "groups finished in a running task count as done"
            assert poller.progress and poller.progress[0].groups > 1 and poller.progress[0].s_per_epoch
            logs = "\n".join(p.read_text() for p in RunPaths.of("demo", root).slurm_dir.glob("*_log.out"))
            assert re.search(r"pcsweep: group \d+/\d+, epoch 1/1, \d+ trials, [\d.]+ s/epoch, task ETA", logs)
            continue
        if command == "python -m launch cancel stability":
            for later in deferred:
                assert run_cmd(later, root).returncode == 0
        t0 = time.monotonic()
        r = run_cmd(command, root)
        timings[command] = time.monotonic() - t0
        out = r.stdout + r.stderr
        if command.startswith("python -m plots") and any(g in command.split() for g in PAPER_GRIDS):
            assert r.returncode == 1 and "no summary table for grid 'propagation'" in out, out
            continue
        assert r.returncode == 0, f"{command}\n{out}"
        if command.startswith("python -m launch grids/stability.yaml") and "--dry-run" not in command:
            assert "array" in out, out
            assert run_cmd("python -m launch cancel stability", root).returncode == 0  # nothing to train here
        if command == "python -m plots demo":
            assert list((root / "demo" / "figures").glob("*.png"))
    if deferred:  # no cancel line followed: run them now
        for later in deferred:
            assert run_cmd(later, root).returncode == 0
    print("README command timings (s):", {c: round(t, 1) for c, t in timings.items()})
