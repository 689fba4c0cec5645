"""Bad input to the SMT checks raises CamlangError with a message that names the problem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from camlang.errors import CamlangError
from camlang.smt import check_robust, check_saliency_robust, load_vnnlib


def _net(last: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2)]
    if last is not None:
        layers.insert(2, last)
    return nn.Sequential(*layers).eval()


def test_unsupported_layer_is_named_with_path_and_type() -> None:
    with pytest.raises(CamlangError, match=r"`2` \(Sigmoid\) is not supported"):
        check_robust(_net(nn.Sigmoid()), [0.5] * 5, 0.1)


def test_nested_unsupported_layer_has_its_full_path() -> None:
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Tanh()), nn.Linear(2, 2))
    with pytest.raises(CamlangError, match=r"`1\.1` \(Tanh\)"):
        check_robust(m, [0.0, 0.0], 0.1)


def test_negative_delta() -> None:
    with pytest.raises(CamlangError, match="`delta` must be a non-negative number, got -0.5"):
        check_saliency_robust(_net(), [0.5] * 5, 0.1, -0.5)


def test_negative_eps() -> None:
    with pytest.raises(CamlangError, match="`eps` must be a non-negative number"):
        check_robust(_net(), [0.5] * 5, -1)


def test_wrong_dimension_of_at() -> None:
    with pytest.raises(CamlangError, match="`at` has 4 values but the network takes 5 inputs"):
        check_saliency_robust(_net(), [0.5] * 4, 0.1, 0.1)


def test_unknown_backend_and_bad_label() -> None:
    with pytest.raises(CamlangError, match="unknown SMT back end `cvc5`"):
        check_robust(_net(), [0.5] * 5, 0.1, backend="cvc5")
    with pytest.raises(CamlangError, match="`label` 7 is not a class"):
        check_robust(_net(), [0.5] * 5, 0.1, label=7)


def test_training_mode_batchnorm_is_refused() -> None:
    m = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(CamlangError, match="training mode"):
        check_robust(m, [0.1, 0.2, 0.3], 0.1)


def test_missing_vnnlib_file(tmp_path) -> None:
    with pytest.raises(CamlangError, match="not found"):
        load_vnnlib(tmp_path / "nope.vnnlib", 5)
