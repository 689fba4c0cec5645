"""guid-Xmage: exact pixel attribution for piecewise-linear networks (ASE 2024).

Restricted to the activation pattern of an input `x` (which ReLUs are on, which element each
max-pool picks), a piecewise-linear network is an affine map, so each class logit is exactly

    f_t(x) = sum(Delta_t * x) + b_t.

`xmage` computes `Delta_t`, the contribution map `A_t = Delta_t * x` and `b_t` by running the
network twice under `PatternTape` (see `_piecewise.py`): once on `x` to record the pattern (its
gradient is `Delta_t`), once on the zero image with the pattern frozen (its output is `b_t`).
Completeness, `sum(A_t) + b_t = f_t(x)`, then holds up to floating-point rounding; the default
float64 makes it exact to about 1e-12 relative.

`distribution_map_rgb` draws a signed map in the paper's five-colour scale and
`direction_accuracy` checks a map's signs against the model's response to small pixel changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from camlang.errors import CamlangError
from camlang.methods._common import (
    Generators,
    batched_logits,
    check_images,
    check_logits,
    check_positive_int,
    per_image_generators,
    rand_rows,
    resolve_targets,
)
from camlang.methods._piecewise import PatternTape

Targets = Tensor | Sequence[int] | None


@dataclass(frozen=True)
class XmageResult:
    """The exact affine decomposition of each image's target logit (all in the chosen dtype).

    `delta [B, C, H, W]` is the frozen network's input gradient, `contributions = delta * x`,
    `bias [B]` the frozen network's output at the zero image and `logit [B]` the model's target
    logit at `x`; `contributions.sum((1, 2, 3)) + bias == logit` up to rounding.
    """

    delta: Tensor
    contributions: Tensor
    bias: Tensor
    logit: Tensor
    targets: Tensor

    @property
    def completeness_gap(self) -> Tensor:
        """`|sum(A) + b - f(x)|` per image, `[B]`: rounding error only."""
        return (self.contributions.flatten(1).sum(1) + self.bias - self.logit).abs()


def xmage(
    module: nn.Module, x: Tensor, targets: Targets = None, dtype: torch.dtype = torch.float64
) -> XmageResult:
    """Exact decomposition `f_t(x) = sum(Delta_t * x) + b_t` of a piecewise-linear network.

    The model runs in `dtype` (its parameters are converted on the fly; the module itself is
    not changed). Raises a `CamlangError` naming the layer when the network is not piecewise
    linear (sigmoid, GELU, softmax inside, layer norm, batch norm in training mode, ...).
    """
    method = "xmage"
    x = check_images(x, method)
    if not dtype.is_floating_point:
        raise CamlangError(f"{method}: `dtype` must be a floating-point dtype, got {dtype}")
    batch = x.shape[0]
    state = {name: p.detach().to(dtype) for name, p in module.named_parameters()}
    for name, buf in module.named_buffers():
        state[name] = buf.to(dtype) if buf.is_floating_point() else buf

    def forward(inp: Tensor) -> Tensor:
        return torch.func.functional_call(module, state, (inp,))

    tape = PatternTape(module)
    xd = x.detach().to(dtype).requires_grad_(True)
    with torch.enable_grad():
        logits = check_logits(tape.run(lambda: forward(xd)), batch, method)
        t = resolve_targets(targets, logits, method)
        chosen = logits.gather(1, t[:, None]).squeeze(1)
        if not chosen.requires_grad:
            raise CamlangError(
                f"{method}: the model's output does not depend differentiably on its input",
                hint="is the forward wrapped in torch.no_grad() or detached?",
            )
        (delta,) = torch.autograd.grad(chosen.sum(), xd)
    with torch.no_grad():
        zero = torch.zeros_like(xd, requires_grad=False)
        bias_logits = check_logits(tape.replaying().run(lambda: forward(zero)), batch, method)
    bias = bias_logits.gather(1, t[:, None]).squeeze(1)
    result = XmageResult(delta, delta * xd.detach(), bias, chosen.detach(), t)
    _check_completeness(result, dtype)
    return result


def _check_completeness(result: XmageResult, dtype: torch.dtype) -> None:
    """Safety net: an operation this module does not know could break the affine form."""
    scale = result.contributions.flatten(1).abs().sum(1) + result.bias.abs() + result.logit.abs()
    tol = 1e5 * torch.finfo(dtype).eps
    bad = result.completeness_gap > tol * scale.clamp_min(torch.finfo(dtype).tiny)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        total = float(result.contributions[i].sum() + result.bias[i])
        raise CamlangError(
            f"guid-Xmage: completeness fails for image {i} (sum(A) + b = {total:.6g}, "
            f"f(x) = {float(result.logit[i]):.6g}); the model uses an operation that is not "
            "piecewise linear and was not recognized",
            hint="use a gradient or CAM method for this model",
        )


def xmage_map(
    module: nn.Module, x: Tensor, targets: Targets = None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Signed guid-Xmage map: the contributions summed over channels, `[B, H, W]` in `x.dtype`."""
    return xmage(module, x, targets, dtype).contributions.sum(dim=1).to(x.dtype)


# The paper's five-colour scale, from the most negative to the most positive contribution.
_FIVE_COLOURS = torch.tensor(
    [[0, 0, 255], [0, 255, 255], [0, 255, 0], [255, 255, 0], [255, 0, 0]], dtype=torch.float64
)


def distribution_map_rgb(signed_map: Tensor) -> Tensor:
    """Colour a signed map `[H, W]` as `uint8 [H, W, 3]`: blue/cyan negative, green zero, yellow/red positive.

    The scale is symmetric around 0: `+max|map|` is red, `-max|map|` is blue, and the colours
    in between are linear blends of blue, cyan, green, yellow and red. An all-zero map is green.
    """
    if not isinstance(signed_map, Tensor) or signed_map.dim() != 2:
        got = tuple(signed_map.shape) if isinstance(signed_map, Tensor) else type(signed_map).__name__
        raise CamlangError(f"distribution_map_rgb: expected one map of shape [H, W], got {got}")
    m = signed_map.detach().to("cpu", torch.float64)
    peak = float(m.abs().max()) if m.numel() else 0.0
    v = m / peak if peak > 0 else torch.zeros_like(m)
    pos = (v.clamp(-1, 1) + 1) * 2  # 0..4 over the five anchors
    lo = pos.floor().clamp(0, 3).long()
    frac = (pos - lo).unsqueeze(-1)
    rgb = _FIVE_COLOURS[lo] * (1 - frac) + _FIVE_COLOURS[lo + 1] * frac
    return rgb.round().clamp(0, 255).to(torch.uint8)


def _checked_map(signed_map: Tensor, batch: int, height: int, width: int, method: str) -> Tensor:
    """The map as `[B, H, W]` (a single `[H, W]` map for one image is accepted), detached."""
    if not isinstance(signed_map, Tensor):
        got = type(signed_map).__name__
        raise CamlangError(f"{method}: expected the map as a tensor [B, H, W], got {got}")
    smap = signed_map.detach()
    if smap.dim() == 2 and batch == 1:
        smap = smap.unsqueeze(0)
    if tuple(smap.shape) != (batch, height, width):
        raise CamlangError(
            f"{method}: the map has shape {tuple(signed_map.shape)}, "
            f"but the images need [{batch}, {height}, {width}]",
            hint="upsample the map to the input resolution first",
        )
    return smap


@dataclass(frozen=True)
class _Probes:
    """The perturbed batch, one row per (image, pixel, sign): which image, where, which way."""

    image: Tensor
    ii: Tensor
    jj: Tensor
    up: Tensor
    step: Tensor


def _probes(chosen: Tensor, fraction: float, x: Tensor) -> _Probes:
    """Rows for the `[B, P]` chosen pixel positions, each scaled up and then down."""
    batch, count = chosen.shape
    width = x.shape[-1]
    # Row r of the perturbed batch: image r // (2P), pixel (r // 2) % P, sign + for even r.
    total = batch * count * 2
    rows = torch.arange(total, device=x.device)
    image, which, up = rows // (2 * count), (rows // 2) % count, rows % 2 == 0
    flat = chosen[image, which]
    ii, jj = flat // width, flat % width
    step = torch.where(up, x.new_tensor(1.0 + fraction), x.new_tensor(1.0 - fraction))
    return _Probes(image, ii, jj, up, step)


def _score_changes(
    module: nn.Module, x: Tensor, probes: _Probes, t: Tensor, f0: Tensor, chunk_size: int, method: str
) -> Tensor:
    """The target logit's change for each probe row, computed `chunk_size` rows at a time."""
    image, ii, jj, step = probes.image, probes.ii, probes.jj, probes.step
    total = image.shape[0]
    changes = []
    for start in range(0, total, chunk_size):
        sl = slice(start, min(start + chunk_size, total))
        copies = x[image[sl]].clone()
        idx = torch.arange(copies.shape[0], device=x.device)
        copies[idx, :, ii[sl], jj[sl]] = copies[idx, :, ii[sl], jj[sl]] * step[sl, None]
        out = batched_logits(module, copies, chunk_size, method)
        changes.append(out.gather(1, t[image[sl], None]).squeeze(1) - f0[image[sl]])
    return torch.cat(changes)


def direction_accuracy(
    module: nn.Module,
    x: Tensor,
    targets: Targets,
    signed_map: Tensor,
    fraction: float = 0.01,
    pixels: int = 64,
    generator: Generators = None,
    *,
    chunk_size: int = 64,
    tol: float = 1e-9,
    dtype: torch.dtype | None = torch.float64,
) -> Tensor:
    """Per-image share of pixel perturbations whose score change has the sign the map predicts, `[B]`.

    For each image, `pixels` positions are sampled without replacement (from `generator`: one
    per image, or one shared in batch order). Each
    is perturbed twice, all channels of the pixel scaled by `1 + fraction` and by
    `1 - fraction`, and the target logit's change is compared with the prediction
    `+sign(map)` (for the increase) and `-sign(map)` (for the decrease). A change with
    `|delta| <= tol * (1 + |f(x)|)` counts as no change, which is what a zero map value predicts.

    Unsigned maps (CAMs, saliency) are judged by the same rule: a positive value predicts that
    making the pixel's values larger raises the score, and a zero value predicts no effect.
    Since the perturbation is relative, a pixel whose values are all 0 never changes the score.

    The model runs in `dtype` (default float64; parameters converted on the fly, the module is
    not changed; None keeps `x.dtype`). A 1% change of one pixel moves a logit by about 1e-5
    relative, which float32 rounding (about 1e-7 per operation, accumulated over the network)
    often swamps: on the demo CNN, float32 with `tol=1e-6` judged the exact Xmage map right on
    81% of probes, float64 with `tol=1e-9` on 97%.
    """
    method = "direction_accuracy"
    x = check_images(x, method).detach()
    pixels = check_positive_int(pixels, "pixels", method)
    chunk_size = check_positive_int(chunk_size, "chunk_size", method)
    batch, _, height, width = x.shape
    smap = _checked_map(signed_map, batch, height, width, method)
    if not 0 < fraction < 1:
        raise CamlangError(f"{method}: `fraction` must be in (0, 1), got {fraction!r}")
    if dtype is not None:
        if not dtype.is_floating_point:
            raise CamlangError(f"{method}: `dtype` must be a floating-point dtype, got {dtype}")
        module = _in_dtype(module, dtype)
        x = x.to(dtype)
    base = batched_logits(module, x, chunk_size, method)
    t = resolve_targets(targets, base, method)
    f0 = base.gather(1, t[:, None]).squeeze(1)
    count = min(pixels, height * width)
    gens = per_image_generators(generator, batch, method)
    chosen = rand_rows((height * width,), gens, x.device).argsort(dim=1)[:, :count]  # [B, P]
    probes = _probes(chosen, fraction, x)
    delta = _score_changes(module, x, probes, t, f0, chunk_size, method)
    image, ii, jj, up = probes.image, probes.ii, probes.jj, probes.up
    actual = torch.where(delta.abs() <= tol * (1 + f0[image].abs()), 0.0, delta.sign())
    predicted = smap[image, ii, jj].sign() * torch.where(up, 1.0, -1.0)
    correct = (actual == predicted.to(actual.dtype)).to(torch.float32)
    return correct.reshape(batch, 2 * count).mean(dim=1)


class _InDtype(nn.Module):
    """`module` evaluated with its parameters and floating buffers converted to `dtype`."""

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = module
        self.state = {name: p.detach().to(dtype) for name, p in module.named_parameters()}
        for name, buf in module.named_buffers():
            self.state[name] = buf.to(dtype) if buf.is_floating_point() else buf

    def forward(self, x: Tensor) -> Tensor:
        return torch.func.functional_call(self.inner, self.state, (x,))


def _in_dtype(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    return _InDtype(module, dtype)
