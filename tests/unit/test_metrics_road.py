"""ROAD: the rank rule against loops, the threshold rule against pytorch-grad-cam (same noise), a dense solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camlang.errors import CamlangError
from camlang.metrics import CallCounter, impute, removal_mask, removed_count, road, road_combined

gradcam_road = pytest.importorskip(
    "pytorch_grad_cam.metrics.road", reason="pytorch-grad-cam is not installed"
)
targets_mod = pytest.importorskip(
    "pytorch_grad_cam.utils.model_targets", reason="pytorch-grad-cam is not installed"
)

# pytorch-grad-cam's imputer calls numpy functions on torch tensors, which NumPy 2 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")


def tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(),
        torch.nn.Linear(96, 5),
    ).eval()


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=g)
    L = torch.rand(4, 32, 32, generator=g)
    net = tiny_cnn()
    return net, x, L, net(x).argmax(1)


def dense_impute(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Each removed pixel = weighted mean of its in-image 8-neighbours, by a dense solve with loops."""
    c, h, w = img.shape
    cells = [(i, j) for i in range(h) for j in range(w) if removed[i, j]]
    var = {p: n for n, p in enumerate(cells)}
    A = np.zeros((len(cells), len(cells)))
    rhs = np.zeros((len(cells), c))
    for n, (i, j) in enumerate(cells):
        total = 0.0
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if (di, dj) == (0, 0) or not (0 <= i + di < h and 0 <= j + dj < w):
                    continue
                wt = 1 / 12 if di and dj else 1 / 6
                total += wt
                if removed[i + di, j + dj]:
                    A[n, var[(i + di, j + dj)]] -= wt
                else:
                    rhs[n] += wt * img[:, i + di, j + dj]
        A[n, n] += total
    sol = np.linalg.solve(A, rhs)
    out = img.copy()
    for n, (i, j) in enumerate(cells):
        out[:, i, j] = sol[n]
    return out


def test_imputer_matches_dense_solve_and_gradcam(setup) -> None:
    _, x, L, _ = setup
    img = x[0, :, :12, :12].contiguous()
    removed = removal_mask(L[0, :12, :12].contiguous(), 60, "morf", "threshold")
    mine = impute(img, removed, 0.0, None)
    assert np.abs(mine.numpy() - dense_impute(img.numpy(), removed)).max() < 1e-5
    theirs = gradcam_road.NoisyLinearImputer(noise=0.0)(img, torch.from_numpy(np.float32(~removed)))
    assert (mine - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("mode", ["morf", "lerf"])
@pytest.mark.parametrize("score", ["logit", "probability"])
def test_road_matches_pytorch_grad_cam(setup, mode, score) -> None:
    net, x, L, t = setup
    pcts = [20, 50, 80]
    cls = (
        gradcam_road.ROADMostRelevantFirstAverage
        if mode == "morf"
        else gradcam_road.ROADLeastRelevantFirstAverage
    )
    tgt = (
        targets_mod.ClassifierOutputTarget if score == "logit" else targets_mod.ClassifierOutputSoftmaxTarget
    )
    torch.manual_seed(11)  # pytorch-grad-cam draws its noise from the global generator
    ref = cls(pcts)(x, L.numpy(), [tgt(int(i)) for i in t], net)
    counter = CallCounter()
    mine = road(
        net,
        x,
        L,
        t,
        pcts,
        mode=mode,
        generator=torch.Generator().manual_seed(11),
        score=score,
        counter=counter,
        tie_rule="threshold",
    )
    assert np.abs(mine.score.numpy() - ref).max() < 1e-3
    assert mine.per_percentile.shape == (4, 3)
    assert mine.images == counter.images == 4 + 4 * 3


def test_road_combined_matches_pytorch_grad_cam(setup) -> None:
    net, x, L, t = setup
    torch.manual_seed(5)
    ref = gradcam_road.ROADCombined([30, 70])(
        x, L.numpy(), [targets_mod.ClassifierOutputTarget(int(i)) for i in t], net
    )
    mine = road_combined(
        net, x, L, t, [30, 70], generator=torch.Generator().manual_seed(5), tie_rule="threshold"
    )
    assert np.abs(mine.score.numpy() - ref).max() < 1e-3


def test_candidates_equal_separate_calls(setup) -> None:
    net, x, L, t = setup
    L2 = torch.stack([L, L.flip(-1)])
    both = road(net, x, L2, t, [40], noise=0.0, chunk_size=3)
    for m in range(2):
        one = road(net, x, L2[m], t, [40], noise=0.0)
        assert torch.allclose(both.score[m], one.score, atol=1e-6)


def test_threshold_rule_removes_ties_with_the_threshold(setup) -> None:
    """pytorch-grad-cam's rule on a map with many exact zeros (as Grad-CAM's) removes them all."""
    _, _, L, _ = setup
    zeros = torch.where(L[0] < 0.3, torch.zeros(()), L[0])  # about 30% exact zeros
    assert removal_mask(zeros, 10, "morf", "threshold").all()  # nominal 90% removes 100%
    assert int(removal_mask(zeros, 10, "morf", "rank").sum()) == int(0.9 * 32 * 32)
    flat = torch.zeros(32, 32)  # constant map: every pixel is at the percentile
    assert removal_mask(flat, 50, "lerf", "threshold").all()
    assert int(removal_mask(flat, 50, "lerf", "rank").sum()) == 512


@pytest.mark.parametrize("mode", ["morf", "lerf"])
def test_rank_rule_removes_exactly_the_share_in_deletion_order(mode) -> None:
    """Reference: sort pixels by saliency (MoRF: decreasing, LeRF: increasing), ties by row-major index."""
    g = torch.Generator().manual_seed(3)
    cam = torch.randint(0, 4, (9, 7), generator=g).float() / 3  # heavy ties
    for p in (10, 25, 50, 90, 100, 0):
        got = removal_mask(cam, p, mode, "rank")
        k = int((100 - p) * 63 // 100)
        assert int(got.sum()) == k == removed_count(63, p)
        flat = cam.reshape(-1).tolist()
        key = (lambda i: (-flat[i], i)) if mode == "morf" else (lambda i: (flat[i], i))
        want = np.zeros(63, dtype=bool)
        want[sorted(range(63), key=key)[:k]] = True
        assert np.array_equal(got.reshape(-1), want)


@torch.no_grad()
def test_rank_road_against_a_loop(setup) -> None:
    """ROAD score = mean over percentiles of logit(impute(x, removed)) - logit(x), noise-free."""
    net, x, L, t = setup
    L = torch.where(L < 0.2, torch.zeros(()), L)
    got = road(net, x, L, t, [30, 80], mode="lerf", noise=0.0)
    for b in range(4):
        base = float(net(x[b : b + 1])[0, t[b]])
        changes = []
        for p in (30, 80):
            flat = L[b].reshape(-1).tolist()
            k = int((100 - p) * 1024 // 100)
            removed = np.zeros(1024, dtype=bool)
            removed[sorted(range(1024), key=lambda i: (flat[i], i))[:k]] = True
            img = torch.from_numpy(dense_impute(x[b].numpy(), removed.reshape(32, 32))).float()
            changes.append(float(net(img[None])[0, t[b]]) - base)
        assert abs(float(got.score[b]) - sum(changes) / 2) < 1e-4


def test_noise_is_keyed_to_the_image_not_the_batch(setup) -> None:
    net, x, L, t = setup
    idx = torch.tensor([40, 41, 7, 3])
    whole = road_combined(net, x, L, t, [30, 70], seed=2, indices=idx, chunk_size=3)
    alone = torch.cat(
        [
            road_combined(
                net, x[b : b + 1], L[b : b + 1], t[b : b + 1], [30, 70], seed=2, indices=idx[b : b + 1]
            ).score
            for b in range(4)
        ]
    )
    assert torch.allclose(whole.score, alone, atol=1e-6)
    other = road_combined(net, x, L, t, [30, 70], seed=3, indices=idx)
    assert not torch.allclose(whole.score, other.score, atol=1e-6)


def test_edge_cases(setup) -> None:
    net, x, _, t = setup
    flat = torch.zeros(4, 32, 32)  # constant map: the rank rule still removes exactly the share
    res = road(net, x, flat, t, [50], noise=0.0)
    assert torch.isfinite(res.score).all()
    res = road(net, x, flat, t, [50], noise=0.0, tie_rule="threshold")  # everything removed: zeros
    assert torch.isfinite(res.score).all()
    with pytest.raises(CamlangError, match="tie_rule"):
        road(net, x, flat, t, tie_rule="stable")  # type: ignore[arg-type]
    img = x[0]
    assert torch.equal(impute(img, np.zeros((32, 32), dtype=bool), 0.5, None), img)
    with pytest.raises(CamlangError, match="mode"):
        road(net, x, flat, t, mode="both")  # type: ignore[arg-type]
    with pytest.raises(CamlangError, match="percentiles"):
        road(net, x, flat, t, [120])
