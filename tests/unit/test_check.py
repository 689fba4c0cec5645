"""The checker: one test (or more) per rule, asserting code, position, message and hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from camlang.errors import CamlangError
from camlang.frontend.check import Checker, check_file, check_text, suggest
from camlang.frontend.diagnostics import Diagnostic
from camlang.frontend.program import IndexRef, Program, Ref
from camlang.frontend.source import SourceFile
from camlang.frontend.value_types import INPUT_MAP, LAYER_MAP, SCALAR

PRELUDE = """model m = checkpoint("m.pt", arch = "shapes_cnn") at "features.6"
data d = synthetic_shapes(count = 8, size = 32)
cam gradcam = relu(sum_c(mean_hw(G) * A))
metric drop = minimize relu(P - P_at(X * L)) / P
"""


def diags(text: str) -> list[Diagnostic]:
    return check_text(text, "t.cam", file_checks=False).diagnostics


def only(text: str) -> Diagnostic:
    """The single diagnostic the text must produce."""
    found = diags(text)
    assert len(found) == 1, [(d.code, d.message) for d in found]
    return found[0]


def at(d: Diagnostic) -> tuple[str, int, int]:
    return (d.code, *d.span.line_col())


def test_valid_program_has_no_diagnostics_and_fills_the_program() -> None:
    program = check_text(PRELUDE + "evaluate [gradcam] on m, d with [drop]\n", "t.cam", file_checks=False)
    assert program.diagnostics == []
    assert program.models["m"].kind == "checkpoint"
    assert program.models["m"].args["arch"] == "shapes_cnn" and program.models["m"].args["input_size"] is None
    assert program.models["m"].layer == "features.6"
    assert program.datas["d"].args == {
        "count": 8,
        "size": 32,
        "seed": 0,
        "classes": None,
        "shortcut": 0.0,
        "limit": None,
        "shuffle": None,
        "split": None,
        "split_fraction": 0.5,
    }
    cam = program.cams["gradcam"]
    assert cam.source_text == "relu(sum_c(mean_hw(G) * A))"
    assert cam.node is not None and cam.node.ty == LAYER_MAP
    assert program.metrics["drop"].node.ty == SCALAR and program.metrics["drop"].direction == "minimize"
    assert len(program.actions) == 1
    assert program.summary() == {"model": ["m"], "data": ["d"], "cam": ["gradcam"], "metric": ["drop"]}
    assert program.kind_of("drop") == "metric" and program.kind_of("nope") is None


# ---- E301: axes ------------------------------------------------------------------------------


def test_wrong_axes() -> None:
    d = only("cam bad = sum_c(mean_c(A))")
    assert at(d) == ("E301", 1, 11)
    assert d.message == "sum_c expects a tensor with channels, got Map[H, W]"
    assert d.hint == "the channel axis is already gone"


def test_layer_and_input_resolutions_do_not_mix() -> None:
    d = only("cam bad = relu(sum_c(A)) + mean_c(X)")
    assert at(d) == ("E301", 1, 11)
    assert "cannot combine layer-resolution and input-resolution values" in d.message
    assert d.hint is not None and "upsample" in d.hint


def test_upsample_needs_a_map() -> None:
    d = only("cam bad = upsample(A)")
    assert d.code == "E301" and "upsample expects Map[H, W], got Tensor[C, H, W]" in d.message


def test_input_resolution_cam_is_a_map() -> None:
    program = check_text("cam up = upsample(relu(sum_c(A)))\ncam gx = relu(sum_c(GX * X))", file_checks=False)
    assert program.diagnostics == []
    assert program.cams["up"].node.ty == INPUT_MAP  # type: ignore[union-attr]


# ---- E101: unknown names, with the closest suggestion ------------------------------------------


def test_unknown_name_suggests_the_closest() -> None:
    d = only(PRELUDE + "cam c = relu(sum_c(gradcm * A))")
    assert at(d) == ("E101", 5, 20)
    assert d.message == "unknown name `gradcm`" and d.hint == "did you mean `gradcam`?"


def test_unknown_op_suggests_the_closest() -> None:
    d = only("cam c = relu(summ_c(A))")
    assert at(d) == ("E101", 1, 14)
    assert d.message == "unknown op `summ_c`" and d.hint == "did you mean `sum_c`?"


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ('model m = checkpont("m.pt")', "unknown model source `checkpont`", "did you mean `checkpoint`?"),
        (
            "data d = synthetic_shape()",
            "unknown data source `synthetic_shape`",
            "did you mean `synthetic_shapes`?",
        ),
        ("property p = equivalnt(a, b)", "unknown property `equivalnt`", "did you mean `equivalent`?"),
        (
            PRELUDE + "evaluate [gradcm] on m, d with [drop]",
            "unknown cam `gradcm`",
            "did you mean `gradcam`?",
        ),
        (PRELUDE + "evaluate [gradcam] on m, d with [drp]", "unknown metric `drp`", "did you mean `drop`?"),
        (PRELUDE + 'export gradcan to "g.py"', "unknown cam `gradcan`", "did you mean `gradcam`?"),
        ("check nothing", "unknown property `nothing`", "declare it with `property nothing = ...`"),
    ],
)
def test_unknown_declarations(text: str, message: str, hint: str) -> None:
    d = only(text)
    assert d.code == "E101" and d.message == message and d.hint == hint


def test_unknown_name_without_close_match_gets_no_wrong_suggestion() -> None:
    d = only("cam c = relu(sum_c(A * Bogus))")
    assert d.code == "E101" and d.hint is None


def test_op_used_as_a_name() -> None:
    d = only("cam c = relu(sum_c(relu))")
    assert d.code == "E201" and "`relu` is an op: call it as relu(x)" == d.message


def test_metric_names_a_cam_without_ref() -> None:
    d = only(PRELUDE + "metric k = maximize mean(gradcam)")
    assert d.code == "E101" and d.hint == "refer to another cam's map with ref(gradcam)"


def test_ref_of_a_cam_in_a_metric() -> None:
    program = check_text(PRELUDE + "metric agree = maximize iou(L, ref(gradcam))", file_checks=False)
    assert program.diagnostics == []
    ref = program.metrics["agree"].node.args[1]
    assert ref.op == "ref" and ref.attr("cam") == "gradcam"
    d = only(PRELUDE + "metric agree = maximize iou(L, ref(drop))")
    assert d.code == "E202" and d.message == "ref: `cam` must name a cam, got the name `drop`"


# ---- E201 / E203 / E204: arity and keyword arguments -------------------------------------------


def test_wrong_arity() -> None:
    d = only("cam c = relu(sum_c(G, A))")
    assert at(d) == ("E201", 1, 14) and d.message == "sum_c(x) takes 1 argument, got 2"
    d = only("cam c = relu(sum_c(pow(A)))")
    assert d.code == "E201" and d.message == "pow(x, p) is missing `p`"
    d = only("cam c = relu(sum_c(A), x = A)")
    assert d.code == "E201" and d.message == "argument `x` given twice"


def test_unknown_keyword_arguments() -> None:
    d = only("cam c = relu(sum_c(A), foo = 3)")
    assert at(d) == ("E203", 1, 24)
    assert d.message == "relu has no argument `foo`" and d.hint == "signature: relu(x)"
    d = only('model m = checkpoint("m.pt", arc = "shapes_cnn")')
    assert at(d) == ("E203", 1, 30)
    assert d.message == "checkpoint has no argument `arc`" and d.hint == "did you mean `arch`?"


def test_declaration_source_arity_and_missing_arguments() -> None:
    d = only('model m = onnx("a.onnx", 1, "x", 3, 4)')
    assert d.code == "E201" and d.message == "onnx takes at most 4 arguments, got 5"
    assert d.span.text == "4"
    d = only('model m = checkpoint(arch = "x")')
    assert d.code == "E204" and d.message == "checkpoint needs the argument `path`"
    d = only('model m = checkpoint("a.pt", path = "b.pt")')
    assert d.code == "E201" and d.message == "argument `path` given twice"


# ---- E202: literal kinds -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('data d = synthetic_shapes(count = "many")', '`count` expects an integer, got the string "many"'),
        ("data d = synthetic_shapes(count = 1.5)", "`count` expects an integer, got the number 1.5"),
        ("model m = torchvision(3)", "`name` expects a string, got the number 3"),
        ('data d = mnist("p", train = 1)', "`train` expects true or false, got the number 1"),
        (
            'metric k = maximize mean(blur(X, sigma = "a"))',
            'blur: `sigma` must be a number literal, got the string "a"',
        ),
        (
            "metric k = maximize mean(shift(X, 1.5, 2))",
            "shift: `dx` must be an integer literal, got the number 1.5",
        ),
        ("metric k = maximize road(L, mode = 3)", "road: `mode` must be a string literal, got the number 3"),
        ('cam c = relu("x")', 'the string "x" cannot be used as a value in a cam'),
        ("cam c = relu(sum_c([1, 2]))", "a list cannot be used as a value in a cam"),
        ("metric k = maximize mean(true)", "true cannot be used as a value in a metric"),
        ("data d = synthetic_shapes(count = 0)", "`count` must be positive, got 0"),
        ('data d = synthetic_shapes(split = "test")', 'split must be "train" or "holdout", got "test"'),
        ("model n = mlp([5])", "mlp sizes must be a list of at least two positive integers"),
    ],
)
def test_bad_literal_kinds(text: str, message: str) -> None:
    d = only(text)
    assert d.code == "E202" and d.message == message


def test_references_of_the_wrong_kind() -> None:
    d = only(PRELUDE + "evaluate [drop] on m, d with [drop]")
    assert at(d) == ("E202", 5, 11) and d.message == "`drop` is a metric, not a cam"
    d = only(PRELUDE + "property p = nonnegative(m)")
    assert d.code == "E202" and d.message == "`m` is a model, not a cam"


# ---- E302: terminals outside their context -------------------------------------------------------


def test_mask_in_a_cam() -> None:
    d = only("cam c = relu(sum_c(A) * MASK)")
    assert at(d) == ("E302", 1, 25)
    assert d.message == "`MASK` cannot be used in a cam"
    assert d.hint == "MASK is the ground truth; it is only available in metrics"


def test_activations_in_a_metric() -> None:
    d = only("metric k = maximize mean(A)")
    assert at(d) == ("E302", 1, 26)
    assert d.message == "`A` cannot be used in a metric"
    assert d.hint == "metrics see the CAM as L; A and G belong to cam expressions"


def test_metric_op_in_a_cam() -> None:
    d = only("cam c = relu(sum_c(A)) * P_at(X)")
    assert d.code == "E302" and d.message == "`P_at` cannot be used in a cam"


# ---- E303 / E304: result types -------------------------------------------------------------


def test_cam_not_a_map() -> None:
    d = only("cam c = relu(A)")
    assert at(d) == ("E303", 1, 9)
    assert d.message == "a cam must be a map [H, W], but this expression is Tensor[C, H, W]"
    assert d.hint == "reduce the channels, e.g. sum_c(...)"
    d = only("cam c = sum_hw(mean_c(A))")
    assert d.code == "E303" and d.message.endswith("this expression is Scalar")


def test_metric_not_scalar() -> None:
    d = only("metric k = maximize L * MASK")
    assert at(d) == ("E304", 1, 21)
    assert d.message == "a metric must be a scalar per image, but this expression is Map[Hin, Win]"
    assert d.hint == "reduce it, e.g. mean(...) or sum(...)"


# ---- E102 / E105: duplicates and reserved names ----------------------------------------------------


def test_duplicate_definitions() -> None:
    d = only("cam a = relu(sum_c(A))\ndata a = synthetic_shapes()")
    assert at(d) == ("E102", 2, 6)
    assert d.message == "`a` is already defined (as a cam)"


def test_redefinition_is_a_warning_in_the_repl() -> None:
    program = Program(SourceFile("<repl>", ""))
    checker = Checker(program, allow_redefine=True, file_checks=False)
    checker.check_source(SourceFile("<repl>", "cam a = relu(sum_c(A))\ncam a = relu(sum_c(G))"))
    assert [(d.code, d.severity) for d in checker.bag.items] == [("W002", "warning")]
    assert program.cams["a"].source_text == "relu(sum_c(G))"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cam model = relu(sum_c(A))", "`model` is a keyword and cannot be declared"),
        ("cam none = relu(sum_c(A))", "`none` is a keyword and cannot be declared"),
        ("cam X = relu(sum_c(A))", "`X` is a built-in terminal"),
        ("metric MASK = maximize mean(L)", "`MASK` is a built-in terminal"),
        ("cam const = relu(sum_c(A))", "`const` is a built-in terminal"),
    ],
)
def test_reserved_names(text: str, message: str) -> None:
    d = only(text)
    assert d.code == "E105" and d.message == message


# ---- imports -------------------------------------------------------------------------------------


def test_stdlib_import_defines_the_classic_cams() -> None:
    program = check_text('import "stdlib/cams.cam"\n', "t.cam")
    assert program.diagnostics == []
    assert {"gradcam", "gradcampp", "scorecam", "eigencam"} <= set(program.cams)
    assert program.cams["gradcam"].origin.endswith("cams.cam")


def test_import_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.cam").write_text('import "b.cam"\ncam ca = relu(sum_c(A))\n')
    (tmp_path / "b.cam").write_text('import "c.cam"\n')
    (tmp_path / "c.cam").write_text('import "a.cam"\ncam cc = relu(sum_c(G))\n')
    program = check_file(tmp_path / "a.cam")
    (d,) = program.diagnostics
    assert d.code == "E104"
    assert d.message == "import cycle: a.cam -> b.cam -> c.cam -> a.cam"
    assert d.span.text == '"a.cam"' and d.span.source.path == (tmp_path / "c.cam").resolve()
    assert set(program.cams) == {"ca", "cc"}


def test_self_import_is_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.cam").write_text('import "a.cam"\n')
    (d,) = check_file(tmp_path / "a.cam").diagnostics
    assert d.code == "E104" and d.message == "import cycle: a.cam -> a.cam"


def test_diamond_import_loads_once(tmp_path: Path) -> None:
    (tmp_path / "base.cam").write_text("cam shared = relu(sum_c(A))\n")
    (tmp_path / "l.cam").write_text('import "base.cam"\n')
    (tmp_path / "r.cam").write_text('import "base.cam"\n')
    (tmp_path / "top.cam").write_text('import "l.cam"\nimport "r.cam"\n')
    assert check_file(tmp_path / "top.cam").diagnostics == []


def test_missing_import_and_errors_inside_imports(tmp_path: Path) -> None:
    (tmp_path / "bad.cam").write_text("cam oops = relu(A)\n")
    (tmp_path / "main.cam").write_text('import "nope.cam"\nimport "bad.cam"\n')
    found = check_file(tmp_path / "main.cam").diagnostics
    assert [d.code for d in found] == ["E103", "E303"]
    assert found[0].message == 'cannot import "nope.cam": no such file'
    assert found[1].span.source.path == (tmp_path / "bad.cam").resolve()


def test_import_with_a_nul_byte_is_a_clean_error() -> None:
    d = only('import "a\x00b"')
    assert d.code == "E103"


def test_actions_of_imported_files_do_not_run(tmp_path: Path) -> None:
    (tmp_path / "lib.cam").write_text(PRELUDE + "evaluate [gradcam] on m, d with [drop]\n")
    (tmp_path / "main.cam").write_text('import "lib.cam"\n')
    program = check_file(tmp_path / "main.cam", file_checks=False)
    assert program.diagnostics == [] and program.actions == []


def test_missing_main_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(CamlangError, match="no such file"):
        check_file(tmp_path / "absent.cam")


# ---- grammars and synthesis ------------------------------------------------------------------


GRAMMAR = """grammar g {
  cam -> relu(sum_c(w * A))
  w   -> mean_hw(t) | sum_hw(t)
  t   -> G | A | t * t
}
"""


def test_grammar_is_recorded_with_its_start_symbol() -> None:
    program = check_text(GRAMMAR, file_checks=False)
    assert program.diagnostics == []
    g = program.grammars["g"]
    assert g.start == "cam" and list(g.productions) == ["cam", "w", "t"] and len(g.productions["t"]) == 3


def test_grammar_name_with_no_productions() -> None:
    d = only("grammar g {\n  cam -> relu(sum_c(w * A))\n  w -> mean_hw(t)\n}")
    assert at(d) == ("E401", 3, 16)
    assert d.message == "`t` is neither a nonterminal of grammar `g` nor a terminal"
    assert d.hint == "add a production for it"


def test_grammar_errors() -> None:
    assert only("grammar g { }").message == "grammar `g` has no productions"
    d = only("grammar g { relu -> A }")
    assert d.code == "E401" and d.message == "`relu` is a built-in name and cannot be a nonterminal"
    d = only("grammar g { a -> f(A) }")
    assert d.code == "E101" and d.message == "unknown op `f`"
    d = only('grammar g { a -> relu("x") }')
    assert d.code == "E401" and d.message == "only names, numbers, ops and arithmetic may appear in a grammar"


def test_synthesize_block() -> None:
    text = PRELUDE + GRAMMAR + 'synthesize best from g { model = m data = d objective = drop time = "2m" }\n'
    program = check_text(
        text + 'evaluate [best] on m, d with [drop]\nexport best to "b.py"', file_checks=False
    )
    assert program.diagnostics == []
    st = program.synths["best"].settings
    assert st["model"] == Ref("m") and st["data"] == Ref("d") and st["objective"] == Ref("drop")
    assert st["time"] == 120.0 and st["max_size"] == 9 and st["strategy"] == "racing"
    assert program.kind_of("best") == "synthesize"


@pytest.mark.parametrize("missing", ["model", "data", "objective"])
def test_synthesize_missing_a_required_key(missing: str) -> None:
    settings = {"model": "m", "data": "d", "objective": "drop"}
    del settings[missing]
    body = " ".join(f"{k} = {v}" for k, v in settings.items())
    d = only(PRELUDE + GRAMMAR + f"synthesize best from g {{ {body} }}")
    assert d.code == "E402" and d.span.text == "best"
    assert d.message == f"synthesize `best` is missing the required setting `{missing}`"


def test_synthesize_objective_that_is_not_a_metric() -> None:
    d = only(PRELUDE + GRAMMAR + "synthesize best from g { model = m data = d objective = gradcam }")
    assert d.code == "E202" and d.message == "`gradcam` is a cam, not a metric"
    assert d.span.text == "gradcam"


def test_synthesize_settings_errors() -> None:
    base = PRELUDE + GRAMMAR + "synthesize best from g { model = m data = d objective = drop "
    d = only(base + "budgett = 3 }")
    assert d.code == "E402" and d.message == "unknown setting `budgett` in synthesize"
    assert d.hint == "did you mean `budget`?"
    assert only(base + "model = m }").message == "setting `model` given twice"
    assert only(base + 'time = "soon" }').message == 'bad time limit "soon"'
    assert (
        only(base + 'strategy = "greedy" }').message
        == 'strategy must be "racing" or "exhaustive", got "greedy"'
    )
    d = only(PRELUDE + "synthesize best from gg { model = m data = d objective = drop }")
    assert d.code == "E101" and d.message == "unknown grammar `gg`"


# ---- properties, actions, files ------------------------------------------------------------------


def test_properties() -> None:
    text = (
        PRELUDE + 'model b = mlp([2, 3, 2])\nproperty r = robust(b, at = [1, 0], eps = 0.5, timeout = "1m")\n'
    )
    program = check_text(
        text + "property q = saliency_robust(b, at = d[3], eps = 1, delta = 0.5)", file_checks=False
    )
    assert program.diagnostics == []
    assert program.properties["r"].args["at"] == [1, 0] and program.properties["r"].args["timeout"] == 60.0
    assert program.properties["q"].args["at"] == IndexRef("d", 3)
    d = only(text.replace("eps = 0.5", "eps = -1"))
    assert d.code == "E503" and d.message == "`eps` must be >= 0, got -1" and d.span.text == "-1"
    d = only(text.replace('"1m"', '"never"'))
    assert d.code == "E503" and d.message == 'bad timeout "never"'


def test_export_path_must_be_python() -> None:
    d = only(PRELUDE + 'export gradcam to "gradcam.txt"')
    assert at(d) == ("E202", 5, 19)
    assert d.message == 'export writes a Python file; "gradcam.txt" does not end in .py'


def test_missing_referenced_file_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "w.cam"
    path.write_text('model m = checkpoint("absent.pt")\n')
    (d,) = check_file(path).diagnostics
    assert d.code == "W001" and d.severity == "warning" and d.span.text == '"absent.pt"'
    assert check_file(path, file_checks=False).diagnostics == []
    (tmp_path / "absent.pt").write_bytes(b"")
    assert check_file(path).diagnostics == []


def test_many_mistakes_are_all_reported() -> None:
    found = diags('cam a = relu(A)\ncam b = sum_c(MASK)\nmetric k = maximize L\nexport a to "a.txt"')
    # `a` failed to check, so `export a` reports only its own mistake, not "unknown cam `a`"
    assert [at(d) for d in found] == [("E303", 1, 9), ("E302", 2, 15), ("E304", 3, 21), ("E202", 4, 13)]


def test_failed_declarations_do_not_cascade() -> None:
    text = PRELUDE + "cam bad = relu(A)\ncam uses = bad * 2\nmetric r = maximize iou(L, ref(bad))\n"
    text += "grammar g { cam -> nothing }\nsynthesize s from g { model = m data = d objective = drop }\n"
    text += 'evaluate [bad, s] on m, d with [drop]\nexport bad to "bad.py"\n'
    assert [d.code for d in diags(text)] == ["E303", "E401"]


def test_failed_names_are_reported_again_in_a_later_repl_input() -> None:
    program = Program(SourceFile("<repl>", ""))
    checker = Checker(program, allow_redefine=True, file_checks=False)
    checker.check_source(SourceFile("<repl>", "cam bad = relu(A)"))
    checker.check_source(SourceFile("<repl>", "cam uses = bad * 2"))
    assert [d.code for d in checker.bag.items] == ["E303", "E101"]


def test_syntax_errors_and_type_errors_are_reported_together() -> None:
    found = diags("cam a = \ncam b = relu(A)\n")
    assert [d.code for d in found] == ["E001", "E303"]


def test_interning_shares_equal_expressions() -> None:
    program = check_text("cam a = relu(sum_c(G * A))\ncam b = relu(sum_c(G * A))\ncam c = relu(sum_c(A * G))")
    assert program.cams["a"].node is program.cams["b"].node
    assert program.cams["a"].node is not program.cams["c"].node


def test_cam_can_reuse_another_cam() -> None:
    program = check_text("cam a = relu(sum_c(A))\ncam b = a * 2", file_checks=False)
    assert program.diagnostics == []
    b = program.cams["b"].node
    assert b is not None and b.args[0] is program.cams["a"].node


def test_suggest() -> None:
    assert suggest("gradcm", ["gradcam", "hirescam"]) == "did you mean `gradcam`?"
    assert suggest("zzz", ["gradcam"]) is None
