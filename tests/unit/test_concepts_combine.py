"""The learned combination of detector signals: never worse than MSP, bootstrap intervals."""

from __future__ import annotations

import torch

from camlang.concepts.bootstrap import bootstrap_auroc, paired_auroc_difference
from camlang.concepts.combine import INTERACTIONS, LOGISTIC, Signals, fit_combiner, fit_logistic
from camlang.concepts.roc import auroc


def _split(n: int, seed: int, informative_monitor: bool) -> tuple[Signals, torch.Tensor]:
    """MSP separates defects moderately; the monitor is noise, or carries independent evidence."""
    gen = torch.Generator().manual_seed(seed)
    positive = torch.rand(n, generator=gen) < 0.2
    msp = torch.randn(n, generator=gen) + 1.0 * positive
    noise = torch.randn(n, 3, generator=gen)
    monitor = noise[:, 0] + (1.0 * positive if informative_monitor else 0.0)
    # An overfitting bait: a heavy-tailed noise signal whose products look useful on small fits.
    bait = noise[:, 1] ** 3
    values = torch.stack([monitor, msp, noise[:, 2], bait], dim=1)
    return Signals(("monitor", "msp", "noise", "bait"), values), positive


def test_combiner_is_never_worse_than_msp_when_the_other_signals_are_noise() -> None:
    losses = []
    for seed in range(6):
        fit, fit_pos = _split(300, 3 * seed, informative_monitor=False)
        cal, cal_pos = _split(300, 3 * seed + 1, informative_monitor=False)
        test, test_pos = _split(3000, 3 * seed + 2, informative_monitor=False)
        combiner = fit_combiner(fit, fit_pos, cal, cal_pos)
        diff = auroc(combiner(test), test_pos) - auroc(test.column("msp"), test_pos)
        losses.append(diff)
        assert diff >= -0.02, (seed, combiner.choice, diff)
    # On average it does not lose: where noise wins a fit, calibrate sends it back to MSP.
    assert sum(losses) / len(losses) >= -0.005, losses


def test_combiner_gains_when_another_signal_carries_independent_evidence() -> None:
    fit, fit_pos = _split(600, 10, informative_monitor=True)
    cal, cal_pos = _split(600, 11, informative_monitor=True)
    test, test_pos = _split(4000, 12, informative_monitor=True)
    combiner = fit_combiner(fit, fit_pos, cal, cal_pos)
    assert combiner.choice in (LOGISTIC, INTERACTIONS)
    diff = paired_auroc_difference(combiner(test), test.column("msp"), test_pos, resamples=200)
    assert diff.estimate > 0.05 and diff.excludes_zero(), diff
    names = [c.name for c in combiner.candidates]
    assert names[0] in test.names and {LOGISTIC, INTERACTIONS} <= set(names)


def test_combiner_orients_a_single_signal_whose_low_values_mean_defect() -> None:
    gen = torch.Generator().manual_seed(0)
    positive = torch.rand(800, generator=gen) < 0.3
    confident = -(torch.randn(800, generator=gen) + 2.0 * positive)  # defects are *more* confident
    sig = Signals(("msp",), confident[:, None])
    combiner = fit_combiner(sig, positive, sig, positive)
    assert auroc(combiner(sig), positive) > 0.85


def test_logistic_is_deterministic_and_balanced() -> None:
    gen = torch.Generator().manual_seed(1)
    positive = torch.rand(500, generator=gen) < 0.1
    x = torch.randn(500, 2, generator=gen) + positive[:, None].float()
    a, b = fit_logistic(x, positive), fit_logistic(x, positive)
    assert torch.equal(a.weight, b.weight)
    assert bool((a.weight > 0).all())


def test_bootstrap_interval_contains_the_estimate_and_is_seeded() -> None:
    gen = torch.Generator().manual_seed(2)
    positive = torch.rand(400, generator=gen) < 0.3
    scores = torch.randn(400, generator=gen) + positive.float()
    ci = bootstrap_auroc(scores, positive, resamples=200, seed=5)
    assert ci.low <= ci.estimate <= ci.high and ci.high - ci.low < 0.2
    assert ci == bootstrap_auroc(scores, positive, resamples=200, seed=5)
    same = paired_auroc_difference(scores, scores, positive, resamples=50)
    assert same.estimate == same.low == same.high == 0.0 and not same.excludes_zero()
