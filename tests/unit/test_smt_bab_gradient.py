"""The saliency test that closes branch-and-bound branches (camlang/smt/bab.py): a split ``z >= 0``
opens its gate for the backward pass, and the first layer's pinned gradient closes branches whose
gates cannot meet it."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from camlang.smt import SaliencyRobust, build_setup
from camlang.smt.bab import _Branch, _gate_phases, _gradient_impossible
from camlang.smt.bounds import ACTIVE, INACTIVE, UNDECIDED

F64 = torch.float64


def _net() -> nn.Module:
    """x in R^2 -> identity layer -> relu(x1 + x2 - 1.5) -> logits (0.5 - h, h)."""
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1), nn.ReLU(), nn.Linear(1, 2)).double()
    with torch.no_grad():
        m[0].weight.copy_(torch.eye(2))
        m[0].bias.zero_()
        m[2].weight.copy_(torch.tensor([[1.0, 1.0]]))
        m[2].bias.fill_(-1.5)
        m[4].weight.copy_(torch.tensor([[-1.0], [1.0]]))
        m[4].bias.copy_(torch.tensor([0.5, 0.0]))
    return m.eval()


def _branch(lower: list[list[float]], upper: list[list[float]], split: list[list[float]]) -> _Branch:
    t = lambda rows: tuple(torch.tensor(r, dtype=F64) for r in rows)  # noqa: E731
    empty = tuple(torch.zeros(1, len(r), dtype=F64) for r in lower)
    return _Branch(
        lower=t(lower),
        upper=t(upper),
        split=t(split),
        alpha=empty,
        beta=empty,
        lb=torch.zeros(1, dtype=F64),
        done=torch.zeros(1, dtype=torch.bool),
        scores=t(split),
        splits=(),
    )


# at x = (0.5, 0.5) the second layer is off (z = -0.5), so the label 0's gradient is 0; on the box
# [0.1, 0.9]^2 the first layer is on and the second undecided (z in [-1.3, 0.3])
SETUP = build_setup(_net(), SaliencyRobust([0.5, 0.5], 0.4, 0.1, box=(0.0, 1.0)), None)


def test_a_split_z_at_least_0_opens_its_gate() -> None:
    b = _branch([[0.1, 0.1], [0.0]], [[0.9, 0.9], [0.3]], [[0.0, 0.0], [1.0]])
    phase = _gate_phases(b)
    assert phase[0].tolist() == [ACTIVE, ACTIVE]
    assert phase[1].tolist() == [ACTIVE]
    # unsplit, the same bounds leave the gate undecided
    assert _gate_phases(_branch([[0.1, 0.1], [0.0]], [[0.9, 0.9], [0.3]], [[0.0, 0.0], [0.0]]))[
        1
    ].tolist() == [UNDECIDED]


def test_the_open_gate_closes_a_branch_that_cannot_keep_the_gradient() -> None:
    """With the gate open the input gradient is (-1, -1) on the branch, delta 0.1 from 0: closed.
    Every input of the branch with z > 0 has that gradient (checked in torch), and z = 0 belongs
    to the sibling."""
    assert SETUP.query.gradient is not None and np.allclose(SETUP.query.gradient.g0, 0.0)
    active = _branch([[0.1, 0.1], [0.0]], [[0.9, 0.9], [0.3]], [[0.0, 0.0], [1.0]])
    assert _gradient_impossible(SETUP, active, None)
    x = torch.tensor([[0.85, 0.8]], dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(_net()(x)[0, 0], x)
    assert g.tolist() == [[-1.0, -1.0]]
    # the sibling z <= 0 keeps the point's own gradient 0: open
    inactive = _branch([[0.1, 0.1], [-1.3]], [[0.9, 0.9], [0.0]], [[0.0, 0.0], [-1.0]])
    assert _gate_phases(inactive)[1].tolist() == [INACTIVE]
    assert not _gradient_impossible(SETUP, inactive, None)


def test_the_pinned_first_layer_gradient_closes_branches() -> None:
    """``gz0`` pins each first-layer gated gradient; a closed gate gives 0, an open one gh0."""
    inactive = _branch([[0.1, 0.1], [-1.3]], [[0.9, 0.9], [0.0]], [[0.0, 0.0], [-1.0]])
    zero_ok = (np.array([-0.1, -0.1]), np.array([0.1, 0.1]))
    assert not _gradient_impossible(SETUP, inactive, zero_ok)
    # neuron 0 is open with gh0 = 0 on this branch, but pinned away from 0: impossible
    away = (np.array([0.5, -0.1]), np.array([1.0, 0.1]))
    assert _gradient_impossible(SETUP, inactive, away)
    # neuron 0 closed by a split, pinned away from 0: impossible; pinned around 0: possible
    closed0 = _branch([[-0.5, 0.1], [-1.3]], [[0.0, 0.9], [0.0]], [[-1.0, 0.0], [-1.0]])
    assert _gate_phases(closed0)[0].tolist() == [INACTIVE, ACTIVE]
    assert _gradient_impossible(SETUP, closed0, away)
    assert not _gradient_impossible(SETUP, closed0, zero_ok)
