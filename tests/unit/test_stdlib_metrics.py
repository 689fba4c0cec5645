"""Every metric of stdlib/metrics.cam, run through the language, against a direct reference.

The metrics are checked and compiled from the stdlib source and scored by
`camlang.runtime.metric_evaluation.Evaluator` over a stacked (cam x image) batch, the code path `camlang run`
uses. Each reference below is written from the metric's definition with per-image loops and
pytorch-grad-cam's metric classes where it has them (Average Drop, Increase in Confidence, ROAD).
References that need the CAM of a changed image (the robustness metrics) get it from a
`CamEngine` built for that one cam: the cams themselves are tested against pytorch-grad-cam in
tests/unit/test_torch_parity.py; here the metric machinery (noise draws, tiling across cams,
flips, shifts, maxima) is under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

from camlang.core.per_image_rng import image_generator
from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.models import DEMO_TARGET_LAYER, load_demo_model, resolve_layer
from camlang.runtime.cam_engine import CamBatch, CamEngine
from camlang.runtime.declaration_loading import LiveModel
from camlang.runtime.metric_evaluation import Evaluator

SOURCE = 'import "stdlib/cams.cam"\nimport "stdlib/metrics.cam"\n'
CAMS = ["gradcam", "layercam", "eigencam"]
SEED = 0


@pytest.fixture(scope="module")
def setup() -> dict:
    torch.manual_seed(0)
    program = check_text(SOURCE, "<test>")
    assert not program.has_errors, program.diagnostics
    loaded = load_demo_model()
    live = LiveModel(
        "shapes",
        loaded,
        resolve_layer(loaded.module, DEMO_TARGET_LAYER),
        DEMO_TARGET_LAYER,
        False,
        torch.device("cpu"),
    )
    batch = synthetic_shapes(count=12, size=64, seed=1).get([5, 1, 9, 3])  # dataset indices key the noise
    nodes = {c: program.cams[c].node for c in CAMS}
    engine = CamEngine(live.module, live.layer, nodes)  # type: ignore[arg-type]
    cam_batch = engine(batch.x)
    evaluator = Evaluator(live, engine, chunk_size=256, seed=SEED)
    return {
        "program": program,
        "live": live,
        "batch": batch,
        "engine": engine,
        "cams": cam_batch,
        "evaluator": evaluator,
    }


def _score(setup: dict, names: list[str], cams: list[str] = CAMS) -> dict[str, torch.Tensor]:
    metrics = {n: setup["program"].metrics[n] for n in names}
    batch = setup["batch"]
    return (
        setup["evaluator"]
        .score(cams, setup["cams"], batch.x, batch.masks, metrics, indices=batch.indices)
        .values
    )


def _model(setup: dict) -> torch.nn.Module:
    return setup["live"].module


def test_stdlib_metrics_are_all_covered(setup: dict) -> None:
    stdlib = {n for n, m in setup["program"].metrics.items() if m.origin != "user"}
    assert stdlib == set(REFERENCED), sorted(stdlib ^ set(REFERENCED))


def test_average_drop_and_increase_match_pytorch_grad_cam(setup: dict) -> None:
    got = _score(setup, ["average_drop", "increase_in_confidence"])
    model, x, cb = _model(setup), setup["batch"].x, setup["cams"]
    targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in cb.targets]
    p = torch.softmax(cb.logits, 1).gather(1, cb.targets[:, None])[:, 0].numpy()
    for k, cam in enumerate(CAMS):
        maps = cb.maps[cam].detach().numpy()
        drop = DropInConfidence()(x, maps, targets, model)
        increase = IncreaseInConfidence()(x, maps, targets, model)
        np.testing.assert_allclose(got["average_drop"][k].numpy(), 100 * drop / p, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(got["increase_in_confidence"][k].numpy(), 100 * increase, atol=1e-5)


def _curve_reference(
    model: torch.nn.Module,
    x: torch.Tensor,
    L: torch.Tensor,
    target: int,
    insertion: bool,
    canvas: torch.Tensor,
) -> float:
    """RISE curve AUC by a per-step loop: 32 steps of floor(i*N/32) pixels, trapezoid on [0, 1]."""
    h, w = L.shape
    n = h * w
    order = torch.argsort(-L.flatten(), stable=True)  # decreasing saliency, ties by pixel index
    images = []
    for i in range(33):
        chosen = torch.zeros(n, dtype=torch.bool)
        chosen[order[: (i * n) // 32]] = True
        sel = chosen.view(1, h, w)
        images.append(torch.where(sel, x, canvas) if insertion else torch.where(sel, canvas, x))
    with torch.no_grad():
        curve = torch.softmax(model(torch.stack(images)), 1)[:, target].double().tolist()
    return (sum(curve) - 0.5 * (curve[0] + curve[-1])) / 32


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, radius ceil(3 sigma), written out per axis."""
    radius = int(np.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    a = x.double().numpy()
    pad = np.pad(a, ((0, 0), (0, 0), (radius, radius)), mode="reflect")
    a = sum(k[j] * pad[:, :, j : j + a.shape[2]] for j in range(len(k)))
    pad = np.pad(a, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    a = sum(k[j] * pad[:, j : j + a.shape[1], :] for j in range(len(k)))
    return torch.from_numpy(a).float()


def test_deletion_and_insertion_match_a_step_loop(setup: dict) -> None:
    got = _score(setup, ["deletion", "insertion"], CAMS[:2])
    model, x, cb = _model(setup), setup["batch"].x, setup["cams"]
    for k, cam in enumerate(CAMS[:2]):
        for b in range(x.shape[0]):
            L, t = cb.maps[cam][b].detach(), int(cb.targets[b])
            dele = _curve_reference(model, x[b], L, t, False, torch.zeros_like(x[b]))
            ins = _curve_reference(model, x[b], L, t, True, _gaussian_blur(x[b], 5.0))
            assert abs(float(got["deletion"][k, b]) - dele) < 1e-5
            assert abs(float(got["insertion"][k, b]) - ins) < 1e-5


def _road_removed(L: torch.Tensor, p: float, mode: str, tie_rule: str) -> np.ndarray:
    """The removed pixels by their definition: exactly (100 - p)% by rank, or pytorch-grad-cam's threshold."""
    flat = L.flatten().double().numpy()
    n = flat.size
    if tie_rule == "threshold":
        ranked = flat if mode == "morf" else 1 - flat
        return ranked >= np.percentile(ranked, p)
    k = int((100 - p) * n // 100)
    key = (lambda i: (-flat[i], i)) if mode == "morf" else (lambda i: (flat[i], i))
    removed = np.zeros(n, dtype=bool)
    removed[sorted(range(n), key=key)[:k]] = True
    return removed


def _road_reference(setup: dict, cam: str, b: int, mode: str, tie_rule: str) -> float:
    """Mean over 10..90 of logit(imputed) - logit(x): pytorch-grad-cam's noise-free imputer, plus
    0.01 * N(0, 1) on the removed pixels from the image's own generator (camlang.core.per_image_rng)."""
    x, L = setup["batch"].x[b], setup["cams"].maps[cam][b].detach()
    index, t = int(setup["batch"].indices[b]), int(setup["cams"].targets[b])
    imputer = NoisyLinearImputer(noise=0.0)
    changes = []
    with torch.no_grad():
        base = float(_model(setup)(x[None])[0, t])
        for p in range(10, 100, 10):
            removed = _road_removed(L, p, mode, tie_rule)
            img = imputer(x, torch.from_numpy(np.float32(~removed.reshape(L.shape)))).reshape(3, -1).clone()
            gen = image_generator(SEED, index, "road", mode, repr(float(p)))
            img[:, torch.from_numpy(removed)] += 0.01 * torch.randn((3, int(removed.sum())), generator=gen)
            changes.append(float(_model(setup)(img.reshape(1, *x.shape))[0, t]) - base)
    return sum(changes) / len(changes)


@pytest.mark.parametrize("tie_rule", ["rank", "threshold"])
def test_road_matches_its_definition(setup: dict, tie_rule: str) -> None:
    """ROAD with both tie rules against removal by definition and pytorch-grad-cam's imputer."""
    cams, b = CAMS[:2], 2  # one sparse solve per image, percentile and mode: keep it small
    program = check_text(
        SOURCE + f'metric tmorf = minimize road(L, "morf", "{tie_rule}")\n'
        f'metric tlerf = maximize road(L, "lerf", "{tie_rule}")\n'
        f'metric tboth = maximize road(L, "combined", "{tie_rule}")\n',
        "<test>",
    )
    names = (
        ["tmorf", "tlerf", "tboth"]
        if tie_rule == "threshold"
        else ["road_morf", "road_lerf", "road_combined"]
    )
    batch = setup["batch"]
    small = CamBatch(
        {c: setup["cams"].maps[c][:b] for c in cams},
        {},
        setup["cams"].logits[:b],
        setup["cams"].targets[:b],
        setup["cams"].counter,
    )
    metrics = {n: program.metrics[n] for n in names}
    got = setup["evaluator"].score(cams, small, batch.x[:b], None, metrics, indices=batch.indices[:b]).values
    for k, cam in enumerate(cams):
        for i in range(b):
            morf = _road_reference(setup, cam, i, "morf", tie_rule)
            lerf = _road_reference(setup, cam, i, "lerf", tie_rule)
            assert abs(float(got[names[0]][k, i]) - morf) < 1e-3
            assert abs(float(got[names[1]][k, i]) - lerf) < 1e-3
            assert abs(float(got[names[2]][k, i]) - (lerf - morf) / 2) < 1e-3


def test_localisation_metrics_match_loops(setup: dict) -> None:
    got = _score(setup, ["pointing_game", "energy_pointing_game", "iou_50"])
    cb, masks = setup["cams"], setup["batch"].masks
    assert masks is not None and masks.any()
    for k, cam in enumerate(CAMS):
        for b in range(masks.shape[0]):
            L, m = cb.maps[cam][b].detach().double(), masks[b]
            r, c = divmod(int(torch.argmax(L.flatten())), L.shape[1])  # torch.argmax: first maximum
            tol = 15 / 224 * 64  # Zhang et al.'s 15 px at 224 px, scaled to the shorter side
            hit = any((r - i) ** 2 + (c - j) ** 2 <= tol**2 for i, j in m.nonzero().tolist())
            assert float(got["pointing_game"][k, b]) == float(hit)
            energy = float((L * m).sum() / L.sum())
            assert abs(float(got["energy_pointing_game"][k, b]) - energy) < 1e-5
            pred = L > 0.5
            union = int((pred | m).sum())
            iou = int((pred & m).sum()) / union if union else 1.0
            assert abs(float(got["iou_50"][k, b]) - iou) < 1e-5


def _cam_of(setup: dict, cam: str, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    engine = CamEngine(_model(setup), setup["live"].layer, {cam: setup["program"].cams[cam].node})
    return engine(x, targets).maps[cam].detach()


def _noisy(x: torch.Tensor, indices: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    draws = [
        torch.randn(x.shape[1:], generator=image_generator(SEED, int(i), "noise", seed)) for i in indices
    ]
    return x + torch.stack(draws) * std


def _in_ball(x: torch.Tensor, indices: torch.Tensor, radius: float, s: int) -> torch.Tensor:
    draws = [
        torch.rand(x.shape[1:], generator=image_generator(SEED, int(i), "sensitivity", s)) for i in indices
    ]
    return x + radius * (2 * torch.stack(draws) - 1)


def test_robustness_metrics_match_loops(setup: dict) -> None:
    names = ["stability", "max_sensitivity", "avg_sensitivity", "equivariance_flip", "equivariance_shift"]
    got = _score(setup, names)
    cb, x, idx = setup["cams"], setup["batch"].x, setup["batch"].indices
    t = cb.targets
    for k, cam in enumerate(CAMS):
        base = cb.maps[cam].detach()
        stab = (_cam_of(setup, cam, _noisy(x, idx, 0.05, 0), t) - base).abs().mean((1, 2))
        # Yeh et al.: Frobenius norm of the change, 10 draws uniform in the L-inf ball of radius 0.02.
        sens = torch.stack(
            [
                (_cam_of(setup, cam, _in_ball(x, idx, 0.02, s), t) - base).flatten(1).norm(dim=1)
                for s in range(10)
            ]
        )
        flip = 1 - (_cam_of(setup, cam, x.flip(-1), t) - base.flip(-1)).abs().mean((1, 2))
        # Shift the image right by 4 (zero fill); its cam shifted back should be the cam: column
        # j + 4 of the moved image's cam against column j of the cam; the 4 last columns count as equal.
        moved = torch.zeros_like(x)
        moved[..., 4:] = x[..., :-4]
        diff = (_cam_of(setup, cam, moved, t)[..., 4:] - base[..., :-4]).abs()
        shift = 1 - diff.sum((1, 2)) / (64 * 64)
        for name, want in [
            ("stability", stab),
            ("max_sensitivity", sens.amax(0)),
            ("avg_sensitivity", sens.mean(0)),
            ("equivariance_flip", flip),
            ("equivariance_shift", shift),
        ]:
            np.testing.assert_allclose(got[name][k].numpy(), want.numpy(), atol=1e-5, err_msg=f"{name} {cam}")


def test_sufficient_fraction_matches_a_linear_scan(setup: dict) -> None:
    got = _score(setup, ["sufficient_fraction"])
    model, x, cb = _model(setup), setup["batch"].x, setup["cams"]
    n, g = 64 * 64, 16  # the stdlib metric searches at 1/256 of the pixels
    monotone_rows = 0
    for k, cam in enumerate(CAMS):
        for b in range(x.shape[0]):
            L, t = cb.maps[cam][b].detach(), int(cb.targets[b])
            order = torch.argsort(-L.flatten(), stable=True)
            images = []
            for j in range(1, n // g + 1):
                keep = torch.zeros(n, dtype=torch.bool)
                keep[order[: j * g]] = True
                images.append(torch.where(keep.view(1, 64, 64), x[b], torch.zeros(())))
            with torch.no_grad():
                kept = (model(torch.stack(images)).argmax(1) == t).tolist()
            first = kept.index(True) + 1 if any(kept) else n // g
            answer = round(float(got["sufficient_fraction"][k, b]) * n)
            if all(kept[first - 1 :]):  # monotone from the first success on: the search is exact
                monotone_rows += 1
                assert answer == first * g, (cam, b)
            else:  # not monotone: the search returns some bracketed transition
                j = answer // g
                assert kept[j - 1] and (j == 1 or not kept[j - 2]), (cam, b)
    assert monotone_rows >= 6


def test_complexity_metrics_match_formulas(setup: dict) -> None:
    got = _score(setup, ["sparsity", "entropy"])
    cb = setup["cams"]
    for k, cam in enumerate(CAMS):
        for b in range(cb.targets.shape[0]):
            v = np.sort(cb.maps[cam][b].detach().double().abs().flatten().numpy())
            n = v.size
            gini = 1 - 2 * np.sum(v / v.sum() * (n - np.arange(1, n + 1) + 0.5) / n)
            p = v / v.sum()
            ent = -np.sum(p[p > 0] * np.log(p[p > 0]))
            assert abs(float(got["sparsity"][k, b]) - gini) < 1e-5
            assert abs(float(got["entropy"][k, b]) - ent) < 1e-5


REFERENCED = [
    "average_drop",
    "increase_in_confidence",
    "deletion",
    "insertion",
    "road_morf",
    "road_lerf",
    "road_combined",
    "pointing_game",
    "energy_pointing_game",
    "iou_50",
    "stability",
    "max_sensitivity",
    "avg_sensitivity",
    "equivariance_flip",
    "equivariance_shift",
    "sufficient_fraction",
    "sparsity",
    "entropy",
    "adcc",
]
