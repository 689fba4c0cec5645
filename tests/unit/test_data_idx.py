"""idx files and MNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from camlang.data import idx, mnist, read_idx, write_idx
from camlang.errors import CamlangError

SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(7, 5, 5), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7).astype(np.uint8)
    write_idx(tmp_path / f"img{suffix}", imgs)
    write_idx(tmp_path / f"lab{suffix}", labels)
    assert np.array_equal(read_idx(tmp_path / f"img{suffix}"), imgs)
    ds = idx(tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}")
    assert len(ds) == 7 and ds.channels == 1 and ds.size == 5
    b = ds.get([6, 0])
    assert b.x.shape == (2, 1, 5, 5) and b.raw.shape == (2, 3, 5, 5)
    assert torch.allclose(b.x[0, 0], torch.from_numpy(imgs[6]).float() / 255)
    assert b.labels.tolist() == [int(labels[6]), int(labels[0])]


def test_idx_float_and_errors(tmp_path: Path) -> None:
    data = np.linspace(0, 1, 2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    write_idx(tmp_path / "f.idx", data)
    ds = idx(tmp_path / "f.idx", size=8)
    b = ds.get([1])
    assert b.x.shape == (1, 3, 8, 8) and ds.channels == 3
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(CamlangError, match="not an idx file"):
        idx(tmp_path / "junk")
    write_idx(tmp_path / "lab", np.zeros(3, dtype=np.uint8))
    with pytest.raises(CamlangError, match="there are 2 images"):
        idx(tmp_path / "f.idx", tmp_path / "lab")
    full = (tmp_path / "f.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(full[:-10])
    with pytest.raises(CamlangError, match="truncated"):
        idx(tmp_path / "short.idx")
    with pytest.raises(CamlangError, match="does not exist"):
        idx(tmp_path / "missing.idx")


def test_mnist_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(CamlangError, match="t10k-images-idx3-ubyte"):
        mnist(tmp_path)
    with pytest.raises(CamlangError, match="split"):
        mnist(tmp_path, split="valid")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is not available")
def test_real_mnist_test_set() -> None:
    ds = mnist(SHARED_MNIST)
    assert len(ds) == 10000 and ds.class_names == [str(i) for i in range(10)]
    b = ds.get([0, 1, 2])
    assert b.labels.tolist() == [7, 2, 1]  # the well-known first MNIST test digits
    assert b.x.shape == (3, 1, 28, 28) and 0.0 <= float(b.x.min()) and float(b.x.max()) <= 1.0
