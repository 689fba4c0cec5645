"""pytorch-grad-cam's target objects: callables from one image's model output to one scalar.

Any callable with this convention works as a target; these are the common ones, with the same
names, constructors and values as in pytorch-grad-cam.
"""

from __future__ import annotations

import numpy as np
import torch


class ClassifierOutputTarget:
    """The logit of `category`."""

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output[self.category] if model_output.dim() == 1 else model_output[:, self.category]


class ClassifierOutputSoftmaxTarget:
    """The softmax probability of `category`."""

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(model_output, dim=-1)
        return probs[self.category] if model_output.dim() == 1 else probs[:, self.category]


class BinaryClassifierOutputTarget:
    """A single-logit binary classifier: the logit for category 1, its negation for category 0."""

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output * (1 if self.category == 1 else -1)


class SemanticSegmentationTarget:
    """The sum of `category`'s scores over the pixels of a binary `mask` (`[H, W]` numpy or tensor)."""

    def __init__(self, category: int, mask: np.ndarray | torch.Tensor) -> None:
        self.category = category
        self.mask = torch.from_numpy(mask) if isinstance(mask, np.ndarray) else torch.as_tensor(mask)

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return (model_output[self.category, :, :] * self.mask.to(model_output.device)).sum()


class RawScoresOutputTarget:
    """The model output itself (for models with one output)."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output


class SoftmaxOutputTarget:
    """The softmax of the model output."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model_output, dim=-1)
