"""Concepts: what a network sees, in human terms, to debug it and guard it at run time.

The pipeline of Hu et al. 2025 ("Debugging and Runtime Analysis of Neural Networks with VLMs",
arXiv 2503.17416), built over one shared forward pass per image:

- `features`: the forward pass (logits and pooled layer activations);
- `sources`: concept scores from annotations and linear probes; `clip`: from CLIP prompts
  through a least-squares aligner of the penultimate features;
- `heatmaps`: semantic (per class, correct and incorrect) and differential heatmaps;
- `localise`: encoder versus head fault localisation;
- `monitor` and `roc`: the runtime monitor against MSP and energy baselines;
- `signals` and `combine`: the monitor's per-image signals and their learned combination, never
  worse than the best single signal; `bootstrap`: AUROC intervals and paired differences;
- `adversarial` and `attacks`: seeded L-infinity PGD and FGSM in pixel units; `detect`:
  adversarial detection from early/late concept disagreement, fitted on another attack;
- `discover`: concepts discovered by NMF of a layer's activations, shown by their top patches.
"""

from camlang.concepts.adversarial import pgd_linf
from camlang.concepts.features import PENULTIMATE, Features, extract_features
from camlang.concepts.heatmaps import SemanticHeatmaps, cell_share, mass_share, semantic_heatmaps, top_cells
from camlang.concepts.localise import Localisation, fit_localiser, localise
from camlang.concepts.monitor import DETECTORS, ConceptMonitor, energy_score, fit_monitor, msp_score
from camlang.concepts.roc import auroc, evaluate_detector, roc_curve, tpr_at_fpr
from camlang.concepts.sources import (
    AnnotationSource,
    ConceptSource,
    ProbeSource,
    annotation_source,
    fit_probes,
)

__all__ = [
    "DETECTORS",
    "PENULTIMATE",
    "AnnotationSource",
    "ConceptMonitor",
    "ConceptSource",
    "Features",
    "Localisation",
    "ProbeSource",
    "SemanticHeatmaps",
    "annotation_source",
    "auroc",
    "cell_share",
    "energy_score",
    "evaluate_detector",
    "extract_features",
    "fit_localiser",
    "fit_monitor",
    "fit_probes",
    "localise",
    "mass_share",
    "msp_score",
    "pgd_linf",
    "roc_curve",
    "semantic_heatmaps",
    "top_cells",
    "tpr_at_fpr",
]
