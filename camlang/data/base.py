"""The `Batch` record and the `Dataset` base class shared by every data source.

A dataset is a lazy, ordered view over an underlying collection of images. Subclasses only
implement `_load(base_indices)`; the base class handles the view (`limit`, `shuffle`, `split`),
batching and the mapping from view positions to underlying indices.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from camlang.errors import CamlangError

Normalization = tuple[tuple[float, ...], tuple[float, ...]]

#: Named normalization presets accepted by `images(..., normalize=...)` and friends.
NORMALIZATION_PRESETS: dict[str, Normalization] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


@dataclass(frozen=True)
class Batch:
    """A batch of images as a model consumes them, plus what is needed to display and score them.

    - `x`: float `[B, C, H, W]`, normalized model input.
    - `raw`: float `[B, 3, H, W]` RGB in `[0, 1]` for display (grey images are repeated to 3 channels).
    - `labels`: `LongTensor [B]` of class indices, or None when the dataset has no labels.
    - `masks`: bool `[B, H, W]` ground-truth object masks at input resolution, or None.
    - `names`: one display name per image (a relative file name or `shapes/000017`).
    - `indices`: `LongTensor [B]`, each image's index in the *original* dataset (before any
      `limit`/`shuffle`/`split`), so results can be traced back to an image.
    - `concepts`: float `[B, K]` 0/1 concept annotations (columns `Dataset.concept_names`), or None.
    """

    x: torch.Tensor
    raw: torch.Tensor
    labels: torch.Tensor | None
    masks: torch.Tensor | None
    names: list[str]
    indices: torch.Tensor
    concepts: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


def resolve_normalization(
    normalize: str | tuple[Sequence[float], Sequence[float]] | None, channels: int
) -> Normalization:
    """Turn a preset name or an explicit `(mean, std)` pair into per-channel tuples.

    Presets are 3-channel; for 1-channel data they are averaged to one value.
    """
    if normalize is None:
        normalize = "none"
    if isinstance(normalize, str):
        key = normalize.lower()
        if key not in NORMALIZATION_PRESETS:
            raise CamlangError(
                f"unknown normalization {normalize!r}",
                hint="use one of "
                + ", ".join(repr(k) for k in NORMALIZATION_PRESETS)
                + " or a (mean, std) pair",
            )
        mean, std = NORMALIZATION_PRESETS[key]
        if channels == 1:
            return (sum(mean) / 3,), (sum(std) / 3,)
        return mean, std
    try:
        mean_seq, std_seq = normalize
        mean = tuple(float(m) for m in mean_seq)
        std = tuple(float(s) for s in std_seq)
    except (TypeError, ValueError) as exc:
        raise CamlangError(
            f"normalization {normalize!r} is not a preset name or a (mean, std) pair of number lists"
        ) from exc
    if len(mean) == 1:
        mean = mean * channels
    if len(std) == 1:
        std = std * channels
    if len(mean) != channels or len(std) != channels:
        raise CamlangError(
            f"normalization mean {list(mean)} / std {list(std)} do not have {channels} value(s), "
            "one per channel"
        )
    if any(s <= 0 for s in std):
        raise CamlangError(f"normalization std {list(std)} must be positive")
    return mean, std


def normalize_images(raw: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """Apply `(raw - mean) / std` per channel to a `[B, C, H, W]` tensor in `[0, 1]`."""
    mean, std = norm
    if all(m == 0.0 for m in mean) and all(s == 1.0 for s in std):
        return raw.clone()
    m = torch.tensor(mean, dtype=raw.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=raw.dtype).view(1, -1, 1, 1)
    return (raw - m) / s


class Dataset:
    """A lazy, ordered view over a collection of images.

    Subclasses set `name`, `kind`, `size`, `channels`, `normalization`, `class_names`,
    `has_labels`, `has_masks`, call `super().__init__(count)` and implement `_load`.
    Views (`limit`, `shuffle`, `split`) share the underlying data and never copy images.
    """

    name: str
    kind: str
    size: int
    channels: int
    normalization: Normalization
    class_names: list[str] | None
    has_labels: bool
    has_masks: bool
    #: Names of the annotated concepts (the columns of `Batch.concepts`), or None.
    concept_names: list[str] | None = None

    def __init__(self, count: int) -> None:
        self._order = torch.arange(count, dtype=torch.long)
        self.warnings: list[str] = []
        #: Files that could not be read when a batch was drawn (path -> why), shared by every view;
        #: those images are left out of their batch.
        self.unreadable: dict[str, str] = {}

    # -- subclass hook ------------------------------------------------------------------------
    def _load(self, base_indices: torch.Tensor) -> Batch:
        """Load the images with these underlying indices (a 1-D LongTensor), in that order."""
        raise NotImplementedError

    # -- public API ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._order.numel())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {len(self)} images {self.size}x{self.size}>"

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary: kind, count, size, preprocessing, labels/masks, class names."""
        mean, std = self.normalization
        return {
            "name": self.name,
            "kind": self.kind,
            "count": len(self),
            "size": self.size,
            "channels": self.channels,
            "mean": list(mean),
            "std": list(std),
            "preprocessing": {"mean": list(mean), "std": list(std)},
            "has_labels": self.has_labels,
            "has_masks": self.has_masks,
            "class_names": None if self.class_names is None else list(self.class_names),
            "warnings": list(self.warnings),
        }

    def get(self, indices: Sequence[int] | torch.Tensor, skip_unreadable: bool = False) -> Batch:
        """The images at these positions of this view (negative positions count from the end).

        An image file that can no longer be read is an error naming it, unless `skip_unreadable`:
        then it is left out of the batch (`Batch.indices` says which are there) and recorded in
        `self.unreadable`.
        """
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            bad = [int(i) for i in idx if not -n <= int(i) < n]
            raise CamlangError(
                f"image index {bad[0]} is out of range for dataset {self.name!r} with {n} images"
            )
        idx = torch.where(idx < 0, idx + n, idx)
        batch = self._load(self._order[idx])
        if not skip_unreadable:
            self._all_read(batch, int(idx.numel()))
        return batch

    def _all_read(self, batch: Batch, wanted: int) -> None:
        missing = wanted - len(batch)
        if missing > 0:
            why = "; ".join(f"{path}: {text}" for path, text in list(self.unreadable.items())[-missing:])
            raise CamlangError(
                f"cannot read {missing} image(s) of data set {self.name!r}: {why}",
                hint="remove or re-save the file(s)",
            )

    def indices(self, positions: Sequence[int] | range) -> list[int]:
        """The original-dataset indices (`Batch.indices`) of these positions, without loading images."""
        return self._order[torch.as_tensor(list(positions), dtype=torch.long)].tolist()

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Yield consecutive batches of at most `batch_size` images; each is loaded on demand."""
        if int(batch_size) < 1:
            raise CamlangError(f"batch size must be at least 1, got {batch_size}")
        n = len(self)
        for start in range(0, n, int(batch_size)):
            chunk = self._order[start : start + int(batch_size)]
            batch = self._load(chunk)
            self._all_read(batch, int(chunk.numel()))
            yield batch

    def limit(self, n: int) -> Dataset:
        """A view of the first `n` images (all of them if there are fewer)."""
        if int(n) < 0:
            raise CamlangError(f"limit must be non-negative, got {n}")
        return self._view(self._order[: int(n)])

    def shuffle(self, seed: int) -> Dataset:
        """A view with the images in a random order fixed by `seed`."""
        gen = torch.Generator().manual_seed(int(seed))
        perm = torch.randperm(len(self), generator=gen)
        return self._view(self._order[perm])

    def split(self, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
        """Shuffle with `seed`, then cut into (train, holdout) with `fraction` of the images in train.

        Both parts must be non-empty.
        """
        if not 0.0 < float(fraction) < 1.0:
            raise CamlangError(f"split fraction must be strictly between 0 and 1, got {fraction}")
        shuffled = self.shuffle(seed)
        cut = int(round(float(fraction) * len(self)))
        if cut == 0 or cut == len(self):
            raise CamlangError(
                f"splitting {len(self)} images at fraction {fraction} leaves one part empty",
                hint="use more images or a fraction nearer 0.5",
            )
        return shuffled._view(shuffled._order[:cut]), shuffled._view(shuffled._order[cut:])

    def _view(self, order: torch.Tensor) -> Dataset:
        view = copy.copy(self)
        view._order = order.clone()
        view.warnings = list(self.warnings)
        return view
