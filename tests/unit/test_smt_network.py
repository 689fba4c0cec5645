"""Network extraction: the canonical ReLU net computes the module's logits and input gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from camlang.smt.network import Affine, MaxPool, Relu, extract_layers, extract_relu_net


def _torch_logits_grad(
    m: nn.Module, x: np.ndarray, shape: tuple[int, ...], label: int
) -> tuple[np.ndarray, np.ndarray]:
    m = m.double()
    xt = torch.tensor(x).reshape(shape).requires_grad_(True)
    out = m(xt).reshape(-1)
    (g,) = torch.autograd.grad(out[label], xt)
    return out.detach().numpy(), g.reshape(-1).numpy()


def _conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        nn.BatchNorm2d(2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(2, 3, 2), nn.ReLU()),
        nn.AvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 4),
        nn.ReLU(),
        nn.Linear(4, 3),
    ).eval()


def test_conv_pool_batchnorm_net_matches_torch() -> None:
    m = _conv_net()
    with torch.no_grad():  # give batchnorm non-trivial statistics
        m[1].running_mean.copy_(torch.tensor([0.1, -0.2]))
        m[1].running_var.copy_(torch.tensor([0.5, 2.0]))
    layers, net = extract_relu_net(m.double(), (1, 1, 4, 4))
    kinds = [type(layer) for layer in layers.layers]
    assert MaxPool in kinds and Relu in kinds and Affine in kinds
    rng = np.random.default_rng(0)
    for _ in range(10):
        x = rng.uniform(-1, 1, 16)
        logits, grad = _torch_logits_grad(m, x, (1, 1, 4, 4), 1)
        y, _ = net.forward(x)
        c = np.zeros(3)
        c[1] = 1.0
        np.testing.assert_allclose(y, logits, atol=1e-10)
        np.testing.assert_allclose(net.gradient(x, c), grad, atol=1e-10)


def test_onnx2torch_graph_is_accepted() -> None:
    pytest.importorskip("onnx", reason="onnx is not installed")
    onnx2torch = pytest.importorskip("onnx2torch", reason="onnx2torch is not installed")
    from onnx import TensorProto, helper, numpy_helper

    torch.manual_seed(1)
    m = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    inits = [
        numpy_helper.from_array(t.detach().numpy(), name)
        for name, t in [("w1", m[1].weight), ("b1", m[1].bias), ("w2", m[3].weight), ("b2", m[3].bias)]
    ]
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w1", "b1"], ["g1"], transB=1),
        helper.make_node("Relu", ["g1"], ["r1"]),
        helper.make_node("Gemm", ["r1", "w2", "b2"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    g = onnx2torch.convert(model).eval()
    _, net = extract_relu_net(g.double(), (1, 6))
    x = np.linspace(-1, 1, 6)
    logits, grad = _torch_logits_grad(m, x, (1, 6), 2)
    np.testing.assert_allclose(net.forward(x)[0], logits, atol=1e-6)
    np.testing.assert_allclose(net.gradient(x, np.eye(3)[2]), grad, atol=1e-6)


def test_consecutive_affine_layers_are_merged() -> None:
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2)).double()
    layers = extract_layers(m, (1, 3))
    assert [type(layer).__name__ for layer in layers.layers] == ["Affine", "Relu", "Affine"]
