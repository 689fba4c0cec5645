"""The proof oracle (camlang.synth.proof)."""

from __future__ import annotations

import numpy as np
import pytest

from camlang.backends import reference
from camlang.frontend.check import check_text
from camlang.synth import prove_bounded, prove_equivalent, prove_nonnegative

SRC = """import "stdlib/cams.cam"
cam sumw = relu(sum_c(sum_hw(G) * A))
cam swapped = relu(sum_c(A * mean_hw(G)))
cam signed = sum_c(mean_hw(G) * A)
cam scaled = relu(sum_c(G * A * 3))
"""


@pytest.fixture(scope="module")
def cams() -> tuple[object, dict[str, object]]:
    prog = check_text(SRC, file_checks=False)
    assert not prog.has_errors
    return prog.builder, {k: v.node for k, v in prog.cams.items()}


@pytest.mark.parametrize(
    ("a", "b", "method"),
    [
        ("gradcampp", "gradcampp", "normal form"),
        ("gradcam", "swapped", "normal form"),
        ("gradcam", "sumw", "z3"),
        ("hirescam", "scaled", "z3"),
    ],
)
def test_equivalent_pairs_are_proved(cams, a: str, b: str, method: str) -> None:  # type: ignore[no-untyped-def]
    builder, c = cams
    v = prove_equivalent(builder, c[a], c[b], timeout_s=20)
    assert v.status == "equivalent" and v.method == method and v.check_status == "holds"
    if method == "z3":
        assert "C=2, H=2, W=2" in v.detail  # the bound is stated


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("gradcam", "hirescam"),
        ("gradcam", "xgradcam"),
        ("gradcam", "signed"),
        ("scorecam", "ablationcam"),
        ("layercam", "gradcam"),
    ],
)
def test_counterexamples_replay(cams, a: str, b: str) -> None:  # type: ignore[no-untyped-def]
    builder, c = cams
    v = prove_equivalent(builder, c[a], c[b], timeout_s=20)
    assert v.status == "not_equivalent" and v.counterexample
    terms = {k: np.asarray(val)[None] for k, val in v.counterexample.items()}
    ctx = reference.ReferenceContext(terms, (4, 4))

    def norm(node: object) -> np.ndarray:
        x = reference.evaluate_one(node, ctx)  # type: ignore[arg-type]
        x = x - x.min()
        return x / (1e-7 + x.max())

    assert np.abs(norm(c[a]) - norm(c[b])).max() > 1e-3


def test_nonnegative_and_bounded(cams) -> None:  # type: ignore[no-untyped-def]
    builder, c = cams
    assert prove_nonnegative(builder, c["gradcam"], 10).status == "holds"
    v = prove_nonnegative(builder, c["signed"], 10)
    assert v.status == "violated" and v.counterexample is not None
    assert prove_bounded(builder, c["gradcam"], -1, 1, 10).status == "violated"
    assert prove_bounded(builder, c["scorecam"], 0, 1e9, 10).check_status in ("violated", "unknown")
