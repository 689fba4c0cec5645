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

Which ReLUs: the k undecided ones with the largest ``-l * u`` (twice the area of the ReLU's
triangle relaxation over ``[l, u]``). Both branches make that ReLU exact, so this removes the
largest single looseness from each branch's LP relaxation; for a fixed width ``u - l`` the product
is largest when the interval is balanced, so neither branch is nearly empty (a near-empty branch
would leave its rank idle and the other rank with the whole search). Ties go to the lowest
(layer, neuron). The rule reads only the bounds, so every rank that has the same bounds picks the
same ReLUs; the chosen split is part of each piece, so ranks with different bounds (a time limit in
the gradient fixing) are caught by `pieces.combine`'s piece-list key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from camlang.smt.bounds import ACTIVE, INACTIVE, UNDECIDED, NetBounds

__all__ = ["Phase", "split_relus", "branches", "contradicts"]

#: One fixed phase: (hidden layer, neuron, active?).
Phase = tuple[int, int, bool]


def split_relus(bounds: NetBounds, world_size: int) -> list[tuple[int, int]]:
    """The (layer, neuron) of the ceil(log2 ``world_size``) undecided ReLUs to branch on (fewer
    when fewer are undecided; none for one worker)."""
    k = math.ceil(math.log2(world_size)) if world_size > 1 else 0
    scored: list[tuple[float, int, int]] = []
    for layer, (lo, up, ph) in enumerate(zip(bounds.lower, bounds.upper, bounds.phase)):
        for i in np.flatnonzero(ph == UNDECIDED):
            scored.append((-float(-lo[i] * up[i]), layer, int(i)))
    scored.sort()
    return [(layer, i) for _, layer, i in scored[:k]]


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
