"""Adversarial detection from concepts: early evidence that disagrees with the late verdict.

An attack that flips a class has to move the network's late features to the new class, but
with a small radius it cannot repaint what the early layers see. Concept probes at an early and
a late layer therefore *disagree* on an attacked image where they agree on a clean one. The
signals (higher: more suspect unless the combiner learns otherwise):

- `concept_residual`: the late concept scores predicted from the early ones (a linear map fitted
  on clean images) against the late scores actually seen: squared standardised residuals;
- `early_disagreement` / `late_disagreement`: `-log p(predicted class | concepts)` under softmax
  regressions from each layer's concept scores to the label (clean images);
- `confidence` (max softmax probability), `energy`, `margin`: attacked images are typically
  *more* confident than clean ones, which a plain MSP detector reads backwards.

`fit_adversarial_detector` reads each signal two-sided (how far into either tail of the clean
images' distribution, `TwoSided`), learns their combination (`camlang.concepts.combine`) on clean
fit images against the successful examples of a *fitting* attack (e.g. FGSM, or PGD with a
smaller radius), chooses it on calibrate images against the same attack, and sets the threshold
on clean calibrate images. `evaluate_adversarial` then scores a different *test* attack and refuses the one
the detector was fitted on; only inputs the test attack flipped count as positives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from camlang.concepts.attacks import Attack, Attacked, attack_features
from camlang.concepts.bootstrap import Interval, bootstrap_auroc
from camlang.concepts.combine import (
    Combiner,
    Signals,
    fit_combiner,
    normal_scores,
    quantile_knots,
    signals_from,
)
from camlang.concepts.features import Features
from camlang.concepts.roc import DetectorResult, evaluate_detector, threshold_at_fpr
from camlang.concepts.signals import logit_signals, softmax_regression
from camlang.concepts.sources import ConceptSource
from camlang.errors import CamlangError

#: The adversarial detector's signals, in report order.
ADV_SIGNALS: tuple[str, ...] = (
    "concept_residual",
    "early_disagreement",
    "late_disagreement",
    "confidence",
    "energy",
    "margin",
)


def _standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.mean(0), x.std(0).clamp_min(1e-6)


@dataclass(frozen=True)
class ConceptDisagreement:
    """Early and late concept sources, and what clean images say about how they relate."""

    early: ConceptSource
    late: ConceptSource
    early_norm: tuple[torch.Tensor, torch.Tensor]  # mean, std of early scores
    late_norm: tuple[torch.Tensor, torch.Tensor]
    map_weight: torch.Tensor  # [Ke + 1, Kl]: standardised early (and 1) -> standardised late
    residual_scale: torch.Tensor  # [Kl]
    early_head: tuple[torch.Tensor, torch.Tensor]  # softmax regression early concepts -> class
    late_head: tuple[torch.Tensor, torch.Tensor]

    def signals(self, features: Features) -> Signals:
        """Every signal in `ADV_SIGNALS` for these features."""
        ze = (self.early.scores(features) - self.early_norm[0]) / self.early_norm[1]
        zl = (self.late.scores(features) - self.late_norm[0]) / self.late_norm[1]
        predicted = torch.cat([ze, torch.ones(len(ze), 1)], dim=1) @ self.map_weight
        residual = (((zl - predicted) / self.residual_scale) ** 2).sum(dim=1)
        pred = features.predictions

        def disagreement(z: torch.Tensor, head: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            log_p = torch.log_softmax(z @ head[0] + head[1], dim=1)
            return -log_p.gather(1, pred[:, None]).squeeze(1)

        logits = logit_signals(features.logits)
        columns = {
            "concept_residual": residual,
            "early_disagreement": disagreement(ze, self.early_head),
            "late_disagreement": disagreement(zl, self.late_head),
            "confidence": 1.0 - logits["msp"],
            "energy": logits["energy"],
            "margin": logits["margin"],
        }
        return signals_from({name: columns[name] for name in ADV_SIGNALS})


def fit_disagreement(
    early: ConceptSource, late: ConceptSource, clean: Features, classes: int, ridge: float = 1e-2
) -> ConceptDisagreement:
    """Relate early to late concepts on clean, labelled images (ridge least squares, two heads)."""
    if clean.labels is None:
        raise CamlangError("concept disagreement is fitted on labelled clean images")
    se, sl = early.scores(clean), late.scores(clean)
    early_norm, late_norm = _standardise(se), _standardise(sl)
    ze, zl = (se - early_norm[0]) / early_norm[1], (sl - late_norm[0]) / late_norm[1]
    design = torch.cat([ze, torch.ones(len(ze), 1)], dim=1).double()
    gram = design.T @ design + ridge * len(ze) * torch.eye(design.shape[1], dtype=torch.float64)
    weight = torch.linalg.solve(gram, design.T @ zl.double()).float()
    residual_scale = (zl - design.float() @ weight).std(0).clamp_min(1e-3)
    return ConceptDisagreement(
        early,
        late,
        early_norm,
        late_norm,
        weight,
        residual_scale,
        softmax_regression(ze, clean.labels, classes),
        softmax_regression(zl, clean.labels, classes),
    )


@dataclass(frozen=True)
class TwoSided:
    """Each signal as its distance into either tail of the clean images' distribution.

    Attacks differ in direction: FGSM's one step leaves an image barely across the boundary
    (*less* confident than clean images), PGD drives it deep into the new class (*more*
    confident). A detector fitted on one attack learns that attack's direction; read as "how
    atypical for a clean image, either way" (`|normal score|` under the clean distribution), the
    signals mean the same thing for both, and the detector transfers.
    """

    knots: torch.Tensor  # [Q, S] quantiles of the clean images' signals

    def __call__(self, signals: Signals) -> Signals:
        """`|z|` of every signal against the clean images (same names)."""
        return Signals(signals.names, normal_scores(signals.values, self.knots).abs())


@dataclass(frozen=True)
class AdversarialDetector:
    """A combined adversarial detector, its threshold, and the attack it was fitted on."""

    disagreement: ConceptDisagreement
    two_sided: TwoSided
    combiner: Combiner
    threshold: float  # flags at most `fpr` of clean calibrate images
    fpr: float
    fitted_on: Attack

    def signals(self, features: Features) -> Signals:
        """The detector's input signals, two-sided against clean images."""
        return self.two_sided(self.disagreement.signals(features))

    def scores(self, features: Features) -> torch.Tensor:
        """`[N]` combined scores (higher: more likely attacked)."""
        return self.combiner(self.signals(features))


def _with_attacked(clean: Features, attacked: Attacked) -> tuple[torch.Tensor, Features]:
    """Clean correct images (negatives) and their flipped attacked versions (positives)."""
    if clean.labels is None:
        raise CamlangError("adversarial detection needs labelled clean images")
    keep = clean.correct & attacked.flipped
    neg, pos = clean.subset(clean.correct), attacked.features.subset(keep)
    both = Features(
        torch.cat([neg.logits, pos.logits]),
        {k: torch.cat([neg.pooled[k], pos.pooled[k]]) for k in neg.pooled if k in pos.pooled},
        None,
        None,
        (),
    )
    positive = torch.cat([torch.zeros(len(neg), dtype=torch.bool), torch.ones(len(pos), dtype=torch.bool)])
    return positive, both


def fit_adversarial_detector(
    disagreement: ConceptDisagreement,
    clean_fit: Features,
    attacked_fit: Attacked,
    clean_calibrate: Features,
    attacked_calibrate: Attacked,
    fpr: float = 0.05,
) -> AdversarialDetector:
    """Fit on `fit` (clean vs fitting attack), choose and threshold on `calibrate`."""
    if attacked_fit.attack != attacked_calibrate.attack:
        raise CamlangError("the fit and calibrate splits must be attacked by the same fitting attack")
    fit_pos, fit_both = _with_attacked(clean_fit, attacked_fit)
    cal_pos, cal_both = _with_attacked(clean_calibrate, attacked_calibrate)
    two_sided = TwoSided(quantile_knots(disagreement.signals(fit_both).values[~fit_pos]))
    combiner = fit_combiner(
        two_sided(disagreement.signals(fit_both)),
        fit_pos,
        two_sided(disagreement.signals(cal_both)),
        cal_pos,
    )
    draft = AdversarialDetector(disagreement, two_sided, combiner, float("inf"), fpr, attacked_fit.attack)
    clean_scores = draft.scores(clean_calibrate.subset(clean_calibrate.correct))
    return AdversarialDetector(
        disagreement, two_sided, combiner, threshold_at_fpr(clean_scores, fpr), fpr, attacked_fit.attack
    )


@dataclass(frozen=True)
class AdversarialResult:
    """A detector scored on a test attack: its success rate, and detection among flipped inputs."""

    test_attack: Attack
    fitted_on: Attack
    success_rate: float  # of correctly classified clean test images, the share the attack flipped
    results: tuple[DetectorResult, ...]  # "combined" first, then every single signal
    intervals: dict[str, Interval]
    requested_fpr: float


def evaluate_adversarial(
    detector: AdversarialDetector, clean_test: Features, attacked_test: Attacked, *, seed: int = 0
) -> AdversarialResult:
    """Score `detector` on a test attack it was not fitted on; only flipped inputs are positives."""
    if attacked_test.attack == detector.fitted_on:
        raise CamlangError(
            f"the detector was fitted on {detector.fitted_on.describe()}; scoring it on the same attack "
            "would credit it with what it memorised",
            hint="test on another attack method or radius",
        )
    positive, both = _with_attacked(clean_test, attacked_test)
    signals = detector.disagreement.signals(both)  # shown as they are, one-sided
    columns = {"combined": detector.scores(both), **{n: signals.column(n) for n in signals.names}}
    # Single signals are shown as they are (MSP's reading is `1 - confidence`); only the
    # combined detector has a calibrated threshold.
    thresholds = {n: detector.threshold if n == "combined" else float("inf") for n in columns}
    results = tuple(evaluate_detector(n, s, positive, thresholds[n]) for n, s in columns.items())
    intervals = {n: bootstrap_auroc(s, positive, resamples=500, seed=seed) for n, s in columns.items()}
    correct = clean_test.correct
    flipped = attacked_test.flipped & correct
    return AdversarialResult(
        attacked_test.attack,
        detector.fitted_on,
        float(flipped.sum()) / max(int(correct.sum()), 1),
        results,
        intervals,
        detector.fpr,
    )


@dataclass(frozen=True)
class Split:
    """Clean labelled images of one split: `[0, 1]` pixels, labels, and their clean features."""

    pixels: torch.Tensor
    labels: torch.Tensor
    features: Features


#: Attacks a split: `(attack, pixels, labels, seed) -> Attacked`.
AttackFn = Callable[[Attack, torch.Tensor, torch.Tensor, int], Attacked]


def attacker(
    model: nn.Module, normalisation: tuple[Sequence[float], Sequence[float]], layers: Sequence[str]
) -> AttackFn:
    """The usual `AttackFn`: `attack_features` on `model`, keeping `layers`."""

    def run(attack: Attack, pixels: torch.Tensor, labels: torch.Tensor, seed: int) -> Attacked:
        return attack_features(attack, model, normalisation, pixels, labels, layers, seed=seed)

    return run


def adversarial_study(
    disagreement: ConceptDisagreement,
    splits: tuple[Split, Split, Split],
    fit_attack: Attack,
    test_attack: Attack,
    attack: AttackFn,
    *,
    fpr: float = 0.05,
    seed: int = 0,
) -> AdversarialResult:
    """Fit a detector on `fit_attack` (fit, calibrate splits), score it on `test_attack` (test split).

    The test attack runs on the test images only, after the detector is fitted and thresholded.
    """
    if fit_attack == test_attack:
        raise CamlangError(
            f"the fitting attack and the test attack are both {test_attack.describe()}",
            hint="fit on another method or a smaller radius, e.g. FGSM or PGD at 2/255",
        )
    fit, calibrate, test = splits
    detector = fit_adversarial_detector(
        disagreement,
        fit.features,
        attack(fit_attack, fit.pixels, fit.labels, seed),
        calibrate.features,
        attack(fit_attack, calibrate.pixels, calibrate.labels, seed + 1),
        fpr,
    )
    attacked = attack(test_attack, test.pixels, test.labels, seed + 2)
    return evaluate_adversarial(detector, test.features, attacked, seed=seed)
