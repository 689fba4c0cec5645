"""Small exact checks of the concept primitives: heatmaps, sentences, probes' chance refusal, ROC."""

from __future__ import annotations

import pytest
import torch

from camlang.concepts import auroc, fit_probes, roc_curve, semantic_heatmaps, top_cells, tpr_at_fpr
from camlang.concepts.features import Features
from camlang.concepts.roc import threshold_at_fpr
from camlang.errors import CamlangError


def test_semantic_heatmap_cells_by_hand() -> None:
    # class 0: images 0, 1 correct, image 2 wrong; class 1: image 3 correct
    scores = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0], [1.0, 5.0]])
    labels = torch.tensor([0, 0, 0, 1])
    preds = torch.tensor([0, 0, 1, 1])
    heat = semantic_heatmaps(scores, labels, preds, ["a", "b"], ["x", "y"])
    assert heat.n_correct.tolist() == [2, 1] and heat.n_incorrect.tolist() == [1, 0]
    assert heat.correct[0].tolist() == [[0.0, 0.5], [0.5, 0.0]]
    assert heat.incorrect[0].tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert torch.isnan(heat.incorrect[1]).all()
    (cell,) = top_cells(heat, 0, 1)
    assert (cell.first, cell.second) == ("a", "b")
    assert (
        cell.sentence() == "on misclassified x images, a > b held 100% of the time, against 50% when correct"
    )
    assert top_cells(heat, 1) == []
    by_pred = semantic_heatmaps(scores, labels, preds, ["a", "b"], ["x", "y"], group_by="prediction")
    assert by_pred.n_incorrect.tolist() == [0, 1]


def test_probe_no_better_than_chance_is_refused() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=gen)
    informative = (x[:, 0] > 0).float()
    noise = (torch.rand(400, generator=gen) > 0.5).float()
    ann = torch.stack([informative, noise], 1)
    feats = Features(torch.zeros(400, 2), {"l": x}, None, ann, ("edge", "coin"))
    train, held = feats.subset(torch.arange(300)), feats.subset(torch.arange(300, 400))
    ok = fit_probes(train, held, "l", ["edge"], [0])
    assert ok.results[0].balanced_accuracy > 0.9
    with pytest.raises(
        CamlangError, match=r"'coin' \(balanced accuracy 0\.\d\d, needs > 0\.\d\d\).*no better than chance"
    ):
        fit_probes(train, held, "l", ["edge", "coin"], [0, 1])


def test_roc_numbers_by_hand() -> None:
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    positive = torch.tensor([True, False, True, False, False, False])
    # pairs (pos, neg) ranked right: 0.9 beats 4 negatives, 0.7 beats 3 of 4 -> 7 / 8
    assert auroc(scores, positive) == pytest.approx(7 / 8)
    assert auroc(torch.ones(4), torch.tensor([True, False, True, False])) == pytest.approx(0.5)
    fpr, tpr = roc_curve(scores, positive)
    assert fpr[0] == 0.0 and tpr[-1] == 1.0 and fpr[-1] == 1.0
    assert tpr_at_fpr(scores, positive, 0.05) == pytest.approx(0.5)
    assert tpr_at_fpr(scores, positive, 0.25) == pytest.approx(1.0)
    negatives = torch.arange(100.0)
    t = threshold_at_fpr(negatives, 0.05)
    assert int((negatives > t).sum()) == 5
