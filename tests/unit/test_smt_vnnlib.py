"""VNN-LIB reading, and checking a property end to end on a tiny network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from camlang.errors import CamlangError
from camlang.smt import check_vnnlib, parse_vnnlib

TEXT = """; Mnist-style property with label: 1.
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(assert (<= X_0 0.5))
(assert (>= X_0 0.1))
(assert (<= X_1 1.0))
(assert (>= X_1 0.0))
(assert (or
    (and (>= Y_0 Y_1))
    (and (>= Y_2 Y_1) (<= Y_2 (+ 3.0 (* 2 Y_0))))
))
"""


def test_parse_box_disjuncts_and_label() -> None:
    p = parse_vnnlib(TEXT, 2)
    np.testing.assert_allclose(p.lo, [0.1, 0.0])
    np.testing.assert_allclose(p.hi, [0.5, 1.0])
    np.testing.assert_allclose(p.centre, [0.3, 0.5])
    assert p.n_outputs == 3 and len(p.disjuncts) == 2
    A0, c0 = p.disjuncts[0]
    np.testing.assert_allclose(A0, [[-1.0, 1.0, 0.0]])  # Y_1 - Y_0 <= 0
    A1, c1 = p.disjuncts[1]
    np.testing.assert_allclose(A1, [[0.0, 1.0, -1.0], [-2.0, 0.0, 1.0]])
    np.testing.assert_allclose(c1, [0.0, 3.0])
    assert p.label is None  # the second disjunct is not a plain Y_j >= Y_k


def test_label_of_robustness_property() -> None:
    text = TEXT.split("(assert (or")[0] + "(assert (or (and (>= Y_0 Y_1)) (and (>= Y_2 Y_1))))"
    assert parse_vnnlib(text, 2).label == 1


def test_errors() -> None:
    with pytest.raises(CamlangError, match="declares 2 inputs X_i but the network takes 3"):
        parse_vnnlib(TEXT, 3)
    with pytest.raises(CamlangError, match="unbalanced"):
        parse_vnnlib("(assert (<= X_0 1)", 1)


@pytest.mark.parametrize(
    "text",
    [
        "(declare-const)",  # no name
        "(declare-const X_a Real)",  # no index
        "(declare-const X_0 Real)\n(assert)",  # an empty assertion
        "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert Y_0)",  # not an atom
        "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 1))\n(assert (>= X_0 0))\n(assert (<= Y_0))",
    ],
)
def test_malformed_files_are_clear_errors(text: str) -> None:
    # found by review: these raised IndexError, ValueError or AssertionError from the parser
    with pytest.raises(CamlangError) as err:
        parse_vnnlib(text, 1, where="p.vnnlib")
    assert str(err.value).startswith("p.vnnlib")


def test_check_agrees_with_naive_and_sampling() -> None:
    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    p = parse_vnnlib(TEXT, 2)
    ours = check_vnnlib(m, p, timeout_s=30)
    peer = check_vnnlib(m, p, timeout_s=30, backend="z3-naive")
    assert ours.status in ("holds", "violated") and ours.status == peer.status
    xs = torch.rand(4000, 2, dtype=torch.float64) * torch.tensor([0.4, 1.0]) + torch.tensor([0.1, 0.0])
    y = m.double()(xs).detach().numpy()
    hit = any(np.all(A @ y.T <= c[:, None], axis=0).any() for A, c in p.disjuncts)
    if hit:
        assert ours.status == "violated"
    if ours.status == "violated":
        assert ours.replay is not None and ours.replay["ok"]


def _box_text(lo: list[float], hi: list[float]) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(len(lo))] + [
        "(declare-const Y_0 Real)",
        "(declare-const Y_1 Real)",
    ]
    for i, (a, b) in enumerate(zip(lo, hi)):
        lines += [f"(assert (>= X_{i} {a}))", f"(assert (<= X_{i} {b}))"]
    return "\n".join([*lines, "(assert (>= Y_1 Y_0))"])


def test_point_unclips_a_box_clipped_to_the_unit_domain() -> None:
    x, eps = np.array([0.0, 0.98, 0.5, 1.0, 0.02]), 0.05
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    p = parse_vnnlib(_box_text(lo.tolist(), hi.tolist()), 5)
    assert p.eps == pytest.approx(eps)
    np.testing.assert_allclose(p.point(), x, atol=1e-12)
    assert not np.allclose(p.centre, x)  # the centre is not the image


def test_point_of_an_unclipped_box_is_its_centre() -> None:
    p = parse_vnnlib(_box_text([-1.0, 0.2], [0.5, 0.4]), 2)  # reaches outside [0, 1]: not clipped to it
    np.testing.assert_allclose(p.point(), p.centre)


def test_point_of_a_side_spanning_the_domain_is_its_middle() -> None:
    p = parse_vnnlib(_box_text([0.0, 0.1], [1.0, 0.3]), 2)  # eps 0.5: X_0 = 0.5 is the only choice
    np.testing.assert_allclose(p.point(), [0.5, 0.2])


def test_point_stays_inside_a_box_written_in_float32() -> None:
    # bounds rounded to float32, as in VNN-COMP files: lo/hi -/+ the estimated eps can miss the box
    x, eps = np.array([0.0, 0.3, 1.0, 0.7, 0.0]), 0.05
    lo = np.clip(x - eps, 0, 1).astype(np.float32).astype(np.float64)
    hi = np.clip(x + eps, 0, 1).astype(np.float32).astype(np.float64)
    p = parse_vnnlib(_box_text(lo.tolist(), hi.tolist()), 5)
    pt = p.point()
    assert np.all(pt >= p.lo) and np.all(pt <= p.hi)
    np.testing.assert_allclose(pt, x, atol=1e-7)
