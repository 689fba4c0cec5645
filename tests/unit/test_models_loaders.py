"""torchvision / checkpoint / TorchScript / onnx / mlp loaders."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from camlang.errors import CamlangError
from camlang.models import (
    CifarResNet,
    ShapesCNN,
    build_mlp,
    load_checkpoint,
    load_onnx,
    load_state_dict_file,
    load_torchvision,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_torchvision_random_weights_and_metadata() -> None:
    m = load_torchvision("resnet18")
    assert not m.module.training and m.num_classes == 1000 and m.input_size == 224
    assert m.normalization == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert m.class_names is not None and m.class_names[1] == "goldfish"
    with pytest.raises(CamlangError, match="resnet5") as err:
        load_torchvision("resnet5")
    assert "resnet50" in (err.value.hint or "")


def test_pretrained_weights_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(CamlangError) as err:
        load_torchvision("resnet50", weights="IMAGENET1K_V2")
    text = str(err.value)
    assert "not in the local torch hub cache" in text and "no network" in text
    assert 'torchvision("resnet50", weights = "path/to/resnet50.pth")' in text
    with pytest.raises(CamlangError, match="no weights 'IMAGENET9K'"):
        load_torchvision("resnet50", weights="IMAGENET9K")


def test_pretrained_weights_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    reference = torchvision.models.resnet18(weights=None)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1])
    m = load_torchvision("resnet18", weights="DEFAULT")
    assert "IMAGENET1K_V1" in m.source
    assert torch.equal(m.module.fc.weight, reference.fc.weight)


def test_torchvision_weights_file(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18(weights=None, num_classes=3)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}, "epoch": 3}
    torch.save(wrapped, tmp_path / "r.pth")
    m = load_torchvision("resnet18", weights=str(tmp_path / "r.pth"))
    assert m.num_classes == 3 and m.class_names is None
    assert torch.equal(m.module.conv1.weight, reference.conv1.weight)
    broken = reference.state_dict()
    broken["layer1.2.conv1.weight"] = broken.pop("layer1.1.conv1.weight")
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CamlangError, match="unexpected keys") as err:
        load_torchvision("resnet18", weights=str(tmp_path / "broken.pth"))
    assert "layer1.2.conv1.weight" in str(err.value) and "missing keys (1): layer1.1.conv1.weight" in str(
        err.value
    )


def test_checkpoint_is_loaded_weights_only(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # noqa: ANN204 - pickle protocol
            return (print, ("pwned",))

    torch.save({"state_dict": ShapesCNN().state_dict(), "extra": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CamlangError, match="weights_only"):
        load_state_dict_file(tmp_path / "evil.pt")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a whole pickled module
    with pytest.raises(CamlangError, match="weights_only"):
        load_checkpoint(tmp_path / "module.pt", "shapes_cnn")


def test_checkpoint_architectures(tmp_path: Path) -> None:
    ref = ShapesCNN(num_classes=6)
    torch.save(ref.state_dict(), tmp_path / "s.pt")
    m = load_checkpoint(tmp_path / "s.pt", "shapes_cnn")
    assert m.num_classes == 6 and m.input_size == 64 and m.normalization is None
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(m.module(x), ref.eval()(x))
    cifar = CifarResNet(20)
    torch.save({"state_dict": {f"module.{k}": v for k, v in cifar.state_dict().items()}}, tmp_path / "c.th")
    c = load_checkpoint(tmp_path / "c.th", "cifar_resnet20")
    assert c.class_names is not None and c.class_names[0] == "airplane" and c.input_size == 32
    with pytest.raises(CamlangError, match="missing keys"):
        load_checkpoint(tmp_path / "c.th", "cifar_resnet32")
    with pytest.raises(CamlangError, match="unknown architecture") as err:
        load_checkpoint(tmp_path / "s.pt", "shapes_cn")
    assert "shapes_cnn" in (err.value.hint or "")
    with pytest.raises(CamlangError, match="needs an architecture"):
        load_checkpoint(tmp_path / "s.pt", None)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CamlangError) as err:
        load_checkpoint("no/such/model.pt", "shapes_cnn")
    assert "no/such/model.pt" in str(err.value) and str(Path("no/such/model.pt").resolve()) in str(err.value)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_checkpoint(tmp_path: Path) -> None:
    ref = ShapesCNN().eval()
    torch.jit.save(torch.jit.script(ref), str(tmp_path / "ts.pt"))
    m = load_checkpoint(tmp_path / "ts.pt", None)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(m.module(x), ref(x))
    assert "TorchScript" in m.source


def test_mlp_build_and_weights(tmp_path: Path) -> None:
    mlp = build_mlp([6, 5, 4, 3])
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert mlp(torch.rand(2, 1, 2, 3)).shape == (2, 3)
    plain = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    loaded = build_mlp([6, 5, 4, 3], weights=tmp_path / "plain.pt")
    x = torch.rand(4, 6)
    assert torch.allclose(loaded(x), plain(x))
    via_ckpt = load_checkpoint(tmp_path / "plain.pt", "mlp([6, 5, 4, 3])")
    assert via_ckpt.num_classes == 3 and torch.allclose(via_ckpt.module(x), plain(x))
    with pytest.raises(CamlangError, match="does not fit"):
        build_mlp([6, 7, 3], weights=tmp_path / "plain.pt")
    with pytest.raises(CamlangError):
        build_mlp([6])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx is not installed")
    pytest.importorskip("onnx2torch", reason="onnx2torch is not installed")
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)
    ).eval()
    x = torch.rand(1, 3, 8, 8)
    buf = io.BytesIO()
    try:
        torch.onnx.export(net, (x,), buf, dynamo=False)
    except Exception as exc:  # export needs optional pieces that may be missing
        pytest.skip(f"torch.onnx.export is unavailable here: {exc}")
    (tmp_path / "net.onnx").write_bytes(buf.getvalue())
    m = load_onnx(tmp_path / "net.onnx")
    assert m.input_size == 8 and m.num_classes == 5
    with torch.no_grad():
        assert torch.allclose(m.module(x), net(x), atol=1e-5)
    with pytest.raises(CamlangError, match="does not exist"):
        load_onnx(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    with pytest.raises(CamlangError, match="bad.onnx"):
        load_onnx(tmp_path / "bad.onnx")


@pytest.mark.skipif(not (SHARED / "mnistfc").is_dir(), reason="../shared/data/mnistfc is not available")
def test_real_mnist_onnx() -> None:
    pytest.importorskip("onnx2torch", reason="onnx2torch is not installed")
    m = load_onnx(SHARED / "mnistfc" / "mnist-net_256x2.onnx")
    with torch.no_grad():
        out = m.module(torch.zeros(1, 784))
    assert out.shape == (1, 10) and m.num_classes == 10


@pytest.mark.skipif(
    not (SHARED / "cifar10_resnet_akamaster").is_dir(),
    reason="../shared/data/cifar10_resnet_akamaster is absent",
)
def test_real_cifar_resnet20_checkpoint() -> None:
    m = load_checkpoint(SHARED / "cifar10_resnet_akamaster" / "resnet20-12fca82f.th", "cifar_resnet20")
    assert m.num_classes == 10 and m.normalization is not None
    folder = SHARED / "cifar10_test_1k"
    if not folder.is_dir():
        pytest.skip("../shared/data/cifar10_test_1k is absent")
    from camlang.data import images

    b = images(folder, size=32, normalize=m.normalization).shuffle(0).limit(100).get(range(100))
    with torch.no_grad():
        acc = float((m.module(b.x).argmax(1) == b.labels).float().mean())
    assert acc >= 0.6  # 81% on the full JPEG test set
