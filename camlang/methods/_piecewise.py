"""Freezing a piecewise-linear network at one input's activation pattern.

`PatternTape` runs a model under a `TorchFunctionMode`, which sees every torch function the
model calls, whether through `nn.ReLU`, `F.relu`, `x.relu()` or `torch.relu`, inside any forward
(residual additions, functional pooling, hooks). In the *record* pass each piecewise-linear
operation computes its pattern from its actual input (ReLU sign masks, max-pool argmax
indices, clamp regions, comparison results) and is evaluated through that frozen pattern, so
the output is the model's own output and its autograd gradient is the frozen network's
gradient. In the *replay* pass the same operations reuse the recorded patterns, so the model
computes the frozen network: an affine function of the input.

Operations that are not piecewise linear (sigmoid, GELU, softmax, layer norm, batch norm in
training mode, products of two input-dependent tensors, ...) raise a `CamlangError` naming the
layer path and type. Input dependence is tracked by autograd: the record pass runs with
detached parameters and an input that requires grad, so a tensor requires grad exactly when it
depends on the input.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from camlang.errors import CamlangError

# Functions with no piecewise-linear form: always an error.
_NOT_PIECEWISE_LINEAR = frozenset(
    """sigmoid sigmoid_ tanh tanh_ gelu silu silu_ mish softmax _softmax log_softmax softmin
    exp exp_ exp2 log log_ log2 log10 log1p expm1 elu elu_ selu selu_ celu celu_ rrelu rrelu_
    softplus softsign hardswish hardsigmoid logsigmoid tanhshrink softshrink hardshrink glu
    layer_norm group_norm instance_norm local_response_norm rms_norm normalize
    pow pow_ __pow__ __rpow__ __ipow__ float_power square sqrt sqrt_ rsqrt reciprocal
    sin cos tan sinh cosh atan asin acos erf erfc erfinv logit xlogy
    scaled_dot_product_attention multi_head_attention_forward
    var std var_mean std_mean norm cdist cosine_similarity pairwise_distance logsumexp
    amax amin topk sort kthvalue median mode cummax cummin""".split()
)
# Products: an error when two operands depend on the input.
_PRODUCTS = frozenset(
    """mul mul_ __mul__ __rmul__ __imul__ multiply matmul __matmul__ __rmatmul__ mm bmm einsum
    addmm addmm_ addbmm baddbmm addmv mv dot vdot outer ger bilinear addcmul addcmul_ kron
    tensordot inner linear conv1d conv2d conv3d conv_transpose1d conv_transpose2d
    conv_transpose3d""".split()
)
# Divisions: an error when the divisor depends on the input.
_DIVISIONS = frozenset("div div_ __truediv__ __itruediv__ true_divide divide addcdiv addcdiv_".split())
_REVERSE_DIVISIONS = frozenset(["__rtruediv__"])
_INTEGER_DIVISIONS = frozenset(
    "floor_divide __floordiv__ __rfloordiv__ fmod remainder __mod__ __rmod__".split()
)
# Piecewise-constant results: frozen as constants (their derivative is zero almost everywhere).
_PIECEWISE_CONSTANT = frozenset(
    """gt lt ge le eq ne greater less greater_equal less_equal not_equal __gt__ __lt__ __ge__
    __le__ __eq__ __ne__ sign signbit sgn heaviside round floor ceil trunc argmax argmin
    isclose isnan isinf isfinite""".split()
)
_DROPOUTS = frozenset("dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout".split())


Fn = Callable[..., Any]
Args = tuple[Any, ...]
Kwargs = dict[str, Any]
#: A clamp bound: a number, a tensor (input-independent, or the model is refused) or none.
Bound = float | Tensor | None
_P = TypeVar("_P")


def _name(func: Fn) -> str:
    return getattr(func, "__name__", repr(func))


def _arg(args: Args, kwargs: Kwargs, index: int, key: str, default: Any) -> Any:
    if key in kwargs:
        return kwargs[key]
    return args[index] if len(args) > index else default


def _depends(value: object) -> bool:
    return isinstance(value, Tensor) and value.requires_grad


class PatternTape(TorchFunctionMode):
    """Records (`replay=False`) or replays (`replay=True`) a network's piecewise-linear pattern.

    Use `tape.run(module, x)` for a pass; a fresh tape records, and `tape.replaying()` switches
    the same tape to replay its recorded patterns in order.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.patterns: list[object] = []
        self.replay = False
        self._cursor = 0
        self._stack: list[tuple[str, nn.Module]] = []

    # --- running passes ---------------------------------------------------------------------

    def run(self, call: Callable[[], Tensor]) -> Tensor:
        """Run `call()` (a forward of `self.module`) under this tape with layer-path tracking."""
        self._cursor = 0
        self._stack = []
        with self._layer_paths(), self:
            out = call()
        if self.replay and self._cursor != len(self.patterns):
            raise self._control_flow_error()
        return out

    def replaying(self) -> PatternTape:
        """Switch to replaying the patterns recorded so far; returns `self`."""
        self.replay = True
        return self

    @contextmanager
    def _layer_paths(self) -> Iterator[None]:
        handles = []
        for path, sub in self.module.named_modules():

            def pre(mod: nn.Module, args: tuple[object, ...], path: str = path) -> None:
                self._stack.append((path or "<model>", mod))

            def post(mod: nn.Module, args: tuple[object, ...], out: object) -> None:
                if self._stack:
                    self._stack.pop()

            handles.append(sub.register_forward_pre_hook(pre))
            handles.append(sub.register_forward_hook(post, always_call=True))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    # --- errors -----------------------------------------------------------------------------

    def _where(self) -> str:
        if not self._stack:
            return "the model's forward"
        path, mod = self._stack[-1]
        return f"layer `{path}` ({type(mod).__name__})"

    def _not_pl(self, what: str) -> CamlangError:
        return CamlangError(
            f"guid-Xmage needs a piecewise-linear network, but {self._where()} {what}",
            hint="Xmage supports ReLU-family activations, max/avg pooling, convolutions, linear layers, "
            "batch norm in eval mode and residual additions; use a gradient or CAM method for this model",
        )

    def _control_flow_error(self) -> CamlangError:
        return CamlangError(
            f"guid-Xmage: the model took a different path when re-run at its frozen pattern "
            f"(near {self._where()})",
            hint="the model's control flow depends on the input values; "
            "Xmage needs a fixed computation graph",
        )

    # --- the pattern tape -------------------------------------------------------------------

    def _pattern(self, compute: Callable[[], _P]) -> _P:
        if not self.replay:
            value = compute()
            self.patterns.append(value)
            return value
        if self._cursor >= len(self.patterns):
            raise self._control_flow_error()
        # The replay pass asks for the patterns in the recording's order (a different order is
        # the control-flow error above), so this one came from the same `compute`.
        recorded = cast(_P, self.patterns[self._cursor])
        self._cursor += 1
        return recorded

    def __torch_function__(
        self,
        func: Fn,
        types: Collection[type],
        args: Args = (),
        kwargs: Kwargs | None = None,
    ) -> object:
        kwargs = kwargs or {}
        name = _name(func)
        handler = _HANDLERS.get(name)
        if handler is not None:
            return handler(self, func, args, kwargs)
        if not self.replay:
            self._check(name, args, kwargs)
        if name in _PIECEWISE_CONSTANT:
            # Frozen whether or not the operand depends on the input: the replay pass cannot
            # tell, and both passes must read the tape in the same order.
            return self._frozen_constant(func, args, kwargs)
        return func(*args, **kwargs)

    def _check(self, name: str, args: Args, kwargs: Kwargs) -> None:
        if name in _NOT_PIECEWISE_LINEAR:
            raise self._not_pl(f"applies `{name}`, which is not piecewise linear")
        if name == "batch_norm" and _arg(args, kwargs, 5, "training", False):
            raise self._not_pl(
                "normalizes with batch statistics (training mode or no running statistics); "
                "call model.eval() first"
            )
        if name in _DROPOUTS and _arg(args, kwargs, 2, "training", True) and _arg(args, kwargs, 1, "p", 0.5):
            raise self._not_pl("applies dropout in training mode; call model.eval() first")
        if name in _PRODUCTS:
            if sum(_depends(leaf) for leaf in tree_leaves((args, kwargs))) >= 2:
                raise self._not_pl(f"multiplies two input-dependent tensors (`{name}`)")
        elif name in _DIVISIONS:
            if _depends(args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("tensor2"))):
                raise self._not_pl(f"divides by an input-dependent tensor (`{name}`)")
        elif name in _REVERSE_DIVISIONS:
            if _depends(args[0] if args else None):
                raise self._not_pl(f"divides by an input-dependent tensor (`{name}`)")
        elif name in _INTEGER_DIVISIONS:
            if any(_depends(leaf) for leaf in tree_leaves((args, kwargs))):
                raise self._not_pl(f"applies `{name}` to an input-dependent tensor")

    def _frozen_constant(self, func: Fn, args: Args, kwargs: Kwargs) -> object:
        def compute() -> object:
            out = func(*args, **kwargs)
            return out.detach() if isinstance(out, Tensor) else out

        return self._pattern(compute)


# --- handlers for piecewise-linear operations ---------------------------------------------------
# Each computes its pattern from the actual input (record) or takes it from the tape (replay),
# then evaluates the operation as a function that is affine in the input given the pattern.

Handler = Callable[[PatternTape, Fn, Args, Kwargs], object]


def _inplace(func: Fn, args: Args, kwargs: Kwargs, index: int) -> bool:
    return _name(func).endswith("_") or bool(_arg(args, kwargs, index, "inplace", False))


def _finish(z: Tensor, out: Tensor, inplace: bool) -> Tensor:
    """Write `out` into `z` when the model asked for an in-place op and autograd allows it.

    Models normally use the returned tensor; writing back keeps the rare model that relies on
    the side effect (`F.relu_(x)` as a statement) correct too.
    """
    if inplace and not (z.is_leaf and z.requires_grad):
        z.copy_(out)
        return z
    return out


def _relu(tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs) -> Tensor:
    z: Tensor = args[0]
    mask = tape._pattern(lambda: z.detach() > 0)
    return _finish(z, z * mask.to(z.dtype), _inplace(func, args, kwargs, 1))


def _leaky_relu(tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs) -> Tensor:
    z: Tensor = args[0]
    slope = float(_arg(args, kwargs, 1, "negative_slope", 0.01))
    mask = tape._pattern(lambda: z.detach() > 0)
    # Scalars built in z's dtype: torch.where on Python floats would round the slope to float32.
    factor = torch.where(mask, z.new_tensor(1.0), z.new_tensor(slope))
    return _finish(z, z * factor, _inplace(func, args, kwargs, 2))


def _prelu(tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs) -> Tensor:
    z: Tensor = args[0]
    weight: Tensor = _arg(args, kwargs, 1, "weight", None)
    if _depends(weight) and not tape.replay:
        raise tape._not_pl("uses an input-dependent PReLU slope")
    mask = tape._pattern(lambda: z.detach() > 0)
    if weight.numel() > 1 and z.dim() >= 2:
        weight = weight.reshape([1, -1] + [1] * (z.dim() - 2))
    return z * torch.where(mask, torch.ones_like(z), weight.to(z.dtype))


def _select_regions(tape: PatternTape, z: Tensor, lo: Bound, hi: Bound, strict: bool) -> Tensor:
    """Frozen clamp: `z` inside `[lo, hi]`, the bound outside; `lo`/`hi` may be None."""
    for bound in (lo, hi):
        if _depends(bound) and not tape.replay:
            raise tape._not_pl("clamps to input-dependent bounds")

    def compute() -> tuple[Tensor, Tensor]:
        zd = z.detach()
        below = torch.zeros_like(zd, dtype=torch.bool) if lo is None else (zd <= lo if strict else zd < lo)
        above = torch.zeros_like(zd, dtype=torch.bool) if hi is None else (zd >= hi if strict else zd > hi)
        return below, above

    below, above = tape._pattern(compute)
    inside = ~(below | above)
    out = z * inside.to(z.dtype)
    if lo is not None:
        out = out + torch.as_tensor(lo, dtype=z.dtype, device=z.device) * below.to(z.dtype)
    if hi is not None:
        out = out + torch.as_tensor(hi, dtype=z.dtype, device=z.device) * above.to(z.dtype)
    return out


def _hardtanh(tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs) -> Tensor:
    z: Tensor = args[0]
    if _name(func).startswith("relu6"):
        lo, hi, inplace = 0.0, 6.0, _inplace(func, args, kwargs, 1)
    else:
        lo = _arg(args, kwargs, 1, "min_val", -1.0)
        hi = _arg(args, kwargs, 2, "max_val", 1.0)
        inplace = _inplace(func, args, kwargs, 3)
    return _finish(z, _select_regions(tape, z, lo, hi, strict=True), inplace)


def _clamp(tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs) -> Tensor:
    z: Tensor = args[0]
    name = _name(func).rstrip("_")
    if name == "clamp_min":
        lo, hi = _arg(args, kwargs, 1, "min", None), None
    elif name == "clamp_max":
        lo, hi = None, _arg(args, kwargs, 1, "max", None)
    else:
        lo, hi = _arg(args, kwargs, 1, "min", None), _arg(args, kwargs, 2, "max", None)
    return _finish(z, _select_regions(tape, z, lo, hi, strict=False), _name(func).endswith("_"))


def _threshold(tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs) -> Tensor:
    z: Tensor = args[0]
    th = float(_arg(args, kwargs, 1, "threshold", 0.0))
    value = float(_arg(args, kwargs, 2, "value", 0.0))
    mask = tape._pattern(lambda: z.detach() > th)
    out = z * mask.to(z.dtype) + value * (~mask).to(z.dtype)
    return _finish(z, out, _inplace(func, args, kwargs, 3))


def _abs(tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs) -> Tensor:
    z: Tensor = args[0]
    sign = tape._pattern(lambda: torch.where(z.detach() < 0, -1.0, 1.0).to(z.dtype))
    return _finish(z, z * sign, _name(func).endswith("_"))


def _maximum(tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs) -> Tensor:
    a, b = args[0], _arg(args, kwargs, 1, "other", None)
    if not isinstance(b, Tensor):
        raise tape._not_pl(f"applies `{_name(func)}` in a form Xmage does not support")
    larger = _name(func) in ("maximum", "fmax", "max")
    pick_a = tape._pattern(lambda: (a.detach() >= b.detach()) if larger else (a.detach() <= b.detach()))
    return torch.where(pick_a, a, b)


def _max_reduce(
    tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs
) -> Tensor | torch.return_types.max | torch.return_types.min:
    """`torch.max` / `torch.min`: element-wise with a tensor, or along `dim` (frozen argmax)."""
    second = _arg(args, kwargs, 1, "dim", None)
    if isinstance(second, Tensor) or "other" in kwargs:
        return _maximum(tape, func, args, kwargs)
    if second is None:
        raise tape._not_pl(f"applies `{_name(func)}` over all elements; use it with `dim`")
    z: Tensor = args[0]
    dim = int(second)
    keepdim = bool(_arg(args, kwargs, 2, "keepdim", False))
    index = tape._pattern(lambda: func(z.detach(), dim, True).indices)
    values = z.gather(dim, index)
    if not keepdim:
        values, index = values.squeeze(dim), index.squeeze(dim)
    if _name(func) == "max":
        return torch.return_types.max((values, index))
    return torch.return_types.min((values, index))


def _pool_with_indices(kind: str, dims: int) -> Handler:
    """Max pooling over `dims` spatial dims: frozen argmax indices, then a gather.

    The recorded pattern is `(indices, returns_tuple)`: the functional spellings differ in
    whether they return the indices too, so the record pass asks the real function.
    """
    with_indices = getattr(F, f"{kind}{dims}d_with_indices")
    flag_index = 6 if kind == "max_pool" else 2  # position of `return_indices`, where accepted

    def handler(tape: PatternTape, func: Fn, args: Args, kwargs: Kwargs) -> Tensor | tuple[Tensor, Tensor]:
        z: Tensor = args[0]

        def compute() -> tuple[Tensor, bool]:
            real = func(z.detach(), *args[1:], **kwargs)
            if isinstance(real, tuple):
                return real[1], True
            plain_args = args[1:flag_index]
            plain_kwargs = {k: v for k, v in kwargs.items() if k != "return_indices"}
            return with_indices(z.detach(), *plain_args, **plain_kwargs)[1], False

        index, returns_tuple = tape._pattern(compute)
        flat = z.flatten(start_dim=-dims)
        out = flat.gather(-1, index.flatten(start_dim=-dims)).reshape(index.shape)
        return (out, index) if returns_tuple else out

    return handler


_HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(["relu", "relu_"], _relu),
    **dict.fromkeys(["leaky_relu", "leaky_relu_"], _leaky_relu),
    "prelu": _prelu,
    **dict.fromkeys(["hardtanh", "hardtanh_", "relu6", "relu6_"], _hardtanh),
    **dict.fromkeys(
        ["clamp", "clamp_", "clip", "clip_", "clamp_min", "clamp_min_", "clamp_max", "clamp_max_"], _clamp
    ),
    **dict.fromkeys(["threshold", "threshold_"], _threshold),
    **dict.fromkeys(["abs", "abs_", "absolute", "__abs__"], _abs),
    **dict.fromkeys(["maximum", "minimum", "fmax", "fmin"], _maximum),
    **dict.fromkeys(["max", "min"], _max_reduce),
}
_SPELLINGS = (("", ""), ("_", ""), ("", "_with_indices"))
for _dims in (1, 2, 3):
    _HANDLERS.update(
        dict.fromkeys(
            [f"{prefix}max_pool{_dims}d{suffix}" for prefix, suffix in _SPELLINGS],
            _pool_with_indices("max_pool", _dims),
        )
    )
for _dims in (1, 2, 3):
    _HANDLERS.update(
        dict.fromkeys(
            [f"{prefix}adaptive_max_pool{_dims}d{suffix}" for prefix, suffix in _SPELLINGS],
            _pool_with_indices("adaptive_max_pool", _dims),
        )
    )
