"""The pretty-printer: AST -> canonical camlang source (`camlang fmt`).

Comments are kept: `format_source` re-attaches each comment line (and trailing comment) to the
statement that follows or contains it, so formatting never loses text.
"""

from __future__ import annotations

import re
from typing import assert_never

from camlang.frontend import syntax as s
from camlang.frontend.op_table import PRECEDENCE_OF_SYMBOL

_PREC = PRECEDENCE_OF_SYMBOL


def _number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    text = repr(value)
    if text in ("inf", "nan"):
        return "1e999"
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", text)  # 1e-06 -> 1e-6, 1e+20 -> 1e20, as people write them


def _string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def pretty_expr(expr: s.Expr, parent: int = 0, right_side: bool = False) -> str:
    """Canonical text of an expression, with only the parentheses precedence needs."""
    match expr:
        case s.Number(value=v):
            text = _number(v)
            return f"({text})" if parent >= 4 and text.startswith("-") else text
        case s.String(value=v):
            return _string(v)
        case s.Const(value=v):
            return "none" if v is None else ("true" if v else "false")
        case s.Name(id=n):
            return n
        case s.Call(func=f, args=args, kwargs=kwargs):
            parts = [pretty_expr(a) for a in args] + [
                f"{k.name.name} = {pretty_expr(k.value)}" for k in kwargs
            ]
            return f"{f.name}({', '.join(parts)})"
        case s.Index(base=b, index=i):
            return f"{b.id}[{pretty_expr(i)}]"
        case s.ListExpr(items=items):
            return "[" + ", ".join(pretty_expr(i) for i in items) + "]"
        case s.BinOp(op=op, left=left, right=right):
            prec = _PREC[op]
            text = f"{pretty_expr(left, prec)} {op} {pretty_expr(right, prec, True)}"
            needs = prec < parent or (prec == parent and right_side) or (prec == 1 and parent == 1)
            return f"({text})" if needs else text
        case s.Neg(operand=operand):
            inner = pretty_expr(operand, 4)
            text = f"-{inner}"
            return f"({text})" if parent >= 4 or (right_side and parent > 0) else text
        case s.AtLayer(expr=inner, layer=layer):
            # postfix `@` binds tightest: anything but an atom or another tag needs parentheses
            return f"{pretty_expr(inner, 5)}@{pretty_expr(layer)}"
        case _:
            assert_never(expr)


def pretty_stmt(stmt: s.Stmt) -> str:
    """Canonical text of one statement (may span several lines)."""
    match stmt:
        case s.Import(path=p):
            return f"import {_string(p.value)}"
        case s.ModelDecl(name=n, source=src, layer=layer, more_layers=more, options=options):
            at = ""
            if layer is not None:
                paths = [_string(p.value) for p in (layer, *more)]
                at = f" at {paths[0]}" if not more else f" at [{', '.join(paths)}]"
                at += "".join(f" {pretty_expr(o)}" for o in options)
            return f"model {n.name} = {pretty_expr(src)}{at}"
        case s.DataDecl(name=n, source=src):
            return f"data {n.name} = {pretty_expr(src)}"
        case s.CamDecl(name=n, expr=e):
            return f"cam {n.name} = {pretty_expr(e)}"
        case s.MetricDecl(name=n, direction=d, expr=e):
            return f"metric {n.name} = {d} {pretty_expr(e)}"
        case s.GrammarDecl(name=n, productions=prods):
            width = max((len(p.lhs.name) for p in prods), default=0)
            body = "".join(
                f"  {p.lhs.name.ljust(width)} -> {' | '.join(pretty_expr(a) for a in p.alternatives)}\n"
                for p in prods
            )
            return f"grammar {n.name} {{\n{body}}}"
        case s.SynthDecl(name=n, grammar=g, settings=settings):
            body = "".join(f"  {st.key.name} = {pretty_expr(st.value)}\n" for st in settings)
            return f"synthesize {n.name} from {g.name} {{\n{body}}}"
        case s.PropertyDecl(name=n, claim=c):
            return f"property {n.name} = {pretty_expr(c)}"
        case s.Evaluate(cams=cams, model=m, data=d, metrics=metrics, concept=target):
            clause = "" if target is None else f" for concept {target.concepts.name}.{target.concept.name}"
            return (
                f"evaluate [{', '.join(c.name for c in cams)}] on {m.name}, {d.name} "
                f"with [{', '.join(x.name for x in metrics)}]{clause}"
            )
        case s.Check(properties=props):
            return "check " + ", ".join(p.name for p in props)
        case s.Export(cam=c, path=p):
            return f"export {c.name} to {_string(p.value)}"
        case s.ConceptsDecl(name=n, source=src):
            return f"concepts {n.name} = {pretty_expr(src)}"
        case s.MonitorDecl(name=n, source=src):
            return f"monitor {n.name} = {pretty_expr(src)}"
        case s.Heatmaps(concepts=c, model=m, data=d):
            return f"heatmaps {c.name} on {m.name}, {d.name}"
        case s.Watch(monitor=m, data=d):
            return f"monitor {m.name} on {d.name}"
        case _:
            assert_never(stmt)


def pretty_module(module: s.Module) -> str:
    """Canonical text of a module without comments (used by round-trip tests)."""
    return "".join(pretty_stmt(st) + "\n" for st in module.statements)


_COMMENT = re.compile(r"#[^\n]*")
_TRAILING = re.compile(r"[ \t]*(#[^\n]*)")


def format_source(text: str, module: s.Module) -> str:
    """Canonical text of a parsed file, keeping its comments and blank-line grouping.

    Comment-only lines stay above the statement that follows them; a trailing comment on a
    statement's line stays at the end of that statement's first line.
    """
    out: list[str] = []
    pos = 0
    for stmt in module.statements:
        start, end = stmt.span.start, stmt.span.end
        _emit_gap(text[pos:start], out, first=not out)
        rendered = pretty_stmt(stmt).split("\n")
        inner_comments = [m.group(0) for m in _COMMENT.finditer(_strip_strings(text[start:end]))]
        line_end = text.find("\n", end)
        line_end = len(text) if line_end < 0 else line_end
        # Only a comment that directly follows the statement on its line trails it (not one after
        # a second statement on the same line).
        trailing = _TRAILING.match(text, end, line_end)
        if trailing:
            inner_comments.append(trailing.group(1))
            end = trailing.end()
        if inner_comments and len(rendered) == 1:
            rendered[0] = f"{rendered[0]}  {'  '.join(inner_comments)}"
        elif inner_comments:
            rendered = [
                f"# {c.lstrip('#').strip()}" if not c.startswith("#") else c for c in inner_comments
            ] + rendered
        out.extend(rendered)
        pos = end
    _emit_gap(text[pos:], out, first=not out, last=True)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def _strip_strings(text: str) -> str:
    """Blank out string literals so a `#` inside a string is not read as a comment."""
    return re.sub(r'"([^"\\\n]|\\.)*"', lambda m: " " * len(m.group(0)), text)


def _emit_gap(gap: str, out: list[str], first: bool, last: bool = False) -> None:
    """Emit the comment lines of the text between two statements, keeping one blank line
    wherever the source had one or more."""
    lines = gap.split("\n")
    if not last:
        lines = lines[:-1]  # the indentation before the next statement, not a line of its own
    blank_run = 0
    for i, line in enumerate(lines):
        if i == 0 and not first:
            continue  # the rest of the previous statement's last line
        stripped = line.strip()
        if stripped.startswith("#"):
            if blank_run and out and out[-1] != "":
                out.append("")
            out.append(stripped)
            blank_run = 0
        elif not stripped:
            blank_run += 1
    if blank_run and out and out[-1] != "" and not last:
        out.append("")
