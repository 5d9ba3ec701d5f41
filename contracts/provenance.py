"""Where a result came from, written once: the code's git state, the installed package versions, the device.

Both records that carry provenance read it from here: the submission manifest (`launch.manifest`, on the
launching host, before anything runs) and every shard (`pc.trials`, on the node that trained it). Pure Python:
versions come from package metadata and nothing is imported, so the launcher never starts JAX.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

CODE_ROOT = Path(__file__).resolve().parents[1]  # the checkout the tasks import
# the packages whose versions decide a result (and how it was launched), for manifests and shards alike
VERSIONED = ("pcx", "jax", "jaxlib", "equinox", "optax", "numpy", "h5py", "scikit-learn", "submitit", "cloudpickle")
NOT_INSTALLED = "not installed"
UNKNOWN_SHA = "unknown"


class Device(Protocol):
    """What provenance reads of a JAX device (duck-typed, so this module needs no JAX)."""

    platform: str
    device_kind: str


def git_state(code_root: Path = CODE_ROOT, timeout_s: float = 10) -> tuple[str, bool]:
    """(sha, dirty) of the code at `code_root`; ("unknown", True) outside git or when git cannot answer.
    Untracked files do not count as dirty (a run folder inside the checkout must not)."""
    try:
        sha = subprocess.run(["git", "-C", str(code_root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=timeout_s)
        dirty = subprocess.run(["git", "-C", str(code_root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN_SHA, True
    if sha.returncode != 0:
        return UNKNOWN_SHA, True
    return sha.stdout.strip(), bool(dirty.stdout.strip()) or dirty.returncode != 0


def package_versions(names: Iterable[str] = VERSIONED) -> dict[str, str]:
    """Installed versions from package metadata (no imports), plus the Python version."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = NOT_INSTALLED
    return versions


def device_label(device_platform: str, device_kind: str) -> str:
    """The one spelling of a device in our records: `cpu:cpu`, `gpu:NVIDIA H100 80GB HBM3`."""
    return f"{device_platform}:{device_kind}"


def run_provenance(device: Device, code_root: Path = CODE_ROOT) -> dict[str, Any]:
    """A shard's provenance attributes: versions, device, XLA flags, git sha and dirty flag."""
    sha, dirty = git_state(code_root)
    return {"versions": package_versions(), "device_kind": device_label(device.platform, device.device_kind),
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "git_sha": sha, "git_dirty": dirty}


__all__ = ["CODE_ROOT", "VERSIONED", "Device", "device_label", "git_state", "package_versions", "run_provenance"]
