"""A learned combination of per-image detector signals that is never worse than its inputs.

Several per-image signals (the concept monitor's score, MSP, energy, ...) each say "this input
is likely a defect". `fit_combiner` learns how to combine them without ever touching the test
split, in two nested steps:

1. On the `fit` split: a class-balanced, L2-regularised logistic regression over the
   standardised signals (and a second one that adds their pairwise products), and the best
   *single* signal (highest fit AUROC, its sign chosen so that higher means "defect").
2. On the `calibrate` split: the candidate with the highest AUROC wins. The best single signal
   is always a candidate, so a combination that does not generalise loses to it on a split it
   was not fitted on, and the combined detector degrades to that input instead of below it.

The threshold is then set on `calibrate` too (by the caller), never on test. Logistic regression
is a few lines of torch (L-BFGS), so the core install needs no scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from camlang.concepts.roc import auroc
from camlang.errors import CamlangError

#: Names of the two learned candidates (the others are single signals, by name).
LOGISTIC, INTERACTIONS = "logistic", "logistic+interactions"


@dataclass(frozen=True)
class Signals:
    """Per-image detector signals: `values[:, s]` is signal `names[s]` (higher: more suspect)."""

    names: tuple[str, ...]
    values: torch.Tensor  # [N, S]

    def __post_init__(self) -> None:
        if self.values.dim() != 2 or self.values.shape[1] != len(self.names):
            raise CamlangError(f"signals {self.names} need values [N, {len(self.names)}]")

    def column(self, name: str) -> torch.Tensor:
        """`[N]` values of one signal."""
        return self.values[:, self.names.index(name)]

    def select(self, names: Sequence[str]) -> Signals:
        """These signals, in this order."""
        return Signals(tuple(names), self.values[:, [self.names.index(n) for n in names]])


def signals_from(columns: dict[str, torch.Tensor]) -> Signals:
    """Signals from named `[N]` columns (in the dict's order)."""
    return Signals(tuple(columns), torch.stack([c.float() for c in columns.values()], dim=1))


#: Quantiles kept per signal for the normal-score transform.
_QUANTILES = 257


def quantile_knots(x: torch.Tensor) -> torch.Tensor:
    """`[Q, S]` quantiles of each column of `x` `[N, S]`: the knots of `normal_scores`."""
    levels = torch.linspace(0.0, 1.0, _QUANTILES, dtype=torch.float64)
    return torch.quantile(x.double(), levels, dim=0).float()


def normal_scores(x: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """Each column of `x` `[N, S]` through its fit split's empirical CDF, then the normal quantile.

    MSP is piled up near 0 with a long tail; a linear model on raw values lets a weak, noisy
    signal reorder the many confident images, and the combination loses to MSP alone. On normal
    scores every signal is spread evenly, and the transform is monotone, so a signal alone keeps
    its ranking.
    """
    q = knots.shape[0]
    levels = torch.linspace(0.5 / q, 1 - 0.5 / q, q, dtype=torch.float64)
    out = torch.empty(x.shape, dtype=torch.float64)
    for s in range(x.shape[1]):
        k, v = knots[:, s].double().contiguous(), x[:, s].double().contiguous()
        hi = torch.searchsorted(k, v).clamp(1, q - 1)
        lo = hi - 1
        span = (k[hi] - k[lo]).clamp_min(1e-12)
        t = ((v - k[lo]) / span).clamp(0.0, 1.0)
        out[:, s] = levels[lo] + t * (levels[hi] - levels[lo])
    normal = torch.distributions.Normal(
        torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    )
    return normal.icdf(out).float()


def _expand(z: torch.Tensor, interactions: bool) -> torch.Tensor:
    if not interactions or z.shape[1] < 2:
        return z
    i, j = torch.triu_indices(z.shape[1], z.shape[1], offset=1)
    return torch.cat([z, z[:, i] * z[:, j]], dim=1)


@dataclass(frozen=True)
class Logistic:
    """A logistic regression over the signals' normal scores (optionally with pairwise products)."""

    knots: torch.Tensor  # [Q, S] quantiles of each signal on the fit split
    weight: torch.Tensor  # [S] or [S + S(S-1)/2]
    bias: float
    interactions: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """`[N]` logits (higher: more likely positive) for raw signal values `[N, S]`."""
        return _expand(normal_scores(x, self.knots), self.interactions) @ self.weight + self.bias


def fit_logistic(
    x: torch.Tensor, positive: torch.Tensor, *, interactions: bool = False, l2: float = 1e-2
) -> Logistic:
    """Class-balanced logistic regression of `positive` on the normal scores of `x` `[N, S]`, by L-BFGS.

    Balanced, because defects are the minority and AUROC weighs both classes alike; the L2 term
    keeps the weights finite when the classes are separable.
    """
    x = x.float()
    knots = quantile_knots(x)
    z, y = _expand(normal_scores(x, knots), interactions), positive.float()
    rate = y.mean().clamp(1e-3, 1 - 1e-3)
    weights = torch.where(y > 0.5, 0.5 / rate, 0.5 / (1 - rate))
    w = torch.zeros(z.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z @ w + b, y, weight=weights) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return Logistic(knots, w.detach(), float(b.detach()), interactions)


@dataclass(frozen=True)
class Candidate:
    """One candidate detector and its AUROC on the fit and calibrate splits."""

    name: str
    fit_auroc: float
    calibrate_auroc: float


@dataclass(frozen=True)
class Combiner:
    """The chosen combination: a logistic model over `inputs`, or one input signal with a sign."""

    inputs: tuple[str, ...]
    choice: str  # LOGISTIC, INTERACTIONS or the name of a single input
    model: Logistic | None
    sign: float  # for a single input: +1, or -1 when low values mean "defect"
    candidates: tuple[Candidate, ...]

    def __call__(self, signals: Signals) -> torch.Tensor:
        """`[N]` combined scores (higher: more likely a defect)."""
        if self.model is not None:
            return self.model(signals.select(self.inputs).values)
        return self.sign * signals.column(self.choice).float()

    def describe(self) -> dict[str, object]:
        """What was chosen, and every candidate's fit and calibrate AUROC, for the report."""
        return {
            "inputs": list(self.inputs),
            "choice": self.choice,
            "candidates": [
                {"name": c.name, "fit_auroc": c.fit_auroc, "calibrate_auroc": c.calibrate_auroc}
                for c in self.candidates
            ],
        }


def identity_combiner(signal: str) -> Combiner:
    """A combiner that passes one signal through (a placeholder before fitting)."""
    return Combiner((signal,), signal, None, 1.0, ())


def fit_combiner(
    fit: Signals,
    fit_positive: torch.Tensor,
    calibrate: Signals,
    calibrate_positive: torch.Tensor,
    *,
    inputs: Sequence[str] | None = None,
) -> Combiner:
    """Learn the combination on `fit`, choose between it and the best single input on `calibrate`.

    Where `calibrate` has only one class, no choice can be checked, and the best single input is
    returned.
    """
    names = tuple(inputs) if inputs is not None else fit.names
    if bool(fit_positive.all()) or not bool(fit_positive.any()):
        raise CamlangError("the fit split needs both defects and clean inputs to fit a combiner")
    xf = fit.select(names).values
    single_fit = [auroc(xf[:, s], fit_positive) for s in range(len(names))]
    # Oriented so that higher means "defect": an attacked image is *more* confident, say.
    oriented = [abs(a - 0.5) + 0.5 for a in single_fit]
    best = max(range(len(names)), key=lambda s: oriented[s])
    sign = 1.0 if single_fit[best] >= 0.5 else -1.0
    best_model = Combiner(names, names[best], None, sign, ())
    if bool(calibrate_positive.all()) or not bool(calibrate_positive.any()):
        return best_model  # nothing to choose on: keep the input that does not need choosing
    models = {
        name: fit_logistic(xf, fit_positive, interactions=name == INTERACTIONS)
        for name in (LOGISTIC, INTERACTIONS)
    }
    pool = {names[best]: best_model, **{n: Combiner(names, n, m, 1.0, ()) for n, m in models.items()}}
    fit_signals, cal_signals = fit.select(names), calibrate.select(names)
    candidates = tuple(
        Candidate(n, auroc(c(fit_signals), fit_positive), auroc(c(cal_signals), calibrate_positive))
        for n, c in pool.items()
    )
    # Ties go to the single input (listed first): prefer the simpler detector.
    winner = max(candidates, key=lambda c: c.calibrate_auroc)
    chosen = pool[winner.name]
    return Combiner(names, chosen.choice, chosen.model, chosen.sign, candidates)
