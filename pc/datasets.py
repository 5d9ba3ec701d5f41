"""Datasets of Section 5.1, cut into fixed batches exactly as the paper's `utils/data.py` did.

numpy + scikit-learn + PIL only (no jax), so the data can be prepared anywhere. Batches are cut
once, in dataset order; the training shuffles the *order of the batches* per trial (pc.train).

    two_moons / two_circles: sklearn, n = batch_size * (n_samples // batch_size), train
        random_state = data.seed (42), a half-size test set with random_state 0
    fashion_mnist / mnist: IDX files (.gz or raw), optional PIL resize, flatten, drop the last
        partial batch of train and test, /255, normalise with the paper's constants (Section 5.1;
        `data.normalize=false` keeps x/255 in [0, 1], as the state-initialisation study's ToTensor did);
        `data.train_subset=N` keeps the first N training images (a reduced slice; the test set stays whole)

Command line: `python -m pc.datasets fetch fashion_mnist --to DIR` downloads the IDX files from the
canonical source (needs network).
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from contracts.config import DataConfig
from contracts.datafiles import IDX_FILES, DataError, find_data_dir, idx_path
from contracts.shapes import N_CLASSES

# Pixel mean and std after /255 (the paper's constants).
NORMALISATION = {"fashion_mnist": (0.28604, 0.35302), "mnist": (0.1307, 0.3081)}
SOURCES = {
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}
DEFAULT_NOISE = {"two_moons": 0.2, "two_circles": 0.02}
TEST_RANDOM_STATE = 0  # the paper's test sets for moons/circles


@dataclass(frozen=True)
class Dataset:
    """Fixed batches of one dataset (float32).

    train_x: [n_train_batches, batch_size, d_in]; train_y: [n_train_batches, batch_size, n_classes]
    one-hot; test_x, test_y likewise. Batches are in dataset order.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def d_in(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def n_classes(self) -> int:
        return int(self.train_y.shape[-1])


def load_data(cfg: DataConfig, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset cut into whole batches, as the paper's code did.

    Args:
        cfg: the `data` section of a trial config.
        data_dir: folder with the IDX files (images only); else $PCSWEEP_DATA, else the Debian
            location. A folder may hold the files directly or in a `fashion-mnist`/`mnist` subfolder.
    Raises:
        DataError: image files missing or malformed, or n_classes below the dataset's classes.
    """
    resolved = None if cfg.dataset in DEFAULT_NOISE else str(find_data_dir(cfg.dataset, data_dir))
    return _load_cached(cfg, resolved)


@lru_cache(maxsize=4)
def _load_cached(cfg: DataConfig, resolved_dir: str | None) -> Dataset:
    n_classes = cfg.n_classes if cfg.n_classes is not None else N_CLASSES[cfg.dataset]
    if n_classes < N_CLASSES[cfg.dataset]:
        raise DataError(
            f"data.n_classes: got {n_classes}; {cfg.dataset} has {N_CLASSES[cfg.dataset]} classes"
        )
    if cfg.dataset in DEFAULT_NOISE:
        (trx, try_), (tex, tey) = _toy(cfg)
    else:
        (trx, try_), (tex, tey) = _images(cfg, Path(resolved_dir))
        if cfg.train_subset is not None:
            trx, try_ = trx[: cfg.train_subset], try_[: cfg.train_subset]
    bs = cfg.batch_size
    out = []
    for x, y in ((trx, try_), (tex, tey)):
        n = (len(x) // bs) * bs
        if n == 0:
            raise DataError(f"data.batch_size: {bs} is larger than the {len(x)} samples of {cfg.dataset}")
        onehot = np.zeros((n, n_classes), np.float32)
        onehot[np.arange(n), y[:n].astype(np.int64)] = 1.0
        xb = np.ascontiguousarray(x[:n].reshape(n // bs, bs, -1), dtype=np.float32)
        out += [xb, onehot.reshape(n // bs, bs, n_classes)]
    for arr in out:  # shared by every caller through the cache: read-only
        arr.setflags(write=False)
    return Dataset(*out)


def _toy(cfg: DataConfig) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import make_circles, make_moons

    noise = cfg.noise if cfg.noise is not None else DEFAULT_NOISE[cfg.dataset]
    n = cfg.batch_size * (cfg.n_samples // cfg.batch_size)
    def make(m: int, random_state: int):
        if cfg.dataset == "two_moons":
            return make_moons(n_samples=m, noise=noise, random_state=random_state)
        return make_circles(n_samples=m, noise=noise, factor=0.8, random_state=random_state)

    return make(n, cfg.seed), make(n // 2, TEST_RANDOM_STATE)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (.gz or raw) into a uint8 array; raise DataError if malformed."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError(f"bad magic {raw[:4].hex()} (expected 0000 08 0n: unsigned bytes)")
        dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
        size = int(np.prod(dims))
        data = np.frombuffer(raw, np.uint8, count=size, offset=4 + 4 * ndim)
        if len(raw) != 4 + 4 * ndim + size:
            raise ValueError(f"{len(raw)} bytes for shape {dims}")
        return data.reshape(dims)
    except (OSError, ValueError, EOFError, struct.error) as e:
        raise DataError(f"{path}: not a valid IDX file ({e}); delete it and fetch it again") from e


def _images(cfg: DataConfig, folder: Path):
    mean, std = NORMALISATION[cfg.dataset]
    out = []
    for img_name, lbl_name in IDX_FILES.values():
        img_path, lbl_path = idx_path(folder, img_name), idx_path(folder, lbl_name)
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{img_path}, {lbl_path}: shapes {images.shape} and {labels.shape} do not match "
                "(expected [n, rows, cols] images and [n] labels)"
            )
        if labels.max(initial=0) >= N_CLASSES[cfg.dataset]:
            raise DataError(f"{lbl_path}: label {labels.max()} out of range for {cfg.dataset}")
        if cfg.resize is not None:
            images = resize_images(images, cfg.resize, cfg.resize_method)
        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
        out.append(((x - mean) / std if cfg.normalize else x, labels))
    return out[0], out[1]


def resize_images(images: np.ndarray, side: int, method: str) -> np.ndarray:
    """PIL resize of uint8 images [n, rows, cols] to [n, side, side] (as torchvision's Resize did)."""
    from PIL import Image

    resample = Image.Resampling[method.upper()]
    return np.stack([np.asarray(Image.fromarray(im).resize((side, side), resample=resample)) for im in images])


def fetch(dataset: str, to: str | os.PathLike) -> list[Path]:
    """Download the four IDX .gz files of `dataset` from its canonical source into `to`."""
    if dataset not in SOURCES:
        raise DataError(f"fetch: got {dataset!r}; expected one of {', '.join(SOURCES)}")
    folder = Path(to)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for pair in IDX_FILES.values():
        for name in pair:
            target = folder / f"{name}.gz"
            if not target.exists():
                url, tmp = SOURCES[dataset] + f"{name}.gz", target.with_suffix(".gz.tmp")
                try:
                    urllib.request.urlretrieve(url, tmp)
                except OSError as e:  # URLError is an OSError
                    tmp.unlink(missing_ok=True)
                    raise DataError(
                        f"fetch {dataset}: could not download {url} ({e}); without network, copy the "
                        f"four IDX .gz files into {folder} by other means"
                    ) from e
                os.replace(tmp, target)
            read_idx(target)
            paths.append(target)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pc.datasets", description="Get the image datasets.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fetch", help="download the IDX files of a dataset from its canonical source")
    p.add_argument("name", choices=sorted(SOURCES), help="dataset to download")
    p.add_argument("--to", required=True, help="folder to write the four .gz files into")
    args = parser.parse_args(argv)
    for path in fetch(args.name, args.to):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
