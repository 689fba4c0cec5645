"""The BanditNet family (seed protocol, seeds 1-10) against the exhaustive activation-pattern oracle.

For every net, the oracle (camlang.smt.exhaustive: all 4096 patterns, one LP each, no bounds and no
MILP) gives the exact delta where saliency robustness at x = [1,1,0,1,1], eps = 1, box [0,1] flips.
The engine must agree with it on a grid of deltas around the flip, 1e-3 on either side included,
and its bisection must bracket the oracle's flip point.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from camlang.smt import SaliencyRobust, check, find_delta_flip
from camlang.smt.exhaustive import ExhaustiveFlip, exhaustive_flip
from camlang.smt.inputs import prepare_point, torch_eval

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from train_banditnet import FAMILY_SEEDS, load_family, training_set  # noqa: E402

X = [1.0, 1.0, 0.0, 1.0, 1.0]
OFFSETS = (-0.05, -1e-3, 1e-3, 0.05)


@pytest.fixture(scope="module")
def family() -> dict[int, torch.nn.Module]:
    torch.set_num_threads(1)
    return load_family()


def _oracle(net: torch.nn.Module) -> ExhaustiveFlip:
    m64, flat, shape, _, relu_net = prepare_point(net, X, None)
    logits, _ = torch_eval(m64, flat, shape, None)
    label = int(np.argmax(logits))
    _, g0 = torch_eval(m64, flat, shape, label)
    assert g0 is not None
    return exhaustive_flip(relu_net, np.zeros(5), np.ones(5), label, g0)


def test_seed_protocol_draws_20_distinct_configurations_per_seed() -> None:
    draws = set()
    for k in FAMILY_SEEDS:
        x, y = training_set(seed=k)
        assert x.shape == (20, 5) and len({tuple(r.tolist()) for r in x}) == 20
        assert set(y.tolist()) <= {0, 1}
        draws.add(tuple(map(tuple, x.tolist())))
    assert len(draws) == len(FAMILY_SEEDS)


@pytest.mark.parametrize("seed", FAMILY_SEEDS)
def test_engine_matches_the_exhaustive_oracle(family: dict[int, torch.nn.Module], seed: int) -> None:
    net = family[seed]
    oracle = _oracle(net)
    assert oracle.patterns == 4096
    flip = oracle.flip if np.isfinite(oracle.flip) else 1.0
    deltas = sorted({round(flip + o, 12) for o in OFFSETS if flip + o >= 0})
    assert any(d > flip for d in deltas)
    for delta in deltas:
        assert all(abs(delta - a) > 1e-6 for a in oracle.ambiguous), "grid point on an ambiguous pattern"
        v = check(net, SaliencyRobust(X, 1.0, delta, box=(0.0, 1.0)), timeout_s=60)
        assert v.status == oracle.verdict(delta), (seed, delta, oracle.flip, v.reason)
        if v.status == "violated":
            assert v.replay is not None and v.replay["ok"] and v.replay["grad_diff"] <= delta
            assert v.replay["margin_f64"] > 0 and not v.replay["boundary_only"]


def test_bisection_brackets_the_oracle_flip(family: dict[int, torch.nn.Module]) -> None:
    # the family's nets whose flip is not at 0 (the point's own region already misclassifies)
    inner = {k: _oracle(n) for k, n in family.items()}
    inner = {k: o for k, o in inner.items() if 0.01 < o.flip < 4.0}
    assert inner, "the family should contain a net with a flip inside (0.01, 4)"
    seed, oracle = min(inner.items())
    flip = find_delta_flip(family[seed], X, 1.0, 0.0, 4.0, box=(0.0, 1.0), tol=1e-3, timeout_s=60)
    assert flip.found, flip.reason
    assert flip.delta_holds is not None and flip.delta_violated is not None
    assert flip.delta_holds < oracle.flip <= flip.delta_violated
    assert flip.delta_violated - flip.delta_holds <= 1e-3
