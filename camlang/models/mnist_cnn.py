"""The small MNIST CNN ("mnist_cnn") that the verifier's convolution benchmark checks.

Input: `[B, 1, 28, 28]` grey in [0, 1] (no normalization), so a property's box is the pixel
domain [0, 1]. Two stride-2 convolutions without padding (28 -> 13 -> 5), a hidden Linear layer
and the logits: 8*13*13 + 16*5*5 + 100 = 1852 ReLUs, small enough for the complete verifier.
The checkpoint `models/mnist_cnn.pt` is made by `scripts/train_mnist_cnn.py`.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

#: Where the trained checkpoint lives in a source checkout.
MNIST_CNN_CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "mnist_cnn.pt"
#: The digit classes, in label order.
MNIST_CLASSES = [str(d) for d in range(10)]


def mnist_cnn(num_classes: int = 10) -> nn.Sequential:
    """Conv(1->8, 4x4, stride 2), ReLU, Conv(8->16, 4x4, stride 2), ReLU, Flatten,
    Linear(400->100), ReLU, Linear(100->num_classes); freshly initialised, in eval mode."""
    return nn.Sequential(
        nn.Conv2d(1, 8, kernel_size=4, stride=2),  # 28 -> 13
        nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=4, stride=2),  # 13 -> 5
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 100),
        nn.ReLU(),
        nn.Linear(100, num_classes),
    ).eval()
