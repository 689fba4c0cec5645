"""What the editor shows about a name: its kind and type, an op's signature and docstring, a
declaration source's parameters. Hover and completion both read these lines.

All facts come from the checked `Program`, the op table and the signature tables; nothing
here keeps a table of its own.
"""

from __future__ import annotations

from camlang.frontend.op_table import OPS, OpSpec
from camlang.frontend.program import Program
from camlang.frontend.signatures import (
    CONCEPT_SOURCES,
    DATA_SOURCES,
    MODEL_SOURCES,
    MONITOR_KINDS,
    PROPERTY_KINDS,
    REQUIRED,
    SYNTH_SETTINGS,
    Arg,
)
from camlang.frontend.source import Span

#: The signature table of each declaration keyword whose right-hand side is a source call.
SOURCE_TABLES: dict[str, dict[str, tuple[Arg, ...]]] = {
    "model": MODEL_SOURCES,
    "data": DATA_SOURCES,
    "property": PROPERTY_KINDS,
    "concepts": CONCEPT_SOURCES,
    "monitor": MONITOR_KINDS,
}


def arg_text(arg: Arg) -> str:
    """`name` or `name = default`, as the argument is written in a call."""
    return arg.name if arg.default is REQUIRED else f"{arg.name} = {_literal(arg.default)}"


def _literal(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def source_signature(name: str, args: tuple[Arg, ...]) -> str:
    """`torchvision(name, weights = none, ...)` for a declaration source."""
    return f"{name}({', '.join(arg_text(a) for a in args)})"


def arg_doc(arg: Arg) -> str:
    """One line about a parameter: its accepted kinds and its doc."""
    kinds = " | ".join(arg.kinds)
    return f"{kinds}: {arg.doc}" if arg.doc else kinds


def describe_op(spec: OpSpec) -> str:
    """Markdown: an op's signature, type (for terminals), contexts and docstring."""
    head = spec.signature()
    if spec.category in ("terminal", "constant"):
        head = f"{spec.name} : {spec.ty}"
    contexts = ", ".join(sorted(spec.contexts))
    return f"```cam\n{head}\n```\n{spec.doc.strip()}\n\n*{spec.category}; in {contexts} expressions*"


def describe_source(keyword: str, name: str) -> str | None:
    """Markdown for a source call (`torchvision`, `synthetic_shapes`, `equivalent`, ...)."""
    args = SOURCE_TABLES.get(keyword, {}).get(name)
    if args is None:
        for table in SOURCE_TABLES.values():
            if name in table:
                args = table[name]
                break
    if args is None:
        return None
    lines = [f"- `{a.name}`: {arg_doc(a)}" for a in args]
    return f"```cam\n{source_signature(name, args)}\n```\n" + "\n".join(lines)


def describe_setting(key: str) -> str | None:
    """Markdown for a `synthesize` block setting."""
    arg = SYNTH_SETTINGS.get(key)
    return None if arg is None else f"```cam\n{arg_text(arg)}\n```\n{arg_doc(arg)}"


def declaration_line(program: Program, name: str) -> str | None:
    """`cam gradcam : Map[H, W] = ...`, `metric m : Scalar, minimize ...`, `model r = ... at "layer4"`."""
    p = program
    if name in p.cams:
        cam = p.cams[name]
        if cam.node is None:
            return f"cam {name} : Map[H, W] (synthesized by {cam.synthesized_by})"
        return f"cam {name} : {cam.node.ty} = {cam.source_text}"
    if name in p.metrics:
        m = p.metrics[name]
        return f"metric {name} : {m.node.ty} = {m.direction} {m.source_text}"
    if name in p.models:
        md = p.models[name]
        layers = ", ".join(f'"{x}"' for x in (md.layer, *md.more_layers) if x)
        line = f"model {name} = {md.kind}({_args(md.args)})"
        line += f" at {layers}" if layers else " at (the architecture's default layer)"
        if md.layout is not None:
            line += f"\nlayout: {md.layout.kind}"
        if md.more_layers:
            line += f"\nfused with: {md.fuse}"
        return line
    if name in p.datas:
        return f"data {name} = {p.datas[name].kind}({_args(p.datas[name].args)})"
    if name in p.synths:
        sd = p.synths[name]
        return f"synthesize {name} from {sd.grammar} : cam Map[H, W] (runs when first used)"
    if name in p.grammars:
        g = p.grammars[name]
        return f"grammar {name} (start {g.start}; {', '.join(g.productions)})"
    if name in p.properties:
        return f"property {name} = {p.properties[name].kind}(...)"
    if name in p.concept_sets:
        return f"concepts {name} = {p.concept_sets[name].kind}(...)"
    if name in p.monitors:
        return f"monitor {name} = {p.monitors[name].kind}(...)"
    return None


def _args(args: dict[str, object]) -> str:
    shown = [
        f"{k} = {_literal(v)}" for k, v in args.items() if v is not None and isinstance(v, str | int | float)
    ]
    return ", ".join(shown)


def leading_comment(span: Span) -> str:
    """The comment lines directly above a declaration (its documentation in the stdlib)."""
    source = span.source
    line, _ = source.line_col(span.start)
    lines: list[str] = []
    for n in range(line - 1, 0, -1):
        text = source.line_text(n).strip()
        if not text.startswith("#"):
            break
        lines.append(text.lstrip("#").strip())
    return " ".join(reversed(lines))


def hover_markdown(program: Program, name: str, decl_span: Span | None) -> str | None:
    """Markdown for a name: a declaration (with its comment), else an op or terminal."""
    line = declaration_line(program, name)
    if line is not None:
        comment = leading_comment(decl_span) if decl_span is not None else ""
        where = f"\n\n*declared in {decl_span.location()}*" if decl_span is not None else ""
        return f"```cam\n{line}\n```" + (f"\n{comment}" if comment else "") + where
    spec = OPS.get(name)
    return describe_op(spec) if spec is not None else None
