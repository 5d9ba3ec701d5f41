"""Hostile file systems under real commands: a full disk (a real 1 MiB tmpfs), a read-only remount, a user without
permission (setpriv to nobody), a --root that is a file or empty, and a reader that closed the pipe. Each ends in
exit 2 (1 for the closed pipe) and one line naming the path, what the system said and what to do; no traceback;
and once the cause is gone, the next collect works: nothing left behind blocks it (contracts.cli, contracts.lock).

The mounts need root (CI runs as root); elsewhere those cases are skipped and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from collect_cases import GRID, synthetic_trial

from contracts.paths import RunPaths
from contracts.shard import write_shard

REPO = Path(__file__).resolve().parents[2]
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                               reason="mounting a tmpfs and dropping to another user need root")


def _nobody_reaches_the_checkout() -> str | None:
    """Why user nobody cannot run this checkout's python and code (a clone under a 0700 folder), or None."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return "dropping to another user needs root and setpriv"
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                            "import collect, h5py"], cwd="/", capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    if probe.returncode:
        return (f"user nobody cannot run {sys.executable} with {REPO} (a folder on the path is closed to others; "
                f".ci/run opens its scratch clone): {probe.stderr.strip().splitlines()[-1:]}")
    return None


def cli(*argv: str, env: dict | None = None, user: str | None = None, cwd: Path = REPO, stdout=subprocess.PIPE
        ) -> subprocess.CompletedProcess:
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if user == "nobody" else []
    return subprocess.run([*prefix, sys.executable, "-m", *argv], cwd=cwd, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def one_line(r: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    err = r.stderr.strip()
    assert r.returncode == code and "Traceback" not in err and len(err.splitlines()) == 1, (r.returncode, err)
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def populate(root: Path, n: int = 8) -> RunPaths:
    """A run folder with one shard of n trials (about 40 KiB each) and its manifest."""
    paths = RunPaths.of(GRID, root)
    paths.folder.mkdir(parents=True)
    trials = [synthetic_trial(s, E=20, B=8, T=8) for s in range(1, n + 1)]
    write_shard(paths.shard("s1"), trials, grid=GRID, task_key="s1", attrs={"created": "2026-01-01T00:00:00+00:00"})
    paths.submissions_dir.mkdir()
    doc = {"grid": GRID, "stamp": "20260101T000000Z", "tasks": {"t0": [t.trial_id for t in trials]}, "arrays": []}
    paths.submission("20260101T000000Z").write_text(json.dumps(doc))
    return paths


def collect_ok(root: Path, complete: int = 8) -> None:
    r = cli("collect", GRID, "--root", str(root), "--no-progress", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["complete"] == complete and not report["missing"]
    assert not [p for p in root.rglob("*") if ".tmp." in p.name], "temporary files left behind"


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True, timeout=30)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=30)


def fill(mnt: Path, leave_kib: int) -> Path:
    """Write a filler file until about `leave_kib` KiB are free."""
    st = os.statvfs(mnt)
    free_kib = st.f_bavail * st.f_frsize // 1024
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free_kib - leave_kib) * 1024)
    return filler


@ROOT_ONLY
def test_a_disk_full_before_the_lock_leaves_no_lock_and_the_next_collect_works(tmpfs):
    paths = populate(tmpfs / "runs")
    filler = fill(tmpfs, 0)
    one_line(cli("collect", GRID, "--root", str(paths.root), "--no-progress"), f"{paths.lock}: No space left on "
             "device (ENOSPC)", "free space")
    assert not paths.lock.exists()  # an empty lock would refuse every later run
    filler.unlink()
    collect_ok(paths.root)


@ROOT_ONLY
def test_a_disk_that_fills_while_results_are_written_says_so_and_the_next_collect_rebuilds(tmpfs):
    paths = populate(tmpfs / "runs")
    filler = fill(tmpfs, 60)
    err = one_line(cli("collect", GRID, "--root", str(paths.root), "--no-progress"),
                   "No space left on device (ENOSPC)", "free space")
    assert err.split(": ", 2)[2].startswith(str(paths.folder))  # the h5py message's file, found in its text
    assert not paths.lock.exists()
    filler.unlink()
    collect_ok(paths.root)


@ROOT_ONLY
def test_a_read_only_remount_is_one_line_and_nothing_blocks_after_it_is_writable(tmpfs):
    paths = populate(tmpfs / "runs")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True, timeout=30)
    try:
        one_line(cli("collect", GRID, "--root", str(paths.root), "--no-progress"),
                 "Read-only file system (EROFS)", "writable --root")
        one_line(cli("launch", "grids/demo.yaml", "--root", str(paths.root), "--executor", "local",
                     "train.epochs=1"), "Read-only file system (EROFS)")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True, timeout=30)
    collect_ok(paths.root)


@ROOT_ONLY
def test_a_user_without_permission_gets_one_line_naming_the_path(world_dir):
    if why := _nobody_reaches_the_checkout():
        pytest.skip(why)
    paths = populate(world_dir / "runs")
    for p in [paths.root, *paths.root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # readable by all, writable by root only
    err = one_line(cli("collect", GRID, "--root", str(paths.root), "--no-progress", user="nobody"),
                   "Permission denied (EACCES)", "permissions")
    assert f"error: {paths.lock}: " in err  # the first file it must write
    collect_ok(paths.root)  # the owner's collect is not blocked by what the refused one left


def test_a_root_that_is_a_file_is_one_line(tmp_path):
    not_a_folder = tmp_path / "runs"
    not_a_folder.write_text("a file\n")
    for argv in (("collect", GRID), ("launch", "grids/demo.yaml", "--executor", "local", "train.epochs=1")):
        one_line(cli(*argv, "--root", str(not_a_folder)), str(not_a_folder))
    assert not_a_folder.read_text() == "a file\n"


@pytest.mark.parametrize("argv", [("launch", "grids/demo.yaml", "--dry-run"), ("launch", "status", "demo"),
                                  ("collect", "demo"), ("plots", "demo")], ids=lambda a: "-".join(a[:2]))
def test_an_empty_root_never_means_the_current_folder(tmp_path, argv):
    argv = tuple(str(REPO / a) if a.endswith(".yaml") else a for a in argv)
    one_line(cli(*argv, "--root", "", cwd=tmp_path), "empty path", "--root runs")
    one_line(cli(*argv, env={"PCSWEEP_ROOT": ""}, cwd=tmp_path), "$PCSWEEP_ROOT is set but empty", "unset")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [("plots", "--list"), ("launch", "grids/demo.yaml", "--dry-run")],
                         ids=["plots-list", "dry-run"])
def test_a_closed_pipe_ends_the_command_without_a_traceback(tmp_path, argv):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head -1`) is gone before anything is written
    try:
        r = cli(*argv, "--root", str(tmp_path / "runs"), stdout=write_end)
    finally:
        os.close(write_end)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_a_fifo_among_the_shards_blocks_no_command(tmp_path):
    """Opening a FIFO for reading waits for a writer forever: status (which a relaunch shares to find done
    trials) and collect check the file type first. Status names the FIFO; collect merges the real shard."""
    paths = populate(tmp_path / "runs")
    os.mkfifo(paths.shards_dir / "stuck.h5")
    status = cli("launch", "status", GRID, "--root", str(paths.root))
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert "stuck.h5: not a regular file" in status.stdout + status.stderr
    collect_ok(paths.root)
    assert not (paths.shards_dir / "stuck.h5").exists() or stat_is_fifo(paths.shards_dir / "stuck.h5")


def stat_is_fifo(path: Path) -> bool:
    import stat
    return stat.S_ISFIFO(os.lstat(path).st_mode)


@pytest.fixture
def world_dir():
    """A folder every user can reach (pytest's tmp_path sits under 0700 folders that user nobody cannot enter)."""
    folder = Path(tempfile.mkdtemp(prefix="pcsweep-hostile-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@ROOT_ONLY
def test_a_shard_this_user_may_not_read_is_left_in_place_not_called_corrupt(world_dir):
    if why := _nobody_reaches_the_checkout():
        pytest.skip(why)
    paths = populate(world_dir / "runs", n=4)
    hidden = [synthetic_trial(s, E=20, B=8, T=8) for s in (21, 22)]
    write_shard(paths.shard("s2"), hidden, grid=GRID, task_key="s2", attrs={"created": "2026-01-01T00:00:00+00:00"})
    for p in [paths.root, *paths.root.rglob("*")]:
        os.chown(p, 65534, 65534)
    os.chown(paths.shard("s2"), 0, 0)
    paths.shard("s2").chmod(0o600)
    r = cli("collect", GRID, "--root", str(paths.root), "--no-progress", "--json", user="nobody")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    report = json.loads(r.stdout)
    assert report["complete"] == 4
    assert any("s2.h5: cannot be read by this user (permission denied" in n for n in report["notes"]), report["notes"]
    assert paths.shard("s2").exists() and not paths.bad_shards_dir.exists()


@pytest.mark.parametrize("folder_at", ["results.h5", "summary.csv"])
def test_an_output_file_that_is_a_folder_is_one_line_and_the_next_collect_works(tmp_path, folder_at):
    paths = populate(tmp_path / "runs")
    (paths.folder / folder_at).mkdir()
    one_line(cli("collect", GRID, "--root", str(paths.root), "--no-progress"),
             f"{paths.folder / folder_at}: Is a directory (EISDIR)", "move the folder away")
    assert not paths.lock.exists() and not [p for p in paths.folder.iterdir() if ".tmp." in p.name]
    (paths.folder / folder_at).rmdir()
    collect_ok(paths.root)


def test_a_manifest_that_is_not_utf8_is_named_by_status_and_skipped_by_collect(tmp_path):
    paths = populate(tmp_path / "runs")
    bad = paths.submission("20260102T000000Z")
    bad.write_bytes(b'\xff\xfe{"grid": "g"}')
    one_line(cli("launch", "status", GRID, "--root", str(paths.root)), f"{bad}: not UTF-8 text", "move it out")
    r = cli("collect", GRID, "--root", str(paths.root), "--no-progress", "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert any(str(bad) in n and "unreadable submission manifest" in n for n in json.loads(r.stdout)["notes"])


@pytest.mark.parametrize("argv", [("collect", GRID), ("launch", "status", GRID), ("plots", GRID),
                                  ("launch", "grids/demo.yaml", "--executor", "local", "train.epochs=1")],
                         ids=["collect", "status", "plots", "launch"])
def test_a_root_with_a_name_too_long_is_one_line(tmp_path, argv):
    root = tmp_path / ("x" * 300)
    err = one_line(cli(*argv, "--root", str(root)), "File name too long (ENAMETOOLONG)", "shorter")
    assert err.split(": ", 2)[2].startswith(str(root))


@ROOT_ONLY
def test_a_local_launch_whose_tasks_failed_on_a_full_disk_says_the_disk_is_full(tmpfs, tmp_path):
    """A task that fails on a full disk may leave no log and no failure record: the launch's summary is the last
    place to say why, so it checks the run folder's file system when tasks failed."""
    from launch.submit import Submission, disk_full_note

    folder = tmpfs / "runs" / "g"
    folder.mkdir(parents=True)
    assert disk_full_note(folder) is None
    fill(tmpfs, 0)
    note = disk_full_note(folder)
    assert note and note.startswith(f"the file system holding {folder} is full (") and "free space" in note
    sub = Submission(grid="g", root=str(tmpfs / "runs"), executor="local", grid_trials=2, skipped={}, stamp="s",
                     manifest="m", trials=2, tasks=1, failed_tasks=("s-t-1",))
    assert sub.render().splitlines()[-1] == note
    ok = Submission(grid="g", root=str(tmpfs / "runs"), executor="local", grid_trials=2, skipped={}, stamp="s",
                    manifest="m", trials=2, tasks=1)
    assert note not in ok.render()  # nothing failed: nothing to explain
