"""Train the demo CNN (`shapes_cnn`) on synthetic shapes and write `models/shapes_cnn.pt`.

Reproduce the shipped checkpoint (from the repository root, CPU, deterministic on a given
machine; single-threaded on purpose):

    .venv/bin/python scripts/train_shapes_cnn.py

Trains for 16 epochs (4,000 steps of 32) on `synthetic_shapes(count=8000, seed=0)` with the 8
flips/rotations as augmentation, AdamW and a one-cycle schedule; evaluates on
`synthetic_shapes(count=512, size=64, seed=1)` after every epoch, prints the test accuracy and
writes the state_dict. Exits with status 1 (writing nothing) below `--min-accuracy`.
Cost: about 3 minutes of CPU time (one core); wall time grows with other load on the machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camlang.data import synthetic_shapes  # noqa: E402
from camlang.models.demo import ShapesCNN  # noqa: E402


def evaluate(model: ShapesCNN, count: int, seed: int) -> float:
    """Top-1 accuracy of `model` on `synthetic_shapes(count, 64, seed)`."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for batch in synthetic_shapes(count, size=64, seed=seed).batches(256):
            correct += int((model(batch.x).argmax(1) == batch.labels).sum())
    return correct / count


def fit(
    model: ShapesCNN,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    pct_start: float,
    on_epoch: Callable[[int, float], None],
) -> None:
    """Train in place: AdamW with a one-cycle schedule, one random flip/rotation per batch (seeded).

    `on_epoch(epoch, mean_loss)` is called after every epoch. Shared by the shortcut CNN's script.
    """
    n = len(x_all)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=pct_start)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            x, y = x_all[idx], y_all[idx]
            # The 8 flips/rotations keep every class: free extra data.
            k = int(torch.randint(8, (), generator=gen))
            x = torch.rot90(x, k % 4, dims=(2, 3))
            if k >= 4:
                x = x.flip(-1)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        on_epoch(epoch, total / n)


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate, save; returns the process exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-count", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=6e-3)
    ap.add_argument("--min-accuracy", type=float, default=0.95)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "shapes_cnn.pt")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    # One thread: deterministic, and far faster than two on a busy 2-core machine.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.time()
    data = synthetic_shapes(args.train_count, size=64, seed=0)
    train = data.get(range(len(data)))  # 8000 x 3 x 64 x 64 floats: ~400 MB
    assert train.labels is not None
    print(f"generated {len(data)} training images in {time.time() - start:.1f}s", flush=True)

    model = ShapesCNN()

    def report(epoch: int, loss: float) -> None:
        acc = evaluate(model, 512, seed=1)
        print(f"epoch {epoch + 1}: loss {loss:.4f}  test acc {acc:.4f}  ({time.time() - start:.0f}s)")
        sys.stdout.flush()

    fit(model, train.x, train.labels, args.epochs, args.batch_size, args.lr, pct_start=0.15, on_epoch=report)

    acc = evaluate(model, 512, seed=1)
    print(f"test accuracy on synthetic_shapes(count=512, size=64, seed=1): {acc:.4f}")
    if acc < args.min_accuracy:
        print(f"accuracy below {args.min_accuracy}: not writing {args.out}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} kB) in {time.time() - start:.0f}s total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
