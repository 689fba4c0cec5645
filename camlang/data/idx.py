"""MNIST-style idx files (plain or gzip), read lazily.

Plain files are memory-mapped; gzip files are decompressed once into one byte buffer (the
10k MNIST test set is 7.8 MB). Images become tensors only when a batch is requested.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from camlang.data.base import Batch, Dataset, normalize_images, resolve_normalization
from camlang.errors import CamlangError

# idx type codes -> big-endian numpy dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = {
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an idx file (optionally `.gz`) as a numpy array without copying plain files."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CamlangError(f"idx file {str(path)!r} does not exist (resolved to {p.resolve()})")
    try:
        if p.suffix == ".gz":
            with gzip.open(p, "rb") as f:
                data: bytes | np.ndarray = f.read()
            header = bytes(data[:4])
        else:
            data = np.memmap(p, dtype=np.uint8, mode="r")
            header = bytes(data[:4])
    except (OSError, EOFError, ValueError) as exc:
        raise CamlangError(f"cannot read idx file {str(path)!r}: {exc}") from exc
    if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_DTYPES:
        raise CamlangError(f"{str(path)!r} is not an idx file (bad magic number {header.hex()})")
    ndim = header[3]
    dims_bytes = bytes(data[4 : 4 + 4 * ndim])
    if len(dims_bytes) < 4 * ndim:
        raise CamlangError(f"idx file {str(path)!r} is truncated (header)")
    shape = tuple(int.from_bytes(dims_bytes[4 * i : 4 * i + 4], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[header[2]])
    offset = 4 + 4 * ndim
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - offset < need:
        raise CamlangError(f"idx file {str(path)!r} is truncated: shape {shape} needs {need} bytes of data")
    if isinstance(data, np.ndarray):
        return np.ndarray(shape, dtype=dtype, buffer=data, offset=offset)
    return np.frombuffer(data, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)), offset=offset).reshape(
        shape
    )


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write `array` as an idx file (gzip-compressed when the name ends in `.gz`)."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    arr = np.asarray(array)
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise CamlangError(f"idx files cannot hold dtype {arr.dtype}")
    payload = (
        bytes([0, 0, code, arr.ndim])
        + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        + arr.astype(_IDX_DTYPES[code]).tobytes()
    )
    p = Path(path)
    if p.suffix == ".gz":
        with gzip.open(p, "wb") as f:
            f.write(payload)
    else:
        p.write_bytes(payload)


class IdxDataset(Dataset):
    """Images (and optional labels) from idx files. Build with `idx(...)` or `mnist(...)`."""

    kind = "idx"

    def __init__(
        self,
        images_path: str | os.PathLike[str],
        labels_path: str | os.PathLike[str] | None,
        normalize: str | tuple[Sequence[float], Sequence[float]] | None,
        size: int | None,
        class_names: list[str] | None,
        name: str | None,
    ) -> None:
        arr = read_idx(images_path)
        if arr.ndim == 3:
            arr = arr[:, :, :, None]
        if arr.ndim != 4 or arr.shape[3] not in (1, 3):
            raise CamlangError(
                f"idx images {str(images_path)!r} have shape {arr.shape}; "
                "expected [N, H, W] or [N, H, W, 1|3]"
            )
        self._images = arr
        self._labels: np.ndarray | None = None
        if labels_path is not None:
            lab = read_idx(labels_path)
            if lab.ndim != 1 or lab.shape[0] != arr.shape[0]:
                raise CamlangError(
                    f"idx labels {str(labels_path)!r} have shape {lab.shape}, "
                    f"but there are {arr.shape[0]} images in {str(images_path)!r}"
                )
            self._labels = lab
        self.channels = int(arr.shape[3])
        native = int(arr.shape[1])
        if size is None and arr.shape[1] != arr.shape[2]:
            raise CamlangError(
                f"idx images are {arr.shape[1]}x{arr.shape[2]}; give a square size to resize to"
            )
        self.size = native if size is None else int(size)
        self.normalization = resolve_normalization(normalize, self.channels)
        self.has_labels = self._labels is not None
        self.has_masks = False
        if class_names is None and self._labels is not None and len(self._labels):
            class_names = [str(i) for i in range(int(self._labels.max()) + 1)]
        self.class_names = class_names
        self.name = name or str(images_path)
        self._scale = 255.0 if arr.dtype.kind in "ui" else 1.0
        super().__init__(int(arr.shape[0]))

    def _load(self, base_indices: torch.Tensor) -> Batch:
        idx = base_indices.numpy()
        pixels = np.asarray(self._images[idx], dtype=np.float32) / self._scale
        img = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous().clamp_(0.0, 1.0)
        if img.shape[-1] != self.size or img.shape[-2] != self.size:
            img = F.interpolate(img, size=(self.size, self.size), mode="bilinear", antialias=True).clamp_(
                0, 1
            )
        raw = img if self.channels == 3 else img.expand(-1, 3, -1, -1).clone()
        labels = None
        if self._labels is not None:
            labels = torch.from_numpy(np.asarray(self._labels[idx], dtype=np.int64))
        return Batch(
            x=normalize_images(img, self.normalization),
            raw=raw,
            labels=labels,
            masks=None,
            names=[f"{Path(self.name).name}/{int(i):05d}" for i in idx],
            indices=base_indices.clone(),
        )


def idx(
    images_path: str | os.PathLike[str],
    labels_path: str | os.PathLike[str] | None = None,
    normalize: str | tuple[Sequence[float], Sequence[float]] | None = "none",
    size: int | None = None,
) -> IdxDataset:
    """Images from an idx file (`[N,H,W]` grey or `[N,H,W,C]`), with labels from an idx1 file.

    Integer pixels are scaled to [0, 1]; `size` resizes (bilinear, antialiased).
    """
    return IdxDataset(images_path, labels_path, normalize, size, None, None)


def mnist(
    path: str | os.PathLike[str],
    split: str = "test",
    normalize: str | tuple[Sequence[float], Sequence[float]] | None = "none",
    size: int | None = None,
) -> IdxDataset:
    """MNIST from a folder holding the original idx files (`.gz` or not).

    `split` is "test" (t10k-*) or "train". Pixels are in [0, 1], 1 channel, 28x28 by default.
    """
    folder = Path(path).expanduser()
    if split not in _MNIST_FILES:
        raise CamlangError(f"unknown MNIST split {split!r}", hint="use 'test' or 'train'")
    if not folder.is_dir():
        raise CamlangError(f"MNIST folder {str(path)!r} does not exist (resolved to {folder.resolve()})")
    found = []
    for stem in _MNIST_FILES[split]:
        candidates = [folder / stem, folder / f"{stem}.gz"]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            raise CamlangError(
                f"MNIST folder {str(path)!r} has no {stem}[.gz]",
                hint=f"the {split} split needs {' and '.join(_MNIST_FILES[split])}",
            )
        found.append(hit)
    return IdxDataset(found[0], found[1], normalize, size, [str(i) for i in range(10)], f"mnist-{split}")
