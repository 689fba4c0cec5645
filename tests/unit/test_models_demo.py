"""The demo CNN and its shipped checkpoint."""

from __future__ import annotations

import torch
from torch import nn

from camlang.data import SHAPE_CLASSES, synthetic_shapes
from camlang.errors import CamlangError
from camlang.models import DEMO_CHECKPOINT, ShapesCNN, default_target_layer, load_demo_model, resolve_layer


def test_architecture_is_small_and_piecewise_linear() -> None:
    net = ShapesCNN().eval()
    allowed = (
        nn.Conv2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.BatchNorm2d,
        nn.Sequential,
        nn.AdaptiveAvgPool2d,
        nn.Linear,
    )
    assert all(isinstance(m, allowed) for m in list(net.modules())[1:])
    assert isinstance(net.features[6], nn.ReLU) and len(net.features) == 7
    acts = {}
    resolve_layer(net, "features[-1]").register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, len(SHAPE_CLASSES))
    assert acts["a"].shape[-2:] == (16, 16)
    assert default_target_layer(net, torch.rand(1, 3, 64, 64)) == "features.6"


def test_checkpoint_is_shipped_small_and_accurate() -> None:
    assert DEMO_CHECKPOINT.is_file(), f"{DEMO_CHECKPOINT} is missing: run scripts/train_shapes_cnn.py"
    assert DEMO_CHECKPOINT.stat().st_size < 1_000_000
    demo = load_demo_model()
    assert demo.class_names == list(SHAPE_CLASSES) and demo.input_size == 64 and demo.normalization is None
    assert not demo.module.training
    batch = synthetic_shapes(256, size=64, seed=1).get(range(256))
    with torch.no_grad():
        accuracy = float((demo.module(batch.x).argmax(1) == batch.labels).float().mean())
    assert accuracy >= 0.95, f"demo CNN accuracy {accuracy:.3f} on 256 held-out shapes"


def test_missing_demo_checkpoint_is_a_user_error(tmp_path) -> None:  # noqa: ANN001
    try:
        load_demo_model(tmp_path / "nope.pt")
    except CamlangError as err:
        assert "train_shapes_cnn.py" in (err.hint or "")
    else:
        raise AssertionError("expected a CamlangError")
