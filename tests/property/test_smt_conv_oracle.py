"""Tiny random CNNs (one Conv2d on a 5x5 image, a few channels) against the exhaustive oracle.

The oracle (`camlang.smt.exhaustive`) enumerates every activation pattern and decides each region
by one LP, with no bounds, no MILP and no branch-and-bound; it shares only the network extraction
with the engine, and that extraction is itself checked against torch here on sampled points. The
engine's robustness and saliency-robustness verdicts, with and without branch-and-bound, must
equal the oracle's wherever the oracle's answer does not hang on a measure-zero boundary.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from torch import nn

from camlang.smt import Robust, SaliencyRobust, check
from camlang.smt.exhaustive import exhaustive_flip
from camlang.smt.inputs import prepare_point, torch_eval

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: (channels, kernel, stride, padding): each gives at most 9 ReLUs on a 5x5 image.
CONVS = ((2, 3, 2, 0), (1, 3, 1, 0), (2, 2, 2, 0), (1, 3, 2, 1), (2, 4, 1, 0))


@st.composite
def cnns(draw: st.DrawFn) -> nn.Module:
    """Conv2d(1 -> c) on 5x5, ReLU, Flatten, [Linear -> 2, ReLU,] Linear -> 2 or 3 classes."""
    channels, kernel, stride, padding = draw(st.sampled_from(CONVS))
    hidden = draw(st.sampled_from((0, 2)))
    n_out = draw(st.integers(2, 3))
    torch.manual_seed(draw(st.integers(0, 10_000)))
    conv = nn.Conv2d(1, channels, kernel, stride=stride, padding=padding)
    side = (5 + 2 * padding - kernel) // stride + 1
    width = channels * side * side
    layers: list[nn.Module] = [conv, nn.ReLU(), nn.Flatten()]
    if hidden:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers).double().eval()


@SETTINGS
@given(m=cnns(), data=st.data(), eps=st.floats(0.05, 0.5))
def test_engine_matches_the_exhaustive_oracle_on_tiny_cnns(
    m: nn.Module, data: st.DataObject, eps: float
) -> None:
    pixels = data.draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=25, max_size=25))
    x = torch.tensor(pixels, dtype=torch.float64).reshape(1, 1, 5, 5)
    m64, flat, shape, _, net = prepare_point(m, x, None)
    logits, _ = torch_eval(m64, flat, shape, None)
    label = int(np.argmax(logits))
    _, g0 = torch_eval(m64, flat, shape, label)
    assert g0 is not None
    # the extraction the oracle relies on computes torch's logits and gradients
    for xs in np.random.default_rng(0).uniform(0.0, 1.0, size=(5, 25)):
        want_y, want_g = torch_eval(m64, xs, shape, label)
        y, _ = net.forward(xs)
        np.testing.assert_allclose(y, want_y, atol=1e-10)
        np.testing.assert_allclose(net.gradient(xs, np.eye(net.n_outputs)[label]), want_g, atol=1e-10)
    lo, hi = np.clip(flat - eps, 0.0, 1.0), np.clip(flat + eps, 0.0, 1.0)
    oracle = exhaustive_flip(net, lo, hi, label, g0)
    assume(not oracle.ambiguous)
    robust = "holds" if math.isinf(oracle.flip) else "violated"
    event(f"robustness {robust}, {oracle.patterns} patterns")
    deltas = [0.5] if math.isinf(oracle.flip) else [oracle.flip + 1e-3]
    if 1e-3 <= oracle.flip < math.inf:
        deltas.append(oracle.flip - 1e-3)
    for bab in (False, True):
        v = check(m, Robust(x, eps, label, (0.0, 1.0)), timeout_s=30, bab=bab)
        assert v.status == robust, (v, oracle)
        for delta in deltas:
            v = check(m, SaliencyRobust(x, eps, delta, label, (0.0, 1.0)), timeout_s=30, bab=bab)
            assert v.status == oracle.verdict(delta), (delta, v, oracle)
            if v.status == "violated":
                assert v.replay is not None and v.replay["ok"]
