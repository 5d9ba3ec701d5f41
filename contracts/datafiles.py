"""Where image datasets are found: one rule for the task that reads them and the launcher that binds them.

FashionMNIST and MNIST are IDX files (`.gz` or raw). A folder is looked up in this order: an explicit
`--data-dir`, `$PCSWEEP_DATA`, then where Debian's dataset packages install them; each base may hold the
files directly or in a dataset subfolder. `pc.datasets` reads from the folder this finds; `launch` finds the
same folder before submitting, refuses a launch whose data is missing, and binds the folder into the
Apptainer image (a container sees nothing of the host it is not given).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "PCSWEEP_DATA"
IMAGE_DATASETS = ("fashion_mnist", "mnist")
# Where Debian's dataset packages put the files (`apt-get install dataset-fashion-mnist`).
SYSTEM_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
SUBDIRS = {"fashion_mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST"), "mnist": ("mnist", "MNIST")}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataError(RuntimeError):
    """Missing or malformed data files; the message says where it looked and how to get them."""


def idx_path(folder: Path, name: str) -> Path | None:
    """`folder/name.gz` or `folder/name`, whichever exists, else None."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def find_data_dir(dataset: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding all four IDX files of `dataset` (see the module docstring), or DataError."""
    candidates: list[Path] = []
    for base in (data_dir, os.environ.get(DATA_ENV) or None, SYSTEM_DIRS[dataset]):
        if base is None:
            continue
        base = Path(base)
        candidates += [base] + [base / sub for sub in SUBDIRS[dataset]]
    for folder in candidates:
        if all(idx_path(folder, name) is not None for pair in IDX_FILES.values() for name in pair):
            return folder
    names = ", ".join(n for pair in IDX_FILES.values() for n in pair)
    raise DataError(
        f"{dataset}: IDX files ({names}, .gz or raw) not found; looked in "
        f"{', '.join(str(c) for c in candidates)}. Get them with `apt-get install dataset-fashion-mnist` "
        f"(Debian, fashion_mnist), or `python -m pc.datasets fetch {dataset} --to DIR` and pass "
        f"--data-dir DIR or set {DATA_ENV}=DIR."
    )
