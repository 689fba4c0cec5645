"""Train BanditNet, the 5-6-6-2 ReLU network of the saliency-robustness examples.

Five analog arms with rewards [100, 100, 300, 100, 300]; an input x in [0, 1]^5 says how much of
each arm is pulled, and the label is "high" (class 1) when the total reward sum(r_i * x_i) exceeds
300, else "low" (class 0).

Training set: 20 of the 32 binary arm configurations, drawn without replacement with
torch.Generator seed 0 (every binary configuration has a well-defined label and the held-out 12
show whether the net generalises). Full-batch Adam, 3000 steps, lr 0.01, fixed init seed: the run
is deterministic on CPU. Writes the state_dict of the nn.Sequential to models/banditnet.pt.

Usage: python scripts/train_banditnet.py [--out models/banditnet.pt]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch
from torch import nn

REWARDS = torch.tensor([100.0, 100.0, 300.0, 100.0, 300.0])
THRESHOLD = 300.0


def banditnet() -> nn.Sequential:
    """The architecture: Linear(5,6), ReLU, Linear(6,6), ReLU, Linear(6,2)."""
    return nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))


def label(x: torch.Tensor) -> torch.Tensor:
    """1 ("high") when the total reward exceeds 300, else 0."""
    return (x @ REWARDS > THRESHOLD).long()


def training_set(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    configs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(configs), generator=g)[:n]
    x = configs[pick]
    return x, label(x)


def train(steps: int = 3000, seed: int = 0) -> tuple[nn.Sequential, float, float]:
    torch.manual_seed(seed)
    net = banditnet()
    x, y = training_set()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        train_acc = float((net(x).argmax(1) == y).float().mean())
        allx = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))
        all_acc = float((net(allx).argmax(1) == label(allx)).float().mean())
    return net, train_acc, all_acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "models" / "banditnet.pt"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    net, train_acc, all_acc = train()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out)
    print(f"BanditNet: train accuracy {train_acc:.2f}, all 32 binary configs {all_acc:.2f} -> {args.out}")


if __name__ == "__main__":
    main()
