"""pytorch-grad-cam's `utils` package: model targets and image helpers."""

from camlang.compat.grad_cam.utils import image, model_targets

__all__ = ["image", "model_targets"]
