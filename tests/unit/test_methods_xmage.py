"""guid-Xmage: exact completeness, the frozen-pattern bias, non-piecewise-linear errors, colours."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from camlang.errors import CamlangError
from camlang.methods import (
    direction_accuracy,
    distribution_map_rgb,
    input_gradient,
    xmage,
    xmage_map,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


class Block(nn.Module):
    """Conv-BN-ReLU-Conv-BN plus an identity shortcut, ReLU applied functionally."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)


class TinyResNet(nn.Module):
    """Max-pool, batch norm (eval, random statistics), residual additions, dropout, avg pooling."""

    def __init__(self, classes: int = 7) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(2)
        self.block = Block(8)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(32, 16),
            nn.ReLU(),
            nn.Linear(16, classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.block(self.pool(self.stem(x))))


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.3)
    return model.eval()


def tiny_resnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(TinyResNet(), seed)


def relative_gap(r) -> Tensor:  # type: ignore[no-untyped-def]
    return r.completeness_gap / r.logit.abs().clamp_min(1e-12)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_completeness_on_a_residual_cnn(dtype: torch.dtype, tol: float) -> None:
    model = tiny_resnet()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    r = xmage(model, x, dtype=dtype)
    assert r.contributions.dtype == dtype and r.delta.shape == x.shape and r.bias.shape == (4,)
    with torch.no_grad():
        expected = model.to(dtype)(x.to(dtype)).gather(1, r.targets[:, None]).squeeze(1)
    model.float()
    torch.testing.assert_close(r.logit, expected, rtol=0, atol=0)  # the record pass is the model
    assert float(relative_gap(r).max()) < tol
    assert bool((r.bias.abs() > 1e-3).any()), "the bias term must not vanish for a net with biases"
    # The module is left as it was: no hooks, float32 parameters.
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(xmage_map(model, x), r.contributions.sum(1).float().to(x.dtype))


def test_delta_is_the_input_gradient_and_bias_is_the_frozen_net_at_zero() -> None:
    # One hidden ReLU layer, where Delta and b have closed forms at the activation pattern.
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 3)).double().eval()
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    r = xmage(model, x, torch.tensor([0, 1, 2, 0, 1]))
    w1, b1, w2, b2 = (p.detach() for p in model.parameters())
    for i in range(5):
        mask = (w1 @ x[i].reshape(-1) + b1 > 0).double()
        row = w2[r.targets[i]] * mask
        torch.testing.assert_close(r.delta[i].reshape(-1), row @ w1, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r.bias[i], row @ b1 + b2[r.targets[i]], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r.delta, input_gradient(model, x, r.targets))


def torchvision_model(arch: str) -> nn.Module:
    """A randomly initialized torchvision model with 10 classes.

    The 4096-wide classifiers of VGG and AlexNet are replaced by 64-wide ones with the same
    layer types: initializing ~100M classifier weights would dominate the test's run time.
    """
    with torch.device("meta"):
        model = getattr(torchvision.models, arch)(weights=None, num_classes=10)
    if arch in ("vgg11", "alexnet"):
        width = model.classifier[1 if arch == "alexnet" else 0].in_features
        model.classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(width, 64, device="meta"),
            nn.ReLU(inplace=True),
            nn.Linear(64, 10, device="meta"),
        )
    model.to_empty(device="cpu")
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear | nn.BatchNorm2d):
            m.reset_parameters()
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
    return model


@pytest.mark.parametrize(("arch", "size"), [("vgg11", 32), ("alexnet", 64), ("resnet18", 32)])
def test_completeness_on_torchvision_models(arch: str, size: int) -> None:
    torch.manual_seed(0)
    model = randomize_bn(torchvision_model(arch), 0)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    r64 = xmage(model, x)
    assert float(relative_gap(r64).max()) < 1e-9
    r32 = xmage(model, x, dtype=torch.float32)
    assert float(relative_gap(r32).max()) < 1e-4
    torch.testing.assert_close(r32.targets, r64.targets)


class CifarBlock(nn.Module):
    """He et al.'s CIFAR basic block with the parameter-free "option A" shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if stride != 1 or cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        short = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + short)


class CifarResNet20(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            stages.append(
                nn.Sequential(
                    *(CifarBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(3))
                )
            )
            cin = cout
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def cifar_images(count: int) -> tuple[Tensor, Tensor]:
    from PIL import Image

    classes = sorted(p.name for p in (DATA / "cifar10_test_1k").iterdir())
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(3, 1, 1)
    images, labels = [], []
    for i in range(count):
        path = sorted((DATA / "cifar10_test_1k" / classes[i]).iterdir())[0]
        rgb = torch.frombuffer(bytearray(Image.open(path).convert("RGB").tobytes()), dtype=torch.uint8)
        images.append((rgb.reshape(32, 32, 3).permute(2, 0, 1).float() / 255 - mean) / std)
        labels.append(i)
    return torch.stack(images), torch.tensor(labels)


@pytest.mark.skipif(
    not (DATA / "cifar10_resnet_akamaster" / "resnet20-12fca82f.th").exists()
    or not (DATA / "cifar10_test_1k").is_dir(),
    reason="../shared/data (CIFAR ResNet-20 checkpoint and CIFAR test images) is not available",
)
def test_pretrained_cifar_resnet20_is_exact_and_directionally_right() -> None:
    ck = torch.load(
        DATA / "cifar10_resnet_akamaster" / "resnet20-12fca82f.th", map_location="cpu", weights_only=True
    )
    model = CifarResNet20()
    model.load_state_dict({k.removeprefix("module."): v for k, v in ck["state_dict"].items()})
    model.eval()
    x, labels = cifar_images(3)
    assert int((model(x).argmax(1) == labels).sum()) >= 2, "the checkpoint or the preprocessing is wrong"
    r = xmage(model, x, labels)
    assert float(relative_gap(r).max()) < 1e-9
    signed = r.contributions.sum(1).float()
    acc = direction_accuracy(model, x, labels, signed, pixels=48, generator=torch.Generator().manual_seed(0))
    flipped = direction_accuracy(
        model, x, labels, -signed, pixels=48, generator=torch.Generator().manual_seed(0)
    )
    assert float(acc.min()) > 0.9 and float(flipped.max()) < 0.1


class Zoo(nn.Module):
    """Piecewise-linear operations in many spellings."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.prelu = nn.PReLU(6)
        self.lin = nn.Linear(6 * 4 * 4 + 6, 4)

    def forward(self, x: Tensor) -> Tensor:
        z = self.conv(x)
        a = F.leaky_relu(z, 0.2) + F.relu6(z) + F.hardtanh(z, -0.5, 0.5) + z.clamp(min=-0.1, max=0.3)
        a = a + self.prelu(z) + z.abs() + torch.maximum(z, -z * 0.5) + z * (z > 0.1)
        pooled, _ = F.max_pool2d(a, 2, return_indices=True)
        m = F.adaptive_max_pool2d(pooled, 4)
        extra = torch.max(a.flatten(2), dim=2).values
        return self.lin(torch.cat([torch.relu(m).flatten(1), extra], dim=1))


def test_many_piecewise_linear_spellings_are_exact() -> None:
    torch.manual_seed(5)
    model = Zoo().eval()
    x = torch.randn(3, 3, 8, 8)
    r = xmage(model, x)
    with torch.no_grad():
        expected = model.double()(x.double()).gather(1, r.targets[:, None]).squeeze(1)
    torch.testing.assert_close(r.logit, expected, rtol=1e-12, atol=1e-12)
    assert float(relative_gap(r).max()) < 1e-9


class Custom(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x)


class Wrapper(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), layer, nn.Flatten(), nn.Linear(4 * 36, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


@pytest.mark.parametrize(
    ("layer", "training", "needles"),
    [
        (nn.Sigmoid(), False, ["`body.1`", "(Sigmoid)", "sigmoid"]),
        (nn.GELU(), False, ["`body.1`", "(GELU)", "gelu"]),
        (nn.SiLU(), False, ["`body.1`", "(SiLU)"]),
        (nn.Softmax(dim=1), False, ["`body.1`", "(Softmax)"]),
        (nn.LayerNorm([4, 6, 6]), False, ["`body.1`", "(LayerNorm)", "layer_norm"]),
        (Custom(), False, ["`body.1`", "(Custom)", "sigmoid"]),
        (nn.BatchNorm2d(4), True, ["`body.1`", "(BatchNorm2d)", "eval()"]),
        (nn.Dropout(0.3), True, ["`body.1`", "(Dropout)", "eval()"]),
    ],
)
def test_non_piecewise_linear_layers_are_named(layer: nn.Module, training: bool, needles: list[str]) -> None:
    torch.manual_seed(0)
    model = Wrapper(layer).eval()
    model.body[1].train(training)
    with pytest.raises(CamlangError) as info:
        xmage(model, torch.randn(2, 3, 6, 6))
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_products_of_input_dependent_tensors_are_rejected() -> None:
    class Square(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return (x * x).flatten(1)[:, :3]

    with pytest.raises(CamlangError, match="multiplies two input-dependent tensors"):
        xmage(Square(), torch.randn(1, 3, 2, 2))


def test_distribution_map_colours() -> None:
    rgb = distribution_map_rgb(torch.tensor([[-2.0, -1.0, 0.0, 1.0, 2.0, 0.5]]))
    assert rgb.dtype == torch.uint8 and rgb.shape == (1, 6, 3)
    expected = [[0, 0, 255], [0, 255, 255], [0, 255, 0], [255, 255, 0], [255, 0, 0], [128, 255, 0]]
    assert rgb[0].tolist() == expected
    assert distribution_map_rgb(torch.zeros(2, 2)).reshape(-1, 3).tolist() == [[0, 255, 0]] * 4
    with pytest.raises(CamlangError, match=r"\[H, W\]"):
        distribution_map_rgb(torch.zeros(1, 2, 2))


def test_direction_accuracy_on_a_linear_model() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 5, 3)).eval()
    x = torch.randn(2, 3, 5, 5)
    targets = torch.tensor([0, 2])
    signed = xmage_map(model, x, targets)
    gen = torch.Generator().manual_seed(0)
    acc = direction_accuracy(model, x, targets, signed, pixels=100, generator=gen)
    assert acc.tolist() == [1.0, 1.0]  # exact for a linear model; pixels capped at 25
    flipped = direction_accuracy(model, x, targets, -signed, pixels=10, generator=gen)
    assert flipped.tolist() == [0.0, 0.0]
    # An unsigned map (all positive) predicts "larger values raise the score" everywhere.
    positive = signed.abs() + 1
    expected = (signed > 0).float().mean((1, 2))  # both probes right where A > 0, both wrong elsewhere
    got = direction_accuracy(model, x, targets, positive, pixels=25, generator=gen)
    torch.testing.assert_close(got, expected)
    with pytest.raises(CamlangError, match="upsample"):
        direction_accuracy(model, x, targets, signed[:, :2], generator=gen)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    channels=st.integers(1, 4),
    size=st.integers(4, 9),
    batch=st.integers(1, 3),
)
def test_completeness_property(seed: int, channels: int, size: int, batch: int) -> None:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(channels, 5, 3, padding=1),
        nn.BatchNorm2d(5),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(5, 4, 2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    randomize_bn(model, seed)
    x = torch.randn(batch, channels, size, size)
    r = xmage(model, x)
    scale = r.contributions.flatten(1).abs().sum(1) + r.bias.abs() + r.logit.abs()
    assert bool((r.completeness_gap <= 1e-12 * scale).all())
