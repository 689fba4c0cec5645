"""`bench_concepts.py --real`: the concepts pipeline on CIFAR-10 ResNet-20 and ResNet-56.

Needs the optional shared data (`../shared/data` or `--shared`): the akamaster checkpoints and
the splits and concept annotations that `scripts/make_cifar_concepts.py` makes from the CIFAR-10
JPEG test set (`--data`, default `~/.cache/camlang/cifar10_concepts`). Per network:

1. one forward pass per split (penultimate features, `layer1`, `layer3`);
2. probes for the annotated concepts at the penultimate features (late) and at `layer1` (early);
   a concept whose probe is no better than chance at a layer is left out there, and said so;
3. misclassification: the monitor over the late probes, and over concepts discovered by NMF of
   `layer3` (no annotations), against MSP and energy, and the combined detector; AUROC with a
   bootstrap CI, the paired AUROC difference combined - MSP, the realised FPR at the 5% asked;
4. PGD (L-inf 8/255, 10 steps) detected from early/late concept disagreement and confidence,
   fitted on another attack (`--fit-attack`), scored only on inputs the attack flipped;
5. fault injection (ResNet-20): two swapped rows of the last linear layer (a head fault) and
   zeroed stem channels (an encoder fault); the share of new errors localised to the right part.

Prints a markdown table per network and writes `--out`/results.json and the discovered concepts'
patch grids. No pass/fail exit status: the issue's targets are printed beside the numbers.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from camlang.concepts.attacks import Attack
from camlang.concepts.bootstrap import monitor_evidence
from camlang.concepts.detect import Split, adversarial_study, attacker, fit_disagreement
from camlang.concepts.discover import discover_concepts
from camlang.concepts.features import PENULTIMATE, Features, extract_features
from camlang.concepts.heatmaps import semantic_heatmaps
from camlang.concepts.localise import fit_localiser, localise
from camlang.concepts.monitor import DETECTORS, fit_monitor
from camlang.concepts.report import ConceptReport
from camlang.concepts.roc import evaluate_detector
from camlang.concepts.sources import ConceptSource, ProbeSource, fit_probes
from camlang.data.folder import images
from camlang.errors import CamlangError
from camlang.models.checkpoint import load_checkpoint
from camlang.models.cifar_resnet import CIFAR10_CLASSES

SPLITS = ("probe_train", "probe_heldout", "fit", "calibrate", "test")
EARLY, DISCOVER = "layer1", "layer3"
LAYERS = (PENULTIMATE, EARLY, DISCOVER)
CHECKPOINTS = {20: "resnet20-12fca82f.th", 56: "resnet56-4bfd9763.th"}


@dataclass
class NetworkResult:
    """Everything measured on one network (JSON-friendly)."""

    depth: int
    accuracy: float = 0.0
    probes: dict[str, Any] = field(default_factory=dict)
    monitors: dict[str, Any] = field(default_factory=dict)
    adversarial: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def passing_probes(train: Features, held: Features, layer: str) -> tuple[ProbeSource, list[str]]:
    """Probes of every annotated concept that beats chance at `layer`; the names left out."""
    keep, dropped = [], []
    for col, name in enumerate(train.annotation_names):
        try:
            fit_probes(train, held, layer, [name], [col])
            keep.append(col)
        except CamlangError:
            dropped.append(name)
    names = [train.annotation_names[c] for c in keep]
    return fit_probes(train, held, layer, names, keep), dropped


def monitor_row(source: ConceptSource, feats: dict[str, Features], seed: int) -> dict[str, Any]:
    """The monitor on test misclassifications: AUROC [CI], TPR@5%, realised FPR; combined - MSP."""
    monitor = fit_monitor(source, feats["fit"], feats["calibrate"], list(CIFAR10_CLASSES), fpr=0.05)
    test = feats["test"]
    wrong = ~test.correct
    scores = monitor.detector_scores(test)
    ev = monitor_evidence(scores, wrong, 0.05, seed=seed)
    rows = {}
    for d in DETECTORS:
        r = evaluate_detector(d, scores[d], wrong, monitor.thresholds[d])
        ci = ev.intervals[d]
        rows[d] = {"auroc": r.auroc, "ci": [ci.low, ci.high], "tpr5": r.tpr_at_5_fpr, "fpr": r.calibrated_fpr}
    diff = ev.difference
    assert diff is not None
    return {
        "detectors": rows,
        "combined_minus_msp": [diff.estimate, diff.low, diff.high],
        "combiner": monitor.combination.describe(),
        "errors": int(wrong.sum()),
        "correct": int((~wrong).sum()),
    }


def _split(ds: Any, feats: Features, count: int) -> Split:
    batch = ds.get(range(min(count, len(ds))))
    n = len(batch)
    return Split(batch.raw, batch.labels, feats.subset(torch.arange(n)))


def adversarial(model: torch.nn.Module, early: ProbeSource, late: ProbeSource, ds: dict[str, Any],
                feats: dict[str, Features], fit_attack: Attack, count: int) -> dict[str, Any]:  # fmt: skip
    """PGD 8/255 detection, fitted on `fit_attack`, on `count` images per split."""
    test_attack = Attack("pgd", 8 / 255, 10)
    disagreement = fit_disagreement(early, late, feats["probe_train"], len(CIFAR10_CLASSES))
    splits = (
        _split(ds["fit"], feats["fit"], count),
        _split(ds["calibrate"], feats["calibrate"], count),
        _split(ds["test"], feats["test"], count),
    )
    run = attacker(model, ds["test"].normalization, LAYERS)
    result = adversarial_study(disagreement, splits, fit_attack, test_attack, run)
    return {
        "fitted_on": fit_attack.describe(),
        "test_attack": test_attack.describe(),
        "success_rate": result.success_rate,
        "detectors": {
            r.detector: {
                "auroc": r.auroc,
                "ci": [result.intervals[r.detector].low, result.intervals[r.detector].high],
                "tpr5": r.tpr_at_5_fpr,
                "positives": r.positives,
                "negatives": r.negatives,
                **({"fpr": r.calibrated_fpr, "tpr": r.calibrated_tpr} if r.detector == "combined" else {}),
            }
            for r in result.results
        },
    }


def _new_error_share(model: torch.nn.Module, broken: torch.nn.Module, ds: Any, before: Features,
                     late: ProbeSource, localiser: Any, want_encoder: bool) -> dict[str, float]:  # fmt: skip
    after = extract_features(broken, ds, [PENULTIMATE])
    result = localise(localiser, late.scores(after), after.labels, after.predictions)
    new = (before.correct & ~after.correct)[result.image_index]
    right = result.encoder[new] if want_encoder else ~result.encoder[new]
    return {
        "new_errors": int(new.sum()),
        "localised_right": float(right.float().mean()) if int(new.sum()) else float("nan"),
    }


def faults(
    model: torch.nn.Module, late: ProbeSource, ds: dict[str, Any], feats: dict[str, Features]
) -> dict[str, Any]:
    """Swapped head rows and zeroed stem channels; the share of new errors localised right."""
    fit, cal = feats["fit"], feats["calibrate"]
    heat = semantic_heatmaps(late.scores(fit), fit.labels, fit.predictions, late.names, list(CIFAR10_CLASSES))
    localiser = fit_localiser(heat, late.scores(cal), cal.labels, cal.correct)
    before = feats["test"]
    head = copy.deepcopy(model)
    with torch.no_grad():  # cat (3) <-> dog (5): the head now names the other class
        for p in (head.linear.weight, head.linear.bias):
            p[[3, 5]] = p[[5, 3]].clone()
    stem = copy.deepcopy(model)
    # The stem channels the network leans on most: largest mean activation after bn1 + ReLU.
    acts: list[torch.Tensor] = []
    handle = model.bn1.register_forward_hook(lambda _m, _a, out: acts.append(out.relu().mean(dim=(0, 2, 3))))
    with torch.no_grad():
        model(ds["probe_train"].get(range(min(256, len(ds["probe_train"])))).x)
    handle.remove()
    channels = torch.argsort(acts[0], descending=True)[:6]
    with torch.no_grad():
        stem.bn1.weight[channels] = 0.0
        stem.bn1.bias[channels] = 0.0
    return {
        "head_rows_swapped": _new_error_share(model, head, ds["test"], before, late, localiser, False),
        "stem_channels_zeroed": {
            "channels": channels.tolist(),
            **_new_error_share(model, stem, ds["test"], before, late, localiser, True),
        },
    }


def network(
    depth: int, shared: Path, data: Path, out: Path, fit_attack: Attack, adv_count: int
) -> NetworkResult:
    """Every measurement on one ResNet."""
    started = time.perf_counter()
    res = NetworkResult(depth)
    path = shared / "cifar10_resnet_akamaster" / CHECKPOINTS[depth]
    model = load_checkpoint(str(path), f"cifar_resnet{depth}").module.eval()
    csv = data / "concepts.csv"
    ds = {s: images(data / s, size=32, normalize="imagenet", concepts=csv) for s in SPLITS}
    feats = {s: extract_features(model, ds[s], LAYERS, batch_size=250) for s in SPLITS}
    res.accuracy = float(feats["test"].correct.float().mean())
    late, late_out = passing_probes(feats["probe_train"], feats["probe_heldout"], PENULTIMATE)
    early, early_out = passing_probes(feats["probe_train"], feats["probe_heldout"], EARLY)
    res.probes = {
        "late": {r.concept: r.balanced_accuracy for r in late.results},
        "late_left_out": late_out,
        "early": {r.concept: r.balanced_accuracy for r in early.results},
        "early_left_out": early_out,
    }
    print(f"resnet{depth}: test accuracy {res.accuracy:.1%}; probes {res.probes}", flush=True)
    res.monitors["annotated"] = monitor_row(late, feats, 0)
    found = discover_concepts(model, ds["probe_train"], DISCOVER, count=8, seed=0, images=1000)
    ConceptReport(out).save_patches(f"resnet{depth} {DISCOVER}", found.patches, found.names)
    res.monitors["discovered"] = monitor_row(found, feats, 0)
    res.monitors["discovered"]["relative_error"] = found.relative_error
    print(f"resnet{depth}: monitors {json.dumps(res.monitors, default=float)[:400]}...", flush=True)
    res.adversarial = adversarial(model, early, late, ds, feats, fit_attack, adv_count)
    print(f"resnet{depth}: adversarial {json.dumps(res.adversarial, default=float)[:600]}...", flush=True)
    if depth == 20:
        res.faults = faults(model, late, ds, feats)
    res.seconds = time.perf_counter() - started
    return res


def _table(res: NetworkResult) -> list[str]:
    lines = [f"### ResNet-{res.depth}: test accuracy {res.accuracy:.1%} ({res.seconds:.0f} s)", ""]
    lines += [
        "| test set | detector | AUROC [95% CI] | TPR@5%FPR | FPR at 5% asked |",
        "|---|---|---|---|---|",
    ]
    for kind, m in res.monitors.items():
        for d, r in m["detectors"].items():
            lines.append(
                f"| misclassified ({kind} concepts; {m['errors']} vs {m['correct']}) | {d} | "
                f"{r['auroc']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['tpr5']:.2f} | {r['fpr']:.3f} |"
            )
        e, lo, hi = m["combined_minus_msp"]
        lines.append(
            f"| | combined - MSP | {e:+.3f} [{lo:+.3f}, {hi:+.3f}] | | chose {m['combiner']['choice']} |"
        )
    a = res.adversarial
    for d, r in a["detectors"].items():
        fpr = f"{r['fpr']:.3f}" if "fpr" in r else ""
        lines.append(
            f"| {a['test_attack']} ({r['positives']} flipped vs {r['negatives']}; "
            f"fitted on {a['fitted_on']}) | {d} | {r['auroc']:.3f} "
            f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['tpr5']:.2f} | {fpr} |"
        )
    lines.append(f"\nPGD success rate: {a['success_rate']:.1%} of correctly classified test images.")
    for name, f in res.faults.items():
        lines.append(
            f"Fault `{name}`: {f['new_errors']} new errors, "
            f"{f['localised_right']:.1%} localised to the right part."
        )
    return lines


def run_real(argv_args: Any, root: Path) -> int:
    """The `--real` benchmark; returns the exit status."""
    shared = Path(argv_args.shared).expanduser() if argv_args.shared else root.parent / "shared" / "data"
    data = Path(argv_args.data).expanduser()
    out = Path(argv_args.out).expanduser()
    for need in (shared / "cifar10_resnet_akamaster", data / "concepts.csv"):
        if not need.exists():
            print(f"missing {need}: see the docstring (scripts/make_cifar_concepts.py makes the splits)")
            return 2
    torch.manual_seed(0)
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    fit_attack = Attack("fgsm", 8 / 255) if argv_args.fit_attack == "fgsm" else Attack("pgd", 2 / 255, 10)
    results = []
    for depth in argv_args.depths:
        res = network(depth, shared, data, out, fit_attack, argv_args.adv_count)
        results.append(res)
        print("\n".join(_table(res)), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([r.__dict__ for r in results], indent=2, default=float))
    print(f"\nload average at the end: {os.getloadavg()}; results in {out}")
    print(
        "targets: combined >= MSP + 0.02 with the paired CI above 0; "
        "PGD AUROC >= 0.90 without the test attack; realised FPR within 0.02 of 0.05; "
        ">= 90% of injected errors localised right"
    )
    return 0
