"""The pytorch-grad-cam drop-in: pytorch-grad-cam's README examples, run twice with only the import
root changed (`pytorch_grad_cam` -> `camlang.compat.grad_cam`), give the same maps to 1e-4.

Models have random weights and small inputs (64-96 px) to keep this file fast.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import pytest
import torch
import torchvision

pytest.importorskip(
    "pytorch_grad_cam", reason="pytorch-grad-cam (grad-cam, in the test extra) is the reference"
)

TOL = 1e-4
PACKAGES = ("pytorch_grad_cam", "camlang.compat.grad_cam")


def run_example(source: str, package: str, **inputs: Any) -> dict[str, Any]:
    """Execute a README example with `PKG` as its import root; returns its variables."""
    scope: dict[str, Any] = dict(inputs)
    exec(textwrap.dedent(source).replace("PKG", package), scope)  # our own test source, not user text
    return scope


def both(source: str, **inputs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return run_example(source, PACKAGES[0], **inputs), run_example(source, PACKAGES[1], **inputs)


def assert_same_maps(theirs: np.ndarray, ours: np.ndarray) -> None:
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32 and ours.shape == theirs.shape
    assert float(theirs.max()) > 0.5, "degenerate example: the reference map is empty"
    np.testing.assert_allclose(ours, theirs, atol=TOL, rtol=0)


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


class SmallCNN(torch.nn.Module):
    """A small ReLU CNN for the method x option matrix (the README examples use torchvision models)."""

    def __init__(self) -> None:
        super().__init__()
        conv = torch.nn.Conv2d
        self.features = torch.nn.Sequential(
            conv(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            conv(8, 16, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            conv(16, 24, 3, stride=2, padding=1),
            torch.nn.ReLU(),
        )
        self.head = torch.nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def small() -> torch.nn.Module:
    torch.manual_seed(0)
    return SmallCNN().eval()


README_BASIC = """
    from PKG import GradCAM, HiResCAM, ScoreCAM, GradCAMPlusPlus, AblationCAM, XGradCAM, EigenCAM
    from PKG.utils.model_targets import ClassifierOutputTarget
    from PKG.utils.image import show_cam_on_image

    target_layers = [model.layer4[-1]]
    targets = [ClassifierOutputTarget(281)]
    with GradCAM(model=model, target_layers=target_layers) as cam:
        grayscale_cam = cam(input_tensor=input_tensor, targets=targets)
        grayscale_cam = grayscale_cam[0, :]
        visualization = show_cam_on_image(rgb_img, grayscale_cam, use_rgb=True)
        model_outputs = cam.outputs
"""


def test_readme_basic_example(resnet: torch.nn.Module) -> None:
    torch.manual_seed(1)
    rgb = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    theirs, ours = both(README_BASIC, model=resnet, input_tensor=x, rgb_img=rgb)
    assert_same_maps(theirs["grayscale_cam"][None], ours["grayscale_cam"][None])
    assert ours["visualization"].dtype == np.uint8 and ours["visualization"].shape == (64, 64, 3)
    assert np.abs(ours["visualization"].astype(int) - theirs["visualization"].astype(int)).max() <= 1
    torch.testing.assert_close(ours["model_outputs"], theirs["model_outputs"], atol=1e-5, rtol=0)


ALL_METHODS = """
    from PKG import (GradCAM, HiResCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, GradCAMElementWise, EigenCAM,
                     EigenGradCAM)
    from PKG.utils.model_targets import ClassifierOutputTarget

    methods = [GradCAM, HiResCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, GradCAMElementWise, EigenCAM, EigenGradCAM]
    targets = [ClassifierOutputTarget(3), ClassifierOutputTarget(7)]
    maps = {}
    for method in methods:
        with method(model=model, target_layers=target_layers) as cam:
            maps[method.__name__] = cam(input_tensor=input_tensor, targets=targets, aug_smooth=aug_smooth,
                                        eigen_smooth=eigen_smooth)
"""


@pytest.mark.parametrize(("aug_smooth", "eigen_smooth"), [(False, False), (True, False), (False, True)])
def test_gradient_methods_several_layers(
    small: torch.nn.Module, aug_smooth: bool, eigen_smooth: bool
) -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    layers = [small.features[3], small.features[5]]
    theirs, ours = both(
        ALL_METHODS,
        model=small,
        input_tensor=x,
        target_layers=layers,
        aug_smooth=aug_smooth,
        eigen_smooth=eigen_smooth,
    )
    assert set(ours["maps"]) == set(theirs["maps"]) and len(ours["maps"]) == 8
    for name in theirs["maps"]:
        assert_same_maps(theirs["maps"][name], ours["maps"][name])


SCORE_METHODS = """
    from PKG import ScoreCAM, AblationCAM
    from PKG.utils.model_targets import ClassifierOutputTarget, ClassifierOutputSoftmaxTarget

    maps = {}
    for method, target in [(ScoreCAM, ClassifierOutputTarget(5)), (AblationCAM, ClassifierOutputSoftmaxTarget(5))]:
        cam = method(model=model, target_layers=target_layers)
        cam.batch_size = 5
        maps[method.__name__] = cam(input_tensor=input_tensor, targets=[target, target])
"""


def test_score_and_ablation_with_batch_size(small: torch.nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    theirs, ours = both(SCORE_METHODS, model=small, input_tensor=x, target_layers=[small.features[5]])
    for name in ("ScoreCAM", "AblationCAM"):
        assert_same_maps(theirs["maps"][name], ours["maps"][name])


CUSTOM_TARGET = """
    from PKG import GradCAM
    from PKG.utils.model_targets import BinaryClassifierOutputTarget

    def second_minus_first(output):  # any callable: one image's output -> one scalar
        return output[1] - output[0]

    with GradCAM(model=model, target_layers=[model.features[5]]) as cam:
        custom = cam(input_tensor=input_tensor, targets=[second_minus_first, second_minus_first])
"""


def test_any_callable_target(small: torch.nn.Module) -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    theirs, ours = both(CUSTOM_TARGET, model=small, input_tensor=x)
    assert_same_maps(theirs["custom"], ours["custom"])


SEGMENTATION = """
    import torch
    from PKG import GradCAM
    from PKG.utils.model_targets import SemanticSegmentationTarget

    class SegmentationModelOutputWrapper(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)["out"]

    model = SegmentationModelOutputWrapper(seg_model)
    output = model(input_tensor)
    normalized_masks = torch.nn.functional.softmax(output, dim=1).cpu()
    category = int(normalized_masks[0].argmax(dim=0).flatten().mode().values)
    mask = normalized_masks[0, :, :, :].argmax(axis=0).detach().cpu().numpy()
    mask_float = np.float32(mask == category)
    targets = [SemanticSegmentationTarget(category, mask_float)]
    target_layers = [model.model.backbone.layer4]
    with GradCAM(model=model, target_layers=target_layers) as cam:
        grayscale_cam = cam(input_tensor=input_tensor, targets=targets)
"""


def test_deeplabv3_semantic_segmentation_target() -> None:
    torch.manual_seed(5)
    seg = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    theirs, ours = both(SEGMENTATION, seg_model=seg, input_tensor=x, np=np)
    assert ours["mask_float"].sum() > 0
    assert_same_maps(theirs["grayscale_cam"], ours["grayscale_cam"])


def test_errors_are_clear(small: torch.nn.Module) -> None:
    from camlang.compat.grad_cam import GradCAM
    from camlang.errors import CamlangError

    with pytest.raises(CamlangError, match="list of layers"):
        GradCAM(small, small.features[5])
    cam = GradCAM(small, [small.features[5]])
    with pytest.raises(CamlangError, match="one scalar per image"):
        cam(torch.randn(1, 3, 32, 32), targets=[lambda out: out])
