"""ADCC (Poppi et al. 2021), written in the language in stdlib/metrics.cam, against plain torch.

The reference below shares nothing with camlang's evaluator: Grad-CAM is recomputed on the
explanation map `x * L` by a forward hook and `torch.autograd.grad` (with pytorch-grad-cam's
min-max, bilinear upsampling, min-max again), the probabilities come straight from the model,
and the correlation is numpy's `corrcoef`. Only the CAM `L` of the original image is taken from
the engine, after checking that the hand-written Grad-CAM gives the same map.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.models import DEMO_TARGET_LAYER, load_demo_model, resolve_layer
from camlang.runtime.cam_engine import CamEngine
from camlang.runtime.declaration_loading import LiveModel
from camlang.runtime.metric_evaluation import Evaluator

SOURCE = 'import "stdlib/cams.cam"\nimport "stdlib/metrics.cam"\n'


def _minmax(m: torch.Tensor) -> torch.Tensor:
    m = m - m.amin(dim=(-2, -1), keepdim=True)
    return m / (1e-7 + m.amax(dim=(-2, -1), keepdim=True))


def _gradcam(
    model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM at input resolution in [0, 1], `[B, H, W]`, from a hook and autograd."""
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        logits = model(x)
    finally:
        hook.remove()
    (grads,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), seen[0])
    raw = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * seen[0]).sum(dim=1, keepdim=True)).detach()
    up = F.interpolate(_minmax(raw), size=x.shape[-2:], mode="bilinear", align_corners=False)
    return _minmax(up)[:, 0]


def _adcc_reference(
    model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, cam: torch.Tensor, t: torch.Tensor
) -> np.ndarray:
    """Poppi et al.'s Eqs. 1-4 per image: 3 / (1/(1 - AD) + 1/coherency + 1/(1 - complexity))."""
    explanation = x * cam[:, None]
    with torch.no_grad():
        p = torch.softmax(model(x), 1).gather(1, t[:, None])[:, 0].double()
        p_exp = torch.softmax(model(explanation), 1).gather(1, t[:, None])[:, 0].double()
    drop = (p - p_exp).clamp_min(0) / p
    again = _gradcam(model, layer, explanation, t)
    out = []
    for b in range(x.shape[0]):
        a, c = cam[b].double().flatten().numpy(), again[b].double().flatten().numpy()
        coherency = (np.corrcoef(a, c)[0, 1] + 1) / 2
        complexity = np.abs(a).sum() / a.size
        out.append(3 / (1 / (1 - float(drop[b])) + 1 / coherency + 1 / (1 - complexity)))
    return np.array(out)


@pytest.fixture(scope="module")
def demo() -> tuple[LiveModel, CamEngine, Evaluator]:
    torch.manual_seed(0)
    loaded = load_demo_model()
    layer = resolve_layer(loaded.module, DEMO_TARGET_LAYER)
    live = LiveModel("shapes", loaded, layer, DEMO_TARGET_LAYER, False, torch.device("cpu"))
    program = check_text(SOURCE, "<test>")
    assert not program.has_errors, program.diagnostics
    engine = CamEngine(live.module, layer, {"gradcam": program.cams["gradcam"].node})
    return live, engine, Evaluator(live, engine, chunk_size=256, seed=0)


def test_adcc_matches_an_independent_implementation(demo: tuple[LiveModel, CamEngine, Evaluator]) -> None:
    live, engine, evaluator = demo
    program = check_text(SOURCE, "<test>")
    batch = synthetic_shapes(count=12, size=64, seed=1).get([5, 1, 9, 3, 0, 7])
    cams = engine(batch.x)
    model, layer, t = live.module, live.layer, cams.targets
    assert layer is not None
    cam = cams.maps["gradcam"].detach()
    torch.testing.assert_close(_gradcam(model, layer, batch.x, t), cam, atol=1e-5, rtol=1e-5)
    got = evaluator.score(
        ["gradcam"], cams, batch.x, batch.masks, {"adcc": program.metrics["adcc"]}, indices=batch.indices
    ).values["adcc"][0]
    want = _adcc_reference(model, layer, batch.x, cam, t)
    assert np.all((want > 0) & (want < 1))
    np.testing.assert_allclose(got.double().numpy(), want, atol=1e-4)
    assert program.metrics["adcc"].direction == "maximize"
