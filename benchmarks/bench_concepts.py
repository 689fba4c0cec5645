"""Semantic heatmaps on 10,000 synthetic images: camlang's batched pipeline vs a per-image loop.

Both compute the same thing, from the same rendered images (rendering is not timed): the
correct and incorrect semantic heatmaps of every class over 8 probe concepts (colour families,
size) on the shortcut CNN's penultimate features.

- camlang: `extract_features` (one batched forward pass per 64 images (faster than 256 on one CPU thread), shared by every
  concept) + `ProbeSource.scores` + `semantic_heatmaps` (one comparison tensor, one matmul).
- peer: the straightforward loop, one image at a time: a forward pass, the probe logits, then
  a double loop over concept pairs accumulating counts.

The script checks that both give the same heatmaps and prints two ratios: end to end (forward
passes included; the CNN's arithmetic is the same on both sides, so this measures batching) and
the heatmap step alone, from the same `[N, K]` scores (batched tensor ops vs Python loops).
No pass/fail target: the forward pass dominates the end-to-end time and its arithmetic is the
same batched or not (single-threaded here), so expect a small end-to-end ratio; the batched
heatmap step is where vectorising pays. The exit status is 1 only when the results disagree.
Run: nice -n 10 python benchmarks/bench_concepts.py [--count 10000]

`--real` runs instead the concepts pipeline on CIFAR-10 ResNet-20 and ResNet-56 (monitor and
combined detector, PGD detection, discovered concepts, fault localisation): see
`benchmarks/bench_concepts_real.py`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camlang.concepts import extract_features, fit_probes, semantic_heatmaps  # noqa: E402
from camlang.concepts.features import PENULTIMATE, Features, forward_with_features  # noqa: E402
from camlang.data import SHAPE_CLASSES, synthetic_shapes  # noqa: E402
from camlang.data.base import Batch, Dataset  # noqa: E402
from camlang.data.shapes import COLOUR_FAMILIES, SHAPE_CONCEPTS  # noqa: E402
from camlang.models.checkpoint import load_checkpoint  # noqa: E402

CONCEPTS = [*COLOUR_FAMILIES, "small", "large"]


class _Rendered(Dataset):
    """Already-rendered images as a dataset, so that rendering stays out of the timing."""

    def __init__(self, batch: Batch) -> None:
        self.name, self.kind, self.size, self.channels = "rendered", "rendered", batch.x.shape[-1], 3
        self.normalization = ((0.0,) * 3, (1.0,) * 3)
        self.class_names, self.has_labels, self.has_masks = list(SHAPE_CLASSES), True, False
        self.concept_names = list(SHAPE_CONCEPTS)
        self._batch = batch
        super().__init__(len(batch))

    def _load(self, base_indices: torch.Tensor) -> Batch:
        b = self._batch
        return Batch(
            b.x[base_indices],
            b.raw[base_indices],
            b.labels[base_indices],
            None,
            [],
            base_indices,
            b.concepts[base_indices],
        )


def per_image_rows(model: torch.nn.Module, batch: Batch, probes) -> list[tuple[list[float], int, int]]:  # noqa: ANN001
    """The peer's forward part: one image at a time, probe logits as Python lists."""
    rows = []
    for n in range(len(batch)):
        logits, pooled = forward_with_features(model, batch.x[n : n + 1], [PENULTIMATE])
        rows.append(
            (probes.logits(pooled[PENULTIMATE])[0].tolist(), int(batch.labels[n]), int(logits.argmax(1)))
        )
    return rows


def loop_heatmaps(rows: list[tuple[list[float], int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps from per-image (scores, label, prediction), with Python loops over concept pairs."""
    k, c = len(CONCEPTS), len(SHAPE_CLASSES)
    counts = [[[[0] * k for _ in range(k)] for _ in range(c)] for _ in range(2)]
    totals = [[0] * c for _ in range(2)]
    for scores, label, pred in rows:
        wrong = int(pred != label)
        totals[wrong][label] += 1
        cell = counts[wrong][label]
        for i in range(k):
            for j in range(k):
                if scores[i] > scores[j]:
                    cell[i][j] += 1
    freq = torch.tensor(counts, dtype=torch.float32) / torch.tensor(totals).clamp_min(1)[:, :, None, None]
    return freq[0], freq[1]


def main(argv: list[str] | None = None) -> int:
    """Time both, check agreement, print the ratios; exit 1 when the heatmaps disagree."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--real", action="store_true", help="CIFAR-10 ResNet-20/56 instead (shared data)")
    ap.add_argument("--shared", default=None, help="shared data folder (default ../shared/data)")
    ap.add_argument(
        "--data", default="~/.cache/camlang/cifar10_concepts", help="make_cifar_concepts.py output"
    )
    ap.add_argument("--out", default="bench_concepts_real", help="results.json and patch grids")
    ap.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    ap.add_argument("--fit-attack", choices=("fgsm", "pgd2"), default="pgd2")
    ap.add_argument("--adv-count", type=int, default=500, help="images per split attacked")
    args = ap.parse_args(argv)
    if args.real:
        from bench_concepts_real import run_real

        return run_real(args, ROOT)
    torch.set_num_threads(1)  # both sides on one core: a fair, quiet comparison on a shared box
    model = load_checkpoint(ROOT / "models" / "shortcut_cnn.pt", "shapes_cnn").module.eval()
    cols = [SHAPE_CONCEPTS.index(c) for c in CONCEPTS]
    probes = fit_probes(
        extract_features(model, synthetic_shapes(400, seed=30), [PENULTIMATE]),
        extract_features(model, synthetic_shapes(200, seed=31), [PENULTIMATE]),
        PENULTIMATE,
        CONCEPTS,
        cols,
    )
    # Chunks of 1,000 images, the two sides interleaved, so that load from other work on a shared
    # machine falls on both alike; rendering is outside the timed regions.
    render = batched = loop = 0.0
    parts: list[Features] = []
    rows: list[tuple[list[float], int, int]] = []
    for first in range(0, args.count, 1000):
        started = time.perf_counter()
        idx = range(first, min(first + 1000, args.count))
        batch = synthetic_shapes(args.count, seed=70).get(idx)
        render += time.perf_counter() - started
        started = time.perf_counter()
        parts.append(extract_features(model, _Rendered(batch), [PENULTIMATE], batch_size=64))
        batched += time.perf_counter() - started
        started = time.perf_counter()
        rows += per_image_rows(model, batch, probes)
        loop += time.perf_counter() - started
    print(f"rendered {args.count} images in {render:.1f} s (not timed below)")
    feats = Features(
        torch.cat([f.logits for f in parts]),
        {PENULTIMATE: torch.cat([f.pooled[PENULTIMATE] for f in parts])},
        torch.cat([f.labels for f in parts]),
        None,
        (),
    )
    started = time.perf_counter()
    heat = semantic_heatmaps(probes.scores(feats), feats.labels, feats.predictions, CONCEPTS, SHAPE_CLASSES)
    batched += time.perf_counter() - started
    started = time.perf_counter()
    correct, incorrect = loop_heatmaps(rows)
    loop += time.perf_counter() - started

    same = torch.allclose(torch.nan_to_num(heat.correct), correct, atol=1e-5) and torch.allclose(
        torch.nan_to_num(heat.incorrect), incorrect, atol=1e-5
    )

    scores = probes.scores(feats)
    started = time.perf_counter()
    semantic_heatmaps(scores, feats.labels, feats.predictions, CONCEPTS, SHAPE_CLASSES)
    step_batched = time.perf_counter() - started
    started = time.perf_counter()
    loop_heatmaps(rows)
    step_loop = time.perf_counter() - started

    ratio, step_ratio = loop / batched, step_loop / step_batched
    print(
        f"semantic heatmaps of {len(SHAPE_CLASSES)} classes x {len(CONCEPTS)} concepts on {args.count} images"
    )
    print(f"  end to end, camlang (batched, one shared forward pass): {batched:8.3f} s")
    print(f"  end to end, per-image loop:                             {loop:8.3f} s")
    print(f"  ratio: {ratio:.1f}x; heatmaps identical: {same}")
    print(f"  heatmap step alone, batched: {step_batched:.4f} s, loops: {step_loop:.3f} s")
    print(f"  ratio: {step_ratio:.0f}x")
    if not same:
        print("MISMATCH: the two computations disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
