"""The fast equivalence oracle (observational equivalence) and the correctness oracle.

Every new term is evaluated on a probe batch from cached terminals (`A`, `G`, `S`, `S_masked`,
...): no model pass. A term whose values match an earlier (hence smaller or equal-size) term of
the same nonterminal is dropped. Complete CAMs (the start nonterminal) compare by their
normalized maps; when every metric in use reads the map only through its pixel ranking they
also compare by ranking (`pixel_ranks` of the input-resolution normalized map, the order the
curve metrics use, ties broken by position).

Matching uses a fingerprint (norm and a few random projections, coarsely rounded) to find
candidates in a hash bucket, then confirms with `allclose` against the stored values, so
rounding differences (reassociation, commutation) still match and differing terms never do.
A bucket miss only keeps a duplicate; it never drops a different term.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import torch

from camlang.backends.normalize import minmax
from camlang.backends.torch_eager import TorchContext, evaluate, normalize_maps
from camlang.frontend.ir import Node, postorder
from camlang.frontend.op_table import OPS
from camlang.metrics._common import pixel_ranks

#: Relative tolerance of value matches for intermediate terms (rounding noise only).
VALUE_RTOL = 1e-4
#: Absolute tolerance of normalized-map matches (maps are in [0, 1]).
MAP_ATOL = 1e-4


def depends_only_on_ranking(metric: Node) -> bool:
    """True when the metric reads `L` only as the map argument of ranking ops.

    Then two CAMs with the same pixel ranking on an image get the same metric value there.
    A metric that does not read `L` at all is trivially ranking-only.
    """
    for n in postorder([metric]):
        for i, a in enumerate(n.args):
            if a.op == "L" and OPS[n.op].ranking_arg != i:
                return False
    return metric.op != "L"


def all_ranking_only(metrics: list[Node]) -> bool:
    """True when every metric in use reads the map only through its pixel ranking."""
    return all(depends_only_on_ranking(m) for m in metrics)


def as_map(value: torch.Tensor, batch: int) -> torch.Tensor:
    """A cam value `[B|1, 1, h, w]` as `[B, 1, h, w]`."""
    return value.expand(batch, 1, value.shape[-2], value.shape[-1]) if value.shape[0] != batch else value


def invalid_reason(raw: torch.Tensor) -> str | None:
    """Why a raw map `[B, 1, h, w]` is not a valid CAM on the probe batch, or None if it is."""
    if not torch.isfinite(raw).all():
        return "non-finite"
    flat = raw.reshape(raw.shape[0], -1)
    spread = flat.amax(1) - flat.amin(1)
    scale = flat.abs().amax(1)
    if bool((spread <= 1e-9 * (scale + 1e-30)).all()):
        return "constant"
    return None


class _Fingerprints:
    """Hash buckets of tensors with a cheap approximate key, confirmed by `allclose`."""

    def __init__(self, seed: int = 0, projections: int = 4) -> None:
        self._seed = seed
        self._k = projections
        self._proj: dict[int, torch.Tensor] = {}
        self.buckets: dict[tuple[object, ...], list[tuple[Node, torch.Tensor]]] = {}

    def _matrix(self, numel: int, dtype: torch.dtype) -> torch.Tensor:
        m = self._proj.get(numel)
        if m is None:
            gen = torch.Generator().manual_seed(self._seed * 7919 + numel)
            m = torch.randn(numel, self._k, generator=gen, dtype=torch.float64)
            self._proj[numel] = m
        return m.to(dtype)

    def key(self, group: object, v: torch.Tensor) -> tuple[object, ...]:
        if bool(torch.isfinite(v.sum())):
            clean, bad = v.reshape(-1).double(), ""
        else:
            finite = torch.isfinite(v)
            clean = torch.where(finite, v, torch.zeros((), dtype=v.dtype)).reshape(-1).double()
            flags = torch.stack([v.isnan(), torch.isposinf(v), torch.isneginf(v)]).numpy().tobytes()
            bad = hashlib.blake2b(flags, digest_size=8).hexdigest()
        norm = float(clean.norm())
        proj = (clean @ self._matrix(clean.numel(), clean.dtype)) / (norm + 1e-300)
        return (
            group,
            tuple(v.shape),
            bad,
            round(math.log(norm + 1e-300) * 50),
            tuple(round(float(p) * 100) for p in proj),
        )

    def find(self, key: tuple[object, ...], v: torch.Tensor, rtol: float, atol: float) -> Node | None:
        flat = v.reshape(-1)
        step = max(1, flat.numel() // 2048)
        for node, w in self.buckets.get(key, ()):
            if w.shape != v.shape:
                continue
            wf = w.reshape(-1)
            # a strided subsample rejects most non-matches before the full comparison
            if not torch.allclose(flat[::step], wf[::step], rtol=rtol, atol=atol, equal_nan=True):
                continue
            if torch.allclose(flat, wf, rtol=rtol, atol=atol, equal_nan=True):
                return node
        return None

    def add(self, key: tuple[object, ...], node: Node, v: torch.Tensor) -> None:
        self.buckets.setdefault(key, []).append((node, v))


@dataclass
class Observer:
    """Evaluates new terms on the probe batch and keeps only observationally new ones.

    `start` is the nonterminal of complete CAMs; `ranking` turns on ranking comparison for
    them. `kept_maps` maps each kept complete CAM to its layer-resolution normalized maps.
    """

    terminals: dict[str, torch.Tensor]
    input_size: tuple[int, int]
    start: str
    ranking: bool = False
    seed: int = 0
    memo: dict[int, torch.Tensor] = field(default_factory=dict)
    kept_maps: dict[int, torch.Tensor] = field(default_factory=dict)
    matches: dict[int, int] = field(default_factory=dict)  # dropped complete cam nid -> kept nid

    def __post_init__(self) -> None:
        a = self.terminals.get("A")
        self.batch = int(a.shape[0]) if a is not None else int(next(iter(self.terminals.values())).shape[0])
        dtype = a.dtype if a is not None else torch.float32
        self.ctx = TorchContext(self.terminals, self.input_size, dtype)
        self._values = _Fingerprints(self.seed)
        self._maps = _Fingerprints(self.seed + 1)
        self._ranks: dict[tuple[str, str], Node] = {}
        self.nodes: dict[int, Node] = {}

    def value(self, node: Node) -> torch.Tensor:
        """The node's value on the probe batch (shared memo: subterms are computed once)."""
        with torch.no_grad():
            return evaluate([node], self.ctx, self.memo)[node.nid]

    def raw_map(self, node: Node) -> torch.Tensor:
        """A complete CAM's raw map `[B, 1, h, w]` on the probe batch."""
        return as_map(self.value(node), self.batch)

    def admit(self, nonterminal: str, node: Node, size: int) -> str:
        """ "kept", or the kind of pruning that dropped the term: observational, ranking, invalid."""
        v = self.value(node)
        if nonterminal == self.start and node.ty.is_layer_map | node.ty.is_input_map:
            return self._admit_cam(nonterminal, node, v)
        if nonterminal == self.start:
            self._forget(node)
            return "invalid"
        key = self._values.key(nonterminal, v)
        scale = float(torch.nan_to_num(v.abs(), nan=0.0, posinf=0.0).max()) if v.numel() else 0.0
        if self._values.find(key, v, VALUE_RTOL, 1e-6 * scale + 1e-30) is not None:
            self._forget(node)
            return "observational"
        self._values.add(key, node, v)
        self.nodes[node.nid] = node
        return "kept"

    def _admit_cam(self, nonterminal: str, node: Node, v: torch.Tensor) -> str:
        raw = as_map(v, self.batch)
        if invalid_reason(raw) is not None:
            self._forget(node)
            return "invalid"
        maps = minmax(raw.double()).float()
        key = self._maps.key(nonterminal, maps)
        match = self._maps.find(key, maps, 0.0, MAP_ATOL)
        if match is not None:
            self.matches[node.nid] = match.nid
            self._forget(node)
            return "observational"
        if self.ranking:
            ranks = pixel_ranks(normalize_maps(raw, self.input_size))
            digest = hashlib.blake2b(ranks.numpy().tobytes(), digest_size=16).hexdigest()
            other = self._ranks.get((nonterminal, digest))
            if other is not None:
                self.matches[node.nid] = other.nid
                self._forget(node)
                return "ranking"
            self._ranks[(nonterminal, digest)] = node
        self._maps.add(key, node, maps)
        self.kept_maps[node.nid] = maps
        self.nodes[node.nid] = node
        return "kept"

    def equal_on_probe(self, a: Node, b: Node) -> bool:
        """Do two complete CAMs give the same normalized maps on the probe batch?"""
        ma = minmax(self.raw_map(a).double())
        mb = minmax(self.raw_map(b).double())
        if ma.shape != mb.shape:  # an input-resolution cam and a layer one: compare them as shown
            ma = normalize_maps(self.raw_map(a).double(), self.input_size)
            mb = normalize_maps(self.raw_map(b).double(), self.input_size)
        if not (torch.isfinite(ma).all() and torch.isfinite(mb).all()):
            return False
        return bool(torch.allclose(ma, mb, rtol=0.0, atol=MAP_ATOL))

    def _forget(self, node: Node) -> None:
        # The dropped term's own value is never needed again; its subterms may be.
        self.memo.pop(node.nid, None)
