"""Data loaders: toy sets as the paper cut them, and IDX files the tests write themselves."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from sklearn.datasets import make_circles, make_moons

from contracts.config import DataConfig
from pc.datasets import NORMALISATION, DataError, load_data, read_idx


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


@pytest.fixture()
def idx_dir(tmp_path):
    """A tiny FashionMNIST-shaped folder: 50 train and 21 test 28x28 images, train gzipped."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    images = {"train": rng.integers(0, 256, (50, 28, 28)), "t10k": rng.integers(0, 256, (21, 28, 28))}
    labels = {"train": np.arange(50) % 10, "t10k": (np.arange(21) * 3) % 10}
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte", images[split], gz=split == "train")
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels[split], gz=split == "train")
    return tmp_path, images, labels


def test_two_moons_matches_sklearn_with_the_papers_seeds():
    cfg = DataConfig(dataset="two_moons", n_samples=1000, batch_size=32)
    ds = load_data(cfg)
    n = 32 * (1000 // 32)
    x, y = make_moons(n_samples=n, noise=0.2, random_state=42)
    tx, ty = make_moons(n_samples=n // 2, noise=0.2, random_state=0)
    assert ds.train_x.shape == (31, 32, 2) and ds.train_y.shape == (31, 32, 2)
    np.testing.assert_array_equal(ds.train_x.reshape(-1, 2), x.astype(np.float32))
    np.testing.assert_array_equal(ds.train_y.reshape(-1, 2).argmax(-1), y)
    assert ds.test_x.shape == (15, 32, 2)  # half-size test set, last partial batch dropped
    np.testing.assert_array_equal(ds.test_x.reshape(-1, 2), tx[: 15 * 32].astype(np.float32))
    np.testing.assert_array_equal(ds.test_y.reshape(-1, 2).argmax(-1), ty[: 15 * 32])


def test_two_circles_noise_and_factor():
    ds = load_data(DataConfig(dataset="two_circles", n_samples=256, batch_size=32))
    x, _ = make_circles(n_samples=256, noise=0.02, factor=0.8, random_state=42)
    np.testing.assert_array_equal(ds.train_x.reshape(-1, 2), x.astype(np.float32))


def test_idx_images_scaled_normalised_and_cut(idx_dir):
    root, images, labels = idx_dir
    ds = load_data(DataConfig(dataset="fashion_mnist", batch_size=8), data_dir=root)
    mean, std = NORMALISATION["fashion_mnist"]
    assert ds.train_x.shape == (6, 8, 784) and ds.test_x.shape == (2, 8, 784)  # 50 -> 48, 21 -> 16
    expected = (images["train"][:48].reshape(48, -1) / 255.0 - mean) / std
    np.testing.assert_allclose(ds.train_x.reshape(48, -1), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ds.train_y.reshape(48, 10).argmax(-1), labels["train"][:48])
    np.testing.assert_array_equal(ds.test_y.reshape(16, 10).argmax(-1), labels["t10k"][:16])
    assert ds.train_y.sum() == 48  # one-hot


def test_resize_with_a_named_pil_method_and_one_hot_width(idx_dir):
    from PIL import Image

    root, images, _ = idx_dir
    cfg = DataConfig(dataset="fashion_mnist", batch_size=8, resize=14, resize_method="lanczos", n_classes=196)
    ds = load_data(cfg, data_dir=root)
    assert ds.train_x.shape == (6, 8, 196) and ds.train_y.shape == (6, 8, 196)
    first = np.asarray(Image.fromarray(images["train"][0].astype(np.uint8)).resize((14, 14), Image.Resampling.LANCZOS))
    mean, std = NORMALISATION["fashion_mnist"]
    np.testing.assert_allclose(ds.train_x[0, 0], (first.reshape(-1) / 255.0 - mean) / std, rtol=1e-6, atol=1e-6)
    assert ds.train_y[..., 10:].sum() == 0  # only the first 10 of the 196 classes are used
    nearest = load_data(cfg.__class__(**{**cfg.__dict__, "resize_method": "nearest"}), data_dir=root)
    assert not np.array_equal(nearest.train_x, ds.train_x)


def test_data_dir_from_environment(idx_dir, monkeypatch):
    root, _, _ = idx_dir
    monkeypatch.setenv("PCSWEEP_DATA", str(root / "fashion-mnist"))
    assert load_data(DataConfig(dataset="fashion_mnist", batch_size=8)).train_x.shape == (6, 8, 784)


def test_missing_files_name_where_it_looked_and_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("PCSWEEP_DATA", raising=False)
    with pytest.raises(DataError, match=r"python -m pc\.datasets fetch mnist") as err:
        load_data(DataConfig(dataset="mnist", batch_size=8), data_dir=tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "/usr/share/datasets/mnist" in message
    assert "python -m pc.datasets fetch mnist" in message and "PCSWEEP_DATA" in message


def test_malformed_idx_is_rejected(idx_dir):
    root, _, _ = idx_dir
    bad = root / "fashion-mnist" / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-5])  # truncated
    with pytest.raises(DataError, match="not a valid IDX file"):
        read_idx(bad)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_data(DataConfig(dataset="fashion_mnist", batch_size=4), data_dir=root)


def test_n_classes_below_the_dataset_is_an_error():
    with pytest.raises(DataError, match="data.n_classes"):
        load_data(DataConfig(dataset="two_moons", n_samples=256, n_classes=1))


def test_light_modules_import_no_jax():
    """pc.datasets, pc.trials and pc.cli load no jax at import (launch imports them on login nodes)."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, pc.datasets, pc.trials, pc.cli; print('jax' in sys.modules)"
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
