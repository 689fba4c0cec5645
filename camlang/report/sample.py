"""A small synthetic `RunReport` with every section filled in.

Used by the report tests, the browser check and `docs/report_schema.md`'s example; it needs no
model: images are drawn discs with their masks, maps are blobs and noise. Numbers in it are
made up and labelled as such in `warnings`.
"""

from __future__ import annotations

import math

import torch

from camlang.report.model import (
    Candidate,
    CheckResult,
    EvalResult,
    Export,
    Interval,
    MetricInfo,
    PhaseSeconds,
    RunReport,
    Stat,
    SynthCounts,
    SynthResult,
    SynthTiming,
    Visuals,
)


def _discs(n: int, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`n` noisy images with one coloured disc each, their masks and the disc centres `[n, 2]`."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centres = torch.randint(size // 4, 3 * size // 4, (n, 2), generator=gen)
    radius = size / 5
    masks = (
        (yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2
    ) <= radius**2
    raw = 0.25 + 0.1 * torch.rand(n, 3, size, size, generator=gen)
    colour = torch.rand(n, 3, 1, 1, generator=gen) * 0.6 + 0.4
    raw = torch.where(masks[:, None], colour.expand(-1, -1, size, size), raw)
    return raw.clamp(0, 1), masks, centres


def _blob(centres: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    d2 = (yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2
    blob = torch.exp(-d2.float() / (2 * sigma**2))
    lo = blob.amin(dim=(1, 2), keepdim=True)
    hi = blob.amax(dim=(1, 2), keepdim=True)
    return (blob - lo) / (hi - lo)


def _sample_visuals(n_images: int, size: int, seed: int) -> Visuals:
    """Disc images with their masks, two blob maps near the discs and a noise map with a NaN image."""
    gen = torch.Generator().manual_seed(seed)
    raw, masks, centres = _discs(n_images, size, gen)
    shifted = (centres + torch.tensor([3, -2])).clamp(0, size - 1)
    nan_map = torch.rand(n_images, size, size, generator=gen)
    nan_map[0] = math.nan
    maps = {
        "gradcam": _blob(centres, size, size / 6),
        "gradcam++": _blob(shifted, size, size / 5),
        "eigencam": nan_map,
    }
    labels = ["disc"] * n_images
    preds = ["disc" if i % 3 else "square" for i in range(n_images)]
    return Visuals(raw=raw, maps=maps, masks=masks, labels=labels, predictions=preds)


def _sample_metrics() -> list[MetricInfo]:
    """The three metrics of the first evaluation (a fresh list: each report owns its own)."""
    return [
        MetricInfo("pointing_game", "maximize", "fraction of maps whose peak lies in the mask"),
        MetricInfo("deletion_auc", "minimize", "area under the deletion curve"),
        MetricInfo("insertion_auc", "maximize", "area under the insertion curve"),
    ]


def _sample_table(n: int) -> dict[str, dict[str, Stat]]:
    """Made-up statistics of the three cams; eigencam has NaN images."""
    return {
        "gradcam": {
            "pointing_game": Stat(1.0, 0.0, n, 0, 1.0, 1.0),
            "deletion_auc": Stat(0.21, 0.05, n, 0, 0.18, 0.24),
            "insertion_auc": Stat(0.74, 0.08, n, 0, 0.69, 0.79),
        },
        "gradcam++": {
            "pointing_game": Stat(0.75, 0.43, n, 0, 0.5, 1.0),
            "deletion_auc": Stat(0.21, 0.04, n, 0, 0.19, 0.23),
            "insertion_auc": Stat(0.70, 0.1, n, 0, 0.64, 0.76),
        },
        "eigencam": {
            "pointing_game": Stat(math.nan, math.nan, n, nan_count=n),
            "deletion_auc": Stat(0.35, 0.07, n, 1, 0.31, 0.39),
            "insertion_auc": Stat(0.41, 0.12, n, 1, 0.34, 0.48),
        },
    }


def _sample_evaluations(n: int, size: int, visuals: Visuals) -> list[EvalResult]:
    """Two evaluations: all three cams with visuals, then gradcam alone at another layer."""
    model = {
        "name": "demo_cnn",
        "source": "camlang.models.demo",
        "layer": "features.3",
        "layer_chosen_by_default": True,
        "input_size": [3, size, size],
        "preprocessing": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    }
    data = {"name": "shapes", "kind": "synthetic", "count": n, "preprocessing": "none"}
    definitions = {
        "gradcam": "relu(sum_c(mean_hw(G) * A))",
        "gradcam++": "relu(sum_c(sum_hw(where(G != 0, pow(G, 2) / (2 * pow(G, 2) + sum_hw(A) * pow(G, 3) + "
        "1e-6), 0)"
        " * relu(G)) * A))",
        "eigencam": "relu(pc1(A))",
    }
    metrics = _sample_metrics()
    table = _sample_table(n)
    ev1 = EvalResult("evaluate #1", model, data, list(visuals.maps), metrics, table, visuals, definitions)
    ev2 = EvalResult(
        "evaluate #2",
        {**model, "layer": "features.0", "layer_chosen_by_default": False},
        data,
        ["gradcam"],
        metrics[:1],
        {"gradcam": {"pointing_game": Stat(0.5, 0.5, n)}},
        None,
    )
    return [ev1, ev2]


def _sample_synthesis(visuals: Visuals, partial: bool) -> SynthResult:
    """One synthesis whose winner is compared with two declared cams."""
    objective = MetricInfo("deletion_auc", "minimize")
    winner = "relu(mean_hw(G)) * A"
    gradcam = visuals.maps["gradcam"]
    return SynthResult(
        name="synthesize best_deletion",
        grammar="E ::= A | G | relu(E) | E * E | mean_hw(E) | sum_c(E)",
        objective=objective,
        candidates=[
            Candidate(winner, 5, 0.18, 0.19, 0.16, 0.22, "equivalent to gradcam up to normalisation"),
            Candidate("relu(G * A)", 4, 0.2, 0.22, 0.18, 0.26),
            Candidate("A", 1, 0.31, math.nan, math.nan, math.nan, "holdout produced NaN"),
        ],
        counts=SynthCounts(
            enumerated=1520,
            distinct_after={"syntactic": 812, "semantic": 301, "observational": 96},
            fully_evaluated=12,
            forward_passes=240,
            seconds=3.5,
            exhaustive_forward_passes=30400,
        ),
        partial=partial,
        comparison={
            winner: Interval(0.19, 0.16, 0.22),
            "gradcam": Interval(0.21, 0.18, 0.24),
            "gradcam++": Interval(0.21, 0.17, 0.25),
        },
        visuals=Visuals(raw=visuals.raw, maps={winner: gradcam, "gradcam": gradcam}, masks=visuals.masks),
        timing=SynthTiming(
            limit=20.0,
            rule="holdout comparison 35% of time when there is a holdout, tuning 10% when the grammar "
            "has constant holes, the search the rest",
            planned=PhaseSeconds(search=11.0, tuning=2.0, comparison=7.0),
            spent=PhaseSeconds(search=2.1, tuning=0.3, comparison=1.1),
        ),
    )


def _sample_checks() -> list[CheckResult]:
    """Three checks: one holds, one violated with a confirmed counterexample, one unknown."""
    return [
        CheckResult("logit_bound", "output_range", "holds", "z3", 0.12, "proved by interval bounds", True),
        CheckResult(
            "robust_eps_0.1",
            "local_robustness",
            "violated",
            "z3",
            1.8,
            "sat",
            False,
            [[0.1, 0.25, -0.3], [0.4, 0.5, 0.6]],
            {"confirmed": True, "predicted": 3, "expected": 1},
        ),
        CheckResult("cam_monotone", "cam_property", "unknown", "z3", 30.0, "timeout after 30 s"),
    ]


def sample_report(n_images: int = 4, size: int = 32, seed: int = 0, partial: bool = False) -> RunReport:
    """A deterministic report: two evaluations (one with a NaN column), one synthesis, three checks."""
    visuals = _sample_visuals(n_images, size, seed)
    return RunReport(
        camlang_version="0.1.0",
        source_file="examples/sample.cam",
        created="2026-01-01T00:00:00+00:00",
        seed=seed,
        device="cpu",
        partial=partial,
        warnings=["sample report: the numbers in it are made up for tests and documentation"],
        evaluations=_sample_evaluations(n_images, size, visuals),
        syntheses=[_sample_synthesis(visuals, partial)],
        checks=_sample_checks(),
        exports=[Export("gradcam", "out/gradcam_module.py")],
    )
