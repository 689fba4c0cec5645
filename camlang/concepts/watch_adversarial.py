"""The adversarial detector of a `monitor ... on` action: `concept_monitor(..., early = E)`.

With an `early` probe set, a monitor's PGD test also scores the detector of
`camlang.concepts.detect`: early/late concept disagreement (the early set against the monitor's
own concept set) plus the confidence signals. The relation between the two sets is fitted on the
early set's clean training images; the detector on the monitor's `fit` split against the
*fitting* attack (`fit_attack`: PGD at a quarter of `pgd_eps`, or FGSM at `pgd_eps`), chosen and
thresholded on `calibrate`; the test PGD is never seen before the test.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from camlang.concepts.attacks import Attack, Attacked, attack_features
from camlang.concepts.build import ConceptRuntime
from camlang.concepts.detect import AdversarialDetector, fit_adversarial_detector, fit_disagreement
from camlang.concepts.features import Features
from camlang.errors import CamlangError
from camlang.frontend.program import MonitorDef

#: The name of the adversarial detector's row in a monitor's PGD table.
ADVERSARIAL = "adversarial"


def fitting_attack(kind: str, eps: float, steps: int) -> Attack:
    """The attack the detector is fitted on: never the test PGD (`fgsm` or `pgd_small`)."""
    return Attack("fgsm", eps) if kind == "fgsm" else Attack("pgd", eps / 4, steps)


@dataclass(frozen=True)
class FittedAdversarial:
    """The fitted detector and, for the report, what it was fitted on."""

    detector: AdversarialDetector

    def note(self) -> str:
        """`fitted on FGSM L-inf 8/255, not on the test attack`."""
        return f"fitted on {self.detector.fitted_on.describe()}, not on the test attack"


def _attacked(runtime: ConceptRuntime, model: str, data: str, attack: Attack, seed: int) -> Attacked:
    live = runtime.state.model(model, data)
    ds = runtime.state.data(data)
    batch = ds.get(range(len(ds)))
    if batch.labels is None:
        raise CamlangError(
            f"the adversarial detector attacks the images of data `{data}`, which have no labels",
            hint="give the data labels (a class-per-folder layout or `labels = ...`)",
        )
    pixels = batch.raw[:, : batch.x.shape[1]]  # grey images are shown as 3 equal channels
    return attack_features(
        attack, live.module, ds.normalization, pixels, batch.labels, runtime.layers_of(model), seed=seed
    )


def fit_watch_adversarial(runtime: ConceptRuntime, mdef: MonitorDef) -> FittedAdversarial | None:
    """The adversarial detector of monitor `mdef`, or None when it names no `early` set."""
    a = mdef.args
    if a.get("early") is None or a.get("pgd_eps") is None:
        return None
    model = a["model"].name
    early = runtime.source(a["early"].name)
    late = runtime.source(a["concepts"].name)
    early_def = runtime.state.program.concept_sets[a["early"].name]
    clean: Features = runtime.features_of(model, early_def.args["data"].name)
    classes = len(runtime.class_names(model, a["fit"].name))
    disagreement = fit_disagreement(early, late, clean, classes)
    attack = fitting_attack(str(a["fit_attack"]), float(a["pgd_eps"]), int(a["pgd_steps"]))
    seed = int(a["seed"])
    fit, cal = a["fit"].name, a["calibrate"].name
    detector = fit_adversarial_detector(
        disagreement,
        runtime.features_of(model, fit),
        _attacked(runtime, model, fit, attack, seed + 1),
        runtime.features_of(model, cal),
        _attacked(runtime, model, cal, attack, seed + 2),
        float(a["fpr"]),
    )
    return FittedAdversarial(detector)


def adversarial_scores(fitted: FittedAdversarial, both: Features) -> torch.Tensor:
    """`[N]` detector scores of clean and attacked test images."""
    return fitted.detector.scores(both)
