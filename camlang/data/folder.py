"""Image folders: flat or class-per-subfolder layouts, with optional labels, masks or boxes.

Only file names and image headers are read when the dataset is built; pixels are decoded per
batch with PIL. Unreadable files are skipped and counted in one warning (`dataset.warnings`).
"""

from __future__ import annotations

import csv
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from camlang.data.archive import ARCHIVE_SUFFIXES, is_archive, unpacked_folder
from camlang.data.base import Batch, Dataset, normalize_images, resolve_normalization
from camlang.errors import CamlangError

_V = TypeVar("_V")

#: File extensions treated as images (lower case).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
_FIRST_FEW = 3


@dataclass(frozen=True)
class _Entry:
    """One readable image: its path, display name, original (width, height) and label."""

    path: Path
    name: str
    width: int
    height: int
    label: int | None


def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    """Image files in `folder` (recursively when asked), sorted, hidden files skipped."""
    if recursive:
        found = [
            Path(root) / f
            for root, dirs, files in os.walk(folder)
            for f in files
            if not any(part.startswith(".") for part in Path(root).relative_to(folder).parts)
        ]
        return sorted(p for p in found if _is_image(p))
    return sorted(p for p in folder.iterdir() if _is_image(p))


def _check_folder(path: str | os.PathLike[str], what: str) -> Path:
    """The folder named by `path`, or the unpacked contents when `path` is an archive."""
    if is_archive(path):
        return unpacked_folder(path)
    folder = Path(path).expanduser()
    if not folder.exists():
        raise CamlangError(
            f"{what} {str(path)!r} does not exist (resolved to {folder.resolve()})",
            hint="check the path; relative paths are relative to the current directory",
        )
    if not folder.is_dir():
        raise CamlangError(
            f"{what} {str(path)!r} is not a folder (resolved to {folder.resolve()})",
            hint="give a folder, or an archive ending in " + ", ".join(ARCHIVE_SUFFIXES),
        )
    return folder


def _first_few(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_FIRST_FEW])
    return shown + (", ..." if len(items) > _FIRST_FEW else "")


def _read_csv(path: str | os.PathLike[str], what: str) -> list[list[str]]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise CamlangError(f"{what} file {str(path)!r} does not exist (resolved to {p.resolve()})")
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            rows = [[c.strip() for c in row] for row in csv.reader(f) if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CamlangError(f"cannot read {what} file {str(path)!r}: {exc}") from exc
    if not rows:
        raise CamlangError(f"{what} file {str(path)!r} is empty")
    return rows


def _lookup(table: Mapping[str, _V], entry_name: str) -> _V | None:
    """Find a CSV/mask key for an image by relative name, then by base name, then by stem."""
    for key in (
        entry_name,
        Path(entry_name).name,
        str(Path(entry_name).with_suffix("")),
        Path(entry_name).stem,
    ):
        if key in table:
            return table[key]
    return None


def _label_table(path: str | os.PathLike[str]) -> tuple[dict[str, int], list[str] | None]:
    """Parse `filename,label` rows; labels are integers or class names (then sorted into indices)."""
    rows = _read_csv(path, "labels")
    if rows[0][0].lower() in {"filename", "file", "name", "path", "image"}:
        rows = rows[1:]
    bad = [i + 1 for i, r in enumerate(rows) if len(r) < 2]
    if bad:
        raise CamlangError(f"labels file {str(path)!r}: row {bad[0]} does not have the form filename,label")
    raw = {r[0]: r[1] for r in rows}
    if all(v.lstrip("-").isdigit() for v in raw.values()):
        return {k: int(v) for k, v in raw.items()}, None
    names = sorted(set(raw.values()))
    return {k: names.index(v) for k, v in raw.items()}, names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _box_table(path: str | os.PathLike[str]) -> dict[str, list[tuple[float, float, float, float]]]:
    """Parse `filename,x0,y0,x1,y1` rows (several rows per file are united)."""
    rows = _read_csv(path, "boxes")
    table: dict[str, list[tuple[float, float, float, float]]] = {}
    for i, row in enumerate(rows):
        try:
            if len(row) < 5:
                raise ValueError
            x0, y0, x1, y1 = (float(v) for v in row[1:5])
        except ValueError:
            if i == 0 and not any(_is_number(v) for v in row[1:5]):  # a header line
                continue
            raise CamlangError(
                f"boxes file {str(path)!r}: row {i + 1} {row!r} is not filename,x0,y0,x1,y1 with numbers"
            ) from None
        if x1 <= x0 or y1 <= y0:
            raise CamlangError(f"boxes file {str(path)!r}: row {i + 1} has an empty box {row[1:5]}")
        table.setdefault(row[0], []).append((x0, y0, x1, y1))
    return table


def _concept_table(path: str | os.PathLike[str]) -> tuple[list[str], dict[str, list[float]]]:
    """Parse a `filename,concept1,concept2,...` header and one row of 0/1 values per file."""
    rows = _read_csv(path, "concepts")
    header = rows[0]
    if len(header) < 2 or any(_is_number(h) for h in header[1:]):
        raise CamlangError(
            f"concepts file {str(path)!r} needs a header row: filename,<concept>,<concept>,..."
        )
    names = header[1:]
    if len(set(names)) != len(names) or any(not n for n in names):
        raise CamlangError(
            f"concepts file {str(path)!r}: concept names in the header must be distinct and non-empty"
        )
    table: dict[str, list[float]] = {}
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header) or any(v not in ("0", "1") for v in row[1:]):
            raise CamlangError(
                f"concepts file {str(path)!r}: row {i} {row!r} is not a filename and "
                f"{len(names)} values of 0 or 1"
            )
        table[row[0]] = [float(v) for v in row[1:]]
    return names, table


class ImageFolderDataset(Dataset):
    """Images in a folder, loaded lazily with PIL. Build with `images(...)`."""

    kind = "images"

    def __init__(
        self,
        folder: str | os.PathLike[str],
        size: int | None,
        normalize: str | tuple[Sequence[float], Sequence[float]] | None,
        labels: str | os.PathLike[str] | Sequence[str] | None,
        masks: str | os.PathLike[str] | None,
        boxes: str | os.PathLike[str] | None,
        channels: int,
        concepts: str | os.PathLike[str] | None = None,
    ) -> None:
        if channels not in (1, 3):
            raise CamlangError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
        if masks is not None and boxes is not None:
            raise CamlangError("give either masks or boxes for an image folder, not both")
        root = _check_folder(folder, "image folder")
        self.root = root
        self.channels = channels
        self.normalization = resolve_normalization(normalize, channels)
        entries, class_names, warnings = self._scan(root, labels)
        self.class_names = class_names
        self.has_labels = entries[0].label is not None
        self.size = self._choose_size(entries, size)
        self._entries = entries
        self._mask_paths: list[Path] | None = None
        self._boxes: list[list[tuple[float, float, float, float]]] | None = None
        if masks is not None:
            self._mask_paths = self._match_masks(_check_folder(masks, "masks folder"), entries)
        if boxes is not None:
            table = _box_table(boxes)
            found = [_lookup(table, e.name) for e in entries]
            missing = [e.name for e, b in zip(entries, found) if b is None]
            if missing:
                raise CamlangError(
                    f"{len(missing)} image(s) have no box in {str(boxes)!r} (first: {_first_few(missing)})",
                    hint="add a filename,x0,y0,x1,y1 row for each image, or remove those images",
                )
            self._boxes = [b for b in found if b is not None]  # all found: checked above
        self.has_masks = masks is not None or boxes is not None
        self._concepts: torch.Tensor | None = None
        if concepts is not None:
            names, ctable = _concept_table(concepts)
            crows = [_lookup(ctable, e.name) for e in entries]
            missing = [e.name for e, r in zip(entries, crows) if r is None]
            if missing:
                raise CamlangError(
                    f"{len(missing)} image(s) have no row in {str(concepts)!r} (first: "
                    f"{_first_few(missing)})",
                    hint="add a filename,0,1,... row for each image",
                )
            self.concept_names = names
            self._concepts = torch.tensor(crows, dtype=torch.float32)
        self.name = str(folder)
        super().__init__(len(entries))
        self.warnings = warnings

    # -- construction helpers -------------------------------------------------------------------
    @staticmethod
    def _scan(
        root: Path, labels: str | os.PathLike[str] | Sequence[str] | None
    ) -> tuple[list[_Entry], list[str] | None, list[str]]:
        warnings: list[str] = []
        top = _image_files(root, recursive=False)
        subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        per_class = {d.name: _image_files(d, recursive=True) for d in subdirs} if not top else {}
        per_class = {k: v for k, v in per_class.items() if v}
        layout_classes = sorted(per_class) if per_class else None
        files = top if top else [p for k in sorted(per_class) for p in per_class[k]]
        if not files:
            raise CamlangError(
                f"image folder {str(root)!r} contains no images (resolved to {root.resolve()})",
                hint="supported extensions: " + ", ".join(sorted(IMAGE_EXTENSIONS)),
            )
        if top and any(_image_files(d, recursive=True) for d in subdirs):
            warnings.append(f"{root}: images in subfolders were ignored because the folder itself has images")

        class_names: list[str] | None = layout_classes
        class_of_dir: dict[str, int] = {c: i for i, c in enumerate(layout_classes or [])}
        csv_labels: dict[str, int] | None = None
        if isinstance(labels, str | os.PathLike):
            csv_labels, csv_names = _label_table(labels)
            class_names = csv_names  # integer labels carry no names
        elif labels is not None:
            class_names = [str(c) for c in labels]
            if layout_classes is not None:
                for d in layout_classes:
                    if d not in class_names:
                        close = difflib.get_close_matches(d, class_names, n=3)
                        raise CamlangError(
                            f"subfolder {d!r} of {str(root)!r} is not one of the given class names",
                            hint=f"did you mean {', '.join(map(repr, close))}?"
                            if close
                            else "add it to the list",
                        )
                class_of_dir = {d: class_names.index(d) for d in layout_classes}

        entries: list[_Entry] = []
        unreadable: list[str] = []
        unlabelled: list[str] = []
        for path in files:
            name = path.relative_to(root).as_posix()
            try:
                with Image.open(path) as im:
                    width, height = im.size
            except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
                unreadable.append(name)
                continue
            label: int | None = None
            if csv_labels is not None:
                found = _lookup(csv_labels, name)
                if found is None:
                    unlabelled.append(name)
                    continue
                label = int(found)
            elif layout_classes is not None:
                label = class_of_dir[path.relative_to(root).parts[0]]
            entries.append(_Entry(path, name, width, height, label))
        if unreadable:
            warnings.append(
                f"skipped {len(unreadable)} unreadable image file(s) in {root}: {_first_few(unreadable)}"
            )
        if unlabelled:
            raise CamlangError(
                f"{len(unlabelled)} image(s) in {str(root)!r} have no label in {str(labels)!r} "
                f"(first: {_first_few(unlabelled)})",
                hint="add a filename,label row for each image",
            )
        if not entries:
            raise CamlangError(
                f"none of the {len(files)} image file(s) in {str(root)!r} could be read "
                f"(first: {_first_few(unreadable)})"
            )
        return entries, class_names, warnings

    @staticmethod
    def _choose_size(entries: list[_Entry], size: int | None) -> int:
        if size is None:
            sizes = {(e.width, e.height) for e in entries}
            if len(sizes) == 1 and entries[0].width == entries[0].height:
                return entries[0].width
            raise CamlangError(
                "the images do not all have the same square size; give a size to resize them to",
                hint="e.g. size = 224",
            )
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 4096:
            raise CamlangError(f"image size must be an integer between 1 and 4096, got {size!r}")
        return size

    @staticmethod
    def _match_masks(mask_root: Path, entries: list[_Entry]) -> list[Path]:
        table: dict[str, Path] = {}
        for p in _image_files(mask_root, recursive=True):
            rel = p.relative_to(mask_root)
            table.setdefault(rel.with_suffix("").as_posix(), p)
            table.setdefault(rel.stem, p)
        found = [_lookup(table, str(Path(e.name).with_suffix(""))) for e in entries]
        missing = [e.name for e, m in zip(entries, found) if m is None]
        if missing:
            raise CamlangError(
                f"{len(missing)} image(s) have no mask in {str(mask_root)!r} (first: {_first_few(missing)})",
                hint="a mask has the image's relative name with any image extension",
            )
        return [m for m in found if m is not None]  # all found: checked above

    # -- loading --------------------------------------------------------------------------------
    def _open(self, path: Path, mode: str, resample: Image.Resampling) -> np.ndarray:
        try:
            with Image.open(path) as im:
                converted = im.convert(mode)
            if converted.size != (self.size, self.size):
                converted = converted.resize((self.size, self.size), resample)
            return np.asarray(converted)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise CamlangError(
                f"cannot decode image {str(path)!r}: {exc}", hint="remove or re-save the file"
            ) from exc

    def _box_mask(self, entry: _Entry, boxes: list[tuple[float, float, float, float]]) -> torch.Tensor:
        mask = torch.zeros(self.size, self.size, dtype=torch.bool)
        sx, sy = self.size / entry.width, self.size / entry.height
        for x0, y0, x1, y1 in boxes:
            c0, c1 = max(0, int(np.floor(x0 * sx))), min(self.size, int(np.ceil(x1 * sx)))
            r0, r1 = max(0, int(np.floor(y0 * sy))), min(self.size, int(np.ceil(y1 * sy)))
            mask[r0:r1, c0:c1] = True
        return mask

    def _load(self, base_indices: torch.Tensor) -> Batch:
        mode = "RGB" if self.channels == 3 else "L"
        pixels, masks, kept = [], [], []
        for i in base_indices.tolist():
            entry = self._entries[i]
            try:
                arr = torch.from_numpy(self._open(entry.path, mode, Image.Resampling.BILINEAR).copy())
                mask = None
                if self._mask_paths is not None:
                    m = self._open(self._mask_paths[i], "L", Image.Resampling.NEAREST)
                    mask = torch.from_numpy(m > 0 if m.max() <= 1 else m >= 128)
            except CamlangError as err:
                # A file that was readable when the folder was scanned and is not now (deleted,
                # truncated, a disk error): the image leaves this batch and is counted, as at
                # load time; a later --resume reads it again.
                self.unreadable[str(entry.path)] = err.message
                continue
            kept.append(i)
            pixels.append(arr.permute(2, 0, 1) if arr.ndim == 3 else arr.unsqueeze(0))
            if mask is not None:
                masks.append(mask)
            elif self._boxes is not None:
                masks.append(self._box_mask(entry, self._boxes[i]))
        base_indices = torch.tensor(kept, dtype=torch.long)
        entries = [self._entries[i] for i in kept]
        s = self.size
        img = torch.stack(pixels).float().div_(255.0) if pixels else torch.zeros(0, self.channels, s, s)
        raw = img if self.channels == 3 else img.expand(-1, 3, -1, -1).clone()
        labels = None
        if self.has_labels:
            labels = torch.tensor([e.label for e in entries], dtype=torch.long)
        mask_t = None
        if self.has_masks:
            mask_t = torch.stack(masks) if masks else torch.zeros(0, s, s, dtype=torch.bool)
        return Batch(
            x=normalize_images(img, self.normalization),
            raw=raw,
            labels=labels,
            masks=mask_t,
            names=[e.name for e in entries],
            indices=base_indices.clone(),
            concepts=None if self._concepts is None else self._concepts[base_indices],
        )


def images(
    folder: str | os.PathLike[str],
    size: int | None = None,
    normalize: str | tuple[Sequence[float], Sequence[float]] | None = "imagenet",
    labels: str | os.PathLike[str] | Sequence[str] | None = None,
    masks: str | os.PathLike[str] | None = None,
    boxes: str | os.PathLike[str] | None = None,
    channels: int = 3,
    concepts: str | os.PathLike[str] | None = None,
) -> ImageFolderDataset:
    """Images from a folder, resized to `size` x `size` (bilinear, antialiased) and normalized.

    - Layout: a flat folder of images, or one subfolder per class (labels are the sorted
      subfolder names' positions) when the folder itself holds no images.
    - `folder` (and `masks`) may be an archive (`.tar.gz`, `.zip`, ...): it is unpacked once into
      the user's cache folder (`camlang.data.archive`) and read from there.
    - `labels`: a CSV path with `filename,label` rows (integers, or class names that are sorted
      into indices), or a list of class names that maps subfolder names onto the model's indices.
    - `masks`: a folder with one mask per image (same relative name, any image extension),
      binarised; `boxes`: a CSV of `filename,x0,y0,x1,y1` in original pixels, rescaled to `size`.
    - `normalize`: "imagenet", "cifar", "none" or a `(mean, std)` pair.
    - `channels`: 3 (RGB) or 1 (grey); `size=None` keeps the native size when all images share it.
    - `concepts`: a CSV with a `filename,<concept>,...` header and one row of 0/1 values per image
      (the annotations of `concepts NAME = annotations(...)` and of concept probes).
    """
    return ImageFolderDataset(folder, size, normalize, labels, masks, boxes, channels, concepts)
