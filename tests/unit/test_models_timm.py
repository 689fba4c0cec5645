"""timm models: local weights only, the pretrained config for preprocessing, default target layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

timm = pytest.importorskip("timm", reason="timm is the optional camlang[timm] extra")

from camlang.errors import CamlangError  # noqa: E402
from camlang.frontend.check import check_text  # noqa: E402
from camlang.paths import stdlib_dir  # noqa: E402
from camlang.runtime.cam_engine import CamEngine  # noqa: E402
from camlang.runtime.declaration_loading import load_model  # noqa: E402

GRADCAM = check_text(f'import "{stdlib_dir() / "cams.cam"}"\n', "<t>", None).cams["gradcam"].node


def _live(source: str, base: Path):  # type: ignore[no-untyped-def]
    cam = base / "m.cam"
    cam.write_text(source)
    program = check_text(source, str(cam), cam)
    assert not program.has_errors, [d.message for d in program.diagnostics]
    return load_model(next(iter(program.models.values())))


@pytest.mark.parametrize(
    ("name", "layer", "layout", "size"),
    [
        ("resnet18", "layer4[-1]", None, 64),
        ("convnext_atto", "stages[-1]", None, 64),
        ("efficientnet_b0", "bn2", None, 64),
        ("vit_tiny_patch16_224", "blocks[-1].norm1", "tokens", 224),
    ],
)
def test_default_layers_and_config(
    name: str, layer: str, layout: str | None, size: int, tmp_path: Path
) -> None:
    live = _live(f'model m = timm("{name}")\n', tmp_path)
    assert live.layer_path == layer and live.layer_chosen_by_default
    assert (live.layout.kind if live.layout else None) == layout
    cfg = live.module.pretrained_cfg
    assert live.loaded.normalization == (tuple(cfg["mean"]), tuple(cfg["std"]))
    assert live.loaded.input_size == cfg["input_size"][-1]
    out = CamEngine(live.module, live.layer, {"g": GRADCAM}, layout=live.layout)(
        torch.randn(1, 3, size, size)
    )
    assert out.maps["g"].shape == (1, size, size) and torch.isfinite(out.maps["g"]).all()


def test_local_weights_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=5).eval()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    live = _live('model m = timm("resnet18", weights = "r18.pth", num_classes = 5)\n', tmp_path)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(live.module(x), ref(x))
    assert "r18.pth" in live.loaded.source


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CamlangError, match="timm has no model 'resnet181'") as err:
        _live('model m = timm("resnet181")\n', tmp_path)
    assert "resnet18" in (err.value.hint or "")
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "r.pth")
    with pytest.raises(CamlangError, match="does not fit timm resnet34"):
        _live('model m = timm("resnet34", weights = "r.pth")\n', tmp_path)
