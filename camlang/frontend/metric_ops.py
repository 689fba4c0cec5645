"""The op table's metric-language rows: model re-evaluation, transforms, curves, localisation.

Their kernels are `camlang.metrics.kernels` (named in the kernel registry); they read a batch
through `camlang.metrics.inputs.MetricInputs`.
"""

from __future__ import annotations

from camlang.frontend.op_spec import OpSpec, Param, TypeRule
from camlang.frontend.type_rules import const, map_to_scalar, needs, same_as_first
from camlang.frontend.value_types import IMAGE, INPUT_MAP, POINT, SCALAR


def _metric_op(
    name: str,
    params: tuple[Param, ...],
    rule: TypeRule,
    doc: str,
    model: bool = True,
    ranking_arg: int | None = None,
) -> OpSpec:
    """A metric-language op; its torch kernel reads the batch through `MetricInputs`."""
    return OpSpec(
        name, params, rule, doc, frozenset({"metric"}), "metric", None, model, ranking_arg=ranking_arg
    )


METRIC_ROWS: list[OpSpec] = [
    _metric_op(
        "P_at",
        (Param("image"),),
        needs(IMAGE, result=SCALAR),
        "target probability of the model on a transformed input",
    ),
    _metric_op("S_at", (Param("image"),), needs(IMAGE, result=SCALAR), "target logit on a transformed input"),
    _metric_op(
        "L_at",
        (Param("image"),),
        needs(IMAGE, result=INPUT_MAP),
        "the CAM re-evaluated on a transformed input",
    ),
    _metric_op(
        "ref", (Param("cam", "cam"),), const(INPUT_MAP), "the normalized map of another cam", model=True
    ),
    _metric_op(
        "argmax", (Param("map"),), needs(INPUT_MAP, result=POINT), "position of the map's maximum", False, 0
    ),
    _metric_op(
        "inside",
        (Param("point"), Param("mask")),
        needs(POINT, INPUT_MAP, result=SCALAR),
        "1 if the point lies inside the mask",
        False,
    ),
    _metric_op(
        "blur",
        (Param("x"), Param("sigma", "number")),
        same_as_first((IMAGE, INPUT_MAP)),
        "Gaussian blur with standard deviation sigma (pixels)",
        False,
    ),
    _metric_op(
        "noise",
        (Param("x"), Param("std", "number"), Param("seed", "int", 0)),
        same_as_first((IMAGE, INPUT_MAP)),
        "add Gaussian noise (deterministic in seed)",
        False,
    ),
    _metric_op("hflip", (Param("x"),), same_as_first((IMAGE, INPUT_MAP)), "horizontal flip", False),
    _metric_op(
        "shift",
        (Param("x"), Param("dx", "int"), Param("dy", "int")),
        same_as_first((IMAGE, INPUT_MAP)),
        "shift by (dx, dy) pixels, filling with zeros",
        False,
    ),
    _metric_op(
        "mask_top",
        (Param("x"), Param("map"), Param("fraction", "number"), Param("fill", "number", 0.0)),
        same_as_first((IMAGE,)),
        "replace the top `fraction` most salient pixels by `fill`",
        False,
        1,
    ),
    _metric_op(
        "keep_top",
        (Param("x"), Param("map"), Param("fraction", "number"), Param("fill", "number", 0.0)),
        same_as_first((IMAGE,)),
        "keep only the top `fraction` most salient pixels",
        False,
        1,
    ),
    _metric_op(
        "deletion_auc",
        (Param("map"), Param("steps", "int", 32), Param("fill", "value", 0.0)),
        map_to_scalar,
        "RISE deletion curve AUC (lower is better)",
        ranking_arg=0,
    ),
    _metric_op(
        "insertion_auc",
        (Param("map"), Param("steps", "int", 32), Param("fill", "value", "blur")),
        map_to_scalar,
        "RISE insertion curve AUC (higher is better)",
        ranking_arg=0,
    ),
    _metric_op(
        "sufficient_fraction",
        (Param("map"), Param("fill", "number", 0.0)),
        map_to_scalar,
        "smallest fraction of top pixels that keeps the predicted class",
        ranking_arg=0,
    ),
    _metric_op(
        "road",
        (Param("map"), Param("mode", "string", "combined"), Param("tie_rule", "string", "rank")),
        map_to_scalar,
        'ROAD score (morf, lerf or combined); tie_rule "rank" removes exactly the share, '
        '"threshold" as pytorch-grad-cam',
    ),
    _metric_op(
        "pointing",
        (Param("map"), Param("mask"), Param("tolerance", "number", None)),
        map_to_scalar,
        "pointing game hit within `tolerance` pixels of the mask (default 15/224 of the shorter side)",
        False,
        0,
    ),
    _metric_op(
        "energy_inside",
        (Param("map"), Param("mask")),
        map_to_scalar,
        "fraction of the map's energy inside the mask",
        False,
    ),
    _metric_op("iou", (Param("a"), Param("b")), map_to_scalar, "intersection over union of two maps", False),
    _metric_op("gini", (Param("map"),), map_to_scalar, "Gini index of the map's values (sparsity)", False),
    _metric_op(
        "entropy", (Param("map"),), map_to_scalar, "Shannon entropy (nats) of the normalised map", False
    ),
    _metric_op(
        "max_sensitivity",
        (Param("radius", "number", 0.02), Param("samples", "int", 10), Param("norm", "string", "fro")),
        const(SCALAR),
        "max over uniform L-inf draws of ||L_at(X + d) - L|| (Yeh et al. 2019)",
    ),
    _metric_op(
        "avg_sensitivity",
        (Param("radius", "number", 0.02), Param("samples", "int", 10), Param("norm", "string", "fro")),
        const(SCALAR),
        "mean over uniform L-inf draws of ||L_at(X + d) - L|| (Yeh et al. 2019)",
    ),
    _metric_op(
        "direction_accuracy",
        (Param("map"), Param("fraction", "number", 0.01), Param("pixels", "int", 64)),
        map_to_scalar,
        "share of pixels whose ±1% perturbation moves the score as the map's sign says",
    ),
]
