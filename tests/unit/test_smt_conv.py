"""Convolutional networks in the verifier: the dense lowering of Conv2d equals torch, the trained
MNIST CNN (models/mnist_cnn.pt, scripts/train_mnist_cnn.py) is checked from a checkpoint and from
ONNX, and an unsupported layer is refused with a message that names it."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from camlang.errors import CamlangError
from camlang.models import build_architecture, load_checkpoint, load_onnx
from camlang.models.mnist_cnn import MNIST_CNN_CHECKPOINT
from camlang.smt import Robust, SaliencyRobust, check
from camlang.smt.network import Affine, extract_layers, extract_relu_net
from tests.conftest import shared_data

ONNX = MNIST_CNN_CHECKPOINT.with_suffix(".onnx")

CONVS = [
    dict(in_channels=1, out_channels=3, kernel_size=3),
    dict(in_channels=2, out_channels=4, kernel_size=4, stride=2),
    dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1),
    dict(in_channels=2, out_channels=2, kernel_size=(2, 3), stride=(1, 2), padding=(1, 0), dilation=2),
    dict(in_channels=4, out_channels=4, kernel_size=3, groups=2, bias=False),
    dict(in_channels=1, out_channels=2, kernel_size=3, padding=1, padding_mode="reflect"),
]


@pytest.mark.parametrize("spec", CONVS, ids=[str(i) for i in range(len(CONVS))])
def test_conv_lowering_equals_torch_on_random_inputs(spec: dict) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(**spec).double().eval()
    shape = (1, spec["in_channels"], 7, 8)
    layers = extract_layers(conv, shape)
    (aff,) = layers.layers
    assert isinstance(aff, Affine)
    x = torch.rand(20, *shape[1:], dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 4 - 2
    with torch.no_grad():
        want = conv(x).reshape(20, -1).numpy()
    np.testing.assert_allclose(x.reshape(20, -1).numpy() @ aff.W.T + aff.b, want, rtol=0, atol=1e-12)
    # a Toeplitz matrix: each output reads at most one kernel's worth of inputs
    k = conv.kernel_size[0] * conv.kernel_size[1] * conv.in_channels // conv.groups
    assert int(np.max(np.count_nonzero(aff.W, axis=1))) <= k


def _toeplitz(conv: nn.Conv2d, in_shape: tuple[int, int, int]) -> tuple[np.ndarray, tuple[int, ...]]:
    """The matrix of a zero-padded, ungrouped Conv2d, written out entry by entry from its definition."""
    w = conv.weight.detach().double().numpy()
    c_out, c_in, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    _, h, wd = in_shape
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    m = np.zeros((c_out, ho, wo, c_in, h, wd))
    for co, oi, oj, ci, u, v in np.ndindex(c_out, ho, wo, c_in, kh, kw):
        i, j = oi * sh - ph + u * dh, oj * sw - pw + v * dw
        if 0 <= i < h and 0 <= j < wd:
            m[co, oi, oj, ci, i, j] += w[co, ci, u, v]
    return m.reshape(c_out * ho * wo, -1), (c_out, ho, wo)


@pytest.mark.parametrize("spec", CONVS[:4], ids=[str(i) for i in range(4)])
def test_conv_lowering_is_the_toeplitz_matrix_bit_for_bit(spec: dict) -> None:
    torch.manual_seed(3)
    conv = nn.Conv2d(**spec).eval()  # float32 weights, as trained networks have
    (aff,) = extract_layers(conv.double(), (1, spec["in_channels"], 7, 8)).layers
    assert isinstance(aff, Affine)
    want, (c_out, ho, wo) = _toeplitz(conv, (spec["in_channels"], 7, 8))
    assert np.array_equal(aff.W, want)
    bias = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(c_out)
    assert np.array_equal(aff.b, np.repeat(bias, ho * wo))


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    """The trained CNN in float32, as shipped; tests that need float64 take a copy."""
    return load_checkpoint(MNIST_CNN_CHECKPOINT, "mnist_cnn").module


def test_trained_cnn_lowers_to_the_same_logits_and_gradients(cnn: nn.Module) -> None:
    m64 = copy.deepcopy(cnn).double()
    _, net = extract_relu_net(m64, (1, 1, 28, 28))
    assert [W.shape[0] for W in net.Ws] == [8 * 13 * 13, 16 * 5 * 5, 100, 10]
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for xi in x:
        xt = xi[None].clone().requires_grad_(True)
        out = m64(xt).reshape(-1)
        (g,) = torch.autograd.grad(out[3], xt)
        y, _ = net.forward(xi.reshape(-1).numpy())
        np.testing.assert_allclose(y, out.detach().numpy(), atol=1e-10)
        np.testing.assert_allclose(
            net.gradient(xi.reshape(-1).numpy(), np.eye(10)[3]), g.reshape(-1), atol=1e-10
        )


def test_trained_cnn_matrices_are_its_weights_exactly(cnn: nn.Module) -> None:
    _, net = extract_relu_net(copy.deepcopy(cnn).double(), (1, 1, 28, 28))
    conv1, conv2 = cnn[0], cnn[2]
    assert np.array_equal(net.Ws[0], _toeplitz(conv1, (1, 28, 28))[0])
    assert np.array_equal(net.Ws[1], _toeplitz(conv2, (8, 13, 13))[0])
    # Flatten is C-order, so the first Linear layer reads the conv's outputs in the same order
    assert np.array_equal(net.Ws[2], cnn[5].weight.detach().double().numpy())


def test_checkpoint_and_onnx_are_the_same_network(cnn: nn.Module) -> None:
    pytest.importorskip("onnx2torch", reason="onnx2torch is not installed")
    from_onnx = load_onnx(ONNX)
    assert from_onnx.input_size == 28 and from_onnx.num_classes == 10
    _, a = extract_relu_net(copy.deepcopy(cnn).double(), (1, 1, 28, 28))
    _, b = extract_relu_net(from_onnx.module.double(), (1, 1, 28, 28))
    for wa, wb in zip(a.Ws + a.bs, b.Ws + b.bs):
        np.testing.assert_allclose(wa, wb, atol=1e-7)


def _mnist(count: int) -> tuple[torch.Tensor, list[int]]:
    from camlang.data.idx import mnist

    ds = mnist(shared_data() / "mnist")
    batch = ds.get(list(range(count)))
    assert batch.labels is not None
    return batch.x.double(), batch.labels.tolist()


def test_trained_cnn_is_robust_and_saliency_robust_on_two_test_images(cnn: nn.Module) -> None:
    x, labels = _mnist(2)
    for i in range(2):
        rob = check(cnn, Robust(x[i : i + 1], 0.02, None, (0.0, 1.0)), timeout_s=60)
        sal = check(cnn, SaliencyRobust(x[i : i + 1], 0.02, 1e-3, None, (0.0, 1.0)), timeout_s=60)
        assert (rob.status, sal.status) == ("holds", "holds"), (rob, sal)
        assert f"label={labels[i]}" in rob.property


def test_trained_cnn_violation_is_replayed_with_a_float32_margin(cnn: nn.Module) -> None:
    x, labels = _mnist(1)
    v = check(cnn, Robust(x[:1], 0.1, None, (0.0, 1.0)), timeout_s=60)
    assert v.status == "violated" and v.replay is not None and v.replay["ok"]
    assert v.replay["margin_f32"] > 0 and v.replay["argmax"] != labels[0]
    cex = torch.tensor(v.counterexample, dtype=torch.float32).reshape(1, 1, 28, 28)
    assert float((cex - x[:1].float()).abs().max()) <= 0.1 + 1e-6
    with torch.no_grad():
        assert int(cnn(cex).argmax()) != labels[0]  # the float32 network as trained


def test_saliency_counterexample_in_the_points_own_region(cnn: nn.Module) -> None:
    """Image 8 is misclassified within eps 0.02; at delta 1e-4 the first layer (wider than the
    input) leaves the search many patterns, and the point's own region holds a counterexample."""
    x, _ = _mnist(9)
    v = check(cnn, SaliencyRobust(x[8:9], 0.02, 1e-4, None, (0.0, 1.0)), timeout_s=60)
    assert v.status == "violated" and v.stats["found_by"].startswith("the point's own activation")
    assert v.replay is not None and v.replay["ok"] and v.replay["grad_diff"] <= 1e-4
    assert v.replay["margin_f32"] > 0


def test_conv_models_get_an_image_shaped_input() -> None:
    from camlang.run.questions import conv_input_shape

    assert conv_input_shape(build_architecture("mnist_cnn").module, 28) == (1, 1, 28, 28)
    assert conv_input_shape(build_architecture("mnist_cnn").module, None) is None
    assert conv_input_shape(build_architecture("mlp([784, 10])").module, 28) is None


def test_mnist_cnn_architecture_is_registered() -> None:
    loaded = build_architecture("mnist_cnn")
    assert (loaded.input_size, loaded.num_classes, loaded.normalization) == (28, 10, None)
    assert sum(p.numel() for p in loaded.module.parameters()) < 60_000


REFUSAL = (
    "layer `2` (AdaptiveAvgPool2d) is not supported by the SMT verifier (hint: properties can be "
    "checked on ReLU networks written as nn.Sequential (or a single-input ONNX chain) of Linear, "
    "Conv1d/Conv2d, ReLU, Flatten, AvgPool, MaxPool, and BatchNorm and Dropout in eval mode)"
)


def test_unsupported_layer_in_a_cnn_is_refused_by_name() -> None:
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(CamlangError) as err:
        check(m.eval(), Robust(torch.zeros(1, 1, 5, 5), 0.1), timeout_s=5)
    assert str(err.value) == REFUSAL
    assert err.value.code == "E700"


def test_a_cnn_with_its_own_forward_is_refused_as_a_whole() -> None:
    from camlang.models import ShapesCNN

    with pytest.raises(CamlangError, match=r"layer `<root>` \(ShapesCNN\) is not supported"):
        check(ShapesCNN().eval(), Robust(torch.zeros(1, 3, 64, 64), 0.1), timeout_s=5)


def test_checkpoint_is_small_and_loads_with_weights_only() -> None:
    assert MNIST_CNN_CHECKPOINT.stat().st_size < 1_000_000
    sd = torch.load(MNIST_CNN_CHECKPOINT, weights_only=True)
    assert set(sd) == {f"{i}.{p}" for i in (0, 2, 5, 7) for p in ("weight", "bias")}
    assert Path(ONNX).stat().st_size < 1_000_000
