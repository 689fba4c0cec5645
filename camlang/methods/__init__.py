"""Non-CAM saliency methods: gradients, SmoothGrad, guid-Xmage, DeepCover SFL, extremal perturbation.

Every method takes the model as it consumes `x` (eval mode), images `x [B, C, H, W]` and
`targets` (`LongTensor [B]`, or None for the predicted class), batches its model calls, and
returns raw (not normalized) maps `[B, H, W]` or a result object that holds one in `.map`.
See docs/methods.md.
"""

from camlang.methods.deepcover import (
    MEASURES,
    DeepCoverResult,
    ExplanationResult,
    SflCounts,
    deepcover,
    deepcover_explanation,
    deepcover_map,
    sfl_score,
)
from camlang.methods.extremal import ExtremalResult, extremal_map, extremal_perturbation
from camlang.methods.gradient import gradient_x_input, input_gradient, smoothgrad, vanilla_gradient
from camlang.methods.xmage import (
    XmageResult,
    direction_accuracy,
    distribution_map_rgb,
    xmage,
    xmage_map,
)

__all__ = [
    "MEASURES",
    "DeepCoverResult",
    "ExplanationResult",
    "ExtremalResult",
    "SflCounts",
    "XmageResult",
    "deepcover",
    "deepcover_explanation",
    "deepcover_map",
    "direction_accuracy",
    "distribution_map_rgb",
    "extremal_map",
    "extremal_perturbation",
    "gradient_x_input",
    "input_gradient",
    "sfl_score",
    "smoothgrad",
    "vanilla_gradient",
    "xmage",
    "xmage_map",
]
