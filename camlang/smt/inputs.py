"""Validation of user inputs to the property checks: the point, the box, the label, eps/delta."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from camlang.errors import CamlangError
from camlang.smt.network import LayerList, ReluNet, extract_relu_net

__all__ = [
    "PointLike",
    "BoxLike",
    "as_module64",
    "torch_eval",
    "box_arrays",
    "prepare_point",
    "label_disjuncts",
    "check_label",
    "check_nonneg",
    "check_extraction",
]

#: A point: a torch tensor, a numpy array or a (nested) list of numbers.
PointLike = torch.Tensor | npt.ArrayLike
#: A box ``(lo, hi)``: numbers, or one value per input each; None is unbounded.
BoxLike = Sequence[npt.ArrayLike] | None


def _expected_inputs(module: nn.Module) -> int | None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return int(m.in_features)
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            return None
    return None


def as_module64(module: nn.Module) -> nn.Module:
    """A float64 copy of the module (the caller's module is left alone)."""
    if not isinstance(module, nn.Module):
        raise CamlangError(f"expected a torch.nn.Module, got {type(module).__name__}", code="E700")
    return copy.deepcopy(module).double()


def torch_eval(
    module64: nn.Module, x: np.ndarray, shape: tuple[int, ...], label: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits and (when ``label`` is given) the input gradient of that logit, in float64."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64)).reshape(shape).requires_grad_(label is not None)
    with torch.enable_grad():
        out = module64(xt).reshape(-1)
        if label is None:
            return out.detach().numpy(), None
        (g,) = torch.autograd.grad(out[label], xt)
    return out.detach().numpy(), g.reshape(-1).numpy()


def _as_array(x: PointLike, what: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    if isinstance(x, torch.Tensor):
        t = x.detach().to(torch.float64).cpu()
        shape = tuple(t.shape) if t.dim() >= 2 and t.shape[0] == 1 else (1, *t.shape)
        return t.reshape(-1).numpy(), shape
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CamlangError(f"`{what}` must be a list of numbers, got {x!r}", code="E702") from exc
    if arr.ndim > 1:
        return arr.reshape(-1), (1, *arr.shape)
    return arr.reshape(-1), None


def box_arrays(box: BoxLike, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The box ``(lo, hi)`` as two arrays of ``n`` values (unbounded when ``box`` is None)."""
    if box is None:
        return np.full(n, -np.inf), np.full(n, np.inf)
    try:
        lo_v, hi_v = box
    except (TypeError, ValueError) as exc:
        raise CamlangError(f"`box` must be a pair [lo, hi], got {box!r}", code="E702") from exc
    lo = (
        np.broadcast_to(np.asarray(lo_v, dtype=np.float64).reshape(-1), (n,)).copy()
        if np.size(lo_v) in (1, n)
        else None
    )
    hi = (
        np.broadcast_to(np.asarray(hi_v, dtype=np.float64).reshape(-1), (n,)).copy()
        if np.size(hi_v) in (1, n)
        else None
    )
    if lo is None or hi is None:
        raise CamlangError(f"`box` bounds must be numbers or have {n} values each", code="E702")
    if np.any(lo > hi):
        raise CamlangError(f"`box` is empty: lower bound above upper bound ({box!r})", code="E702")
    return lo, hi


def prepare_point(
    module: nn.Module, x: PointLike, input_shape: Sequence[int] | None
) -> tuple[nn.Module, np.ndarray, tuple[int, ...], LayerList, ReluNet]:
    """Validate ``x`` against the network and extract it."""
    flat, shape = _as_array(x, "at")
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if shape[0] != 1:
            shape = (1, *shape)
        if int(np.prod(shape)) != flat.size:
            raise CamlangError(
                f"`at` has {flat.size} values but `input_shape` {list(shape)} holds {int(np.prod(shape))}",
                code="E702",
            )
    if shape is None:
        expected = _expected_inputs(module)
        if expected is not None and expected != flat.size:
            raise CamlangError(
                f"`at` has {flat.size} values but the network takes {expected} inputs",
                hint="give one value per network input",
                code="E702",
            )
        shape = (1, flat.size)
    if not np.all(np.isfinite(flat)):
        raise CamlangError("`at` contains NaN or infinite values", code="E702")
    module64 = as_module64(module)
    layers, net = extract_relu_net(module64, shape)
    if net.n_inputs != flat.size:
        raise CamlangError(
            f"`at` has {flat.size} values but the network takes {net.n_inputs} inputs", code="E702"
        )
    check_extraction(module64, net, flat, shape)
    return module64, flat, shape, layers, net


def check_extraction(module64: nn.Module, net: ReluNet, x: np.ndarray, shape: tuple[int, ...]) -> None:
    """Raise unless the extracted network computes torch's float64 logits at ``x``.

    Every affine run (convolutions included) was found by probing with basis vectors, which is
    exact only for maps that really are affine; a layer that is not (a custom module that passes
    for an ONNX Add, say) would make every verdict about some other network, so it is caught here,
    once per query, before any bound is computed."""
    logits, _ = torch_eval(module64, x, shape, None)
    mine, _ = net.forward(x)
    scale = 1.0 + float(np.max(np.abs(logits), initial=0.0))
    gap = float(np.max(np.abs(mine - logits), initial=0.0))
    if not gap <= 1e-7 * scale:
        raise CamlangError(
            f"the verifier's copy of the network differs from torch by {gap:.3g} at `at`",
            hint="one of its layers is not the affine map it was taken for; "
            "internal error if it is made only of supported layers, please report",
            code="E700",
        )


def label_disjuncts(label: int, n_out: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Unsafe set of ``argmax == label``: for each other class j, ``y_label - y_j <= 0``."""
    out = []
    for j in range(n_out):
        if j != label:
            row = np.zeros(n_out)
            row[label], row[j] = 1.0, -1.0
            out.append((row[None, :], np.zeros(1)))
    return tuple(out)


def check_label(label: int | None, logits: np.ndarray) -> int:
    """The predicted label when None, else a validated one."""
    if label is None:
        return int(np.argmax(logits))
    if not isinstance(label, int | np.integer) or not 0 <= int(label) < logits.size:
        raise CamlangError(
            f"`label` {label!r} is not a class of this network (it has {logits.size} outputs)", code="E702"
        )
    return int(label)


def check_nonneg(value: float, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise CamlangError(f"`{name}` must be a number, got {value!r}", code="E702") from exc
    if not np.isfinite(v) or v < 0:
        raise CamlangError(f"`{name}` must be a non-negative number, got {value!r}", code="E702")
    return v
