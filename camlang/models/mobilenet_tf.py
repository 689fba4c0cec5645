"""MobileNetV2 with TensorFlow "SAME" padding, for ImageNet weights converted from TF / TFLite.

torchvision's `mobilenet_v2` pads every 3x3 convolution by one pixel on each side. TensorFlow's
"SAME" padding does the same for stride 1, but for stride 2 on an even input it pads nothing on
the top/left and one pixel on the bottom/right. Weights trained in TF therefore see shifted
inputs under torchvision's padding, which costs accuracy. `mobilenet_v2_tf` is torchvision's
architecture (same parameter names, so converted state_dicts load directly) with its stride-2
3x3 convolutions replaced by `SamePadConv2d`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one axis under TF "SAME": output size ceil(size / stride)."""
    extent = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


class SamePadConv2d(nn.Conv2d):
    """A `Conv2d` that pads its input as TF "SAME" does (the extra pixel goes bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad for the input's size, then convolve without padding of its own."""
        top, bottom = same_padding(int(x.shape[-2]), self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = same_padding(int(x.shape[-1]), self.kernel_size[1], self.stride[1], self.dilation[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return self._conv_forward(x, self.weight, self.bias)


def _same_pad_copy(conv: nn.Conv2d) -> SamePadConv2d:
    kh, kw = conv.kernel_size[0], conv.kernel_size[-1]
    sh, sw = conv.stride[0], conv.stride[-1]
    dh, dw = conv.dilation[0], conv.dilation[-1]
    new = SamePadConv2d(
        conv.in_channels,
        conv.out_channels,
        (kh, kw),
        (sh, sw),
        padding=0,
        dilation=(dh, dw),
        groups=conv.groups,
        bias=conv.bias is not None,
    )
    new.load_state_dict(conv.state_dict())
    return new


def mobilenet_v2_tf(num_classes: int = 1000) -> nn.Module:
    """torchvision's MobileNetV2 (random weights) with TF "SAME" padding on its stride-2 3x3 convs.

    Inputs: RGB in [0, 1] mapped to [-1, 1], 224x224 for ImageNet weights. CAM layer:
    `features[-1]` (7x7, 1280 channels at 224 pixels).
    """
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)
    swaps = [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Conv2d) and mod.stride != (1, 1) and mod.kernel_size == (3, 3)
    ]
    for name, conv in swaps:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, _same_pad_copy(conv))
    return model.eval()
