"""camlang's metrics against Quantus 0.6.0, the in-run peer: same maps, model, images and parameters.

Every metric both libraries define is computed on the same 64 synthetic-shape images, the demo CNN
and camlang's Grad-CAM and Score-CAM maps (fed to both as they are). For each metric it prints the
per-image agreement, the time ratio (Quantus time / camlang time, both measured here) and, one
line each, where the definitions differ. Quantus is an optional dependency: `pip install
camlang[bench]`. `benchmarks/bench_metrics.py` calls `main()`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from camlang import metrics as M
from camlang.core.per_image_rng import per_image_uniform
from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.models import DEMO_TARGET_LAYER, load_demo_model, resolve_layer
from camlang.runtime.cam_engine import CamEngine

CAMS = ("gradcam", "scorecam")
SEED = 0


@dataclass
class Setup:
    """The shared inputs: model, images, masks, targets and the maps of each cam `[B, H, W]`."""

    model: torch.nn.Module
    engine: CamEngine
    x: torch.Tensor
    masks: torch.Tensor
    targets: torch.Tensor
    maps: dict[str, torch.Tensor]


@dataclass
class Row:
    """One metric's comparison: agreement text, camlang and Quantus seconds, definition differences."""

    metric: str
    peer: str
    agreement: str
    t_ours: float
    t_peer: float
    differences: tuple[str, ...]


def make_setup(n: int = 64) -> Setup:
    program = check_text('import "stdlib/cams.cam"\n', "<bench>")
    model = load_demo_model().module.eval()
    layer = resolve_layer(model, DEMO_TARGET_LAYER)
    batch = synthetic_shapes(count=n, size=64, seed=1).get(list(range(n)))
    assert batch.masks is not None
    engine = CamEngine(model, layer, {c: program.cams[c].node for c in CAMS})  # type: ignore[misc]
    out = engine(batch.x)
    return Setup(model, engine, batch.x, batch.masks, out.targets, {c: out.maps[c].detach() for c in CAMS})


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _a_batch(s: Setup, cam: str) -> np.ndarray:
    return _np(s.maps[cam])[:, None]  # Quantus wants [B, 1, H, W]


def _stack(s: Setup) -> torch.Tensor:
    return torch.stack([s.maps[c] for c in CAMS])  # [K, B, H, W]: camlang scores every cam at once


def _gap(ours: np.ndarray, theirs: np.ndarray) -> str:
    both = np.isfinite(ours) & np.isfinite(theirs)
    gap = float(np.abs(ours[both] - theirs[both]).max()) if both.any() else float("nan")
    return f"max |diff| {gap:.1e} over {int(both.sum())} (image, cam) pairs"


def complexity_rows(s: Setup, quantus: Any) -> list[Row]:
    rows = []
    L = _stack(s)
    pairs = [
        (
            "sparsity (gini)",
            "Sparseness",
            M.sparsity,
            quantus.Sparseness,
            ("Quantus adds 1e-7 to every value before the Gini index; camlang uses the map as is.",),
        ),
        (
            "entropy",
            "Complexity",
            M.entropy,
            quantus.Complexity,
            ("Quantus takes log(a + 1e-12); camlang counts 0 log 0 as 0.",),
        ),
    ]
    for name, peer, ours_fn, cls, diffs in pairs:
        ours, t_ours = timed(lambda f=ours_fn: f(L))
        metric = cls(normalise=False, abs=True, disable_warnings=True)
        theirs, t_peer = timed(
            lambda m=metric: np.stack(
                [
                    np.asarray(
                        m(
                            model=s.model,
                            x_batch=_np(s.x),
                            y_batch=_np(s.targets),
                            a_batch=_a_batch(s, c),
                            batch_size=64,
                        )
                    )
                    for c in CAMS
                ]
            )
        )
        rows.append(Row(name, peer, _gap(_np(ours), theirs), t_ours, t_peer, diffs))
    return rows


def localisation_rows(s: Setup, quantus: Any) -> list[Row]:
    L = _stack(s)
    masks = s.masks.bool()
    s_batch = _np(masks)[:, None].astype(np.float32)
    ours, t_ours = timed(lambda: M.pointing_game(L, masks, tolerance=0.0))
    metric = quantus.PointingGame(disable_warnings=True)
    theirs, t_peer = timed(
        lambda: np.stack(
            [
                np.asarray(
                    metric(
                        model=s.model,
                        x_batch=_np(s.x),
                        y_batch=_np(s.targets),
                        a_batch=_a_batch(s, c),
                        s_batch=s_batch,
                        batch_size=64,
                    ),
                    dtype=float,
                )
                for c in CAMS
            ]
        )
    )
    agree = int((_np(ours).astype(float) == theirs).sum())
    empty = np.zeros_like(s_batch[:1])
    empty_hit = metric(
        model=s.model,
        x_batch=_np(s.x[:1]),
        y_batch=_np(s.targets[:1]),
        a_batch=_a_batch(s, CAMS[0])[:1],
        s_batch=empty,
        batch_size=64,
    )
    rows = [
        Row(
            "pointing_game (tolerance 0)",
            "PointingGame",
            f"same hit on {agree}/{theirs.size} (image, cam) pairs",
            t_ours,
            t_peer,
            (
                "camlang tests the first maximum (row-major) within a tolerance (default 15/224 of the shorter "
                "side; 0 here); Quantus hits when any tied maximum is in the mask, with no tolerance.",
                f"Quantus bug: an empty mask scores {empty_hit[0]!r} (a hit: NaN cast to bool); camlang: a miss.",
            ),
        )
    ]
    ours, t_ours = timed(lambda: M.energy_pointing_game(L, masks))
    for cls, extra in (
        (quantus.RelevanceMassAccuracy, ()),
        (
            quantus.AttributionLocalisation,
            (
                "Quantus AttributionLocalisation adds 1e-9 to the total "
                "and scores NaN when the ratio exceeds 1.",
            ),
        ),
    ):
        metric = cls(disable_warnings=True, abs=False, normalise=False)
        theirs, t_peer = timed(
            lambda m=metric: np.stack(
                [
                    np.asarray(
                        m(
                            model=s.model,
                            x_batch=_np(s.x),
                            y_batch=_np(s.targets),
                            a_batch=_a_batch(s, c),
                            s_batch=s_batch,
                            batch_size=64,
                        ),
                        dtype=float,
                    )
                    for c in CAMS
                ]
            )
        )
        rows.append(
            Row(
                "energy_pointing_game",
                cls.__name__,
                _gap(_np(ours), theirs),
                t_ours,
                t_peer,
                ("camlang scores an all-zero map 0; Quantus divides by zero (NaN).",) + extra,
            )
        )
    return rows


def deletion_row(s: Setup, quantus: Any) -> Row:
    steps, n_pix = 32, 64 * 64

    def model_fn(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return s.model(t)

    ours, t_ours = timed(lambda: M.deletion_auc(model_fn, s.x, _stack(s), s.targets, steps, 0.0))
    # Quantus broadcasts the map over the 3 channels and flips (channel, pixel) entries, 128 per step
    # (it requires a step that divides H*W): after 3i steps exactly 128i whole pixels are gone on a
    # map without tied pixels, camlang's step i.
    metric = quantus.PixelFlipping(
        features_in_step=n_pix // steps,
        perturb_baseline=0.0,
        normalise=False,
        abs=False,
        disable_warnings=True,
    )
    theirs, t_peer = timed(
        lambda: np.stack(
            [
                np.asarray(
                    metric(
                        model=s.model,
                        x_batch=_np(s.x),
                        y_batch=_np(s.targets),
                        a_batch=_a_batch(s, c),
                        softmax=True,
                        batch_size=64,
                    )
                )
                for c in CAMS
            ]
        )
    )
    curve = _np(ours.curve)[..., 1:]  # Quantus's curve starts after the first step
    theirs = theirs[..., 2::3]
    flat = _stack(s).flatten(-2)
    tie_free = np.array(
        [[len(torch.unique(flat[k, b])) == n_pix for b in range(flat.shape[1])] for k in range(flat.shape[0])]
    )
    gaps = np.abs(curve - theirs).max(-1)
    # Both fed camlang's ranking as a tie-free map (n - rank): only the tie order differs above.
    ranked = (n_pix - M.pixel_ranks(_stack(s))).float() / n_pix
    same = Setup(s.model, s.engine, s.x, s.masks, s.targets, {c: ranked[k] for k, c in enumerate(CAMS)})
    ours_r = _np(M.deletion_auc(model_fn, s.x, ranked, s.targets, steps, 0.0).curve)[..., 1:]
    theirs_r = np.stack(
        [
            np.asarray(
                metric(
                    model=s.model,
                    x_batch=_np(s.x),
                    y_batch=_np(s.targets),
                    a_batch=_a_batch(same, c),
                    softmax=True,
                    batch_size=64,
                )
            )
            for c in CAMS
        ]
    )[..., 2::3]
    gaps_r = np.abs(ours_r - theirs_r).max(-1)
    return Row(
        "deletion (curve, fill 0, 32 steps)",
        "PixelFlipping",
        f"{int((gaps < 1e-5).sum())}/{gaps.size} curves within 1e-5 as given ({int((~tie_free).sum())} maps "
        f"have tied pixels, worst {float(gaps.max()):.2f}); fed camlang's ranking as a tie-free map: "
        f"{int((gaps_r < 1e-5).sum())}/{gaps_r.size} within 1e-5 (max {float(gaps_r.max()):.1e})",
        t_ours,
        t_peer,
        (
            "Ties: camlang removes tied pixels by row-major index (stable sort); Quantus in numpy "
            "quicksort order (unspecified).",
            "Quantus's curve omits the unperturbed point and integrates with np.trapz(dx=1); camlang's AUC "
            "is the trapezoid over steps + 1 points on [0, 1].",
        ),
    )


def _pixel_imputer(quantus: Any, hw: int) -> Callable[..., np.ndarray]:
    """Quantus's imputer on whole pixels: its ROAD ranks the map broadcast over the 3 channels, so
    every pixel appears 3 times in a row; keep the first third of the distinct pixels."""

    def perturb(arr: np.ndarray, indices: np.ndarray, **kw: Any) -> np.ndarray:
        pixels = list(dict.fromkeys(int(i) % hw for i in np.asarray(indices).reshape(-1)))[
            : len(indices) // 3
        ]
        return quantus.functions.perturb_func.noisy_linear_imputation(arr, np.array(pixels, dtype=int), **kw)

    return perturb


def road_row(s: Setup, quantus: Any) -> Row:
    shares = list(range(10, 100, 10))  # percent removed, most relevant first
    x_cpu = s.x.detach()

    def kept_ours() -> np.ndarray:
        out = np.zeros((len(CAMS), s.x.shape[0], len(shares)))
        for k, cam in enumerate(CAMS):
            for j, q in enumerate(shares):
                imgs = torch.stack(
                    [
                        M.impute(x_cpu[b], M.removal_mask(s.maps[cam][b], 100 - q, "morf"), 0.0, None)
                        for b in range(s.x.shape[0])
                    ]
                )
                with torch.no_grad():
                    out[k, :, j] = _np(s.model(imgs).argmax(1) == s.targets)
        return out

    ours, t_ours = timed(kept_ours)
    hw = 64 * 64
    imputer = _pixel_imputer(quantus, hw)
    metric = quantus.ROAD(percentages=shares, noise=0.0, perturb_func=imputer, disable_warnings=True)
    metric.a_size = 3 * hw
    wrapped = quantus.helpers.model.pytorch_model.PyTorchModel(s.model, channel_first=True, softmax=False)

    def kept_peer() -> np.ndarray:
        return np.stack(
            [
                metric.evaluate_batch(
                    model=wrapped, x_batch=_np(s.x), y_batch=_np(s.targets), a_batch=_a_batch(s, c)
                )[0]
                for c in CAMS
            ]
        )

    theirs, t_peer = timed(kept_peer)
    agree = int((ours == theirs).sum())
    # Quantus's own entry point keeps only the first batch (its bug): compare with the all-image mean.
    full = quantus.ROAD(percentages=shares, noise=0.0, perturb_func=imputer, disable_warnings=True)
    full.a_size = 3 * hw
    first = full(
        model=s.model, x_batch=_np(s.x), y_batch=_np(s.targets), a_batch=_a_batch(s, CAMS[0]), batch_size=16
    )
    gap = max(abs(first[q] - theirs[0, :, j].mean()) for j, q in enumerate(shares))
    return Row(
        "ROAD MoRF (class kept, noise 0)",
        "ROAD",
        f"same outcome on {agree}/{ours.size} (cam, image, share)",
        t_ours,
        t_peer,
        (
            "camlang's ROAD metric is the target-logit change averaged over shares, MoRF and LeRF "
            "(pytorch-grad-cam's form); Quantus reports the share of images whose class is kept, MoRF only.",
            "Ties: camlang ranks with deletion's tie-break (row-major index); Quantus in quicksort order.",
            "Quantus bug: with one map for an RGB image its ROAD ranks (channel, pixel) entries and indexes "
            "past the pixel grid (IndexError); the bench maps those entries back to whole pixels.",
            f"Quantus bug: ROAD() with batch_size=16 averages only the first batch (off by up to {gap:.2f} "
            "from the 64-image mean here).",
        ),
    )


def _same_draws(s: Setup, radius: float, samples: int) -> Callable[..., np.ndarray]:
    """A Quantus perturb_func that adds camlang's draw s (its s-th call) to every image."""
    step = iter(range(samples))

    def perturb(arr: np.ndarray, indices: Any = None, indexed_axes: Any = None, **_: Any) -> np.ndarray:
        u = per_image_uniform(SEED, torch.arange(arr.shape[0]), "sensitivity", s.x.shape[1:], next(step))
        return arr + _np(radius * (2 * u - 1)).reshape(arr.shape)

    return perturb


def sensitivity_rows(s: Setup, quantus: Any, samples: int = 10, radius: float = 0.02) -> list[Row]:
    cam = CAMS[0]
    engine = CamEngine(s.engine.model, s.engine.layer, {cam: s.engine.cams[cam]})
    indices = torch.arange(s.x.shape[0])

    def cam_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return engine(x, t).maps[cam].detach()

    def explain(model: Any, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> np.ndarray:
        maps = cam_fn(torch.as_tensor(inputs), torch.as_tensor(targets).long())
        return _np(maps)[:, None]

    rows = []
    for name, ours_fn, cls in (
        ("max_sensitivity", M.max_sensitivity, quantus.MaxSensitivity),
        ("avg_sensitivity", M.avg_sensitivity, quantus.AvgSensitivity),
    ):
        ours, t_ours = timed(
            lambda f=ours_fn: f(cam_fn, s.x, s.targets, radius, samples, SEED, "relative", indices)
        )
        metric = cls(
            nr_samples=samples,
            lower_bound=radius,
            perturb_func=_same_draws(s, radius, samples),
            normalise=False,
            abs=False,
            disable_warnings=True,
        )
        theirs, t_peer = timed(
            lambda m=metric: np.asarray(
                m(
                    model=s.model,
                    x_batch=_np(s.x),
                    y_batch=_np(s.targets),
                    a_batch=_a_batch(s, cam),
                    explain_func=explain,
                    batch_size=64,
                )
            )
        )
        rows.append(
            Row(
                f"{name} (norm relative)",
                cls.__name__,
                _gap(_np(ours)[None], theirs[None]),
                t_ours,
                t_peer,
                (
                    f"Quantus's {cls.__name__} defaults (200 samples, radius 0.2, ||change|| / ||a||) are camlang's "
                    f"{name}(0.2, 200, \"relative\"); camlang's stdlib uses Yeh's unnormalised Frobenius norm, 10 draws, "
                    "radius 0.02 (Captum's defaults).",
                    "Quantus draws from numpy's global RNG; camlang per image from (seed, image index) (fed the same "
                    "draws here).",
                ),
            )
        )
    return rows


def main(only: str | None = None) -> None:
    try:
        import quantus
    except ImportError:
        print("Quantus comparison skipped: quantus is not installed (pip install 'camlang[bench]')")
        return
    warnings.filterwarnings("ignore")
    s = make_setup()
    print(
        f"(3) camlang vs Quantus {quantus.__version__}: 64 shapes images, demo CNN, maps of {', '.join(CAMS)} "
        "(sensitivity: gradcam)"
    )
    print(
        f"    {'camlang metric':36s} {'Quantus':24s} {'camlang s':>9s} {'Quantus s':>9s} {'ratio':>7s}  agreement"
    )
    rows: list[Row] = []
    parts: list[Callable[[], list[Row]]] = [
        lambda: complexity_rows(s, quantus),
        lambda: localisation_rows(s, quantus),
        lambda: [deletion_row(s, quantus)],
        lambda: [road_row(s, quantus)],
        lambda: sensitivity_rows(s, quantus),
    ]
    if only == "deletion":
        parts = [parts[2]]
    for part in parts:
        for r in part():
            rows.append(r)
            print(
                f"    {r.metric:36s} {r.peer:24s} {r.t_ours:9.3f} {r.t_peer:9.3f} {r.t_peer / r.t_ours:6.1f}x  "
                f"{r.agreement}",
                flush=True,
            )
    print("    definition differences:")
    seen: set[str] = set()
    for r in rows:
        for d in r.differences:
            if d not in seen:
                seen.add(d)
                print(f"    - {r.peer}: {d}")


if __name__ == "__main__":
    import sys

    torch.set_num_threads(2)
    main(sys.argv[1] if len(sys.argv) > 1 else None)
