"""The concept statements parse to their AST nodes and pretty-print back to the same AST."""

from __future__ import annotations

from camlang.frontend import syntax as s
from camlang.frontend.parser import parse
from camlang.frontend.pretty import pretty_module

SOURCE = """
concepts seen = probes(net, tr, ho, layer = "penultimate", concepts = ["red", "blue"])
monitor guard = concept_monitor(seen, net, fit = f, calibrate = v, fpr = 0.05)
heatmaps seen on net, test
monitor guard on test
"""


def test_concept_statements_round_trip() -> None:
    module = parse(SOURCE)
    kinds = [type(st) for st in module.statements]
    assert kinds == [s.ConceptsDecl, s.MonitorDecl, s.Heatmaps, s.Watch]
    heat = module.statements[2]
    assert isinstance(heat, s.Heatmaps)
    assert (heat.concepts.name, heat.model.name, heat.data.name) == ("seen", "net", "test")
    assert parse(pretty_module(module)) == module
    assert {"concepts", "monitor", "heatmaps"} <= s.KEYWORDS
