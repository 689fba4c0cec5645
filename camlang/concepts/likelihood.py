"""How well an image's concept comparisons fit a semantic heatmap.

A heatmap cell is the frequency with which c_i > c_j held on a group of images. Read as
independent Bernoulli variables (a naive-Bayes model of the comparisons), a heatmap gives each
image's comparison matrix a log-likelihood. Frequencies are Laplace-smoothed with the group
size, so an empty or tiny group is uninformative (p = 1/2) rather than certain.
"""

from __future__ import annotations

import torch


def smoothed(freq: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Laplace-smoothed probabilities `(freq * n + 1) / (n + 2)`; NaN frequencies count as n = 0."""
    n = count.float().view(-1, *([1] * (freq.dim() - 1)))
    f = torch.nan_to_num(freq, nan=0.0)
    return (f * n + 1.0) / (n + 2.0)


def loglik(comp: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    """`[N]` log-likelihood of comparison matrices `[N, K, K]` under per-image probabilities `[N, K, K]`.

    The diagonal (c_i > c_i, never true) is left out.
    """
    k = comp.shape[-1]
    off = ~torch.eye(k, dtype=torch.bool)
    c = comp.float()
    ll = c * prob.log() + (1 - c) * (1 - prob).log()
    return (ll * off).sum(dim=(1, 2))
