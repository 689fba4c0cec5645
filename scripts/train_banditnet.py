"""Train BanditNet, the 5-6-6-2 ReLU network of the saliency-robustness examples.

Five analog arms with rewards [100, 100, 300, 100, 300]; an input x in [0, 1]^5 says how much of
each arm is pulled, and the label is "high" (class 1) when the total reward sum(r_i * x_i) exceeds
300, else "low" (class 0).

The seed protocol, for seed k: the training set is 20 of the 32 binary arm configurations, drawn
without replacement with torch.Generator seed k (every binary configuration has a well-defined
label and the held-out 12 show whether the net generalises); the initial weights come from
torch.manual_seed(k); training is full-batch Adam, 3000 steps, lr 0.01. The run is deterministic on
CPU. Seed 0 is the shipped models/banditnet.pt; seeds 1-10 are the BanditNet family in
models/banditnet_family/seed_<k>.pt, used by the verification tests and benchmarks.

Usage: python scripts/train_banditnet.py [--seed K] [--out PATH]
       python scripts/train_banditnet.py --family   (writes seeds 1-10 into models/banditnet_family/)
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
    """``n`` of the 32 binary configurations, drawn without replacement by ``seed``, with labels."""
    configs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=5)))
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(configs), generator=g)[:n]
    x = configs[pick]
    return x, label(x)


FAMILY_SEEDS = tuple(range(1, 11))
FAMILY_DIR = Path(__file__).resolve().parents[1] / "models" / "banditnet_family"


def train(steps: int = 3000, seed: int = 0) -> tuple[nn.Sequential, float, float]:
    """Train one BanditNet under the seed protocol (data draw and init both from ``seed``)."""
    torch.manual_seed(seed)
    net = banditnet()
    x, y = training_set(seed=seed)
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


def load_family() -> dict[int, nn.Sequential]:
    """The shipped BanditNet family, seed -> net in eval mode."""
    nets = {}
    for k in FAMILY_SEEDS:
        net = banditnet()
        net.load_state_dict(torch.load(FAMILY_DIR / f"seed_{k}.pt", weights_only=True))
        nets[k] = net.eval()
    return nets


def _train_and_save(seed: int, out: Path) -> None:
    net, train_acc, all_acc = train(seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    print(
        f"BanditNet seed {seed}: train accuracy {train_acc:.2f}, all 32 binary configs {all_acc:.2f} -> {out}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="seed of the data draw and the init")
    ap.add_argument("--out", default=None, help="default: models/banditnet.pt for seed 0, else seed_<k>.pt")
    ap.add_argument("--family", action="store_true", help="train seeds 1-10 into models/banditnet_family/")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.family:
        for k in FAMILY_SEEDS:
            _train_and_save(k, FAMILY_DIR / f"seed_{k}.pt")
        return
    default = Path(__file__).resolve().parents[1] / "models" / "banditnet.pt"
    out = Path(args.out) if args.out else (default if args.seed == 0 else FAMILY_DIR / f"seed_{args.seed}.pt")
    _train_and_save(args.seed, out)


if __name__ == "__main__":
    main()
