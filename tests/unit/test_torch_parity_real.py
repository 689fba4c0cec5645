"""Parity with pytorch-grad-cam on real pretrained models from ../shared/data (skipped when absent):
the CIFAR-10 ResNet-20 (layer3) and the ImageNet MobileNetV2 (features[-1])."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camlang.frontend.check import check_file
from camlang.paths import stdlib_dir
from camlang.runtime.cam_engine import CamEngine
from tests.conftest import shared_data

pytest.importorskip("pytorch_grad_cam", reason="grad-cam (pytorch-grad-cam) is a test dependency")
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

PEERS = {
    "gradcam": GradCAM,
    "gradcampp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "scorecam": ScoreCAM,
}


def _compare(
    model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, names: list[str]
) -> dict[str, float]:
    cams = check_file(stdlib_dir() / "cams.cam").cams
    out = CamEngine(model, layer, {n: cams[n].node for n in names}, chunk_size=128)(x)
    targets = [ClassifierOutputTarget(int(t)) for t in out.targets]
    diffs = {}
    for name in names:
        peer = PEERS[name](model, target_layers=[layer])
        if hasattr(peer, "batch_size"):
            peer.batch_size = 64
        theirs = peer(x, targets=targets)
        diffs[name] = float(np.abs(out.maps[name].numpy() - theirs).max())
    return diffs


def test_cifar_resnet20_parity() -> None:
    from camlang.data import images
    from camlang.models import load_checkpoint

    root = shared_data()
    loaded = load_checkpoint(root / "cifar10_resnet_akamaster" / "resnet20-12fca82f.th", "cifar_resnet20")
    data = images(root / "cifar10_test_1k", size=32, normalize="imagenet")
    x = data.get(list(range(0, 1000, 250))).x
    diffs = _compare(loaded.module, loaded.module.layer3, x, list(PEERS))
    assert max(diffs.values()) <= 1e-4, diffs


def test_imagenet_mobilenet_v2_parity() -> None:
    from camlang.data import images
    from camlang.models import load_checkpoint

    root = shared_data()
    loaded = load_checkpoint(
        root / "imagenet_mobilenet_v2" / "mobilenet_v2_coral_tf1qat_dequant_torchvision.pth",
        "mobilenet_v2_tf",
    )
    data = images(root / "foolbox_samples", size=224, normalize=((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    jpgs = [
        i for i, name in enumerate(data.get(list(range(len(data)))).names) if name.startswith("imagenet_")
    ]
    x = data.get(jpgs[:2]).x
    # Score-CAM would need 1280 passes per image here: the gradient CAMs carry this check.
    diffs = _compare(loaded.module, loaded.module.features[-1], x, [n for n in PEERS if n != "scorecam"])
    assert max(diffs.values()) <= 1e-4, diffs
