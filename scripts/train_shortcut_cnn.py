"""Train the shortcut demo CNN (`shortcut_cnn`) and write `models/shortcut_cnn.pt`.

The network is the demo `ShapesCNN` architecture trained on the *shortcut* variant of the
synthetic shapes: in training, each class's shape comes with one colour family 95% of the
time (`synthetic_shapes(..., shortcut=0.95)`). The colour is an easier cue than the shape, so
the network learns it and fails on the shifted split, where colour is independent of the class
(`synthetic_shapes(..., shortcut=0)`). This is the test bed for the concept heatmaps.

Reproduce the shipped checkpoint (from the repository root, CPU, single-threaded on purpose):

    .venv/bin/python scripts/train_shortcut_cnn.py

Trains for a short budget on `synthetic_shapes(count=2000, seed=20, shortcut=0.95)` with the 8
flips/rotations as augmentation (they keep colour), then reports the accuracy on the shortcut
distribution (`seed=21`) and on the shifted split (`seed=22`, colour independent). Exits with
status 1, writing nothing, unless the network is accurate in distribution (>= --min-accuracy)
*and* has learned the shortcut (shifted accuracy at least --min-gap below it).
Cost: well under a minute of CPU time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_shapes_cnn import fit  # noqa: E402

from camlang.data import synthetic_shapes  # noqa: E402
from camlang.models.demo import ShapesCNN  # noqa: E402


def evaluate(model: ShapesCNN, count: int, seed: int, shortcut: float) -> float:
    """Top-1 accuracy of `model` on `synthetic_shapes(count, 64, seed, shortcut=shortcut)`."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for batch in synthetic_shapes(count, size=64, seed=seed, shortcut=shortcut).batches(256):
            correct += int((model(batch.x).argmax(1) == batch.labels).sum())
    return correct / count


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate, save; returns the process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-count", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--shortcut", type=float, default=0.95)
    ap.add_argument("--min-accuracy", type=float, default=0.85)
    ap.add_argument("--min-gap", type=float, default=0.15)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "shortcut_cnn.pt")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.time()
    data = synthetic_shapes(args.train_count, size=64, seed=20, shortcut=args.shortcut)
    train = data.get(range(len(data)))
    assert train.labels is not None
    print(f"generated {len(data)} training images in {time.time() - start:.1f}s", flush=True)

    model = ShapesCNN()

    def report(epoch: int, loss: float) -> None:
        print(f"epoch {epoch + 1}: loss {loss:.4f} ({time.time() - start:.0f}s)", flush=True)

    fit(model, train.x, train.labels, args.epochs, args.batch_size, args.lr, pct_start=0.2, on_epoch=report)

    in_dist = evaluate(model, 512, seed=21, shortcut=args.shortcut)
    shifted = evaluate(model, 512, seed=22, shortcut=0.0)
    print(f"accuracy with the shortcut (seed=21, shortcut={args.shortcut}): {in_dist:.4f}")
    print(f"accuracy on the shifted split (seed=22, colour independent): {shifted:.4f}")
    if in_dist < args.min_accuracy or in_dist - shifted < args.min_gap:
        print(
            f"need >= {args.min_accuracy} with the shortcut and a gap >= {args.min_gap}: "
            f"not writing {args.out}",
            file=sys.stderr,
        )
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} kB) in {time.time() - start:.0f}s total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
