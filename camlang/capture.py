"""Capture the terminals of a batch: one forward, one partial backward, batched score passes.

- `A`: the target layer's output, captured by a forward hook.
- `G`: `torch.autograd.grad` of the target scores with respect to `A` only. The forward runs
  under `no_grad` up to the target layer and with grad from `A` on, so no graph is built for the
  layers before it and the backward stops at the layer (no parameter gradients either).
- `S`, `P`: target logit and probability. `GX`: gradient with respect to the input.
- `S_masked` ([B, C]): target logits on `X * upsample(minmax(A_c))`, as Score-CAM computes them
  (pytorch-grad-cam upsamples with align_corners=True and divides by `max - min + 1e-8`).
- `S_ablated` ([B, C]): target logits with channel `c` of `A` zeroed. The network below the
  layer is run once per image and the ablated activations are fed to the rest of the network in
  chunks; models whose later layers read earlier tensors fall back to full forward passes.

Score passes are chunked by `chunk_size` images per model call (the memory cap).
Nothing keeps a reference to graphs or hooks after a call returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from camlang.calls import CallCounter
from camlang.errors import CamlangError
from camlang.ops import TERMINALS

Targets = torch.Tensor | list[int] | Callable[[torch.Tensor], Any] | None
#: Terminals computed at the target layer (their types carry a layer axis).
LAYER_TERMINALS = frozenset(name for name, row in TERMINALS.items() if row.reads_layer)


@dataclass
class Captured:
    """The terminal values of one batch, in the keep-dims layout `[B, c, h, w]`."""

    logits: torch.Tensor
    targets: torch.Tensor
    terminals: dict[str, torch.Tensor]
    counter: CallCounter = field(default_factory=CallCounter)


def resolve_targets(targets: Targets, logits: torch.Tensor) -> torch.Tensor:
    """Target class per image: predicted (None), explicit labels, or a callable on the logits."""
    if targets is None:
        return logits.argmax(dim=1)
    if callable(targets) and not isinstance(targets, torch.Tensor):
        out = targets(logits.detach())
        targets = out
    t = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
    if t.numel() == 1 and logits.shape[0] > 1:
        t = t.expand(logits.shape[0]).clone()
    if t.numel() != logits.shape[0]:
        raise CamlangError(f"got {t.numel()} targets for a batch of {logits.shape[0]} images",
                           hint="give one class index per image, or none for the predicted class")  # fmt: skip
    if (t < 0).any() or (t >= logits.shape[1]).any():
        bad = int(t[(t < 0) | (t >= logits.shape[1])][0])
        raise CamlangError(f"target class {bad} is out of range: the model has {logits.shape[1]} classes")
    return t


def _check_logits(out: Any) -> torch.Tensor:
    if isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CamlangError(f"the model's output has shape {shape}; camlang needs class scores [batch, classes]",
                           hint="wrap the model so that it returns logits")  # fmt: skip
    return out


def capture(
    model: nn.Module,
    layer: nn.Module | None,
    x: torch.Tensor,
    needs: set[str],
    targets: Targets = None,
    *,
    chunk_size: int = 64,
    differentiable: bool = False,
    counter: CallCounter | None = None,
) -> Captured:
    """Compute every terminal in `needs` for the batch `x` with as few model passes as possible."""
    counter = counter or CallCounter()
    needs = set(needs)
    if needs & LAYER_TERMINALS and layer is None:
        raise CamlangError("this CAM reads the target layer (A or G), but the model has no target layer",
                           hint='name one with `at "layer.path"`')  # fmt: skip
    want_g = "G" in needs
    want_gx = "GX" in needs
    state: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise CamlangError(f"the target layer's output has shape {shape}; a CAM needs [batch, C, H, W]",
                               hint="choose a convolutional layer with spatial output")  # fmt: skip
        if want_g and not (want_gx or differentiable):
            leaf = output.detach().requires_grad_(True)
            torch.set_grad_enabled(True)
            state["A"] = leaf
            return leaf
        state["A"] = output
        return output

    handle = layer.register_forward_hook(hook) if layer is not None else None
    grad_from_input = want_gx or differentiable
    if differentiable and x.requires_grad:
        xin = x  # keep the caller's graph: maps stay differentiable with respect to x
    elif want_gx:
        xin = x.detach().requires_grad_(True)
    else:
        xin = x
    try:
        with torch.set_grad_enabled(grad_from_input):
            logits = _check_logits(model(xin))
            counter.add(x.shape[0])
            tgt = resolve_targets(targets, logits)
            score = logits.gather(1, tgt[:, None])[:, 0]
            grads: dict[str, torch.Tensor] = {}
            wrt = ([state["A"]] if want_g else []) + ([xin] if want_gx else [])
            if wrt:
                got = torch.autograd.grad(score.sum(), wrt, create_graph=differentiable)
                grads = dict(zip((["G"] if want_g else []) + (["GX"] if want_gx else []), got))
    finally:
        if handle is not None:
            handle.remove()
    keep: Callable[[torch.Tensor], torch.Tensor] = (lambda t: t) if differentiable else (lambda t: t.detach())
    terms: dict[str, torch.Tensor] = {}
    if layer is not None and "A" in state:
        terms["A"] = keep(state["A"])
    if "G" in grads:
        terms["G"] = keep(grads["G"])
    if "GX" in grads:
        terms["GX"] = keep(grads["GX"])
    terms["S"] = keep(score)[:, None, None, None]
    terms["P"] = keep(torch.softmax(logits, dim=1).gather(1, tgt[:, None]))[:, :, None, None]
    terms["X"] = x if differentiable else x.detach()
    if "S_masked" in needs:
        terms["S_masked"] = masked_scores(model, x, terms["A"].detach(), tgt, chunk_size, counter)[:, :, None, None]
    if "S_ablated" in needs:
        assert layer is not None
        ablated = ablated_scores(model, layer, x, terms["A"].detach(), tgt, chunk_size, counter)
        terms["S_ablated"] = ablated[:, :, None, None]
    return Captured(keep(logits), tgt, terms, counter)


@torch.no_grad()
def masked_scores(model: nn.Module, x: torch.Tensor, a: torch.Tensor, targets: torch.Tensor,
                  chunk_size: int, counter: CallCounter) -> torch.Tensor:  # fmt: skip
    """Score-CAM's channel scores: target logit on `x * minmax(upsample(A_c))`, `[B, C]`."""
    b, c = a.shape[:2]
    up = F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=True)
    flat = up.reshape(b, c, -1)
    lo = flat.min(dim=-1).values[:, :, None, None]
    hi = flat.max(dim=-1).values[:, :, None, None]
    masks = (up - lo) / (hi - lo + 1e-8)
    out = torch.empty(b, c, dtype=x.dtype, device=x.device)
    pairs = [(i, j) for i in range(b) for j in range(c)]
    for start in range(0, len(pairs), chunk_size):
        chunk = pairs[start : start + chunk_size]
        bi = torch.tensor([p[0] for p in chunk], device=x.device)
        ci = torch.tensor([p[1] for p in chunk], device=x.device)
        inputs = x[bi] * masks[bi, ci][:, None]
        logits = _check_logits(model(inputs))
        counter.add(len(chunk))
        out[bi, ci] = logits.gather(1, targets[bi][:, None])[:, 0].to(out.dtype)
    return out


@torch.no_grad()
def ablated_scores(model: nn.Module, layer: nn.Module, x: torch.Tensor, a: torch.Tensor, targets: torch.Tensor,
                   chunk_size: int, counter: CallCounter) -> torch.Tensor:  # fmt: skip
    """Ablation-CAM's channel scores: target logit with channel `c` of `A` zeroed, `[B, C]`."""
    b, c = a.shape[:2]
    out = torch.empty(b, c, dtype=x.dtype, device=x.device)
    expand_ok = True
    for i in range(b):
        for start in range(0, c, chunk_size):
            chans = torch.arange(start, min(c, start + chunk_size), device=x.device)
            ablated = a[i : i + 1].repeat(len(chans), 1, 1, 1)
            ablated[torch.arange(len(chans)), chans] = 0
            logits = None
            if expand_ok:
                try:
                    logits = _run_with_layer_output(model, layer, x[i : i + 1], ablated)
                    counter.add(len(chans))
                except RuntimeError:
                    expand_ok = False  # later layers read tensors from before the layer
            if logits is None:
                logits = _run_with_layer_output(model, layer, x[i : i + 1].repeat(len(chans), 1, 1, 1), ablated)
                counter.add(len(chans))
            out[i, chans] = logits[:, int(targets[i])].to(out.dtype)
    return out


def _run_with_layer_output(model: nn.Module, layer: nn.Module, x: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    def hook(module: nn.Module, inputs: Any, output: Any) -> torch.Tensor:
        return replacement

    handle = layer.register_forward_hook(hook)
    try:
        logits = _check_logits(model(x))
    finally:
        handle.remove()
    if logits.shape[0] != replacement.shape[0]:
        raise RuntimeError("batch size changed")
    return logits
