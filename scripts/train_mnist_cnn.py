"""Train the small MNIST CNN (`camlang.models.mnist_cnn`) that the verifier's convolution tests check.

Offline: the images come from the MNIST idx files in ../shared/data/mnist ($CAMLANG_SHARED_DATA/mnist
when that is set, or --data). That
folder holds only the 10,000 *test* images (its train-labels file has no images beside it), so
the net is trained on test images 1000-9999 and evaluated on test images 0-999, which it never
sees; the benchmark (benchmarks/bench_cnn.py) and the tests check images among those 1000.

Deterministic on CPU: torch.manual_seed(0) for the init and a torch.Generator(seed 0) for the
batch order; Adam (lr 1e-3), batch 64, 10 epochs, one thread (under a minute on one core).
Writes a state_dict (`torch.load(weights_only=True)` loads it; 170 kB) and, with --onnx, the
same network as an ONNX file (torch's TorchScript exporter; no network needed).

Usage: python scripts/train_mnist_cnn.py [--data DIR] [--out models/mnist_cnn.pt] [--onnx PATH]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from camlang.data.idx import read_idx
from camlang.models.mnist_cnn import MNIST_CNN_CHECKPOINT, mnist_cnn

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CAMLANG_SHARED_DATA", ROOT.parent / "shared" / "data")) / "mnist"
#: Test images [0, HELD_OUT) are never trained on: they are what the verifier is asked about.
HELD_OUT = 1000


def load_mnist_test(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The MNIST test images `[10000, 1, 28, 28]` in [0, 1] (float32) and their labels."""
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of `net` on `(x, y)`."""
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def train(x: torch.Tensor, y: torch.Tensor, epochs: int = 10, seed: int = 0) -> nn.Sequential:
    """Train `mnist_cnn()` on `(x, y)` with Adam; deterministic for a given seed."""
    torch.manual_seed(seed)
    net = mnist_cnn().train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=g)
        total = 0.0
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}")
    return net.eval()


def export_onnx(net: nn.Module, path: Path) -> None:
    """Write `net` as ONNX (input `[1, 1, 28, 28]`, output `[1, 10]`)."""
    torch.onnx.export(
        net,
        (torch.zeros(1, 1, 28, 28),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        dynamo=False,
    )


def main() -> None:
    """Train, report held-out accuracy, save the state_dict (and optionally ONNX)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="folder with the MNIST idx files")
    parser.add_argument("--out", type=Path, default=MNIST_CNN_CHECKPOINT)
    parser.add_argument("--onnx", type=Path, default=None, help="also write an ONNX file here")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = load_mnist_test(args.data)
    net = train(x[HELD_OUT:], y[HELD_OUT:], args.epochs)
    print(f"train accuracy {accuracy(net, x[HELD_OUT:], y[HELD_OUT:]):.4f}")
    print(f"held-out accuracy (test images 0-{HELD_OUT - 1}) {accuracy(net, x[:HELD_OUT], y[:HELD_OUT]):.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}")
    if args.onnx is not None:
        export_onnx(net, args.onnx)
        print(f"wrote {args.onnx}")


if __name__ == "__main__":
    main()
