"""Gini sparsity and entropy against textbook formulas written as loops."""

from __future__ import annotations

import math

import pytest
import torch

from camlang.errors import CamlangError
from camlang.metrics import entropy, sparsity


def ref_gini(values: list[float]) -> float:
    """Mean absolute difference form: sum_i sum_j |v_i - v_j| / (2 n sum v)."""
    n, s = len(values), sum(values)
    if s == 0:
        return 0.0
    return sum(abs(a - b) for a in values for b in values) / (2 * n * s)


def ref_entropy(values: list[float]) -> float:
    s = sum(values)
    if s == 0:
        return math.log(len(values))
    return -sum(v / s * math.log(v / s) for v in values if v > 0)


def test_against_reference() -> None:
    g = torch.Generator().manual_seed(0)
    L = torch.rand(2, 3, 9, 7, generator=g) ** 3
    L[0, 0] = 0.0
    L[0, 1, 4, 4] = 0.0
    gini, ent, bits = sparsity(L), entropy(L), entropy(L, "bits")
    assert gini.shape == (2, 3)
    for m in range(2):
        for b in range(3):
            v = [float(a) for a in L[m, b].reshape(-1)]
            assert abs(float(gini[m, b]) - ref_gini(v)) < 1e-5
            assert abs(float(ent[m, b]) - ref_entropy(v)) < 1e-5
            assert abs(float(bits[m, b]) - ref_entropy(v) / math.log(2)) < 1e-5


def test_extremes() -> None:
    one_hot = torch.zeros(1, 10, 10)
    one_hot[0, 3, 3] = 1.0
    assert abs(float(sparsity(one_hot)[0]) - (1 - 1 / 100)) < 1e-6
    assert float(entropy(one_hot)[0]) == 0.0
    const = torch.full((1, 10, 10), 0.3)
    assert abs(float(sparsity(const)[0])) < 1e-6
    assert abs(float(entropy(const)[0]) - math.log(100)) < 1e-5
    # absolute values are used
    assert torch.allclose(sparsity(-const), sparsity(const))


def test_errors() -> None:
    with pytest.raises(CamlangError, match="unit"):
        entropy(torch.rand(1, 4, 4), "dits")  # type: ignore[arg-type]
    with pytest.raises(CamlangError, match="NaN"):
        sparsity(torch.full((1, 4, 4), float("inf")))
    with pytest.raises(CamlangError, match="H, W"):
        sparsity(torch.rand(4))
