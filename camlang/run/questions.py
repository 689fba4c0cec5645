"""One property of a `check`, decided: a typed question built from its declaration, then one call.

- `SmtQuestion` (robust, saliency_robust, vnnlib): a `camlang.smt.Question` about a network,
  decided by one `camlang.smt.check` call, with the run's cache as the piece memo.
- `CamQuestion` (equivalent, nonnegative, bounded): a claim about cam expressions, decided by the
  symbolic oracle of `camlang.synth`.

`decide` turns either into a report row (`CheckResult`).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch

from camlang import smt, synth
from camlang.errors import CamlangError
from camlang.frontend.ir import Node
from camlang.frontend.program import IndexRef, PropertyDef, Ref
from camlang.frontend.signatures import parse_duration
from camlang.paths import resolve_user_path
from camlang.progress import make_progress
from camlang.report import CheckResult
from camlang.run.state import RunState

# Not in `camlang.smt`'s public names (yet): a run needs both (see the lead's notes).
from camlang.smt import INTERRUPTED, PieceShare

__all__ = ["CamQuestion", "SMT_KINDS", "SmtQuestion", "decide", "property_key", "question_of", "smt_verdict"]

#: The property kinds `camlang.smt` decides; the others are claims about cams.
SMT_KINDS = ("robust", "saliency_robust", "vnnlib")

Status = Literal["holds", "violated", "unknown"]


@dataclass(frozen=True)
class SmtQuestion:
    """An SMT property, resolved: its network, its `camlang.smt` question and its limits."""

    name: str
    module: torch.nn.Module
    question: smt.Question
    backend: str
    timeout_s: float
    # `[1, C, S, S]` for a convolutional network, so flat points (a literal `at`, a VNN-LIB box)
    # fit it; None for a network that takes a flat vector
    input_shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class CamQuestion:
    """A claim about cams: `equivalent` (two nodes), `nonnegative` or `bounded` (one node)."""

    kind: str
    nodes: tuple[Node, ...]
    bounds: tuple[float, float] | None
    timeout_s: float


def decide(state: RunState, pdef: PropertyDef) -> CheckResult:
    """Decide one property and turn the verdict into a report row."""
    try:
        started = time.perf_counter()
        question = question_of(state, pdef)
        if isinstance(question, CamQuestion):
            return _cam_row(state, pdef, question, started)
        return row_of(pdef, smt_verdict(state, pdef, question, None))
    except CamlangError as err:
        if err.span is None:
            err.span = pdef.span
        raise


def question_of(state: RunState, pdef: PropertyDef) -> SmtQuestion | CamQuestion:
    """The typed question a property's declaration asks (its cams must be declared or synthesized)."""
    args = pdef.args
    if pdef.kind not in SMT_KINDS:
        timeout = _seconds(args.get("timeout", 30.0))
        if pdef.kind == "equivalent":
            a, b = state.cam_node(args["a"].name)[0], state.cam_node(args["b"].name)[0]
            return CamQuestion(pdef.kind, (a, b), None, timeout)
        node = state.cam_node(args["cam"].name)[0]
        bounds = (args["lo"], args["hi"]) if pdef.kind == "bounded" else None
        return CamQuestion(pdef.kind, (node,), bounds, timeout)
    loaded = state.model(args["model"].name).loaded
    module, shape = loaded.module, conv_input_shape(loaded.module, loaded.input_size)
    question: smt.Question
    if pdef.kind == "vnnlib":
        question = smt.VnnlibQuestion(
            smt.load_vnnlib(_user_path(pdef, args["path"]), _input_count(module, shape))
        )
    elif pdef.kind == "saliency_robust":
        box = tuple(args["box"]) if args.get("box") else (0.0, 1.0)
        x = _point(state, pdef, module, shape)
        question = smt.SaliencyRobust(x, args["eps"], args["delta"], args.get("label"), box)
    else:
        box_or_none = tuple(args["box"]) if args.get("box") else None
        question = smt.Robust(_point(state, pdef, module, shape), args["eps"], args.get("label"), box_or_none)
    timeout = _seconds(args.get("timeout", 120.0))
    return SmtQuestion(pdef.name, module, question, args.get("backend", "auto"), timeout, shape)


def smt_verdict(
    state: RunState, pdef: PropertyDef, question: SmtQuestion, share: PieceShare | None
) -> smt.Verdict:
    """The verdict of an SMT property; with ``share``, this rank's partial verdict over its share of
    the property's pieces (`camlang.smt.pieces`).

    The solver turns a Ctrl-C into an `unknown` verdict (right for a library call); a run stops
    there instead, so the property is not kept as decided and `--resume` continues it from the
    pieces already proved."""
    name = question.name
    with make_progress(state.console, enabled=state.is_main) as progress:
        task = progress.add_task(f"check {name}", total=None)

        def report_progress(done: int, total: int, message: str = "") -> None:
            progress.update(task, completed=done, total=total or None, description=f"check {name} {message}")

        try:
            verdict = smt.check(
                question.module,
                question.question,
                question.backend,
                question.timeout_s,
                report_progress,
                question.input_shape,
                share=share,
                memo=_CachedPieces(state, pdef),
            )
        except CamlangError as err:
            if err.span is None:
                err.span = pdef.span
            raise
    if verdict.status == "unknown" and verdict.reason == INTERRUPTED:
        raise KeyboardInterrupt
    return verdict


def row_of(pdef: PropertyDef, verdict: smt.Verdict) -> CheckResult:
    """The report row of an SMT verdict."""
    return CheckResult(
        pdef.name,
        pdef.kind,
        verdict.status,
        verdict.backend,
        verdict.seconds,
        verdict.reason,
        verdict.decided_by_bounds,
        verdict.counterexample,
        verdict.replay,
    )


def _cam_row(state: RunState, pdef: PropertyDef, question: CamQuestion, started: float) -> CheckResult:
    builder = state.program.builder
    if question.kind == "equivalent":
        a, b = question.nodes
        verdict = synth.prove_equivalent(builder, a, b, question.timeout_s)
    elif question.bounds is None:
        verdict = synth.prove_nonnegative(builder, question.nodes[0], question.timeout_s)
    else:
        verdict = synth.prove_bounded(builder, question.nodes[0], *question.bounds, question.timeout_s)
    counterexample = verdict.counterexample
    return CheckResult(
        pdef.name,
        pdef.kind,
        _status(verdict.check_status),
        verdict.method,
        time.perf_counter() - started,
        verdict.detail,
        False,
        None if counterexample is None else [f"{k}={v}" for k, v in counterexample.items()],
        None,
    )


def _status(text: str) -> Status:
    for status in ("holds", "violated", "unknown"):
        if text == status:
            return status
    raise AssertionError(f"unexpected verdict status {text!r}")


def property_key(state: RunState, name: str) -> list[Any]:
    """What a property's verdict depends on: its definition, its network's weights and its
    inputs (the data declaration of `at = test[3]`, the bytes of a VNN-LIB file), so `--resume`
    after any of them changed decides it again instead of reading back a verdict or proved
    pieces about another point."""
    pdef = state.program.properties[name]
    model = pdef.args.get("model")
    weights = state.model(model.name).weights_digest if isinstance(model, Ref) else None
    inputs = [_input_identity(state, pdef, key, value) for key, value in sorted(pdef.args.items())]
    return [name, pdef.kind, repr(sorted(pdef.args.items(), key=lambda kv: kv[0])), weights, inputs]


def _input_identity(state: RunState, pdef: PropertyDef, key: str, value: Any) -> Any:
    """What argument `key` stands for when it names an input: a data declaration's own arguments,
    or a digest of a VNN-LIB file's bytes (a path that does not resolve is left to the question to
    report)."""
    if isinstance(value, IndexRef) and value.name in state.program.datas:
        data = state.program.datas[value.name]
        return [data.kind, repr(data.args)]
    path = value[1] if isinstance(value, tuple) and len(value) == 2 and value[0] == "vnnlib" else None
    if pdef.kind == "vnnlib" and key == "path":
        path = value
    if isinstance(path, str):
        found = resolve_user_path(path, pdef.base_dir)
        if found is not None and found.is_file():
            return hashlib.sha256(found.read_bytes()).hexdigest()[:16]
    return None


class _CachedPieces:
    """A property's pieces proved infeasible, kept in the run's cache as they are proved
    (`camlang.smt.pieces.PieceMemo`): `--resume` skips them instead of solving them again."""

    def __init__(self, state: RunState, pdef: PropertyDef) -> None:
        # keyed by the network's weights too (`property_key`): a proof is about these weights
        self.section = state.cache.section("pieces", property_key(state, pdef.name))
        self.proved: dict[str, set[int]] = {}
        if state.options.resume:
            for unit in self.section.units():
                self.proved.setdefault(str(unit["list"]), set()).add(int(unit["piece"]))

    def infeasible(self, key: str) -> set[int]:
        return set(self.proved.get(key, ()))

    def keep(self, key: str, piece: int) -> None:
        self.section.append({"list": key, "piece": piece})


def _seconds(value: Any) -> float:
    """A property's timeout in seconds (a number, or a duration such as "30s" or "2m")."""
    return float(parse_duration(value))


def _user_path(pdef: PropertyDef, value: str) -> str:
    found = resolve_user_path(value, pdef.base_dir)
    if found is None:
        raise CamlangError(f'"{value}" does not exist', span=pdef.span, code="E503")
    return str(found)


def _first_weighted(module: torch.nn.Module) -> torch.nn.Module | None:
    return next((m for m in module.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)), None)


def conv_input_shape(module: torch.nn.Module, input_size: int | None) -> tuple[int, ...] | None:
    """`[1, C, S, S]` for a network whose first weighted layer is a Conv2d (C input channels) and
    whose loader knows its input side S; None for any other network (it takes a flat vector)."""
    first = _first_weighted(module)
    if isinstance(first, torch.nn.Conv2d) and input_size is not None:
        return (1, int(first.in_channels), int(input_size), int(input_size))
    return None


def _flat_inputs(module: torch.nn.Module, shape: tuple[int, ...] | None) -> int | None:
    """How many values a flat point has: all of `shape`, else the first Linear layer's inputs;
    None for a convolutional network of unknown input size."""
    if shape is not None:
        return int(math.prod(shape))
    first = _first_weighted(module)
    return int(first.in_features) if isinstance(first, torch.nn.Linear) else None


def _input_count(module: torch.nn.Module, shape: tuple[int, ...] | None) -> int:
    count = _flat_inputs(module, shape)
    if count is None:
        raise CamlangError(
            "cannot tell how many inputs the network takes",
            hint="give `at` as a literal vector, or declare the model with `input_size = N`",
        )
    return count


def _point(
    state: RunState, pdef: PropertyDef, module: torch.nn.Module, shape: tuple[int, ...] | None
) -> torch.Tensor:
    at = pdef.args["at"]
    if isinstance(at, list):
        count = _flat_inputs(module, shape)
        if count is not None and len(at) != count:
            raise CamlangError(
                f"`at` has {len(at)} values but the network takes {count} inputs",
                span=pdef.span,
                code="E503",
                hint="give one value per input",
            )
        return torch.tensor([float(v) for v in at], dtype=torch.float64)
    if isinstance(at, IndexRef):
        ds = state.data(at.name)
        if not 0 <= at.index < len(ds):
            raise CamlangError(
                f"{at.name}[{at.index}] is out of range: `{at.name}` has {len(ds)} images",
                span=pdef.span,
                code="E503",
            )
        # with its batch dimension: `[1, 28, 28]` alone would reach a Conv2d as an unbatched
        # 28-channel image
        return ds.get([at.index]).x[:1].double()
    if isinstance(at, tuple) and at[0] == "vnnlib":
        prop = smt.load_vnnlib(_user_path(pdef, at[1]), _input_count(module, shape))
        return torch.as_tensor(prop.point(), dtype=torch.float64)
    if isinstance(at, Ref):
        raise CamlangError(
            f"`at = {at.name}` names a data set; pick one image with {at.name}[i]", span=pdef.span
        )
    raise CamlangError(f"cannot use {at!r} as a point", span=pdef.span)
