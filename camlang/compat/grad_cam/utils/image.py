"""pytorch-grad-cam's image helpers: `show_cam_on_image`, `preprocess_image`, `scale_cam_image`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from camlang.errors import CamlangError
from camlang.report.colormap import jet

COLORMAP_JET = 2  # OpenCV's constant, so `colormap=cv2.COLORMAP_JET` and the default agree


def _heatmap_rgb(mask: np.ndarray, colormap: int) -> np.ndarray:
    """The colormap of `mask` in [0, 1] as RGB floats; OpenCV's own table when OpenCV is installed."""
    levels = (255 * np.asarray(mask, dtype=np.float32)).astype(np.uint8)
    try:
        import cv2
    except ImportError:
        if colormap != COLORMAP_JET:
            raise CamlangError(
                f"colormap {colormap} needs OpenCV (pip install opencv-python-headless)",
                hint="without OpenCV only the default jet colormap is available",
            ) from None
        return jet(levels / 255.0).astype(np.float32)
    bgr = np.asarray(cv2.applyColorMap(levels, colormap))
    return bgr[..., ::-1].astype(np.float32) / 255


def show_cam_on_image(
    img: np.ndarray,
    mask: np.ndarray,
    use_rgb: bool = False,
    colormap: int = COLORMAP_JET,
    image_weight: float = 0.5,
) -> np.ndarray:
    """Overlay a CAM `mask` `[H, W]` in [0, 1] on `img` `[H, W, 3]` float in [0, 1]; uint8 `[H, W, 3]`.

    As in pytorch-grad-cam, the heatmap is BGR unless `use_rgb=True`, and the blend is divided by its maximum.
    """
    if np.max(img) > 1:
        raise CamlangError(
            "show_cam_on_image: the input image should be float32 in the range [0, 1]",
            hint="divide a uint8 image by 255",
        )
    if not 0 <= image_weight <= 1:
        raise CamlangError(f"show_cam_on_image: image_weight should be in [0, 1], got {image_weight}")
    heatmap = _heatmap_rgb(mask, colormap)
    if not use_rgb:
        heatmap = heatmap[..., ::-1]
    cam = (1 - image_weight) * heatmap + image_weight * img
    cam = cam / np.max(cam)
    return (255 * cam).astype(np.uint8)


def preprocess_image(
    img: np.ndarray,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
) -> torch.Tensor:
    """An `[H, W, 3]` float image in [0, 1] as a normalized `[1, 3, H, W]` tensor."""
    x = torch.as_tensor(np.ascontiguousarray(img), dtype=torch.float32).permute(2, 0, 1)
    x = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    return x[None]


def scale_cam_image(
    cam: np.ndarray | torch.Tensor | Sequence[np.ndarray], target_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Per-map min-max scaling, then resizing to `target_size` = (width, height): float32 `[N, H, W]`."""
    t = torch.as_tensor(np.asarray(cam, dtype=np.float32))[:, None]
    t = t - t.amin(dim=(-2, -1), keepdim=True)
    t = t / (1e-7 + t.amax(dim=(-2, -1), keepdim=True))
    if target_size is not None:
        t = F.interpolate(t, size=(target_size[1], target_size[0]), mode="bilinear", align_corners=False)
    return t[:, 0].numpy().astype(np.float32)
