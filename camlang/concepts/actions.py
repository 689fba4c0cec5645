"""The `heatmaps` and `monitor ... on` actions of a run (see `camlang.run.program`)."""

from __future__ import annotations

from typing import Any

import torch
from rich.console import Console

from camlang.concepts.attacks import Attack, attack_features
from camlang.concepts.bootstrap import Evidence, monitor_evidence
from camlang.concepts.build import ConceptRuntime
from camlang.concepts.discover import DiscoveredSource
from camlang.concepts.features import Features
from camlang.concepts.heatmaps import SemanticHeatmaps, semantic_heatmaps, top_cells
from camlang.concepts.localise import fit_localiser, localise
from camlang.concepts.monitor import DETECTORS
from camlang.concepts.report import ConceptReport
from camlang.concepts.roc import DetectorResult, evaluate_detector
from camlang.concepts.watch_adversarial import ADVERSARIAL, adversarial_scores, fit_watch_adversarial
from camlang.errors import CamlangError
from camlang.frontend import syntax as s


def run_heatmaps(
    runtime: ConceptRuntime, report: ConceptReport, act: s.Heatmaps, console: Console
) -> SemanticHeatmaps | None:
    """Semantic and differential heatmaps of a concept set on a model and data, and localisation."""
    source = runtime.source(act.concepts.name)
    feats = runtime.features_of(act.model.name, act.data.name)
    classes = runtime.class_names(act.model.name, act.data.name)
    scores = source.scores(feats)
    labels = feats.labels
    if labels is None:
        raise CamlangError(
            f"data `{act.data.name}` has no labels, so correct and incorrect images cannot be told apart",
            hint="semantic heatmaps need labelled images",
            code="E823",
        )
    heat = semantic_heatmaps(scores, labels, feats.predictions, source.names, classes)
    correct = feats.correct
    loc = None
    if bool(correct.any()) and bool((~correct).any()):
        loc = localise(fit_localiser(heat, scores, labels, correct), scores, labels, feats.predictions)
    extra = {
        "concepts": act.concepts.name,
        "model": act.model.name,
        "data": act.data.name,
        "source": source.describe(),
        "accuracy": float(correct.float().mean()),
    }
    title = f"{act.concepts.name} on {act.model.name}, {act.data.name}"
    if isinstance(source, DiscoveredSource):  # a person names a discovered concept from its patches
        extra["patches_png"] = report.save_patches(act.concepts.name, source.patches, source.names)
    report.add_heatmaps(title, heat, loc, extra)
    console.print(f"[bold]heatmaps[/] {title}: accuracy {extra['accuracy']:.1%}")
    for c in range(len(classes)):
        for cell in top_cells(heat, c, 1):
            console.print(f"  {cell.sentence()}")
    if loc is not None:
        console.print(f"  localisation: {loc.encoder_share():.1%} of {loc.errors} errors in the encoder")
    return heat


def run_watch(runtime: ConceptRuntime, report: ConceptReport, act: s.Watch, console: Console) -> None:
    """Evaluate a monitor against MSP and energy on misclassifications of DATA (and PGD examples)."""
    monitor = runtime.monitor(act.monitor.name)
    mdef = runtime.state.program.monitors[act.monitor.name]
    model = mdef.args["model"].name
    feats = runtime.features_of(model, act.data.name)
    results: dict[str, list[DetectorResult]] = {}
    evidence: dict[str, Evidence] = {}
    wrong = ~feats.correct
    scores = monitor.detector_scores(feats)
    test = f"misclassified in {act.data.name}"
    results[test] = [evaluate_detector(d, scores[d], wrong, monitor.thresholds[d]) for d in DETECTORS]
    evidence[test] = monitor_evidence(scores, wrong, monitor.fpr)
    extra: dict[str, Any] = {"monitor": act.monitor.name, "data": act.data.name, "fpr": monitor.fpr}
    eps = mdef.args.get("pgd_eps")
    if eps is not None:
        adv = _pgd_features(runtime, model, act.data.name, feats, float(eps), mdef.args)
        if adv is not None:
            both, positive = adv
            adv_scores = monitor.detector_scores(both)
            test = f"PGD eps={eps:g} on {act.data.name}"
            results[test] = [
                evaluate_detector(d, adv_scores[d], positive, monitor.thresholds[d]) for d in DETECTORS
            ]
            # Only flipped inputs are positives: the success rate says how many that left.
            extra["pgd_success_rate"] = int(positive.sum()) / max(int((~positive).sum()), 1)
            fitted = fit_watch_adversarial(runtime, mdef)
            if fitted is not None:
                adv_scores[ADVERSARIAL] = adversarial_scores(fitted, both)
                threshold = fitted.detector.threshold
                results[test].append(
                    evaluate_detector(ADVERSARIAL, adv_scores[ADVERSARIAL], positive, threshold)
                )
                extra["adversarial_detector"] = fitted.note()
            evidence[test] = monitor_evidence(adv_scores, positive, monitor.fpr)
    title = f"{act.monitor.name} on {act.data.name}"
    report.add_monitor(title, results, extra, evidence)
    for test, rows in results.items():
        console.print(
            f"[bold]monitor[/] {act.monitor.name}, {test}: "
            + ", ".join(f"{r.detector} AUROC {r.auroc:.3f} TPR@5% {r.tpr_at_5_fpr:.2f}" for r in rows)
        )
    if "pgd_success_rate" in extra:
        note = (
            f"; adversarial detector {extra['adversarial_detector']}"
            if "adversarial_detector" in extra
            else ""
        )
        console.print(f"  PGD flipped {extra['pgd_success_rate']:.1%} of the correct images{note}")


def _pgd_features(
    runtime: ConceptRuntime, model: str, data: str, clean: Features, eps: float, args: dict[str, Any]
) -> tuple[Features, torch.Tensor] | None:
    """Clean correct images (negatives) and successful PGD examples of them (positives).

    The radius is in pixel units (`8/255`: eight grey levels), whatever the model's normalisation.
    """
    live = runtime.state.model(model, data)
    ds = runtime.state.data(data)
    keep = torch.nonzero(clean.correct).flatten()
    if len(keep) == 0:
        return None
    batch = ds.get(keep)
    labels = batch.labels
    assert labels is not None, "correct images have labels"
    attack = Attack("pgd", eps, int(args["pgd_steps"]))
    pixels = batch.raw[:, : batch.x.shape[1]]  # grey images are shown as 3 equal channels
    attacked = attack_features(
        attack,
        live.module,
        ds.normalization,
        pixels,
        labels,
        runtime.layers_of(model),
        seed=int(args["seed"]),
    )
    fooled = attacked.flipped
    sub = clean.subset(keep)
    adv = attacked.features.subset(fooled)
    both = Features(
        torch.cat([sub.logits, adv.logits]),
        {k: torch.cat([sub.pooled[k], adv.pooled[k]]) for k in adv.pooled},
        None,
        None,
        (),
    )
    positive = torch.cat(
        [torch.zeros(len(keep), dtype=torch.bool), torch.ones(int(fooled.sum()), dtype=torch.bool)]
    )
    return both, positive
