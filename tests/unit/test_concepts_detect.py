"""Adversarial detection from early/late concept disagreement: the test attack is never fitted on."""

from __future__ import annotations

import functools

import pytest
import torch

from camlang.concepts.attacks import Attack, Attacked, attack_features, fgsm_linf
from camlang.concepts.detect import (
    ADV_SIGNALS,
    ConceptDisagreement,
    Split,
    adversarial_study,
    attacker,
    evaluate_adversarial,
    fit_adversarial_detector,
    fit_disagreement,
)
from camlang.concepts.features import Features, forward_with_features
from camlang.concepts.sources import fit_probes
from camlang.data import SHAPE_CLASSES, Batch, synthetic_shapes
from camlang.data.shapes import COLOUR_FAMILIES, SHAPE_CONCEPTS
from camlang.errors import CamlangError
from camlang.models.checkpoint import load_checkpoint

EARLY, LATE = "features.2", "penultimate"
CONCEPTS = list(COLOUR_FAMILIES)
COLUMNS = [SHAPE_CONCEPTS.index(c) for c in CONCEPTS]
NORM = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # the shapes CNN reads [0, 1] pixels
FIT_ATTACK = Attack("fgsm", 4 / 255)
TEST_ATTACK = Attack("pgd", 8 / 255, steps=5)


@functools.cache
def _model() -> torch.nn.Module:
    return load_checkpoint("models/shapes_cnn.pt", "shapes_cnn").module.eval()


@functools.cache
def _images(count: int, seed: int) -> Batch:
    return synthetic_shapes(count, seed=seed).get(range(count))


def _split(count: int, seed: int) -> Split:
    batch = _images(count, seed)
    logits, pooled = forward_with_features(_model(), batch.x, (EARLY, LATE))
    assert batch.labels is not None
    return Split(
        batch.x, batch.labels, Features(logits, pooled, batch.labels, batch.concepts, SHAPE_CONCEPTS)
    )


@pytest.fixture(scope="module")
def disagreement() -> ConceptDisagreement:
    train, held = _split(300, 50).features, _split(150, 51).features
    early = fit_probes(train, held, EARLY, CONCEPTS, COLUMNS)
    late = fit_probes(train, held, LATE, CONCEPTS, COLUMNS)
    return fit_disagreement(early, late, train, len(SHAPE_CLASSES))


def test_fgsm_stays_within_its_radius() -> None:
    batch = _images(16, 52)
    assert batch.labels is not None
    adv = fgsm_linf(_model(), batch.x, batch.labels, eps=4 / 255)
    assert float((adv - batch.x).abs().max()) <= 4 / 255 + 1e-6
    assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_detector_fitting_never_sees_the_test_attack(disagreement: ConceptDisagreement) -> None:
    splits = (_split(160, 53), _split(160, 54), _split(160, 55))
    real = attacker(_model(), NORM, (EARLY, LATE))
    calls: list[tuple[Attack, int]] = []

    def spy(attack: Attack, pixels: torch.Tensor, labels: torch.Tensor, seed: int) -> Attacked:
        which = [i for i, s in enumerate(splits) if s.pixels is pixels]
        calls.append((attack, which[0]))
        return real(attack, pixels, labels, seed)

    result = adversarial_study(disagreement, splits, FIT_ATTACK, TEST_ATTACK, spy)
    # The fitting attack ran on the fit and calibrate splits; the test attack on the test split,
    # last, after the detector was fitted and thresholded.
    assert calls == [(FIT_ATTACK, 0), (FIT_ATTACK, 1), (TEST_ATTACK, 2)]
    assert result.fitted_on == FIT_ATTACK and result.test_attack == TEST_ATTACK
    combined = result.results[0]
    assert combined.detector == "combined"
    assert [r.detector for r in result.results[1:]] == list(ADV_SIGNALS)
    # Only inputs the attack flipped are positives.
    correct = splits[2].features.correct
    assert combined.negatives == int(correct.sum())
    assert combined.positives == round(result.success_rate * int(correct.sum()))
    print(
        f"{TEST_ATTACK.describe()} success {result.success_rate:.2f}; "
        + ", ".join(f"{r.detector} {r.auroc:.3f}" for r in result.results)
    )
    with pytest.raises(CamlangError, match="both"):
        adversarial_study(disagreement, splits, TEST_ATTACK, TEST_ATTACK, spy)


def test_a_detector_refuses_to_be_scored_on_its_fitting_attack(disagreement: ConceptDisagreement) -> None:
    fit, cal = _split(120, 56), _split(120, 57)
    layers = (EARLY, LATE)
    fit_adv = attack_features(FIT_ATTACK, _model(), NORM, fit.pixels, fit.labels, layers)
    cal_adv = attack_features(FIT_ATTACK, _model(), NORM, cal.pixels, cal.labels, layers, seed=1)
    detector = fit_adversarial_detector(disagreement, fit.features, fit_adv, cal.features, cal_adv)
    assert detector.fitted_on == FIT_ATTACK
    with pytest.raises(CamlangError, match="fitted on FGSM"):
        evaluate_adversarial(detector, cal.features, cal_adv)


def test_attacks_leave_the_model_in_eval_mode_and_are_seeded() -> None:
    model = _model()
    batch = _images(8, 58)
    assert batch.labels is not None
    runs = [
        attack_features(TEST_ATTACK, model, NORM, batch.x, batch.labels, (LATE,), seed=3) for _ in range(2)
    ]
    assert not model.training and not any(m.training for m in model.modules())
    assert torch.equal(runs[0].features.logits, runs[1].features.logits)
