"""Split one joint saliency MILP into 2^k branches on the phases of k undecided ReLUs.

A saliency query whose alive disjuncts are searched together is a single MILP. With N > 1 ranks
(`camlang.smt.pieces.PieceShare`), that search is split into 2^k branches, k = ceil(log2 N), by
fixing the phase of k undecided ReLUs: branch b fixes ReLU i active (``z >= 0, h = z``, its binary
``d = 1``) when bit i of b differs from the point's own phase there, else to the point's phase
(branch 0 is the point's own side of every split ReLU, where a nearby counterexample is likeliest).
The closed half-spaces ``z >= 0`` and ``z <= 0`` cover the box, so the branches do: the query holds
iff every branch is infeasible. The fixing is exact (the binary's bounds become ``[1, 1]`` or
``[0, 0]``, which the big-M rows turn into ``h = z, z >= 0`` or ``h = 0, z <= 0``, and the gradient
gate's McCormick rows into ``gz = gh`` or ``gz = 0``), never relaxed.

Which ReLUs (measured on mnistfc, docs/scaling.md): for a saliency query with a point, the k
undecided ones whose flip (with every other gate at the point's pattern) moves the point's input
gradient least, ``max_j |gh_i * dz_i/dx_j|``. Under a tight gradient constraint a branch that flips
a gate with a large flip cost is refuted almost at once (0.6 s against 30 s for its sibling on
prop_0_0.05, delta 1e-4, when the loosest ReLU was split), leaving its rank idle; a gate whose flip
keeps the gradient leaves real work on both sides. Ties, and queries without a point, go by the
largest ``-l * u`` (twice the area of the ReLU's triangle relaxation over ``[l, u]``: both
branches make that ReLU exact, removing the largest single looseness of the LP relaxation, and for
a fixed width the product is largest when the interval is balanced), then the lowest
(layer, neuron). The rule reads only the bounds, the network and the point, so every rank that has
the same bounds picks the same ReLUs; the chosen split is part of each piece, so ranks with
different bounds (a time limit in the gradient fixing) are caught by `pieces.combine`'s piece-list
key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from camlang.smt.bounds import ACTIVE, INACTIVE, UNDECIDED, NetBounds
from camlang.smt.network import ReluNet

__all__ = ["Phase", "split_relus", "flip_costs", "branches", "contradicts"]

#: One fixed phase: (hidden layer, neuron, active?).
Phase = tuple[int, int, bool]


def flip_costs(net: ReluNet, x: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
    """Per hidden layer, per ReLU: how far flipping that one gate (the others at ``x``'s pattern)
    moves the input gradient of ``c @ y`` (max norm): ``|gh_i| * max_j |dz_i/dx_j|``."""
    _, pre = net.forward(x)
    gates = [(z > 0).astype(np.float64) for z in pre]
    gh: list[np.ndarray] = [np.zeros(0)] * net.n_hidden
    v = net.Ws[-1].T @ c
    for k in range(net.n_hidden - 1, -1, -1):
        gh[k] = v
        v = net.Ws[k].T @ (v * gates[k])
    costs = []
    jac = np.eye(net.Ws[0].shape[1])
    for k in range(net.n_hidden):
        dz = net.Ws[k] @ jac  # dz_k / dx at x's pattern
        costs.append(np.abs(gh[k]) * np.max(np.abs(dz), axis=1))
        jac = gates[k][:, None] * dz
    return costs


def split_relus(
    bounds: NetBounds, world_size: int, costs: list[np.ndarray] | None = None
) -> list[tuple[int, int]]:
    """The (layer, neuron) of the ceil(log2 ``world_size``) undecided ReLUs to branch on (fewer
    when fewer are undecided; none for one worker): the lowest ``costs`` (`flip_costs`) first
    when given, then the largest ``-l * u`` (module docstring)."""
    k = math.ceil(math.log2(world_size)) if world_size > 1 else 0
    scored: list[tuple[float, float, int, int]] = []
    for layer, (lo, up, ph) in enumerate(zip(bounds.lower, bounds.upper, bounds.phase)):
        for i in np.flatnonzero(ph == UNDECIDED):
            cost = 0.0 if costs is None else float(costs[layer][i])
            scored.append((cost, -float(-lo[i] * up[i]), layer, int(i)))
    scored.sort()
    return [(layer, i) for _, _, layer, i in scored[:k]]


def branches(relus: Sequence[tuple[int, int]], own: Sequence[bool] | None = None) -> list[tuple[Phase, ...]]:
    """The 2^len(relus) phase fixings, branch 0 on ``own`` (the point's phases; default all
    inactive), branch b flipping the ReLUs of b's set bits."""
    base = list(own) if own is not None else [False] * len(relus)
    return [
        tuple((layer, i, base[t] != bool((b >> t) & 1)) for t, (layer, i) in enumerate(relus))
        for b in range(2 ** len(relus))
    ]


def contradicts(bounds: NetBounds, fixed: Sequence[Phase]) -> bool:
    """Whether a fixing contradicts a phase the bounds already decided. Such a branch is empty
    (``z <= 0`` where ``l > 0``) or only the face ``z = 0`` of a region whose other branch is the
    whole box (``z >= 0`` where ``u <= 0``), so it can be skipped as infeasible."""
    for layer, i, active in fixed:
        ph = bounds.phase[layer][i]
        if (ph == ACTIVE and not active) or (ph == INACTIVE and active):
            return True
    return False
