"""Images per model call on a CPU: throughput by call size, and whole runs with and without the rule.

camlang cuts CPU model calls to about `CPU_CALL_VALUES` input values (`images_per_call` in
camlang/metrics/_common.py): large batches are slower per image once their activations leave the
caches. This benchmark measures that claim where users are:

1. Throughput (images per second, no gradients) of each model at call sizes 1..256, with 1 and 2
   intra-op threads; the size the rule picks is marked, and its throughput is printed as a ratio
   against the fixed sizes camlang used before (64 for Score-CAM's masked passes, 128/256 for
   the metrics) and against the best size measured.
2. `camlang run` of an evaluate program (Grad-CAM and Score-CAM, or three gradient CAMs on the
   224x224 network; deletion with 16 steps and average drop) in
   this process, with the rule and without it (`CPU_CALL_VALUES` set out of reach, so the old
   fixed sizes apply), alternated `--reps` times; the median ratio is printed.

Models: the demo CNN (64x64, always); the CIFAR-10 ResNet-20 (32x32) and the ImageNet
MobileNetV2 (224x224) from ../shared/data when it is present (skipped with a message otherwise).

Usage: python benchmarks/bench_call_size.py [--threads 1,2] [--seconds 1.5] [--reps 3]
       [--images 128] [--skip-throughput] [--skip-runs]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: camlang's fixed call sizes before the rule: Score-CAM's masked passes, the metrics.
OLD_SIZES = (64, 256)


@dataclass(frozen=True)
class Net:
    name: str
    checkpoint: Path
    arch: str
    layer: str
    size: int
    data: str  # the `data` declaration of the run (with {n} for the image count)


def nets() -> list[Net]:
    """The demo CNN, and the shared-data networks that are present."""
    candidates = [
        Net(
            "demo CNN 64x64",
            ROOT / "models" / "shapes_cnn.pt",
            "shapes_cnn",
            "features.6",
            64,
            "synthetic_shapes(count = {n}, size = 64, seed = 1)",
        ),
        Net(
            "CIFAR-10 ResNet-20 32x32",
            SHARED / "cifar10_resnet_akamaster" / "resnet20-12fca82f.th",
            "cifar_resnet20",
            "layer3",
            32,
            f'images("{SHARED / "cifar10_test_1k"}", size = 32, normalize = "imagenet", limit = {{n}})',
        ),
        Net(
            "ImageNet MobileNetV2 224x224",
            SHARED / "imagenet_mobilenet_v2" / "mobilenet_v2_coral_tf1qat_dequant_torchvision.pth",
            "mobilenet_v2_tf",
            "features[-1]",
            224,
            f'images("{SHARED / "coral_test_images"}", size = 224, '
            "normalize = [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], limit = {n})",
        ),
    ]
    found = [net for net in candidates if net.checkpoint.is_file()]
    for net in candidates:
        if net not in found:
            print(f"({net.name} is skipped: {net.checkpoint} is absent)")
    return found


def throughput(model: torch.nn.Module, size: int, batch: int, seconds: float) -> float:
    """Images per second of `model` on calls of `batch` random images, no gradients."""
    x = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        model(x)  # warm-up (allocator, oneDNN primitives)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(x)
            n += batch
    return n / (time.perf_counter() - start)


def part_throughput(found: list[Net], threads: list[int], seconds: float) -> None:
    from camlang.metrics._common import images_per_call
    from camlang.models.checkpoint import load_checkpoint

    print("\n== 1. images per second by call size (no gradients)")
    for net in found:
        model = load_checkpoint(net.checkpoint, net.arch).module.eval()
        pick = images_per_call(torch.zeros(1, 3, net.size, net.size), 256)
        sizes = [b for b in SIZES if b * net.size * net.size <= 256 * 64 * 64]  # bounded memory
        for t in threads:
            torch.set_num_threads(t)
            rates = {b: throughput(model, net.size, b, seconds) for b in sorted({*sizes, pick})}
            row = "  ".join(f"{b}:{r:,.0f}" + ("*" if b == pick else "") for b, r in rates.items())
            best = max(rates, key=rates.__getitem__)
            old = "  ".join(f"vs {b}: {rates[pick] / rates[b]:.2f}x" for b in OLD_SIZES if b in rates)
            print(f"{net.name}, {t} thread(s): {row}")
            print(f"    rule picks {pick} (*): {old}  vs best ({best}): {rates[pick] / rates[best]:.2f}x")


def program(net: Net, images: int) -> str:
    # Score-CAM on the 224x224 MobileNetV2 is 1,280 forwards per image: Grad-CAM-family CAMs there
    cams = "gradcam, gradcampp, layercam" if net.size >= 224 else "gradcam, scorecam"
    return f"""import "stdlib/cams.cam"
import "stdlib/metrics.cam"
model m = checkpoint("{net.checkpoint}", arch = "{net.arch}") at "{net.layer}"
data d = {net.data.format(n=images)}
metric deletion_16 = minimize deletion_auc(L, 16)
evaluate [{cams}] on m, d with [deletion_16, average_drop]
"""


def timed_run(path: Path, out: Path, rule: bool) -> float:
    """Seconds of one in-process `camlang run`, with or without the call-size rule."""
    import camlang.metrics._common as common
    from camlang.cli import main

    saved = common.CPU_CALL_VALUES
    common.CPU_CALL_VALUES = saved if rule else 1 << 62
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["run", str(path), "--out", str(out)])
    except SystemExit as stop:
        code = stop.code
    finally:
        common.CPU_CALL_VALUES = saved
    if code not in (0, None):
        sys.exit(f"camlang run {path} failed with exit status {code}")
    return time.perf_counter() - start


def part_runs(found: list[Net], images: int, reps: int) -> None:
    print(f"\n== 2. camlang run, evaluate of 2-3 CAMs x [deletion_16, average_drop], {reps} reps")
    with tempfile.TemporaryDirectory() as tmp:
        for net in found:
            n = min(images, 11) if net.size >= 224 else images  # 11 coral photos
            path = Path(tmp) / f"{net.arch}.cam"
            path.write_text(program(net, n))
            timed_run(path, Path(tmp) / "warm", True)  # imports, first-call costs
            old, new = [], []
            for _ in range(reps):
                old.append(timed_run(path, Path(tmp) / "old", False))
                new.append(timed_run(path, Path(tmp) / "new", True))
            o, w = statistics.median(old), statistics.median(new)
            print(
                f"{net.name}, {n} images, {torch.get_num_threads()} thread(s): fixed sizes {o:.1f} s, "
                f"rule {w:.1f} s, ratio {o / w:.2f}x (load {os.getloadavg()[0]:.1f})"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="intra-op thread counts for part 1")
    ap.add_argument("--seconds", type=float, default=1.5, help="seconds per throughput cell")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--images", type=int, default=128, help="images per run in part 2")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-runs", action="store_true")
    args = ap.parse_args()
    found = nets()
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores")
    if not args.skip_throughput:
        part_throughput(found, [int(t) for t in args.threads.split(",")], args.seconds)
    if not args.skip_runs:
        torch.set_num_threads(os.cpu_count() or 1)
        part_runs(found, args.images, args.reps)


if __name__ == "__main__":
    main()
