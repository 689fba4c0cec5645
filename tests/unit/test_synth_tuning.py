"""Tuning numeric-constant holes (camlang.synth.tuning): sites, known optima, budgets, no holdout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from camlang.backends.torch_eager import TorchContext, evaluate
from camlang.data import ShapesDataset, synthetic_shapes
from camlang.frontend.check import check_text
from camlang.frontend.ir import Node, to_text, verify
from camlang.frontend.program import Program
from camlang.metrics._common import CallCounter
from camlang.models import DEMO_TARGET_LAYER, load_demo_model, resolve_layer
from camlang.runtime.declaration_loading import LiveModel
from camlang.synth.enumeration import Enumerator
from camlang.synth.scoring import Scorer, capture_split
from camlang.synth.tuning import Tuning, constant_sites, tune_constants, with_constants

PRELUDE = 'import "stdlib/metrics.cam"\n'


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine's cores are shared
    yield
    torch.set_num_threads(before)


def enumerate_all(text: str, max_size: int = 4) -> tuple[Program, Enumerator, list[Node]]:
    prog = check_text(PRELUDE + text, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    g = prog.grammars["g"]
    en = Enumerator(prog, g, max_size, lambda nt, node, size: "kept")
    en.run()
    return prog, en, [node for _, node in en.terms(g.start)]


def terminals(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"A": torch.randn(4, 6, 5, 5, generator=g).relu(), "G": torch.randn(4, 6, 5, 5, generator=g)}


def raw_value(node: Node, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    return evaluate([node], TorchContext(terms, (10, 10)))[node.nid]


def test_sites_are_the_holes_not_equal_literals() -> None:
    prog, en, terms = enumerate_all(
        """grammar g {
  cam -> pow(relu(sum_c(A)), k) * 2 | relu(sum_c(A)) * t
  k -> 0.5 | 1 | 2
  t -> 0.5 | 2 | 4
}"""
    )
    by_text = {to_text(n): n for n in terms}
    both_two = by_text["pow(relu(sum_c(A)), 2) * 2"]
    (site,) = constant_sites(en.alts, "cam", both_two, en.constants_of(both_two))
    assert (site.path, site.nonterminal, site.value, site.grid) == ((0, 1), "k", 2.0, (0.5, 1.0, 2.0))
    moved = with_constants(prog.builder, both_two, {site.path: 0.7})
    assert to_text(moved) == "pow(relu(sum_c(A)), 0.7) * 2"  # the literal 2 stays
    verify(prog.builder, [moved])
    scaled = by_text["relu(sum_c(A)) * 2"]
    assert [(s.path, s.nonterminal) for s in constant_sites(en.alts, "cam", scaled)] == [((1,), "t")]
    foreign = prog.builder.make("mul", (scaled, prog.builder.const(3.0)))
    assert constant_sites(en.alts, "cam", foreign) == ()  # not derived by the grammar: nothing to tune


GRID = """grammar g {
  cam -> pow(relu(sum_c(A)), k) * t
  k -> 0.25 | 0.5 | 1 | 2
  t -> 0.5 | 1 | 2 | 4
}"""


def fit_loss(target: torch.Tensor, terms: dict[str, torch.Tensor]):  # type: ignore[no-untyped-def]
    calls: list[Node] = []

    def loss(node: Node) -> float:
        calls.append(node)
        return float(((raw_value(node, terms) - target) ** 2).mean())

    return loss, calls


def test_two_constants_reach_an_optimum_between_grid_points() -> None:
    prog, en, nodes = enumerate_all(GRID)
    terms = terminals()
    target = raw_value(prog.builder.const(1.3), terms) * raw_value(
        prog.builder.make("pow", (nodes[0].args[0].args[0], prog.builder.const(0.7))), terms
    )
    loss, _ = fit_loss(target, terms)
    best = min(nodes, key=loss)  # the grid's winner, as the race would pick it
    sites = constant_sites(en.alts, "cam", best, en.constants_of(best))
    assert [s.nonterminal for s in sites] == ["k", "t"] and all(s.log_scale for s in sites)
    out = tune_constants(prog.builder, best, sites, loss, seconds=60, max_evaluations=200)
    k, t = (c.value for c in out.constants)
    assert abs(k - 0.7) < 0.01 and abs(t - 1.3) < 0.02, out
    assert out.improved and out.loss < 1e-4 < out.start_loss and out.stop == "converged"
    assert to_text(out.node) == f"pow(relu(sum_c(A)), {k!r}) * {t!r}"  # rounded to 3 digits
    assert [(c.nonterminal, c.low, c.high) for c in out.constants] == [("k", 0.25, 2.0), ("t", 0.5, 4.0)]


def test_one_constant_uses_the_bounded_scalar_search() -> None:
    prog, en, nodes = enumerate_all("grammar g {\n cam -> relu(sum_c(A)) + t\n t -> 0 | 1 | 2\n}")
    terms = terminals(1)
    target = raw_value(nodes[0].args[0], terms) + 0.37
    loss, _ = fit_loss(target, terms)
    best = min(nodes, key=loss)
    sites = constant_sites(en.alts, "cam", best, en.constants_of(best))
    assert not sites[0].log_scale  # 0 in the grid: a linear scale
    out = tune_constants(prog.builder, best, sites, loss, seconds=60, start_loss=loss(best))
    assert out.constants[0].grid_value == 0.0 and abs(out.constants[0].value - 0.37) < 0.005


def test_budgets_stop_the_search_with_the_best_so_far() -> None:
    prog, en, nodes = enumerate_all(GRID)
    terms = terminals()
    target = raw_value(nodes[-1], terms) * 1.1
    loss, calls = fit_loss(target, terms)
    best = min(nodes, key=loss)
    sites = constant_sites(en.alts, "cam", best, en.constants_of(best))
    calls.clear()
    none = tune_constants(prog.builder, best, sites, loss, seconds=0.0, start_loss=loss(best))
    assert none.stop == "time" and none.node is best and none.evaluations == 0 and len(calls) == 1
    few = tune_constants(prog.builder, best, sites, loss, seconds=60, max_evaluations=4)
    assert few.stop == "evaluations" and few.evaluations <= 5 and few.loss <= few.start_loss
    assert tune_constants(prog.builder, best, (), loss, seconds=60).stop == "no constants"


def _tune_on(
    live: LiveModel, prog: Program, en: Enumerator, selection: ShapesDataset, monkeypatch: pytest.MonkeyPatch
) -> tuple[Tuning, set[int]]:
    """Race the grid and tune its winner on `selection`, as the driver does; the images loaded meanwhile."""
    counter = CallCounter()
    data = capture_split(live, selection, {"A", "G", "S", "P"}, 16, counter)
    scorer = Scorer(live, data, prog.metrics["average_drop"], {}, counter, seed=0)
    seen: set[int] = set()
    real_load = ShapesDataset._load

    def spy(self: ShapesDataset, base: torch.Tensor) -> object:
        seen.update(int(i) for i in base)
        return real_load(self, base)

    def loss(node: Node) -> float:
        return float(scorer([node], list(range(data.count))).nanmean())

    monkeypatch.setattr(ShapesDataset, "_load", spy)
    try:
        start = min((node for _, node in en.terms("cam")), key=loss)
        sites = constant_sites(en.alts, "cam", start, en.constants_of(start))
        return tune_constants(prog.builder, start, sites, loss, seconds=120, max_evaluations=12), seen
    finally:
        monkeypatch.setattr(ShapesDataset, "_load", real_load)


def test_the_holdout_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tuned on the selection split of a dataset, beside two different holdouts of it.

    The loss reads the captured selection split only: no other image is loaded while tuning,
    and the constants do not depend on which holdout exists.
    """
    prog, en, _ = enumerate_all(
        "grammar g {\n cam -> pow(relu(sum_c(mean_hw(G) * A)), k)\n k -> 0.25 | 0.5 | 1 | 2 | 4\n}"
    )
    loaded = load_demo_model()
    layer = resolve_layer(loaded.module, DEMO_TARGET_LAYER)
    live = LiveModel("shapes", loaded, layer, DEMO_TARGET_LAYER, False, torch.device("cpu"))
    parent = synthetic_shapes(count=40, size=64, seed=3)
    selection, rest = parent.split(0.3, seed=0)
    chosen = set(selection.indices(range(len(selection))))
    results = []
    for holdout in (rest.limit(14), rest.shuffle(5).limit(14)):
        assert not chosen & set(holdout.indices(range(len(holdout))))
        tuned, seen = _tune_on(live, prog, en, selection, monkeypatch)  # type: ignore[arg-type]
        assert seen <= chosen, "an image outside the selection was loaded while tuning"
        results.append(tuned)
    assert results[0].constants == results[1].constants and results[0].loss == results[1].loss
    (k,) = results[0].constants
    assert k.value not in (0.25, 0.5, 1, 2, 4) and results[0].improved  # between the grid points
