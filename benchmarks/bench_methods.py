"""The seed comparison ("A Comparison of Saliency Methods"), reproduced on the demo CNN.

    python benchmarks/bench_methods.py [--images 16] [--out bench-methods] [--vgg16]

For Gradient, Grad-CAM, extremal perturbation, DeepCover (Tarantula) and guid-Xmage on the
synthetic shapes: seconds per image without and with the stopping criterion (the minimal
sufficient pixel set, `camlang.metrics.sufficient_fraction`, batched search), forward passes,
the parameters each method needs (Table I), the minimal-sufficient-set sizes, pointing game,
pairwise IoU of the sufficient sets, and a PNG grid of the sufficient sets. Then the Xmage
paper's direction accuracy for Grad-CAM, Grad-CAM++, Score-CAM and Xmage.

`--vgg16` times the same methods on a randomly initialised torchvision VGG16 at 224 x 224
(one image) and prints the ratio of our time to the paper's Table I (VGG16 on a GPU). Extremal
perturbation and DeepCover are timed on a few steps / tests and extrapolated linearly to the
paper's settings (800 steps, 500 tests); the output says so on those rows.

The synthesized CAM's row is not computed here (synthesis takes about a minute);
examples/compare_methods.cam reports it next to the same methods.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from camlang.backends.torch_eager import normalize_maps
from camlang.data import synthetic_shapes
from camlang.frontend.check import check_file
from camlang.methods import (
    deepcover,
    direction_accuracy,
    extremal_perturbation,
    vanilla_gradient,
    xmage_map,
)
from camlang.metrics import pointing_game, sufficient_fraction
from camlang.metrics._common import CallCounter
from camlang.models import load_demo_model
from camlang.paths import stdlib_dir
from camlang.runtime.cam_engine import CamEngine

# Table I of the seed paper: minutes per image on VGG16 (GPU), without / with stopping criterion.
PAPER_MINUTES = {
    "gradient": (1.5e-4, 2.9),
    "gradcam": (1.5e-4, 1.2),
    "extremal": (1.9e-1, 2.2),
    "deepcover": (41.3, 41.3),
}


@dataclass
class Row:
    name: str
    params: str
    map_s: float  # seconds for the whole batch, map only
    forwards: int
    maps: torch.Tensor  # normalized [B, H, W]
    note: str = ""


def _cams(names: tuple[str, ...]) -> dict[str, object]:
    program = check_file(stdlib_dir() / "cams.cam")
    return {n: program.cams[n].node for n in names}


def _timed(fn: Callable[[], torch.Tensor | tuple[torch.Tensor, int]]) -> tuple[float, torch.Tensor, int]:
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    if isinstance(out, tuple):
        return elapsed, out[0], out[1]
    return elapsed, out, -1


def method_rows(
    model: torch.nn.Module,
    layer: torch.nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    ex_steps: int,
    dc_tests: int,
) -> list[Row]:
    """Run each method once on the batch; maps normalized like every cam."""
    size = (x.shape[-2], x.shape[-1])
    b = x.shape[0]
    gen = torch.Generator().manual_seed(0)
    engine = CamEngine(model, layer, _cams(("gradcam",)))  # type: ignore[arg-type]
    specs: list[tuple[str, str, Callable[[], torch.Tensor | tuple[torch.Tensor, int]]]] = [
        ("gradient", "none", lambda: (vanilla_gradient(model, x, t), b)),
        ("gradcam", "target layer", lambda: (engine(x, t).maps["gradcam"], b)),
        (
            "extremal",
            f"area 0.05, {ex_steps} steps, blur pyramid 8 levels, lr 0.01",
            lambda: _extremal(model, x, t, ex_steps),
        ),
        (
            "deepcover",
            f"Tarantula, >= {dc_tests} mutants, 1-3 squares of 10-50%",
            lambda: _deepcover(model, x, t, dc_tests, gen),
        ),
        ("xmage", "none (float64)", lambda: (xmage_map(model, x, t), 2 * b)),
    ]
    rows = []
    for name, params, fn in specs:
        with torch.enable_grad():
            sec, raw, fw = _timed(fn)
        rows.append(Row(name, params, sec, fw, normalize_maps(raw.detach()[:, None].float(), size)))
    return rows


def _extremal(
    model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, steps: int
) -> tuple[torch.Tensor, int]:
    r = extremal_perturbation(model, x, t, areas=(0.05,), steps=steps)
    return r.map, r.forward_passes


def _deepcover(
    model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, tests: int, gen: torch.Generator
) -> tuple[torch.Tensor, int]:
    r = deepcover(
        model,
        x,
        t,
        "tarantula",
        min_tests=tests,
        max_tests=10 * tests,
        round_size=min(100, tests),
        generator=gen,
    )
    return r.map, r.forward_passes


def sufficient_masks(maps: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """The kept top-`pixels` set of each map (ties: smaller row-major index first), bool [B, H, W]."""
    b, h, w = maps.shape
    order = torch.argsort(maps.reshape(b, -1), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w).expand(b, -1).contiguous())
    return (rank < pixels[:, None]).reshape(b, h, w)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    inter = (a & b).flatten(1).sum(1).double()
    union = (a | b).flatten(1).sum(1).double()
    return float((inter / union.clamp_min(1)).mean())


def write_grid(path: Path, raw: torch.Tensor, masks: dict[str, torch.Tensor], count: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(masks)
    count = min(count, raw.shape[0])
    fig, axes = plt.subplots(
        count, len(names) + 1, figsize=(1.6 * (len(names) + 1), 1.6 * count), squeeze=False
    )
    for i in range(count):
        img = raw[i].permute(1, 2, 0).numpy()
        axes[i, 0].imshow(img)
        for j, name in enumerate(names, start=1):
            kept = masks[name][i].numpy()[..., None]
            axes[i, j].imshow(np.where(kept, img, 0.5 * img + 0.5))
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        if i == 0:
            axes[i, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle("minimal sufficient pixel sets (kept pixels in colour)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def demo(args: argparse.Namespace) -> None:
    model = load_demo_model().module.eval()
    layer = model.get_submodule("features.6")
    batch = synthetic_shapes(args.images, 64, seed=1).get(list(range(args.images)))
    assert batch.masks is not None
    x, b = batch.x, args.images
    with torch.no_grad():
        t = model(x).argmax(1)

    def model_fn(inp: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(inp)

    rows = method_rows(model, layer, x, t, args.extremal_steps, args.deepcover_tests)
    suff: dict[str, torch.Tensor] = {}
    print(
        f"\ndemo CNN, {b} synthetic shapes at 64x64; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    head = f"{'method':10} {'s/img no stop':>13} {'s/img stop':>10} {'fwd/img':>8} {'+stop fwd':>9} "
    print(head + f"{'suff. frac':>10} {'pointing':>8}  parameters")
    for row in rows:
        counter = CallCounter()
        start = time.perf_counter()
        r = sufficient_fraction(model_fn, x, row.maps, t, counter=counter)
        stop_s = time.perf_counter() - start
        suff[row.name] = sufficient_masks(row.maps, r.pixels)
        hit = float(pointing_game(row.maps, batch.masks, 15).float().mean())
        print(
            f"{row.name:10} {row.map_s / b:13.4f} {(row.map_s + stop_s) / b:10.4f} {row.forwards / b:8.1f} "
            f"{counter.images / b:9.1f} {float(r.fraction.mean()):10.4f} {hit:8.3f}  {row.params}"
        )
    print("\npairwise IoU of the minimal sufficient sets (mean over images)")
    names = list(suff)
    print(" " * 10 + "".join(f"{n:>10}" for n in names))
    for a in names:
        print(f"{a:10}" + "".join(f"{iou(suff[a], suff[c]):10.3f}" for c in names))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_grid(out / "sufficient_sets.png", batch.raw, suff, args.grid)
    print(f"grid of sufficient sets: {out / 'sufficient_sets.png'}")
    print("(the synthesized CAM's row: run examples/compare_methods.cam; synthesis is not repeated here)")

    print("\ndirection accuracy (±1% per pixel, 64 pixels per image, model in float64)")
    engine = CamEngine(model, layer, _cams(("gradcam", "gradcampp", "scorecam")))  # type: ignore[arg-type]
    maps = dict(engine(x, t).maps)
    with torch.enable_grad():
        maps["xmage (signed)"] = xmage_map(model, x, t)
    maps["all ones (baseline)"] = torch.ones_like(maps["gradcam"])
    for name, m in maps.items():
        acc = direction_accuracy(model, x, t, m, generator=torch.Generator().manual_seed(0))
        print(f"  {name:20} {float(acc.mean()):.3f}")
    print("  paper (Xmage, ASE'24): Xmage 100%, Grad-CAM family 48-62%")


def vgg16(args: argparse.Namespace) -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.vgg16(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)

    def model_fn(inp: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(inp)

    with torch.no_grad():
        start = time.perf_counter()
        t = model(x).argmax(1)
        forward_s = time.perf_counter() - start
    ex_steps, dc_tests = args.vgg_steps, args.vgg_tests
    rows = method_rows(model, model.features[29], x, t, ex_steps, dc_tests)
    full = {"extremal": 800 / ex_steps, "deepcover": 500 / dc_tests}
    print(
        f"\nVGG16 (random weights), 1 image 224x224, torch {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}; one forward pass {forward_s:.2f} s"
    )
    print(
        f"{'method':10} {'ours no stop':>12} {'ours stop':>10} {'paper':>8} {'paper st':>8} {'ratio':>8} "
        f"{'ratio st':>8} {'fwd':>6} {'+stop':>6}  note"
    )
    for row in rows:
        counter = CallCounter()
        start = time.perf_counter()
        sufficient_fraction(model_fn, x, row.maps, t, counter=counter, chunk_size=16)
        stop_s = time.perf_counter() - start
        scale = full.get(row.name, 1.0)
        map_s = row.map_s * scale
        note = (
            f"extrapolated x{scale:.0f} from {row.params.split(',')[1].strip() if row.name == 'extremal' else dc_tests}"
            if scale != 1.0
            else ""
        )
        paper = PAPER_MINUTES.get(row.name)
        ours_min, ours_stop_min = map_s / 60, (map_s + stop_s) / 60
        if paper is None:
            ratio = ratio_st = "-"
            p0 = p1 = "-"
        else:
            ratio, ratio_st = f"{ours_min / paper[0]:.3g}", f"{ours_stop_min / paper[1]:.3g}"
            p0, p1 = f"{paper[0]:.2g}", f"{paper[1]:.2g}"
        fwd = int(row.forwards * scale) if row.forwards > 0 else row.forwards
        print(
            f"{row.name:10} {ours_min:11.4f}m {ours_stop_min:9.4f}m {p0:>8} {p1:>8} {ratio:>8} {ratio_st:>8} "
            f"{fwd:6d} {counter.images:6d}  {note}"
        )
    print("ratio = our minutes / the paper's minutes (their GPU, our CPU); paper: Table I, VGG16")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--grid", type=int, default=6, help="images in the sufficient-set grid")
    parser.add_argument("--out", default="bench-methods", help="folder for the PNG grid")
    parser.add_argument("--extremal-steps", type=int, default=80)
    parser.add_argument("--deepcover-tests", type=int, default=100)
    parser.add_argument("--vgg16", action="store_true", help="also time the methods on VGG16 at 224x224")
    parser.add_argument(
        "--vgg-steps", type=int, default=4, help="extremal steps timed on VGG16 (then x 800/steps)"
    )
    parser.add_argument(
        "--vgg-tests", type=int, default=20, help="DeepCover tests timed on VGG16 (then x 500/tests)"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    demo(args)
    if args.vgg16:
        vgg16(args)


if __name__ == "__main__":
    main()
