"""The Python API: load(), prog.cam(), CAM(), targets, differentiability and memory behaviour."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest
import torch

import camlang
from camlang.data import synthetic_shapes
from camlang.errors import CamlangError
from camlang.frontend.diagnostics import CompileError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return synthetic_shapes(3, 64, seed=4).get([0, 1, 2]).x


def test_load_and_cam_module(images: torch.Tensor) -> None:
    prog = camlang.load(ROOT / "examples" / "quickstart.cam")
    cam = prog.cam("gradcampp", model="shapes")
    assert isinstance(cam, torch.nn.Module)
    maps = cam(images)
    assert maps.shape == (3, 64, 64)
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0
    with pytest.raises(CamlangError, match="synthesized"):
        prog.cam("best", model="shapes")
    with pytest.raises(CamlangError, match="unknown cam"):
        prog.cam("gradcamm", model="shapes")


def test_cam_from_expression_matches_stdlib(images: torch.Tensor) -> None:
    from camlang.models import load_demo_model

    model = load_demo_model().module
    by_text = camlang.CAM("relu(sum_c(mean_hw(G) * A))", model, model.features[6])
    by_name = camlang.CAM("gradcam", model, model.features[6])
    assert torch.equal(by_text(images), by_name(images))


def test_targets_explicit_and_callable(images: torch.Tensor) -> None:
    from camlang.models import load_demo_model

    model = load_demo_model().module
    cam = camlang.CAM("gradcam", model, model.features[6])
    explicit = cam(images, targets=[2, 2, 2])
    via_callable = cam(images, targets=lambda logits: torch.full((logits.shape[0],), 2))
    assert torch.equal(explicit, via_callable)
    assert not torch.equal(explicit, cam(images, targets=[0, 0, 0]))
    with pytest.raises(CamlangError, match="out of range"):
        cam(images, targets=[9, 9, 9])


def test_differentiable_maps(images: torch.Tensor) -> None:
    from camlang.models import load_demo_model

    model = load_demo_model().module
    cam = camlang.CAM("gradcam", model, model.features[6])
    x = images.clone().requires_grad_(True)
    maps = cam(x, differentiable=True)
    assert maps.requires_grad
    (grad,) = torch.autograd.grad(maps.sum(), x)
    assert grad.abs().sum() > 0
    assert not cam(images).requires_grad


def test_bad_expression_is_a_compile_error() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.LazyLinear(2)
    )
    with pytest.raises(CompileError) as err:
        camlang.CAM("relu(G * A)", model, model[1])
    assert any(d.code == "E303" for d in err.value.diagnostics)


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


def test_repeated_calls_do_not_retain_graphs_or_grow_memory(images: torch.Tensor) -> None:
    from camlang.models import load_demo_model

    model = load_demo_model().module
    cam = camlang.CAM("gradcampp", model, model.features[6])
    for _ in range(5):
        cam(images)
    gc.collect()
    before = _rss_kb()
    for _ in range(40):
        out = cam(images)
    gc.collect()
    growth_mb = (_rss_kb() - before) / 1024
    assert out.grad_fn is None
    assert not model.features[6]._forward_hooks, "capture must remove its hooks"
    with warnings.catch_warnings():  # isinstance() on some lazily imported torch objects warns
        warnings.simplefilter("ignore")
        live_graphs = [o for o in gc.get_objects() if isinstance(o, torch.Tensor) and o.grad_fn is not None]
    assert not live_graphs, f"{len(live_graphs)} tensors still hold autograd graphs"
    assert growth_mb < 20, f"memory grew by {growth_mb:.1f} MB over 40 calls"
