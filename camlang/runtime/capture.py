"""Capture the terminals of a batch: one forward, one partial backward, batched score passes.

- `A`: the target layer's output, captured by a forward hook.
- `G`: `torch.autograd.grad` of the target scores with respect to `A` only. The forward runs
  under `no_grad` up to the target layer and with grad from `A` on, so no graph is built for the
  layers before it and the backward stops at the layer (no parameter gradients either).
- `S`, `P`: target logit and probability. `GX`: gradient with respect to the input.
- `GX_smooth`: SmoothGrad's mean input gradient over noisy copies (`runtime.smooth_gradient`),
  after the main pass, with the same target scores.
- `RISE`: RISE's probability-weighted mean of random masks on the insertion canvas
  (`runtime.rise`), after the main pass: the target probability (or a custom objective's score).
- `S_masked` ([B, C]): target logits on `X * upsample(minmax(A_c))`, as Score-CAM computes them
  (pytorch-grad-cam upsamples with align_corners=True and divides by `max - min + 1e-8`).
- `S_ablated` ([B, C]): target logits with channel `c` of `A` zeroed. The network below the
  layer is run once per image and the ablated activations are fed to the rest of the network in
  chunks; models whose later layers read earlier tensors fall back to full forward passes.
- Layer-indexed terminals (`A@layer2`, keys from `ir.terminal_key`): the layer is found on the
  model by its path and hooked beside the target layers, so the same forward and the same partial
  backward serve every layer (the graph starts at the first layer reached whose `G` is needed).
  Score terminals are computed only for the layers whose keys ask for them.

Score passes are chunked by `chunk_size` images per model call (the memory cap).
Nothing keeps a reference to graphs or hooks after a call returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from camlang.core.call_counter import CallCounter
from camlang.errors import CamlangError
from camlang.frontend.layer_layout import LayerLayout, as_layout, infer_layout
from camlang.frontend.op_table import TERMINALS
from camlang.metrics._common import images_per_call
from camlang.models import resolve_layer
from camlang.runtime.rise import probability_rows, rise_maps
from camlang.runtime.smooth_gradient import smooth_input_gradients

Targets = torch.Tensor | list[int] | Callable[[torch.Tensor], Any] | None
#: Terminals computed at the target layer (their types carry a layer axis).
LAYER_TERMINALS = frozenset(name for name, row in TERMINALS.items() if row.reads_layer)


Scorer = Callable[[Any, torch.Tensor], torch.Tensor]
"""A custom objective: `(model output for some rows, image index of each row) -> score per row`."""


@dataclass
class Captured:
    """The terminal values of one batch, in the keep-dims layout `[B, c, h, w]`.

    `terminals` holds the shared terminals and those of the first target layer; `per_layer` holds
    the layer terminals (A, G, S_masked, S_ablated) of every target layer, with the layout used.
    """

    logits: torch.Tensor
    targets: torch.Tensor
    terminals: dict[str, torch.Tensor]
    counter: CallCounter = field(default_factory=CallCounter)
    per_layer: list[dict[str, torch.Tensor]] = field(default_factory=list)
    layouts: list[LayerLayout] = field(default_factory=list)

    def layer_terminals(self, index: int) -> dict[str, torch.Tensor]:
        """Every terminal as seen from target layer `index` (shared ones included)."""
        shared = {k: v for k, v in self.terminals.items() if k not in LAYER_TERMINALS}
        return {**shared, **self.per_layer[index]} if self.per_layer else dict(self.terminals)


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
        raise CamlangError(
            f"got {t.numel()} targets for a batch of {logits.shape[0]} images",
            hint="give one class index per image, or none for the predicted class",
        )
    if (t < 0).any() or (t >= logits.shape[1]).any():
        bad = int(t[(t < 0) | (t >= logits.shape[1])][0])
        raise CamlangError(f"target class {bad} is out of range: the model has {logits.shape[1]} classes")
    return t


def _check_logits(out: object) -> torch.Tensor:
    if isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CamlangError(
            f"the model's output has shape {shape}; camlang needs class scores [batch, classes]",
            hint="wrap the model so that it returns logits, or give a score function "
            "(camlang.compat.grad_cam targets such as SemanticSegmentationTarget)",
        )
    return out


def class_scorer(targets: torch.Tensor) -> Scorer:
    """The default objective: the logit of each image's target class."""

    def score(out: object, rows: torch.Tensor) -> torch.Tensor:
        return _check_logits(out).gather(1, targets[rows][:, None])[:, 0]

    return score


def _as_layers(layer: nn.Module | Sequence[nn.Module] | None) -> list[nn.Module]:
    if layer is None:
        return []
    if isinstance(layer, nn.Module):
        return [layer]
    return list(layer)


def _as_layouts(layout: LayoutArg, count: int) -> list[LayerLayout]:
    if layout is None or isinstance(layout, LayerLayout | str):
        return [as_layout(layout)] * count
    if len(layout) != count:
        raise CamlangError(
            f"got {len(layout)} layouts for {count} target layers", hint="give one layout per layer"
        )
    return [as_layout(v) for v in layout]


LayoutArg = LayerLayout | str | None | Sequence[LayerLayout | str | None]


def split_needs(needs: set[str] | frozenset[str]) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """The untagged terminals, and the terminal names asked for at each tagged layer."""
    tagged: dict[str, set[str]] = {}
    for key in needs:
        name, _, layer = key.partition("@")
        if layer:
            tagged.setdefault(layer, set()).add(name)
    plain = frozenset(k for k in needs if "@" not in k)
    return plain, {layer: frozenset(names) for layer, names in sorted(tagged.items())}


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one capture computes: the terminals asked for and how gradients are taken.

    `needs` holds the untagged terminals; `tagged` the layer terminals of each tagged layer.
    """

    needs: frozenset[str]
    differentiable: bool
    chunk_size: int
    tagged: dict[str, frozenset[str]] = field(default_factory=dict)

    def wants(self, n_targets: int) -> list[frozenset[str]]:
        """The layer terminals asked for at each hooked layer: the targets, then the tagged ones."""
        return [self.needs] * n_targets + list(self.tagged.values())

    @property
    def want_gx(self) -> bool:
        return "GX" in self.needs

    @property
    def grad_from_input(self) -> bool:
        """The whole forward records a graph (for GX, or to keep maps differentiable in x)."""
        return self.want_gx or self.differentiable


@dataclass
class _LayerTap:
    """Forward hooks on the target layers: each one's raw output and the layout it resolved to."""

    plan: _Plan
    layouts: list[LayerLayout]
    input_size: tuple[int, int]
    wants: list[frozenset[str]]
    raw: dict[int, torch.Tensor] = field(default_factory=dict)
    resolved: dict[int, LayerLayout] = field(default_factory=dict)

    def hook(self, index: int) -> Callable[[nn.Module, object, object], object]:
        def hook(module: nn.Module, inputs: object, output: object) -> object:
            if not isinstance(output, torch.Tensor):
                raise CamlangError(
                    f"the target layer's output is a {type(output).__name__}; a CAM needs a tensor",
                    hint="choose a layer whose output is one tensor",
                )
            self.resolved[index] = infer_layout(self.layouts[index], tuple(output.shape), self.input_size)
            wants_g = "G" in self.wants[index]
            if wants_g and not self.plan.grad_from_input and not torch.is_grad_enabled():
                # The first layer reached whose G is needed starts the graph: nothing before it
                # is recorded.
                leaf = output.detach().requires_grad_(True)
                torch.set_grad_enabled(True)
                self.raw[index] = leaf
                return leaf
            self.raw[index] = output
            return output

        return hook


@dataclass(frozen=True, slots=True)
class _Forward:
    """One forward (and partial backward) pass: scores, targets and the gradients asked for."""

    logits: torch.Tensor
    targets: torch.Tensor
    score_rows: Scorer
    score: torch.Tensor
    layer_grads: list[torch.Tensor | None]
    input_grad: torch.Tensor | None


def capture(
    model: nn.Module,
    layer: nn.Module | Sequence[nn.Module] | None,
    x: torch.Tensor,
    needs: set[str],
    targets: Targets = None,
    *,
    chunk_size: int = 64,
    differentiable: bool = False,
    counter: CallCounter | None = None,
    layout: LayoutArg = None,
    scorer: Scorer | None = None,
) -> Captured:
    """Compute every terminal in `needs` for the batch `x` with as few model passes as possible.

    `layer` may be several layers: one forward and one backward serve all of them. `layout` says
    how each layer's output maps to `[B, C, H, W]` (None: recognise it). `scorer` replaces the
    target-class logit by a custom objective on the model's output; `targets` is then ignored.
    """
    counter = counter or CallCounter()
    plain, tagged = split_needs(needs)
    plan = _Plan(plain, differentiable, chunk_size, tagged)
    layers = _as_layers(layer)
    if plan.needs & LAYER_TERMINALS and not layers:
        raise CamlangError(
            "this CAM reads the target layer (A or G), but the model has no target layer",
            hint='name one with `at "layer.path"`',
        )
    n_targets = len(layers)
    hooked = layers + [resolve_layer(model, path) for path in tagged]
    layouts = _as_layouts(layout, n_targets) + [as_layout(None)] * len(tagged)
    tap = _LayerTap(plan, layouts, (int(x.shape[-2]), int(x.shape[-1])), plan.wants(n_targets))
    handles = [lay.register_forward_hook(tap.hook(i)) for i, lay in enumerate(hooked)]
    if differentiable and x.requires_grad:
        xin = x  # keep the caller's graph: maps stay differentiable with respect to x
    elif plan.want_gx:
        xin = x.detach().requires_grad_(True)
    else:
        xin = x
    try:
        fwd = _forward(model, xin, n_targets, tap, plan, targets, scorer, counter)
    finally:
        for handle in handles:
            handle.remove()
    keep: Callable[[torch.Tensor], torch.Tensor] = (lambda t: t) if differentiable else (lambda t: t.detach())
    per_layer = [_layer_terms(model, lay, i, x, tap, fwd, plan, counter) for i, lay in enumerate(layers)]
    terms: dict[str, torch.Tensor] = dict(per_layer[0]) if per_layer else {}
    for i, path in enumerate(tagged, start=n_targets):
        at_layer = _layer_terms(model, hooked[i], i, x, tap, fwd, plan, counter)
        terms.update({f"{name}@{path}": v for name, v in at_layer.items() if name in tagged[path]})
    if fwd.input_grad is not None:
        terms["GX"] = keep(fwd.input_grad)
    if "GX_smooth" in plan.needs:  # not differentiable in x even when `differentiable` is set
        terms["GX_smooth"] = smooth_input_gradients(model, x, fwd.score_rows, plan.chunk_size, counter)
    if "RISE" in plan.needs:  # a constant of x, like GX_smooth
        rows = probability_rows(fwd.targets) if scorer is None else fwd.score_rows
        terms["RISE"] = rise_maps(model, x, rows, plan.chunk_size, counter)
    terms["S"] = keep(fwd.score)[:, None, None, None]
    logits, tgt = fwd.logits, fwd.targets
    if logits.dim() == 2 and (tgt >= 0).all():
        terms["P"] = keep(torch.softmax(logits, dim=1).gather(1, tgt[:, None]))[:, :, None, None]
    terms["X"] = x if differentiable else x.detach()
    layouts_used = [tap.resolved.get(i, tap.layouts[i]) for i in range(len(layers))]
    return Captured(keep(logits), tgt, terms, counter, per_layer, layouts_used)


def _forward(
    model: nn.Module,
    xin: torch.Tensor,
    n_layers: int,
    tap: _LayerTap,
    plan: _Plan,
    targets: Targets,
    scorer: Scorer | None,
    counter: CallCounter,
) -> _Forward:
    """The model on `xin` with the tap's hooks on, the scores, and the gradients `plan` asks for."""
    batch = xin.shape[0]
    rows = torch.arange(batch, device=xin.device)
    hooked = len(tap.wants)
    with torch.set_grad_enabled(plan.grad_from_input):
        output = model(xin)
        counter.add(batch)
        if scorer is None:
            logits = _check_logits(output)
            tgt = resolve_targets(targets, logits)
            score_rows = class_scorer(tgt)
        else:
            logits, tgt, score_rows = _custom_objective(output, batch, scorer)
        score = score_rows(output, rows)
        missing = [i for i in range(n_layers) if i not in tap.raw]
        if missing and plan.needs & LAYER_TERMINALS:
            raise CamlangError(
                f"target layer {missing[0]} was not reached by the model's forward pass",
                hint="choose a layer that the model's forward() calls",
            )
        for i, path in enumerate(plan.tagged, start=n_layers):
            if i not in tap.raw:
                raise CamlangError(
                    f'layer "{path}" (read by a cam as A@"{path}" or the like) was not reached by the '
                    "model's forward pass",
                    hint="choose a layer that the model's forward() calls",
                )
        with_g = [i for i in range(hooked) if "G" in tap.wants[i] and i in tap.raw]
        wrt = [tap.raw[i] for i in with_g] + ([xin] if plan.want_gx else [])
        layer_grads: list[torch.Tensor | None] = [None] * hooked
        input_grad = None
        if wrt:
            # one backward serves every layer: the graph runs from the first of them to the score
            got = torch.autograd.grad(score.sum(), wrt, create_graph=plan.differentiable, allow_unused=True)
            for i, g in zip(with_g, got):
                layer_grads[i] = g
            input_grad = got[-1] if plan.want_gx else None
    return _Forward(logits, tgt, score_rows, score, layer_grads, input_grad)


def _layer_terms(
    model: nn.Module,
    lay: nn.Module,
    i: int,
    x: torch.Tensor,
    tap: _LayerTap,
    fwd: _Forward,
    plan: _Plan,
    counter: CallCounter,
) -> dict[str, torch.Tensor]:
    """The layer terminals (A, G, S_masked, S_ablated) of hooked layer `i`, keep-dims layout."""
    if i not in tap.raw:
        return {}
    wants = tap.wants[i]
    raw, lt = tap.raw[i], tap.resolved[i]
    keep: Callable[[torch.Tensor], torch.Tensor] = (
        (lambda t: t) if plan.differentiable else (lambda t: t.detach())
    )
    terms = {"A": keep(lt.to_chw(raw))}
    if "G" in wants:
        g = fwd.layer_grads[i]
        terms["G"] = keep(lt.to_chw(g if g is not None else torch.zeros_like(raw)))
    if "S_masked" in wants:
        masked = masked_scores(model, x, terms["A"].detach(), fwd.score_rows, plan.chunk_size, counter)
        terms["S_masked"] = masked[:, :, None, None]
    if "S_ablated" in wants:
        ablated = ablated_scores(model, lay, x, raw.detach(), lt, fwd.score_rows, plan.chunk_size, counter)
        terms["S_ablated"] = ablated[:, :, None, None]
    return terms


def _custom_objective(
    output: object, batch: int, scorer: Scorer
) -> tuple[torch.Tensor, torch.Tensor, Scorer]:
    """Logits (when the output is [B, K]), targets (-1 unless a class), and the scorer, for a custom
    objective."""
    first = output[0] if isinstance(output, tuple | list) else output
    logits = first if isinstance(first, torch.Tensor) and first.dim() == 2 else torch.zeros(batch, 0)
    tgt = torch.full((batch,), -1, dtype=torch.long, device=logits.device)
    return logits, tgt, scorer


@torch.no_grad()
def masked_scores(
    model: nn.Module,
    x: torch.Tensor,
    a: torch.Tensor,
    score_rows: Scorer | torch.Tensor,
    chunk_size: int,
    counter: CallCounter,
) -> torch.Tensor:
    """Score-CAM's channel scores: the objective on `x * minmax(upsample(A_c))`, `[B, C]`.

    `score_rows` is a scorer, or a `[B]` tensor of target classes (the logit is the score).
    """
    if isinstance(score_rows, torch.Tensor):
        score_rows = class_scorer(score_rows)
    b, c = a.shape[:2]
    up = F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=True)
    flat = up.reshape(b, c, -1)
    lo = flat.min(dim=-1).values[:, :, None, None]
    hi = flat.max(dim=-1).values[:, :, None, None]
    masks = (up - lo) / (hi - lo + 1e-8)
    out = torch.empty(b, c, dtype=x.dtype, device=x.device)
    pairs = [(i, j) for i in range(b) for j in range(c)]
    chunk_size = images_per_call(x, chunk_size)
    for start in range(0, len(pairs), chunk_size):
        chunk = pairs[start : start + chunk_size]
        bi = torch.tensor([p[0] for p in chunk], device=x.device)
        ci = torch.tensor([p[1] for p in chunk], device=x.device)
        inputs = x[bi] * masks[bi, ci][:, None]
        scores = score_rows(model(inputs), bi)
        counter.add(len(chunk))
        out[bi, ci] = scores.to(out.dtype)
    return out


@torch.no_grad()
def ablated_scores(
    model: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    a: torch.Tensor,
    layout: LayerLayout,
    score_rows: Scorer | torch.Tensor,
    chunk_size: int = 64,
    counter: CallCounter | None = None,
) -> torch.Tensor:
    """Ablation-CAM's channel scores: the objective with channel `c` of `A` zeroed, `[B, C]`.

    `a` is the layer's output in its own layout (`layout` maps it to `[B, C, H, W]` and back);
    `score_rows` is a scorer, or a `[B]` tensor of target classes.
    """
    if isinstance(score_rows, torch.Tensor):
        score_rows = class_scorer(score_rows)
    counter = counter or CallCounter()
    chw = layout.to_chw(a)
    b, c = chw.shape[:2]
    out = torch.empty(b, c, dtype=x.dtype, device=x.device)
    # no CPU call-size cut here: each call runs the layers below `layer` on one image, and only the
    # layers above it on `chunk_size` ablated copies, so smaller calls would repeat the lower part
    expand_ok = True
    for i in range(b):
        row = torch.tensor([i], device=x.device)
        for start in range(0, c, chunk_size):
            chans = torch.arange(start, min(c, start + chunk_size), device=x.device)
            ablated_chw = chw[i : i + 1].repeat(len(chans), 1, 1, 1)
            ablated_chw[torch.arange(len(chans)), chans] = 0
            ablated = layout.from_chw(ablated_chw, a[i : i + 1]).contiguous()
            output = None
            if expand_ok:
                try:
                    output = _run_with_layer_output(model, layer, x[i : i + 1], ablated)
                    counter.add(len(chans))
                except RuntimeError:
                    expand_ok = False  # later layers read tensors from before the layer
            if output is None:
                output = _run_with_layer_output(
                    model, layer, x[i : i + 1].repeat(len(chans), 1, 1, 1), ablated
                )
                counter.add(len(chans))
            out[i, chans] = score_rows(output, row.expand(len(chans))).to(out.dtype)
    return out


def _run_with_layer_output(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, replacement: torch.Tensor
) -> object:
    def hook(module: nn.Module, inputs: object, output: object) -> torch.Tensor:
        return replacement

    handle = layer.register_forward_hook(hook)
    try:
        output = model(x)
    finally:
        handle.remove()
    first = output[0] if isinstance(output, tuple | list) else output
    if isinstance(first, torch.Tensor) and first.shape[0] != replacement.shape[0]:
        raise RuntimeError("batch size changed")
    return output
