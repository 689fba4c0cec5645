"""Layer-indexed terminals (`A@"layer2"`): syntax, types, capture, eager vs reference, export, z3.

The golden file `tests/golden/diagnostics/layers.cam` holds what the checker accepts and refuses;
this file checks what the accepted programs mean.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from camlang.backends import reference
from camlang.backends.torch_eager import TorchContext, evaluate, terminals_used
from camlang.backends.torch_source import MultiLayerExport, generate, load_generated
from camlang.backends.z3_lower import Bound, NoSMTEncoding, lower_one, symbolic_terminals
from camlang.core.call_counter import CallCounter
from camlang.errors import CamlangError
from camlang.frontend.check import check_text
from camlang.frontend.ir import Node, layers_read, split_key, terminal_key, to_text
from camlang.frontend.parser import parse
from camlang.frontend.pretty import pretty_expr
from camlang.frontend.program import Program
from camlang.runtime.cam_engine import CamEngine
from camlang.runtime.capture import capture
from camlang.synth import prove_equivalent, prove_nonnegative
from tests.conftest import demo_live_model

CAMS = """
cam gradcam = relu(sum_c(A * mean_hw(G)))
cam layercam = relu(sum_c(relu(G) * A))
cam fine = gradcam@"features.2"
cam fine_again = relu(sum_c(A@"features.2" * mean_hw(G@"features.2")))
cam fine_swapped = relu(sum_c(mean_hw(G@"features.2") * A@"features.2"))
cam fused = minmax(upsample(layercam@"features.2")) + minmax(upsample(layercam))
cam guided = upsample(gradcam@"features.2") * max_c(abs(GX))
cam scaled = relu(sum_c(A@"features.2")) * sum(G)
cam ablated = relu(sum_c(A@"features.2" * softmax_c(S_ablated@"features.2")))
"""


@pytest.fixture(scope="module")
def program() -> Program:
    prog = check_text(CAMS, file_checks=False)
    assert not prog.has_errors, prog.diagnostics
    return prog


def node(prog: Program, name: str) -> Node:
    n = prog.cams[name].node
    assert n is not None
    return n


@pytest.mark.parametrize(
    "text",
    ['A@"l2"', 'sum_c((A * G)@"l2")@"l3"', '-A@"x"', "upsample(m@l) * 2", '(A@"a")@"b"', 'f(x)@"l"'],
)
def test_pretty_parses_back(text: str) -> None:
    expr = parse(f"cam c = {text}").statements[0].expr  # type: ignore[union-attr]
    again = parse(f"cam c = {pretty_expr(expr)}").statements[0].expr  # type: ignore[union-attr]
    assert again == expr


def test_types_and_text(program: Program) -> None:
    fine = node(program, "fine")
    assert str(fine.ty) == 'Map[H, W] @ "features.2"'
    assert fine is node(program, "fine_again")  # retagging gives the same interned node
    assert to_text(fine) == 'relu(sum_c(A@"features.2" * mean_hw(G@"features.2")))'
    assert str(node(program, "fused").ty) == "Map[Hin, Win]"
    assert str(node(program, "scaled").ty) == 'Map[H, W] @ "features.2"'  # sum(G) is a scalar
    assert layers_read([node(program, "fused")]) == {"features.2"}
    assert terminals_used([node(program, "guided")]) == {"A@features.2", "G@features.2", "GX"}
    assert split_key("S_ablated@layer4.2") == ("S_ablated", "layer4.2")


def _terminals(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s) for k, s in shapes.items()}


def test_eager_agrees_with_reference_on_multi_layer_cams(program: Program) -> None:
    # each layer its own channel count and grid, so a mix-up could not pass silently
    terms = _terminals(
        {
            "A": (2, 5, 4, 4),
            "G": (2, 5, 4, 4),
            "A@features.2": (2, 3, 8, 8),
            "G@features.2": (2, 3, 8, 8),
            "GX": (2, 3, 16, 16),
            "X": (2, 3, 16, 16),
        }
    )
    size = (16, 16)
    roots = [node(program, n) for n in ("fine", "fused", "guided", "scaled")]
    ctx = TorchContext({k: torch.from_numpy(v) for k, v in terms.items()}, size, torch.float64)
    got = evaluate(roots, ctx)
    want = reference.evaluate(roots, reference.ReferenceContext(terms, size))
    for r in roots:
        np.testing.assert_allclose(got[r.nid].numpy(), want[r.nid], rtol=1e-9, atol=1e-12)
    assert got[roots[0].nid].shape == (2, 1, 8, 8)


def test_one_forward_and_one_backward_serve_every_layer() -> None:
    live = demo_live_model()
    model = live.module
    x = torch.randn(3, 3, 64, 64)
    counter = CallCounter()
    needs = {"A", "G", "A@features.2", "G@features.2"}
    cap = capture(model, live.layer, x, needs, counter=counter)
    assert counter.calls == 1 and counter.images == 3
    assert tuple(cap.terminals["A@features.2"].shape) == (3, 32, 32, 32)
    seen: dict[str, torch.Tensor] = {}
    hook = model.features[2].register_forward_hook(lambda m, i, o: seen.__setitem__("a", o))
    out = model(x)
    hook.remove()
    score = out.gather(1, out.argmax(1)[:, None]).sum()
    g = torch.autograd.grad(score, seen["a"])[0]
    torch.testing.assert_close(cap.terminals["G@features.2"], g)
    torch.testing.assert_close(cap.terminals["A@features.2"], seen["a"].detach())
    # score terminals only for the layer that reads them
    only = capture(model, live.layer, x[:1], {"A", "S_ablated@features.2"})
    assert "S_ablated@features.2" in only.terminals and "S_ablated" not in only.terminals


def test_an_unknown_layer_is_a_user_error() -> None:
    live = demo_live_model()
    with pytest.raises(CamlangError, match="no layer"):
        capture(live.module, live.layer, torch.randn(1, 3, 64, 64), {"A@features.9"})


def test_engine_evaluates_a_two_layer_cam(program: Program) -> None:
    live = demo_live_model()
    x = torch.randn(2, 3, 64, 64)
    cams = {n: node(program, n) for n in ("fine", "fused", "guided", "gradcam")}
    batch = CamEngine(live.module, live.layer, cams)(x)
    for name in cams:
        m = batch.maps[name]
        assert m.shape == (2, 64, 64) and torch.isfinite(m).all()
    assert batch.raw["fine"].shape == (2, 1, 32, 32)
    assert batch.counter.calls == 1


@pytest.mark.parametrize("name", ["fine", "fused", "guided", "scaled", "ablated"])
def test_exported_module_equals_in_process(program: Program, name: str, tmp_path: Path) -> None:
    cam = program.cams[name]
    source = generate(name, node(program, name), cam.source_text)
    assert 'layer_paths = ("features.2",)' in source
    module = load_generated(source, str(tmp_path / f"{name}.py"))
    cls = next(v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__)
    live = demo_live_model()
    x = torch.randn(2, 3, 64, 64)
    ours = CamEngine(live.module, live.layer, {name: node(program, name)})(x).maps[name]
    theirs = cls(live.module, live.layer)(x)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)


def test_exported_two_layer_module_matches_golden_snapshot(program: Program) -> None:
    golden = Path(__file__).resolve().parents[1] / "golden" / "modules" / "fused_two_layers.py"
    source = generate("fused", node(program, "fused"), program.cams["fused"].source_text)
    if os.environ.get("CAMLANG_UPDATE_GOLDEN"):
        golden.write_text(source)
    assert source == golden.read_text(), "generated source changed; review and update the snapshot"


def test_export_refuses_a_layer_path_it_cannot_look_up(program: Program) -> None:
    prog = check_text('cam odd = relu(sum_c(A@"features[-1]"))', file_checks=False)
    with pytest.raises(MultiLayerExport, match=r'layer "features\[-1\]"'):
        generate("odd", node(prog, "odd"), 'relu(sum_c(A@"features[-1]"))')
    assert "layer_paths" not in generate("gradcam", node(program, "gradcam"), "gradcam")


def test_z3_gives_each_layer_its_own_symbols(program: Program) -> None:
    import z3

    ctx = z3.Context()
    terms = symbolic_terminals(Bound(), ctx=ctx, layers={"features.2"})
    assert terminal_key(node(program, "fine").args[0].args[0].args[0]) == "A@features.2"
    fine = lower_one(node(program, "fine"), terms, ctx)
    plain = lower_one(node(program, "gradcam"), terms, ctx)
    assert "features.2" in str(fine.reshape(-1)[0]) and "features.2" not in str(plain.reshape(-1)[0])
    with pytest.raises(NoSMTEncoding, match="features.2"):
        lower_one(node(program, "fine"), symbolic_terminals(Bound(), ctx=ctx), ctx)


def test_the_proof_oracle_keeps_layers_apart(program: Program) -> None:
    b = program.builder
    same = prove_equivalent(b, node(program, "fine"), node(program, "fine_swapped"), timeout_s=10)
    assert same.status == "equivalent"
    other = prove_equivalent(b, node(program, "fine"), node(program, "gradcam"), timeout_s=10)
    assert other.status == "not_equivalent"
    assert other.counterexample is not None and "A@features.2" in other.counterexample
    assert prove_nonnegative(b, node(program, "fine"), timeout_s=10).status == "holds"


def test_a_program_evaluates_multi_layer_cams_end_to_end(tmp_path: Path) -> None:
    import camlang
    from camlang.paths import stdlib_dir

    weights = Path(__file__).resolve().parents[2] / "models" / "shapes_cnn.pt"
    prog = tmp_path / "layers.cam"
    prog.write_text(
        f'import "{stdlib_dir() / "cams.cam"}"\n'
        f'import "{stdlib_dir() / "metrics.cam"}"\n'
        f'model shapes = checkpoint("{weights}", arch = "shapes_cnn") at "features.6"\n'
        "data test = synthetic_shapes(count = 2, size = 64, seed = 1)\n"
        'cam fine = gradcam@"features.2"\n'
        'cam fused = minmax(upsample(layercam@"features.2")) + minmax(upsample(layercam))\n'
        "evaluate [gradcam, fine, fused] on shapes, test with [deletion]\n",
        encoding="utf-8",
    )
    result = camlang.load(prog).run(tmp_path / "out")
    assert result.status == 0
    table = json.loads((tmp_path / "out" / "report.json").read_text())["evaluations"][0]["table"]
    for cam in ("gradcam", "fine", "fused"):
        assert 0.0 <= table[cam]["deletion"]["mean"] <= 1.0
    assert table["fine"]["deletion"]["mean"] != table["gradcam"]["deletion"]["mean"]


def test_exporting_an_unreachable_layer_path_is_a_user_error(tmp_path: Path) -> None:
    from camlang.run.export import write_module

    prog = check_text('cam odd = relu(sum_c(A@"features[-1]"))', file_checks=False)
    with pytest.raises(CamlangError, match="cannot find by name") as err:
        write_module("odd", node(prog, "odd"), "odd", tmp_path / "odd.py")
    assert err.value.code == "E601"
    assert not (tmp_path / "odd.py").exists()
