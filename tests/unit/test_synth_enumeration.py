"""Enumeration and observational equivalence (camlang.synth.enumeration / observe)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import torch

from camlang.data import synthetic_shapes
from camlang.frontend.check import check_text
from camlang.frontend.ir import verify
from camlang.frontend.program import Program
from camlang.models import ShapesCNN
from camlang.runtime.capture import capture
from camlang.synth.enumeration import Enumerator
from camlang.synth.observe import Observer, all_ranking_only, depends_only_on_ranking

PRELUDE = 'import "stdlib/cams.cam"\nimport "stdlib/metrics.cam"\nimport "stdlib/grammars.cam"\n'


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # other engineers share the 2 cores: one thread avoids oversubscription slowdowns
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def program(extra: str = "") -> Program:
    prog = check_text(PRELUDE + extra, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    return prog


def random_terminals(seed: int, b: int = 4, c: int = 6, h: int = 5) -> dict[str, torch.Tensor]:
    """Generic random terminals (no model): nothing is equal by accident."""
    g = torch.Generator().manual_seed(seed)
    return {
        "A": torch.randn(b, c, h, h, generator=g).relu(),
        "G": torch.randn(b, c, h, h, generator=g),
        "S": torch.randn(b, 1, 1, 1, generator=g) + 3,
        "P": torch.rand(b, 1, 1, 1, generator=g),
        "S_masked": torch.randn(b, c, 1, 1, generator=g),
        "S_ablated": torch.randn(b, c, 1, 1, generator=g),
    }


def enumerate_grammar(prog: Program, name: str, max_size: int, seed: int = 0) -> tuple[Enumerator, Observer]:
    g = prog.grammars[name]
    obs = Observer(random_terminals(seed), (10, 10), g.start)
    en = Enumerator(prog, g, max_size, obs.admit)
    en.run()
    return en, obs


@pytest.mark.parametrize(
    ("grammar", "size", "cams"),
    [
        ("gradient_weights", 4, {"gradcam", "hirescam", "xgradcam", "layercam", "gradcampp"}),
        ("pixelwise", 3, {"hirescam", "layercam", "gradcam_elementwise"}),
        ("score_based", 3, {"scorecam", "ablationcam"}),
    ],
)
def test_stdlib_grammars_contain_the_classic_cams(grammar: str, size: int, cams: set[str]) -> None:
    prog = program()
    en, obs = enumerate_grammar(prog, grammar, size)
    start = prog.grammars[grammar].start
    for cam in cams:
        node = prog.cams[cam].node
        assert node is not None and node.nid in en.seen[start], f"{cam} is not derived by {grammar}"
        assert en.sizes[node.nid] <= size
    kept = [n for _, n in en.terms(start)]
    verify(prog.builder, kept)
    # each is kept, or matched to a kept cam with the same maps (relu(G * A) = relu(G) * A for A >= 0)
    for cam in cams:
        node = prog.cams[cam].node
        assert node in kept or obs.matches[node.nid] in {k.nid for k in kept}


def test_sizes_levels_and_counts_are_honoured() -> None:
    prog = program()
    en, _ = enumerate_grammar(prog, "gradient_weights", 5)
    assert en.stats.levels_done == 5
    for nt in en.alts:
        for size, node in en.terms(nt):
            assert 1 <= size <= 5
            assert node.ty.is_layer_map if nt == "cam" else True
    built = en.stats.built["cam"]
    dropped = sum(en.stats.dropped.get("cam", {}).values())
    assert built == dropped + en.stats.kept["cam"]


def test_observational_pruning_merges_reassociated_products() -> None:
    prog = program(
        "grammar g {\n  cam -> relu(sum_c(w * A))\n  w -> mean_hw(t)\n  t -> G | relu(G) | t * t\n}\n"
    )
    en, obs = enumerate_grammar(prog, "g", 6)
    texts = [n for _, n in en.terms("t")]
    # t * t with commutation and reassociation: G^a relu(G)^b has few distinct values
    assert en.stats.dropped["t"]["observational"] > 0
    assert len(texts) < en.stats.built["t"]


def test_invalid_candidates_are_rejected() -> None:
    prog = program("grammar g {\n  cam -> relu(sum_c(w * A))\n  w -> G - G | G / (G - G) | G\n}\n")
    en, _ = enumerate_grammar(prog, "g", 2)
    assert en.stats.dropped["cam"]["invalid"] == 2  # constant zero map and NaN map
    assert en.stats.kept["cam"] == 1


def test_grammar_errors_are_user_errors() -> None:
    from camlang.errors import CamlangError

    prog = program("grammar bad {\n  cam -> relu(sum_c(w * A))\n  w -> w * w\n}\n")
    with pytest.raises(CamlangError, match="derives no finite term"):
        Enumerator(prog, prog.grammars["bad"], 5, lambda nt, n, s: "kept")


def test_ranking_only_metrics() -> None:
    prog = program(
        "metric l1 = maximize -mean(abs(L - ref(gradcampp)))\n"
        "metric mt = maximize P_at(mask_top(X, L, 0.2))\n"
    )
    m = prog.metrics
    for name in ("deletion", "insertion", "pointing_game", "sufficient_fraction", "mt"):
        assert depends_only_on_ranking(m[name].node), name
    for name in ("average_drop", "l1", "energy_pointing_game", "sparsity", "iou_50"):
        assert not depends_only_on_ranking(m[name].node), name
    assert not all_ranking_only([m["deletion"].node, m["average_drop"].node])


def test_enumeration_throughput_on_the_demo_cnn() -> None:
    """gradient_weights up to size 9 on a probe batch of 16 images: under 20 s (acceptance)."""
    prog = program()
    torch.manual_seed(0)
    model = ShapesCNN().eval()
    x = synthetic_shapes(16, 64, 0).get(range(16)).x
    cap = capture(model, model.features[6], x, {"A", "G"})
    g = prog.grammars["gradient_weights"]
    obs = Observer(cap.terminals, (64, 64), g.start, ranking=True)
    t0 = time.perf_counter()
    en = Enumerator(prog, g, 9, obs.admit)
    en.run()
    seconds = time.perf_counter() - t0
    built = sum(en.stats.built.values())
    cams = f"{en.stats.built['cam']} complete cams, {en.stats.kept['cam']} distinct"
    print(f"enumerated {built} terms ({cams}) in {seconds:.2f} s: {built / seconds:.0f} terms/s")
    assert seconds < 20.0
    assert en.stats.levels_done == 9
