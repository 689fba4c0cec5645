"""Parity of the stdlib CAMs with pytorch-grad-cam (grad-cam on PyPI), to 1e-4 max abs difference.

Eigen-CAM's SVD sign is arbitrary: camlang orients the component so its largest channel loading is
positive, pytorch-grad-cam keeps numpy's sign. We compare against both orientations of our map.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from camlang.frontend.check import check_file
from camlang.frontend.ir import Node
from camlang.paths import stdlib_dir
from camlang.runtime.cam_engine import CamEngine

gradcam_lib = pytest.importorskip(
    "pytorch_grad_cam", reason="grad-cam (pytorch-grad-cam) is a test dependency"
)
from pytorch_grad_cam import (  # noqa: E402
    AblationCAM,
    EigenCAM,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

PEERS = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "gradcam_elementwise": GradCAMElementWise,
    "eigencam": EigenCAM,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def demo_model() -> torch.nn.Module:
    from camlang.models import load_demo_model

    return load_demo_model().module


@pytest.fixture(scope="module")
def stdlib_cams() -> dict[str, Node]:
    program = check_file(stdlib_dir() / "cams.cam")
    assert not program.has_errors
    return {name: c.node for name, c in program.cams.items() if c.node is not None}


def _peer_maps(
    cls: type, model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, targets: torch.Tensor
) -> np.ndarray:
    cam = cls(model, target_layers=[layer])
    if hasattr(cam, "batch_size"):
        cam.batch_size = 64
    return cam(x, targets=[ClassifierOutputTarget(int(t)) for t in targets])


def _assert_parity(
    name: str, ours: torch.Tensor, theirs: np.ndarray, raw: torch.Tensor | None = None
) -> None:
    per_image = np.abs(ours.numpy() - theirs).reshape(len(theirs), -1).max(axis=1)
    if name == "eigencam" and raw is not None:
        from camlang.backends.torch_eager import normalize_maps

        # The SVD's sign is arbitrary per image: accept either orientation, image by image.
        flipped = normalize_maps(torch.relu(-raw_projection(raw)), tuple(ours.shape[-2:]))
        other = np.abs(flipped.numpy() - theirs).reshape(len(theirs), -1).max(axis=1)
        per_image = np.minimum(per_image, other)
    diff = float(per_image.max())
    assert diff <= TOLERANCE, f"{name}: max abs difference {diff:.2e} > {TOLERANCE}"


def raw_projection(activations: torch.Tensor) -> torch.Tensor:
    from camlang.backends.torch_kernels import pc1_torch

    return pc1_torch(activations)


@pytest.mark.parametrize("name", sorted(PEERS))
def test_resnet18_parity(name: str, stdlib_cams: dict[str, Node]) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    # Score- and Ablation-CAM run one pass per channel (512 here): keep their inputs small.
    x = torch.randn(1, 3, 32, 32) if name in ("scorecam", "ablationcam") else torch.randn(2, 3, 64, 64)
    out = CamEngine(model, model.layer4, {name: stdlib_cams[name]}, chunk_size=256)(x)
    theirs = _peer_maps(PEERS[name], model, model.layer4, x, out.targets)
    activations = None
    if name == "eigencam":
        store: dict[str, torch.Tensor] = {}
        handle = model.layer4.register_forward_hook(lambda m, i, o: store.setdefault("a", o.detach()))
        with torch.no_grad():
            model(x)
        handle.remove()
        activations = store["a"]
    _assert_parity(name, out.maps[name], theirs, activations)


@pytest.mark.parametrize("name", sorted(PEERS))
def test_demo_cnn_parity(name: str, stdlib_cams: dict[str, Node], demo_model: torch.nn.Module) -> None:
    from camlang.data import synthetic_shapes

    batch = synthetic_shapes(4, 64, seed=3).get([0, 1, 2, 3])
    layer = demo_model.features[6]
    out = CamEngine(demo_model, layer, {name: stdlib_cams[name]}, chunk_size=256)(batch.x)
    theirs = _peer_maps(PEERS[name], demo_model, layer, batch.x, out.targets)
    activations = None
    if name == "eigencam":
        with torch.no_grad():
            activations = demo_model.features(batch.x)
    _assert_parity(name, out.maps[name], theirs, activations)


def test_all_cams_share_one_capture(stdlib_cams: dict[str, Node]) -> None:
    """Six gradient CAMs cost one forward call of the model, not six."""
    from camlang.metrics._common import CallCounter

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    calls = {"n": 0}
    model.register_forward_pre_hook(lambda m, i: calls.__setitem__("n", calls["n"] + 1))
    six = {
        n: stdlib_cams[n]
        for n in ("gradcam", "gradcampp", "xgradcam", "hirescam", "layercam", "gradcam_elementwise")
    }
    counter = CallCounter()
    out = CamEngine(model, model.layer4, six)(torch.randn(2, 3, 64, 64), counter=counter)
    assert calls["n"] == 1 and counter.calls == 1
    assert set(out.maps) == set(six)
