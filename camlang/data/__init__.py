"""Datasets: synthetic shapes with ground-truth masks, image folders and MNIST idx files.

Every dataset is a lazy `Dataset` view that yields `Batch` records (see `camlang.data.base`).
"""

from camlang.data.base import NORMALIZATION_PRESETS, Batch, Dataset, normalize_images, resolve_normalization
from camlang.data.folder import IMAGE_EXTENSIONS, ImageFolderDataset, images
from camlang.data.idx import IdxDataset, idx, mnist, read_idx, write_idx
from camlang.data.shapes import SHAPE_CLASSES, ShapesDataset, render_shapes, synthetic_shapes

__all__ = [
    "IMAGE_EXTENSIONS",
    "NORMALIZATION_PRESETS",
    "SHAPE_CLASSES",
    "Batch",
    "Dataset",
    "IdxDataset",
    "ImageFolderDataset",
    "ShapesDataset",
    "idx",
    "images",
    "mnist",
    "normalize_images",
    "read_idx",
    "render_shapes",
    "resolve_normalization",
    "synthetic_shapes",
    "write_idx",
]
