"""BanditNet saliency robustness: the MILP and z3 back ends and the naive encoding agree."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from camlang.smt import SaliencyRobust, check, check_robust, check_saliency_robust, find_delta_flip

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from train_banditnet import banditnet  # noqa: E402

X = [1.0, 1.0, 0.0, 1.0, 1.0]
DELTAS = [0.5, 0.75, 1.0, 1.25, 1.5]


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    m = banditnet()
    m.load_state_dict(torch.load(ROOT / "models" / "banditnet.pt", weights_only=True))
    return m.eval()


def test_checkpoint_classifies_the_point_high(net: torch.nn.Module) -> None:
    assert int(net(torch.tensor([X])).argmax()) == 1  # 600 > 300: "high"


@pytest.mark.parametrize("delta", DELTAS + [2.0])
def test_milp_and_z3_agree(net: torch.nn.Module, delta: float) -> None:
    a = check_saliency_robust(net, X, 1.0, delta, backend="milp", timeout_s=60)
    b = check_saliency_robust(net, X, 1.0, delta, backend="z3", timeout_s=60)
    assert a.backend == "milp" and b.backend == "z3"
    assert a.status in ("holds", "violated")
    assert a.status == b.status
    for v in (a, b):
        if v.status == "violated":
            assert v.replay is not None and v.replay["ok"]
            assert v.replay["argmax"] != 1 and v.replay["grad_diff"] <= delta


@pytest.mark.slow
@pytest.mark.parametrize("delta", DELTAS)
def test_naive_encoding_agrees(net: torch.nn.Module, delta: float) -> None:
    ours = check_saliency_robust(net, X, 1.0, delta, timeout_s=60)
    naive = check(net, SaliencyRobust(X, 1.0, delta), backend="z3-naive", timeout_s=60)
    assert naive.backend == "z3-naive"
    assert ours.status == naive.status


def test_auto_is_fast_and_names_its_backend(net: torch.nn.Module) -> None:
    for delta in DELTAS:
        v = check_saliency_robust(net, X, 1.0, delta)
        assert v.backend == "milp"
        assert v.seconds < 2.0  # target 0.5 s; slack for a loaded CI machine


def test_plain_robustness_fails_and_replays(net: torch.nn.Module) -> None:
    v = check_robust(net, X, 1.0, box=(0.0, 1.0))
    assert v.status == "violated"
    assert v.replay is not None and v.replay["ok"]
    cex = np.array(v.counterexample)
    assert np.all(cex >= 0) and np.all(cex <= 1)
    assert int(net(torch.tensor(cex, dtype=torch.float32)[None]).argmax()) != 1


def test_delta_flip_is_bracketed_and_consistent(net: torch.nn.Module) -> None:
    flip = find_delta_flip(net, X, 1.0, 0.0, 4.0, tol=0.05)
    assert flip.found, flip.reason
    assert flip.delta_holds is not None and flip.delta_violated is not None
    assert 0 <= flip.delta_violated - flip.delta_holds <= 0.05
    assert check_saliency_robust(net, X, 1.0, flip.delta_holds, backend="z3").status == "holds"
    assert check_saliency_robust(net, X, 1.0, flip.delta_violated, backend="z3").status == "violated"
