"""The image data a launch's trials read: found before submitting, bound into the container.

A task inside the Apptainer image sees only what is bound into it (the run root and the code), so every
FashionMNIST/MNIST group would fail on the node. `check_data` finds, with the same rule as the task
(`contracts.datafiles`), the folder of each image dataset the trials use; launch binds those folders at
the same path and exports `PCSWEEP_DATA` when one folder serves them all. On SLURM a missing dataset
refuses the launch (exit 2, the message says where it looked and how to get the files; `--no-preflight`
submits anyway and the trials then fail on the node with the same message).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from contracts.config import TrialConfig
from contracts.datafiles import DATA_ENV, IMAGE_DATASETS, DataError, find_data_dir


@dataclass(frozen=True)
class DataCheck:
    """Folders of the image datasets the trials read, and one message per dataset not found."""

    folders: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    def environment(self) -> dict[str, str]:
        """`PCSWEEP_DATA` for the tasks when one folder holds every dataset they read."""
        return {DATA_ENV: self.folders[0]} if len(self.folders) == 1 else {}

    def render(self) -> str:
        """The dry run's line."""
        if self.missing:
            return f"data: MISSING, a SLURM launch would exit 2: {self.missing[0]}"
        return f"data: {', '.join(self.folders)} (bound into the image)" if self.folders else ""


def check_data(trials: Iterable[TrialConfig]) -> DataCheck:
    """Find the folder of every image dataset among `trials` (absolute paths, in dataset order)."""
    datasets = sorted({t.data.dataset for t in trials} & set(IMAGE_DATASETS))
    folders: list[str] = []
    missing: list[str] = []
    for dataset in datasets:
        try:
            folder = str(find_data_dir(dataset).resolve())
        except DataError as e:
            missing.append(str(e))
            continue
        if folder not in folders:
            folders.append(folder)
    return DataCheck(tuple(folders), tuple(missing))
