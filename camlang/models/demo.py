"""The demo CNN ("shapes_cnn") trained on the synthetic shapes dataset.

Input: `[B, 3, 64, 64]` RGB in [0, 1] (no normalization). `features` is a plain
Conv2d/BatchNorm2d/ReLU/MaxPool2d stack whose last module, `features.6` (= `features[-1]`), is a
ReLU with 16x16 spatial output: the CAM layer. Then global average pooling and one Linear layer.
Everything is piecewise linear, so exact attribution methods apply.
The checkpoint `models/shapes_cnn.pt` is made by `scripts/train_shapes_cnn.py`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from camlang.data.shapes import SHAPE_CLASSES

#: Where the trained checkpoint lives in a source checkout.
DEMO_CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "shapes_cnn.pt"
#: The CAM layer of the demo CNN.
DEMO_TARGET_LAYER = "features.6"


class ShapesCNN(nn.Module):
    """A small CNN for 64x64 shape images; about 55k parameters (checkpoint ~220 kB)."""

    def __init__(self, num_classes: int = len(SHAPE_CLASSES), width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=5, stride=2, padding=2),  # 64 -> 32
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 32 -> 16
            nn.Conv2d(
                width, 2 * width, kernel_size=5, padding=4, dilation=2
            ),  # 16 -> 16, receptive field 39 px
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits `[B, num_classes]` for images `[B, 3, H, W]` in [0, 1]."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
