"""contracts.provenance: the one source of git state, versions and device label for manifests and shards."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

from contracts import provenance

REPO = Path(__file__).resolve().parents[2]


def test_git_state_outside_a_checkout_is_unknown_and_dirty(tmp_path):
    assert provenance.git_state(tmp_path) == ("unknown", True)


def test_git_state_reads_head_and_ignores_untracked_files(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    sha, dirty = provenance.git_state(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", sha) and dirty is False
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "shard.h5").write_bytes(b"x")  # a run folder inside the checkout
    assert provenance.git_state(tmp_path) == (sha, False)
    (tmp_path / "a.txt").write_text("two\n")  # a tracked change
    assert provenance.git_state(tmp_path) == (sha, True)


def test_versions_name_every_package_and_say_which_are_missing():
    versions = provenance.package_versions(("h5py", "no-such-package-pcsweep"))
    assert set(versions) == {"python", "h5py", "no-such-package-pcsweep"}
    assert re.fullmatch(r"\d+\.\d+.*", versions["h5py"]) and versions["no-such-package-pcsweep"] == "not installed"
    assert set(provenance.VERSIONED) <= set(provenance.package_versions())


def test_a_shards_provenance_labels_the_device_with_its_platform(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    attrs = provenance.run_provenance(SimpleNamespace(platform="gpu", device_kind="NVIDIA H100 80GB HBM3"), REPO)
    assert attrs["device_kind"] == "gpu:NVIDIA H100 80GB HBM3"
    assert attrs["xla_flags"] == "--xla_cpu_multi_thread_eigen=false"
    assert (attrs["git_sha"], attrs["git_dirty"]) == provenance.git_state(REPO)
    assert attrs["versions"]["pcx"] == provenance.package_versions()["pcx"]
