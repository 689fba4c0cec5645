"""What a query needs besides its back end (`Setup`), and the float64 replay every witness passes.

A leaf of the package: the driver, the attack and the witness strengthening all read these, and
this module reads none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from camlang.smt.inputs import torch_eval
from camlang.smt.network import LayerList, ReluNet
from camlang.smt.query import Query
from camlang.smt.verdict import ReplayRecord

__all__ = ["Setup", "Found", "Attack", "replay", "point_in_box"]


@dataclass(frozen=True)
class Found:
    """A counterexample that replayed in torch float64, with its replay record."""

    x: np.ndarray
    replay: ReplayRecord


#: A cheap falsifier run before any proof: (setup, deadline) -> a replayed counterexample or None.
Attack = Callable[["Setup", float], Found | None]


@dataclass(frozen=True)
class Setup:
    """Everything a query needs besides the back end."""

    name: str
    module64: nn.Module
    input_shape: tuple[int, ...]
    layers: LayerList
    net: ReluNet
    query: Query
    label: int | None  # replay checks ``argmax != label`` when set, else the unsafe polyhedra
    at: np.ndarray | None
    attack: Attack | None = None  # see attack.py


def point_in_box(setup: Setup) -> bool:
    """Is the property's point given, and inside the query's box?"""
    at, q = setup.at, setup.query
    return at is not None and bool(np.all(at >= q.lo) and np.all(at <= q.hi))


def replay(setup: Setup, x: np.ndarray) -> ReplayRecord:
    """Re-run a candidate in torch float64 and report whether it really is a counterexample."""
    q = setup.query
    grad_label = (
        setup.label
        if setup.label is not None
        else (0 if q.gradient is None else int(np.argmax(q.gradient.c)))
    )
    logits, grad = torch_eval(
        setup.module64, x, setup.input_shape, grad_label if q.gradient is not None else None
    )
    in_box = bool(np.all(x >= q.lo) and np.all(x <= q.hi))
    if setup.label is not None:
        unsafe = int(np.argmax(logits)) != setup.label
    else:
        unsafe = any(bool(np.all(A @ logits <= c)) for A, c in q.disjuncts)
    rec: ReplayRecord = {
        "logits": logits.tolist(),
        "argmax": int(np.argmax(logits)),
        "label": setup.label,
        "in_box": in_box,
        "unsafe": bool(unsafe),
    }
    ok = in_box and unsafe
    if q.gradient is not None:
        assert grad is not None
        diff = float(np.max(np.abs(grad - q.gradient.g0)))
        rec["grad_diff"] = diff
        rec["delta"] = q.gradient.delta
        ok = ok and diff <= q.gradient.delta
    rec["ok"] = bool(ok)
    return rec
