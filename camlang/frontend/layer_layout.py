"""Token layouts: how a target layer's output is laid out as the `[B, C, H, W]` a CAM reads.

Convolutional layers already give `[B, C, H, W]`. Vision transformers give token sequences:

- ViT: `[B, 1 + h*w, D]` (a class token, then the patch grid row by row);
- DeiT (distilled): `[B, 2 + h*w, D]` (class and distillation tokens first);
- Swin (torchvision) and ConvNeXt-style blocks: channels last, `[B, H, W, C]`.

`infer_layout` recognises these from the output shape and the input's size. When a shape fits
more than one layout it asks for an explicit one rather than guessing. `LayerLayout.to_chw` is
what pytorch-grad-cam users write as a `reshape_transform`; `from_chw` is its inverse, which
Ablation-CAM needs to feed edited activations back into the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from camlang.errors import CamlangError

if TYPE_CHECKING:  # torch is imported where tensors are reshaped, so `camlang check` stays light
    import torch

LayoutKind = Literal["auto", "bchw", "bhwc", "tokens", "custom"]
_PREFIX_NAMES = {0: "no extra token", 1: "1 class token", 2: "class and distillation tokens"}
EXPLICIT_EXAMPLE = (
    'model vit = torchvision("vit_b_16") at "encoder.layers[-1].ln_1" tokens(prefix = 1, grid = 14)'
)


@dataclass(frozen=True)
class LayerLayout:
    """A layer output layout. `prefix` and `grid` only apply to `tokens`; None means infer."""

    kind: LayoutKind = "auto"
    prefix: int | None = None
    grid: tuple[int, int] | None = None
    transform: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, compare=False, repr=False)

    @property
    def resolved(self) -> bool:
        """Whether every field is known, so the layout can reshape tensors."""
        return (
            self.kind == "custom"
            or self.kind != "auto"
            and (self.kind != "tokens" or (self.prefix is not None and self.grid is not None))
        )

    def to_chw(self, t: torch.Tensor) -> torch.Tensor:
        """The `[B, C, H, W]` view of a layer output in this (resolved) layout."""
        assert self.resolved, "resolve the layout first (infer_layout)"
        if self.kind == "bchw":
            return t
        if self.kind == "bhwc":
            return t.permute(0, 3, 1, 2)
        if self.kind == "custom":
            import torch

            assert self.transform is not None
            out = self.transform(t)
            if not isinstance(out, torch.Tensor) or out.dim() != 4:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise CamlangError(
                    f"the reshape transform turned the layer output {tuple(t.shape)} into {got}; "
                    "a CAM needs [batch, C, H, W]",
                    hint="make reshape_transform return [B, C, H, W]",
                )
            return out
        assert self.grid is not None and self.prefix is not None
        h, w = self.grid
        return t[:, self.prefix :, :].reshape(t.shape[0], h, w, t.shape[-1]).permute(0, 3, 1, 2)

    def from_chw(self, chw: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        """Back to the layer's own layout; prefix tokens are copied from `original` (batch 1 or same)."""
        if self.kind == "bchw":
            return chw
        if self.kind == "bhwc":
            return chw.permute(0, 2, 3, 1)
        if self.kind == "custom":
            return self._scatter_back(chw, original)
        import torch

        assert self.prefix is not None
        spatial = chw.flatten(2).transpose(1, 2)
        prefix = original[:, : self.prefix, :].expand(chw.shape[0], -1, -1)
        return torch.cat([prefix, spatial], dim=1)

    def _scatter_back(self, chw: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
        # A reshape transform only moves elements (slices, reshapes, transposes), so pushing element
        # indices through it tells where each [C, H, W] value came from; elements it drops keep theirs.
        import torch

        one = original[:1]
        index = self.to_chw(torch.arange(one.numel(), dtype=torch.float64).reshape(one.shape))
        flat_index = index.round().long().reshape(1, -1).expand(chw.shape[0], -1)
        out = one.reshape(1, -1).repeat(chw.shape[0], 1)
        out.scatter_(1, flat_index, chw.reshape(chw.shape[0], -1).to(out.dtype))
        return out.reshape(chw.shape[0], *one.shape[1:])

    def describe(self) -> str:
        """One line for the report: the layout and what was dropped."""
        if self.kind == "bchw":
            return "[B, C, H, W] (convolutional)"
        if self.kind == "bhwc":
            return "[B, H, W, C] (channels last, e.g. Swin) -> [B, C, H, W]"
        if self.kind == "tokens" and self.grid is not None and self.prefix is not None:
            h, w = self.grid
            return (
                f"tokens [B, {self.prefix} + {h}*{w}, D] "
                f"({_PREFIX_NAMES.get(self.prefix, f'{self.prefix} extra tokens')}"
                f" dropped) -> [B, D, {h}, {w}]"
            )
        if self.kind == "custom":
            return f"[B, C, H, W] from reshape_transform {getattr(self.transform, '__name__', 'function')}"
        return "auto"

    def source(self) -> str:
        """The layout in `.cam` syntax (the inverse of the parser's `tokens(...)` option)."""
        if self.kind in ("auto", "custom"):
            return ""
        if self.kind == "bchw":
            return "channels_first()"
        if self.kind == "bhwc":
            return "channels_last()"
        args = ([f"prefix = {self.prefix}"] if self.prefix is not None else []) + (
            [f"grid = [{self.grid[0]}, {self.grid[1]}]"] if self.grid is not None else []
        )
        return f"tokens({', '.join(args)})"


AUTO = LayerLayout()


def tokens(prefix: int | None = None, grid: int | tuple[int, int] | None = None) -> LayerLayout:
    """A token-sequence layout `[B, prefix + h*w, D]`; `grid=14` means 14x14. None infers the field."""
    if prefix is not None and (not isinstance(prefix, int) or prefix < 0):
        raise CamlangError(
            f"tokens(prefix = {prefix!r}): prefix must be a whole number >= 0",
            hint="ViT has 1 class token (prefix = 1); DeiT distilled has 2",
        )
    if isinstance(grid, int):
        grid = (grid, grid)
    if grid is not None and (len(grid) != 2 or any(not isinstance(g, int) or g < 1 for g in grid)):
        raise CamlangError(f"tokens(grid = {grid!r}): grid must be a positive size or [height, width]")
    # A list from the source (`grid = [14, 14]`) becomes a tuple: the layout is hashable.
    return LayerLayout("tokens", prefix, (grid[0], grid[1]) if grid is not None else None)


def as_layout(value: LayerLayout | str | None) -> LayerLayout:
    """Accept a `LayerLayout` or one of "auto", "bchw"/"channels_first", "bhwc"/"channels_last", "tokens"."""
    if value is None:
        return AUTO
    if isinstance(value, LayerLayout):
        return value
    names = {
        "auto": AUTO,
        "bchw": LayerLayout("bchw"),
        "channels_first": LayerLayout("bchw"),
        "bhwc": LayerLayout("bhwc"),
        "channels_last": LayerLayout("bhwc"),
        "tokens": LayerLayout("tokens"),
    }
    if value not in names:
        raise CamlangError(
            f"unknown layer layout {value!r}",
            hint="use one of " + ", ".join(names) + ", or camlang.tokens(prefix=1, grid=14)",
        )
    return names[value]


def _grid_for(n: int, input_size: tuple[int, int]) -> tuple[int, int] | None:
    """(h, w) with h*w = n and h:w close to the input's aspect ratio, or None."""
    if n < 1:
        return None
    hin, win = input_size
    h = max(1, round(math.sqrt(n * hin / win)))
    for cand in (h, h - 1, h + 1):
        if cand >= 1 and n % cand == 0 and _plausible((cand, n // cand), input_size):
            return cand, n // cand
    return None


def _plausible(hw: tuple[int, int], input_size: tuple[int, int]) -> bool:
    """A spatial grid fits the input: no larger than it and (about) the same stride on both axes."""
    h, w = hw
    hin, win = input_size
    if h < 1 or w < 1 or h > hin or w > win:
        return False
    sh, sw = hin / h, win / w
    return abs(sh - sw) <= 0.1 * max(sh, sw) + 1e-9  # patch and conv strides are (nearly) equal on both axes


def reshape_transform(fn: Callable[[torch.Tensor], torch.Tensor]) -> LayerLayout:
    """A layout given as a pytorch-grad-cam `reshape_transform` function (layer output -> [B, C, H, W])."""
    return LayerLayout("custom", transform=fn)


def infer_layout(layout: LayerLayout, shape: tuple[int, ...], input_size: tuple[int, int]) -> LayerLayout:
    """Resolve `layout` (possibly "auto" or partly given) for an output of `shape`; clear errors otherwise."""
    if layout.kind == "custom":
        return layout
    if len(shape) == 4:
        return _infer_4d(layout, shape, input_size)
    if len(shape) == 3 and layout.kind in ("auto", "tokens"):
        return _infer_tokens(layout, shape, input_size)
    want = {"bchw": "[batch, C, H, W]", "bhwc": "[batch, H, W, C]", "tokens": "[batch, tokens, D]"}
    need = want.get(layout.kind, "[batch, C, H, W], [batch, H, W, C] or tokens [batch, N, D]")
    raise CamlangError(
        f"the target layer's output has shape {tuple(shape)}; a CAM needs {need}",
        hint="choose a layer with spatial output (a convolution, or a transformer block's tokens)",
    )


def _infer_4d(layout: LayerLayout, shape: tuple[int, ...], input_size: tuple[int, int]) -> LayerLayout:
    if layout.kind == "tokens":
        raise CamlangError(
            f"tokens(...) was given, but the target layer's output {tuple(shape)} is 4-d",
            hint="use channels_last() for [B, H, W, C] outputs, or drop the option",
        )
    if layout.kind in ("bchw", "bhwc"):
        return layout
    first = _plausible((shape[2], shape[3]), input_size)
    last = _plausible((shape[1], shape[2]), input_size)
    if first and last:
        # Both grids fit the input. A square grid next to a different channel count decides it:
        # [B, 7, 7, 768] is Swin's channels last, [B, 768, 7, 7] a convolution; [B, 8, 8, 8] stays open.
        first = shape[2] == shape[3] != shape[1]
        last = shape[1] == shape[2] != shape[3]
    if last and not first:
        return LayerLayout("bhwc")
    # PyTorch's own convention wins when both fit equally (e.g. a 16-channel 16x16 conv map) or when
    # neither grid matches the input's aspect ratio; the report names the layout that was used.
    return LayerLayout("bchw")


def _infer_tokens(layout: LayerLayout, shape: tuple[int, ...], input_size: tuple[int, int]) -> LayerLayout:
    n = int(shape[1])
    prefixes = [layout.prefix] if layout.prefix is not None else [0, 1, 2]
    found: list[LayerLayout] = []
    for p in prefixes:
        if layout.grid is not None:
            if layout.grid[0] * layout.grid[1] == n - p:
                found.append(LayerLayout("tokens", p, layout.grid))
        else:
            grid = _grid_for(n - p, input_size)
            if grid is not None:
                found.append(LayerLayout("tokens", p, grid))
    if len(found) == 1:
        return found[0]
    what = "no" if not found else "more than one"
    options = "; ".join(f"prefix {f.prefix}, grid {f.grid}" for f in found)
    raise CamlangError(
        f"the target layer's output {tuple(shape)} looks like tokens [B, N, D], but {what} token layout fits "
        f"{n} tokens for {input_size[0]}x{input_size[1]} inputs" + (f" ({options})" if found else ""),
        hint=f"give the layout explicitly, for example: {EXPLICIT_EXAMPLE}; "
        "in Python: camlang.CAM(..., layout=camlang.tokens(prefix=1, grid=14))",
    )
