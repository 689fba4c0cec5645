"""Extract a PyTorch ReLU network into a small list of layers the verifier understands.

Two forms are produced:

* `LayerList` — what the module does, op by op: `Affine` (any affine map, as a dense float64
  matrix over the flattened tensor), `Relu` and `MaxPool` (groups of flat input indices). The
  naive z3 encoding works on this form directly.
* `ReluNet` — the canonical form used by the bounds, the MILP and the reference z3 encoding:
  ``affine (relu affine)*``. Consecutive affine maps are multiplied together, and each max-pool is
  lowered to ReLUs (``max(a, b) = b + relu(a - b)``, with the pass-through ``b`` written as
  ``relu(b) - relu(-b)``), so every later stage only ever sees affine maps and ReLUs.

Affine modules (Linear, Conv2d, AvgPool2d, BatchNorm in eval mode, Flatten, reshapes, Gemm/MatMul/
Add with constants from onnx2torch) are turned into matrices by probing: ``W = f(E) - f(0)`` for
the basis ``E``. That is exact up to float64 rounding for genuinely affine maps and cheap for the
input sizes a complete verifier can handle anyway.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

from camlang.errors import CamlangError

__all__ = [
    "Affine",
    "Relu",
    "MaxPool",
    "Layer",
    "LayerList",
    "ReluNet",
    "extract_layers",
    "to_relu_net",
    "extract_relu_net",
]


@dataclass(frozen=True)
class Affine:
    """``y = W x + b`` on flattened tensors (float64)."""

    W: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class Relu:
    """Element-wise ReLU."""

    size: int


@dataclass(frozen=True)
class MaxPool:
    """``y[o] = max(x[i] for i in groups[o])`` on flattened tensors."""

    groups: tuple[tuple[int, ...], ...]
    in_size: int


Layer = Affine | Relu | MaxPool


@dataclass(frozen=True)
class LayerList:
    """The extracted network, op by op, with its input shape (batch dimension included)."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]
    n_inputs: int
    n_outputs: int


@dataclass(frozen=True)
class ReluNet:
    """Canonical ``affine (relu affine)*`` network: hidden layer k is ``z_k = Ws[k] h_{k-1} + bs[k]``,
    ``h_k = relu(z_k)``; the output is ``Ws[-1] h_{L-1} + bs[-1]``."""

    Ws: tuple[np.ndarray, ...]
    bs: tuple[np.ndarray, ...]

    @property
    def n_inputs(self) -> int:
        return int(self.Ws[0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.Ws[-1].shape[0])

    @property
    def n_hidden(self) -> int:
        """Number of ReLU layers."""
        return len(self.Ws) - 1

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits and the pre-activations of every hidden layer at ``x`` (float64)."""
        h = np.asarray(x, dtype=np.float64)
        pre: list[np.ndarray] = []
        for W, b in zip(self.Ws[:-1], self.bs[:-1]):
            z = W @ h + b
            pre.append(z)
            h = np.maximum(z, 0.0)
        return self.Ws[-1] @ h + self.bs[-1], pre

    def gradient(self, x: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Gradient of ``c . logits`` w.r.t. the input, with torch's convention relu'(0) = 0."""
        _, pre = self.forward(x)
        return self.gradient_for_pattern([z > 0 for z in pre], c)

    def gradient_for_pattern(self, pattern: list[np.ndarray], c: np.ndarray) -> np.ndarray:
        """Gradient of ``c . logits`` for a fixed activation pattern (one bool array per layer)."""
        g = self.Ws[-1].T @ np.asarray(c, dtype=np.float64)
        for k in range(self.n_hidden - 1, -1, -1):
            g = self.Ws[k].T @ (g * pattern[k])
        return g


# ---------------------------------------------------------------------------------------------
# walking the module


_AFFINE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)
# onnx2torch wraps ONNX ops in its own modules; these are affine in the tensor input.
_ONNX_AFFINE_NAMES = {
    "OnnxGemm",
    "OnnxMatMul",
    "OnnxReshape",
    "OnnxFlatten",
    "OnnxBinaryMathOperation",
    "OnnxSqueezeStaticAxes",
    "OnnxUnsqueezeStaticAxes",
    "OnnxTranspose",
    "OnnxConstant",
}
_AFFINE_FUNCTIONS = {torch.flatten, torch.reshape, operator.add, operator.sub, torch.add, torch.sub}
_AFFINE_METHODS = {"flatten", "view", "reshape", "add", "sub"}

_Step = tuple[str, Callable[[torch.Tensor], torch.Tensor], str]  # (kind, fn, description)


def _describe(path: str, obj: object) -> str:
    return f"`{path or '<root>'}` ({type(obj).__name__})"


def _unsupported(path: str, obj: object) -> CamlangError:
    return CamlangError(
        f"layer {_describe(path, obj)} is not supported by the SMT verifier",
        hint="properties can be checked on ReLU networks written as nn.Sequential (or a "
        "single-input ONNX chain) of Linear, Conv1d/Conv2d, ReLU, Flatten, AvgPool, MaxPool, "
        "and BatchNorm and Dropout in eval mode",
        code="E700",
    )


def _module_steps(module: nn.Module, path: str) -> Iterator[_Step]:
    if isinstance(module, fx.GraphModule):
        yield from _graph_steps(module, path)
    elif isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            yield from _module_steps(child, f"{path}.{name}" if path else name)
    elif isinstance(module, nn.ReLU):
        yield ("relu", module, _describe(path, module))
    elif isinstance(module, nn.MaxPool2d | nn.MaxPool1d):
        yield ("maxpool", module, _describe(path, module))
    elif isinstance(module, _AFFINE_MODULES) or type(module).__name__ in _ONNX_AFFINE_NAMES:
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.Dropout) and module.training:
            raise CamlangError(
                f"layer {_describe(path, module)} is in training mode",
                hint="call model.eval() before checking properties",
                code="E700",
            )
        yield ("affine", module, _describe(path, module))
    else:
        raise _unsupported(path, module)


def _graph_steps(gm: fx.GraphModule, path: str) -> Iterator[_Step]:
    """Walk an fx graph (e.g. from onnx2torch) that is a chain of single-input ops."""
    prev: fx.Node | None = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if prev is not None:
                raise CamlangError(
                    f"module `{path or '<root>'}` takes several inputs; the verifier needs one"
                )
            prev = node
            continue
        if node.op == "output":
            continue
        tensor_args = [a for a in node.args if isinstance(a, fx.Node)]
        where = f"{path}.{node.target}" if path else str(node.target)
        if node.op == "get_attr":
            raise _unsupported(where, node)
        if len(tensor_args) != 1 or tensor_args[0] is not prev:
            raise CamlangError(
                f"graph node `{node.name}` in `{path or '<root>'}` is not a simple chain "
                "(branches and skip connections are not supported by the SMT verifier)",
                code="E700",
            )
        if node.op == "call_module":
            sub = gm.get_submodule(str(node.target))
            if type(sub).__name__ == "OnnxBinaryMathOperation" or type(sub).__name__.startswith("Onnx"):
                if type(sub).__name__ not in _ONNX_AFFINE_NAMES:
                    raise _unsupported(where, sub)
                args = node.args
                yield ("affine", _bind(sub, args, prev), _describe(where, sub))
            else:
                yield from _module_steps(sub, where)
        elif node.op == "call_function":
            if node.target in (torch.relu, nn.functional.relu):
                yield ("relu", torch.relu, f"`{node.name}` (relu)")
            elif node.target in _AFFINE_FUNCTIONS:
                yield ("affine", _bind(node.target, node.args, prev, node.kwargs), f"`{node.name}`")
            else:
                raise CamlangError(
                    f"graph function `{getattr(node.target, '__name__', node.target)}` (node `{node.name}`) "
                    "is not supported by the SMT verifier",
                    code="E700",
                )
        elif node.op == "call_method":
            if node.target == "relu":
                yield ("relu", torch.relu, f"`{node.name}` (relu)")
            elif node.target in _AFFINE_METHODS:
                yield ("affine", _method_call(str(node.target), tuple(node.args[1:])), f"`{node.name}`")
            else:
                raise CamlangError(
                    f"graph method `{node.target}` is not supported by the SMT verifier", code="E700"
                )
        prev = node


def _method_call(method: str, rest: tuple) -> Callable[[torch.Tensor], torch.Tensor]:
    def call(t: torch.Tensor) -> torch.Tensor:
        return getattr(t, method)(*rest)

    return call


def _bind(
    fn: Callable[..., torch.Tensor], args: tuple, prev: fx.Node, kwargs: dict | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Call ``fn`` with the chained tensor in place of the graph node ``prev``."""
    kw = dict(kwargs or {})

    def call(t: torch.Tensor) -> torch.Tensor:
        return fn(*[t if a is prev else a for a in args], **kw)

    return call


# ---------------------------------------------------------------------------------------------
# turning steps into layers


def _probe_affine(
    fn: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...], what: str
) -> tuple[Affine, tuple]:
    n = int(np.prod(shape[1:]))
    with torch.no_grad():
        zero = fn(torch.zeros(shape, dtype=torch.float64))
        out_shape = tuple(zero.shape)
        try:
            basis = torch.eye(n, dtype=torch.float64).reshape((n, *shape[1:]))
            cols = fn(basis)
            if tuple(cols.shape[1:]) != out_shape[1:] or cols.shape[0] != n:
                raise RuntimeError("shape")
            cols = cols.reshape(n, -1)
        except (RuntimeError, ValueError):
            # modules that hard-code batch size 1 (onnx Reshape): probe one column at a time
            eye = torch.eye(n, dtype=torch.float64)
            cols = torch.stack([fn(eye[i].reshape(shape)).reshape(-1) for i in range(n)])
    z = zero.reshape(-1)
    W = (cols - z).T.numpy().copy()
    if not np.all(np.isfinite(W)):
        raise CamlangError(
            f"layer {what} produced non-finite values when probed as an affine map", code="E700"
        )
    return Affine(W, z.numpy().copy()), out_shape


def _maxpool_groups(
    module: nn.MaxPool1d | nn.MaxPool2d, shape: tuple[int, ...], what: str
) -> tuple[MaxPool, tuple[int, ...]]:
    if getattr(module, "ceil_mode", False) or getattr(module, "return_indices", False):
        raise CamlangError(f"layer {what}: ceil_mode / return_indices are not supported", code="E700")
    n = int(np.prod(shape[1:]))
    idx = torch.arange(1, n + 1, dtype=torch.float64).reshape(shape)
    k: int | tuple[int, ...] = module.kernel_size
    s: int | tuple[int, ...] = module.stride
    p: int | tuple[int, ...] = module.padding
    d: int | tuple[int, ...] = module.dilation
    if isinstance(module, nn.MaxPool1d):
        idx = idx.unsqueeze(-2)
        one = [v[0] if isinstance(v, tuple) else v for v in (k, s, p, d)]
        k, s, p, d = (1, one[0]), (1, one[1]), (0, one[2]), (1, one[3])
    patches = nn.functional.unfold(idx, kernel_size=k, dilation=d, padding=p, stride=s)  # [1, C*kk, L]
    with torch.no_grad():
        out_shape = tuple(module(torch.zeros(shape, dtype=torch.float64)).shape)
    channels = idx.shape[1]
    kk = patches.shape[1] // channels
    patches = patches.reshape(channels, kk, -1)  # [C, kk, L]
    groups = []
    for c in range(channels):
        for loc in range(patches.shape[2]):
            members = tuple(int(v) - 1 for v in patches[c, :, loc].tolist() if v > 0)
            groups.append(members)
    if len(groups) != int(np.prod(out_shape[1:])):
        raise CamlangError(f"layer {what}: could not enumerate its pooling windows", code="E700")
    return MaxPool(tuple(groups), n), out_shape


def extract_layers(module: nn.Module, input_shape: tuple[int, ...]) -> LayerList:
    """Walk ``module`` (Sequential nesting and onnx2torch graphs allowed) into a `LayerList`.

    ``input_shape`` includes the batch dimension (e.g. ``(1, 784)`` or ``(1, 1, 28, 28)``).
    Raises `CamlangError` naming the first unsupported layer (module path and type).
    """
    if module.training:
        module = module  # eval mode is checked per layer; dropout/batchnorm in training mode raise
    shape = tuple(int(s) for s in input_shape)
    if shape[0] != 1:
        shape = (1, *shape)
    layers: list[Layer] = []
    n_inputs = int(np.prod(shape[1:]))
    for kind, fn, what in _module_steps(module, ""):
        try:
            if kind == "relu":
                layers.append(Relu(int(np.prod(shape[1:]))))
            elif kind == "maxpool":
                assert isinstance(fn, nn.MaxPool1d | nn.MaxPool2d)  # `_module_steps` yields only these
                pool, shape = _maxpool_groups(fn, shape, what)
                layers.append(pool)
            else:
                aff, shape = _probe_affine(fn, shape, what)
                if layers and isinstance(layers[-1], Affine):
                    prev = layers.pop()
                    assert isinstance(prev, Affine)
                    aff = Affine(aff.W @ prev.W, aff.W @ prev.b + aff.b)
                layers.append(aff)
        except CamlangError:
            raise
        except (RuntimeError, ValueError, TypeError) as exc:
            raise CamlangError(
                f"layer {what} failed on an input of shape {list(shape)}: {exc}",
                hint="check the input shape the network expects",
                code="E701",
            ) from exc
    n_outputs = int(np.prod(shape[1:]))
    return LayerList(tuple(layers), tuple(input_shape), n_inputs, n_outputs)


def _lower_maxpool(pool: MaxPool) -> list[Layer]:
    """Rewrite a max-pool as affine/ReLU layers (pairwise max tree)."""
    # each working group is a list of affine expressions (rows over the current vector)
    current = [list(g) for g in pool.groups]  # indices into the current vector
    size = pool.in_size
    layers: list[Layer] = []
    while any(len(g) > 1 for g in current):
        # hidden units: for a pair (a, b): relu(a - b), relu(b), relu(-b); for a single a: relu(a), relu(-a)
        rows: list[np.ndarray] = []
        out_spec: list[list[tuple[int, float]]] = []  # per new group member: combination of hidden units
        new_groups: list[list[int]] = []
        for g in current:
            ng = []
            for i in range(0, len(g), 2):
                if i + 1 < len(g):
                    a, b = g[i], g[i + 1]
                    r1 = np.zeros(size)
                    r1[a], r1[b] = 1.0, -1.0
                    r2 = np.zeros(size)
                    r2[b] = 1.0
                    base = len(rows)
                    rows += [r1, r2, -r2]
                    out_spec.append([(base, 1.0), (base + 1, 1.0), (base + 2, -1.0)])
                else:
                    r = np.zeros(size)
                    r[g[i]] = 1.0
                    base = len(rows)
                    rows += [r, -r]
                    out_spec.append([(base, 1.0), (base + 1, -1.0)])
                ng.append(len(out_spec) - 1)
            new_groups.append(ng)
        hidden = len(rows)
        layers.append(Affine(np.stack(rows), np.zeros(hidden)))
        layers.append(Relu(hidden))
        comb = np.zeros((len(out_spec), hidden))
        for o, terms in enumerate(out_spec):
            for j, c in terms:
                comb[o, j] = c
        layers.append(Affine(comb, np.zeros(len(out_spec))))
        current, size = new_groups, len(out_spec)
    # final selection so that the output order is the group order
    sel = np.zeros((len(current), size))
    for o, g in enumerate(current):
        sel[o, g[0]] = 1.0
    layers.append(Affine(sel, np.zeros(len(current))))
    return layers


def to_relu_net(layers: LayerList) -> ReluNet:
    """Canonicalise a `LayerList` into ``affine (relu affine)*`` form."""
    flat: list[Layer] = []
    for layer in layers.layers:
        flat.extend(_lower_maxpool(layer) if isinstance(layer, MaxPool) else [layer])
    Ws: list[np.ndarray] = []
    bs: list[np.ndarray] = []
    size = layers.n_inputs
    pending = Affine(np.eye(size), np.zeros(size))
    for layer in flat:
        if isinstance(layer, Affine):
            pending = Affine(layer.W @ pending.W, layer.W @ pending.b + layer.b)
        elif isinstance(layer, Relu):
            if not Ws or pending.W.shape[0] != pending.W.shape[1] or not _is_identity(pending):
                Ws.append(pending.W)
                bs.append(pending.b)
            # relu(relu(z)) = relu(z): an identity between two ReLUs is dropped
            size = pending.W.shape[0]
            pending = Affine(np.eye(size), np.zeros(size))
    Ws.append(pending.W)
    bs.append(pending.b)
    return ReluNet(tuple(Ws), tuple(bs))


def _is_identity(a: Affine) -> bool:
    return bool(np.array_equal(a.W, np.eye(a.W.shape[0])) and not np.any(a.b))


def extract_relu_net(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[LayerList, ReluNet]:
    """`extract_layers` followed by `to_relu_net`."""
    layers = extract_layers(module, input_shape)
    return layers, to_relu_net(layers)
