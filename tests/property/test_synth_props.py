"""Hypothesis properties of the synthesizer's enumeration and oracles."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from camlang.backends import reference
from camlang.frontend.check import check_text
from camlang.frontend.ir import Node, verify
from camlang.synth.enumeration import Enumerator
from camlang.synth.observe import Observer
from camlang.synth.proof import prove_equivalent

PROG = check_text('import "stdlib/cams.cam"\nimport "stdlib/grammars.cam"\n', file_checks=False)
GRAMMARS = {"gradient_weights": 4, "pixelwise": 4, "score_based": 3}


def terminals(seed: int, b: int = 3, c: int = 4, h: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "A": torch.randn(b, c, h, h, generator=g, dtype=torch.float64).relu(),
        "G": torch.randn(b, c, h, h, generator=g, dtype=torch.float64),
        "S": torch.randn(b, 1, 1, 1, generator=g, dtype=torch.float64) + 3,
        "P": torch.rand(b, 1, 1, 1, generator=g, dtype=torch.float64),
        "S_masked": torch.randn(b, c, 1, 1, generator=g, dtype=torch.float64),
        "S_ablated": torch.randn(b, c, 1, 1, generator=g, dtype=torch.float64),
    }


def maps(node: Node, terms: dict[str, torch.Tensor]) -> np.ndarray:
    out = []
    for i in range(terms["A"].shape[0]):
        ctx = reference.ReferenceContext({k: v[i : i + 1].numpy() for k, v in terms.items()}, (8, 8))
        x = np.broadcast_to(reference.evaluate_one(node, ctx), (1, 1, 4, 4))
        x = x - x.min()
        out.append(x / (1e-7 + x.max()))
    return np.stack(out)


@settings(max_examples=6)
@given(st.sampled_from(sorted(GRAMMARS)), st.integers(0, 10_000))
def test_enumerated_terms_type_check_and_pruning_is_sound(grammar: str, seed: int) -> None:
    g = PROG.grammars[grammar]
    obs = Observer(terminals(seed), (8, 8), g.start)
    en = Enumerator(PROG, g, GRAMMARS[grammar], obs.admit)
    en.run()
    every = [n for nt in en.alts for _, n in en.terms(nt)]
    verify(PROG.builder, every)  # every kept term type-checks
    fresh = terminals(seed + 1)
    by_nid = {n.nid: n for n in every} | obs.nodes
    for dropped_nid, kept_nid in obs.matches.items():
        dropped = next(n for n in PROG.builder._nodes if n.nid == dropped_nid)
        a, b = maps(dropped, fresh), maps(by_nid[kept_nid], fresh)
        assert np.nanmax(np.abs(a - b)) < 1e-3, "observational pruning dropped a different map"


@settings(max_examples=10)
@given(st.integers(0, 10_000), st.data())
def test_proof_oracle_never_claims_a_false_equivalence(seed: int, data: st.DataObject) -> None:
    g = PROG.grammars["gradient_weights"]
    obs = Observer(terminals(seed), (8, 8), g.start)
    en = Enumerator(PROG, g, 4, obs.admit)
    en.run()
    cams = [n for _, n in en.terms(g.start)] + [c.node for c in PROG.cams.values() if c.node is not None]
    a = data.draw(st.sampled_from(cams))
    b = data.draw(st.sampled_from(cams))
    v = prove_equivalent(PROG.builder, a, b, timeout_s=10)
    if v.status == "equivalent":
        fresh = terminals(seed + 7)
        assert np.nanmax(np.abs(maps(a, fresh) - maps(b, fresh))) < 1e-3
