"""Concepts discovered in the network's own features, without annotations or a VLM.

In the spirit of ACE (Ghorbani et al. 2019) and CRAFT (Fel et al. 2023): the activations of one
convolutional layer, every spatial position of every image a row `[C]`, are factorised by
non-negative matrix factorisation, `A ~ U V` with `U, V >= 0`. Each row of `V` is a concept: a
direction in channel space that many positions are built from. Non-negativity matters: a
position is a sum of concepts, not a difference, so a concept reads as "this part is present".

- Deterministic for a seed: the initialisation comes from a seeded generator and the updates are
  Lee and Seung's multiplicative rules, run for a fixed number of steps; components are ordered
  by the mass they explain.
- Scores: the least-squares coefficients of an image's *pooled* activation in the basis `V`.
  Least squares is linear, so this equals the average over positions of each position's
  coefficients: how much of the concept the image holds. Any `Features` pass that pools the
  layer therefore scores discovered concepts like any other source (heatmaps, localisation,
  monitor).
- So that a person can name a concept, `patches` keeps, per concept, the image patches around
  the positions where it is strongest (one per image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from camlang.concepts.features import Features
from camlang.data.base import Dataset
from camlang.errors import CamlangError
from camlang.models.layers import resolve_layer


@dataclass(frozen=True)
class PatchGrid:
    """Per concept, its top image patches: `pixels[k, t]` is `[3, P, P]` RGB in `[0, 1]`."""

    pixels: torch.Tensor  # [K, T, 3, P, P]
    image_index: torch.Tensor  # [K, T] position of the image in the data
    cells: torch.Tensor  # [K, T, 2] (row, column) of the activation cell
    strength: torch.Tensor  # [K, T] the concept's coefficient there


@dataclass(frozen=True)
class DiscoveredSource:
    """NMF concepts of one layer; the scores are least-squares coefficients of pooled activations."""

    names: tuple[str, ...]
    layer: str
    basis: torch.Tensor  # [K, C] non-negative, unit-norm rows
    projection: torch.Tensor  # [C, K]: pooled activation -> coefficients
    seed: int
    relative_error: float  # ||A - U V|| / ||A|| on the factorised activations
    patches: PatchGrid
    kind: str = "discovered"

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def logits(self, activations: torch.Tensor) -> torch.Tensor:
        """Concept coefficients `[N, K]` of pooled activations `[N, C]` (differentiable)."""
        return activations.float() @ self.projection

    def scores(self, features: Features) -> torch.Tensor:
        """Concept coefficients of the pooled activations of the layer."""
        return self.logits(features.pooled[self.layer])

    def describe(self) -> dict[str, object]:
        """Kind, layer, concepts, seed and the factorisation's relative error."""
        return {
            "kind": self.kind,
            "layer": self.layer,
            "concepts": list(self.names),
            "seed": self.seed,
            "relative_error": self.relative_error,
        }


def nmf(
    a: torch.Tensor, rank: int, *, seed: int, steps: int = 200, eps: float = 1e-9
) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative `a ~ u @ v` (`[M, C]` -> `[M, rank]`, `[rank, C]`), Lee-Seung updates, seeded.

    Rows of `v` have unit norm and are ordered by the mass `u`'s columns carry.
    """
    if bool((a < 0).any()):
        raise CamlangError("NMF needs non-negative activations")
    a = a.double()
    gen = torch.Generator().manual_seed(seed)
    scale = float(a.mean().clamp_min(eps) / rank) ** 0.5
    u = torch.rand(a.shape[0], rank, generator=gen, dtype=torch.float64) * scale
    v = torch.rand(rank, a.shape[1], generator=gen, dtype=torch.float64) * scale
    for _ in range(steps):
        v *= (u.T @ a) / (u.T @ u @ v + eps)
        u *= (a @ v.T) / (u @ (v @ v.T) + eps)
    norm = v.norm(dim=1).clamp_min(eps)
    u, v = u * norm, v / norm[:, None]
    order = torch.argsort(u.sum(0), descending=True, stable=True)
    return u[:, order].float(), v[order].float()


def spatial_activations(
    model: nn.Module, data: Dataset, layer: str, *, batch_size: int = 64, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """`([N, C, H, W] activations of `layer`, [N, 3, S, S] display pixels)` over `data`."""
    module = resolve_layer(model, layer)
    seen: list[torch.Tensor] = []

    def hook(_m: nn.Module, _args: object, output: object) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise CamlangError(
                f"layer {layer!r} has no spatial output [batch, channels, height, width], so "
                "concepts cannot be discovered there",
                hint='name a convolutional block, e.g. layer = "layer2"',
                code="E821",
            )
        seen.append(output.detach().float().cpu())

    acts, raw = [], []
    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in data.batches(batch_size):
                model(batch.x.to(device))
                acts.append(seen.pop())
                raw.append(batch.raw)
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(acts), torch.cat(raw)


def top_patches(coeffs: torch.Tensor, raw: torch.Tensor, top: int = 8) -> PatchGrid:
    """Per concept, the `top` images where its strongest cell is strongest, and that cell's patch.

    `coeffs` is `[N, K, H, W]`. The patch is centred on the cell and twice its size, at least a
    half of the image: late layers see far more than one cell, and a person needs context.
    """
    n, k, h, w = coeffs.shape
    size = raw.shape[-1]
    cell = size / h
    p = min(size, max(int(round(2 * cell)), size // 2))
    flat = coeffs.flatten(2)  # [N, K, HW]
    best, where = flat.max(dim=2)  # [N, K]
    t = min(top, n)
    strength, images = best.T.topk(t, dim=1)  # [K, T]
    pixels = torch.zeros(k, t, 3, p, p)
    cells = torch.zeros(k, t, 2, dtype=torch.long)
    for c in range(k):
        for j in range(t):
            i = int(images[c, j])
            r, col = divmod(int(where[i, c]), w)
            y0 = min(max(int((r + 0.5) * cell) - p // 2, 0), size - p)
            x0 = min(max(int((col + 0.5) * cell) - p // 2, 0), size - p)
            pixels[c, j] = raw[i, :, y0 : y0 + p, x0 : x0 + p]
            cells[c, j] = torch.tensor([r, col])
    return PatchGrid(pixels, images, cells, strength)


def discover_concepts(
    model: nn.Module,
    data: Dataset,
    layer: str,
    *,
    count: int = 8,
    seed: int = 0,
    images: int = 1000,
    steps: int = 200,
    device: torch.device | str = "cpu",
) -> DiscoveredSource:
    """Discover `count` concepts at `layer` from (at most `images` of) `data`."""
    if count < 2:
        raise CamlangError("discover at least two concepts: heatmaps compare concepts in pairs")
    # Shuffled first: an image folder lists one class after another.
    part = data.shuffle(seed)
    part = part if len(part) <= images else part.limit(images)
    acts, raw = spatial_activations(model, part, layer, device=device)
    # Block outputs after a ReLU are non-negative already; a layer that is not keeps its positive part.
    acts = acts.clamp_min(0.0)
    n, c, h, w = acts.shape
    rows = acts.permute(0, 2, 3, 1).reshape(-1, c)
    u, v = nmf(rows, count, seed=seed, steps=steps)
    error = float((rows - u @ v).norm() / rows.norm().clamp_min(1e-12))
    gram = v @ v.T + 1e-6 * torch.eye(count)
    projection = torch.linalg.solve(gram, v).T  # [C, K]: least squares in the basis v
    coeffs = u.reshape(n, h, w, count).permute(0, 3, 1, 2)
    names = tuple(f"nmf{k}" for k in range(count))
    return DiscoveredSource(names, layer, v, projection, seed, error, top_patches(coeffs, raw))
