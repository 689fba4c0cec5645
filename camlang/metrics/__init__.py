"""Metric primitives for saliency maps, batched for many candidate maps at once.

Conventions (see docs/metrics.md): `model_fn(x) -> logits [N, K]`, images `x` [B, C, H, W] as the
model consumes them, `targets` LongTensor [B], maps `L` [B, H, W] or [M, B, H, W] in [0, 1] at
input resolution. Functions that call the model take `chunk_size` (images per call) and an
optional `CallCounter`, and report their own image count in their result.
"""

from camlang.core.call_counter import CallCounter
from camlang.metrics._common import pixel_ranks
from camlang.metrics.complexity import entropy, sparsity
from camlang.metrics.curves import CurveResult, deletion_auc, insertion_auc, step_counts, trapezoid_auc
from camlang.metrics.faithfulness import (
    ConfidenceResult,
    average_drop,
    confidence_change,
    explanation_probabilities,
    increase_in_confidence,
)
from camlang.metrics.localisation import (
    argmax_points,
    boxes_to_masks,
    energy_pointing_game,
    inside,
    iou_at,
    pointing_game,
)
from camlang.metrics.road import (
    TIE_RULES,
    RoadResult,
    impute,
    removal_mask,
    removed_count,
    road,
    road_combined,
)
from camlang.metrics.robustness import (
    avg_sensitivity,
    equivariance_flip,
    equivariance_shift,
    max_sensitivity,
    sensitivity_samples,
    stability,
)
from camlang.metrics.sufficiency import SufficiencyResult, sufficient_fraction, sufficient_fraction_linear
from camlang.metrics.transforms import (
    blur,
    count_pixels,
    hflip,
    keep_top,
    mask_top,
    noise,
    shift,
    shift_valid_mask,
    top_mask,
)

__all__ = [
    "CallCounter",
    "ConfidenceResult",
    "CurveResult",
    "RoadResult",
    "TIE_RULES",
    "SufficiencyResult",
    "argmax_points",
    "average_drop",
    "avg_sensitivity",
    "blur",
    "boxes_to_masks",
    "confidence_change",
    "count_pixels",
    "deletion_auc",
    "energy_pointing_game",
    "entropy",
    "equivariance_flip",
    "equivariance_shift",
    "explanation_probabilities",
    "hflip",
    "impute",
    "increase_in_confidence",
    "insertion_auc",
    "inside",
    "iou_at",
    "keep_top",
    "mask_top",
    "max_sensitivity",
    "noise",
    "pixel_ranks",
    "pointing_game",
    "removal_mask",
    "removed_count",
    "road",
    "road_combined",
    "sensitivity_samples",
    "shift",
    "shift_valid_mask",
    "sparsity",
    "stability",
    "step_counts",
    "sufficient_fraction",
    "sufficient_fraction_linear",
    "top_mask",
    "trapezoid_auc",
]
