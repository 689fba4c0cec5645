"""Completion at a cursor: what the REPL's completer offers (keywords, declared names, ops with
signatures, terminals), plus what only a file editor needs: keyword arguments of declaration
sources and `synthesize` settings, source names after `model X =`, torchvision architectures
and their layer names inside strings, the declared models' layer names after `@"` and in a
grammar's layer hole, and import paths.

The REPL's completer reads its names from a live `Session`, which imports the runtime (and so
torch); this module takes them from the last checked `Program` and the same tables
(`op_table`, `signatures`, `syntax.KEYWORDS`) instead. `complete` is a pure function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from camlang.frontend import syntax as s
from camlang.frontend.op_table import FUNCTIONS, OPS, TERMINALS
from camlang.frontend.program import Program
from camlang.frontend.signatures import SYNTH_SETTINGS
from camlang.lsp.describe import (
    SOURCE_TABLES,
    arg_doc,
    arg_text,
    declaration_line,
    describe_op,
    source_signature,
)
from camlang.lsp.layers import architectures, declared_layers, layers_of
from camlang.paths import stdlib_root

Kind = Literal["keyword", "declaration", "op", "terminal", "source", "argument", "layer", "file"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*$")
_STATEMENT = re.compile(r"^[ \t]*(" + "|".join(map(re.escape, s.STATEMENT_KEYWORDS)) + r")\b", re.MULTILINE)
_DECL_RHS = re.compile(r"^\s*(model|data|property|concepts|monitor)\s+\w+\s*=\s*\w*$")
_GRAMMAR = re.compile(r"^[ \t]*grammar\b", re.MULTILINE)
_TORCHVISION = re.compile(r'torchvision\(\s*(?:name\s*=\s*)?"([^"]*)"')


@dataclass(frozen=True, slots=True)
class Candidate:
    """One completion item: the label, what it inserts, and the text shown beside it."""

    label: str
    kind: Kind
    detail: str = ""
    documentation: str = ""
    insert_text: str | None = None


@dataclass(frozen=True, slots=True)
class _Bracket:
    """An unclosed bracket before the cursor and the name written just before it."""

    char: str
    name: str


def complete(before: str, program: Program | None, folder: Path | None) -> list[Candidate]:
    """Completions for a cursor after `before` (the document's text up to the cursor)."""
    start = _statement_start(before)
    stmt = before[start:]
    keyword = stmt.split(None, 1)[0] if stmt.strip() else ""
    where, string_prefix, brackets = _scan(stmt)
    if where == "comment":
        return []
    if where == "string":
        if is_layer_string(stmt[: len(stmt) - len(string_prefix) - 1], before):
            return model_layers(string_prefix, program)
        return _in_string(stmt, string_prefix, brackets, folder)
    word = _word(before)
    if _DECL_RHS.match(stmt) and keyword in SOURCE_TABLES:
        return _sources(keyword, word)
    inner = brackets[-1] if brackets else None
    if inner is not None and inner.char == "{" and keyword == "synthesize":
        if not stmt[: len(stmt) - len(word)].rstrip().endswith("="):
            return _settings(word)
    extra: list[Candidate] = []
    if inner is not None and inner.char == "(":
        extra = _keyword_args(keyword, inner.name, word)
    at_start = not stmt[: len(stmt) - len(word)].strip()
    return extra + words(word, program, statement_start=at_start)


def words(prefix: str, program: Program | None, *, statement_start: bool = False) -> list[Candidate]:
    """Keywords, declared names (across imports), ops and terminals starting with `prefix`."""
    out: list[Candidate] = []
    if statement_start:
        out += [Candidate(k, "keyword", "statement") for k in s.STATEMENT_KEYWORDS if k.startswith(prefix)]
    declared: set[str] = set()
    if program is not None:
        for kind, table in program.tables().items():
            for name in sorted(table):
                if name.startswith(prefix):
                    declared.add(name)
                    out.append(Candidate(name, "declaration", declaration_line(program, name) or kind))
    for name, spec in FUNCTIONS.items():
        if name.startswith(prefix) and name not in declared:
            out.append(Candidate(name, "op", spec.signature(), describe_op(spec)))
    for name, spec in TERMINALS.items():
        if name.startswith(prefix) and name not in declared:
            out.append(Candidate(name, "terminal", f"{name} : {spec.ty}", describe_op(spec)))
    if not statement_start:
        out += [Candidate(k, "keyword") for k in sorted(s.KEYWORDS) if k.startswith(prefix) and k != prefix]
    return out


def _sources(keyword: str, prefix: str) -> list[Candidate]:
    return [
        Candidate(
            name,
            "source",
            source_signature(name, args),
            "\n".join(f"- `{a.name}`: {arg_doc(a)}" for a in args),
        )
        for name, args in SOURCE_TABLES[keyword].items()
        if name.startswith(prefix)
    ]


def _keyword_args(keyword: str, call: str, prefix: str) -> list[Candidate]:
    """`name = ` items for the parameters of a source call or of an op's static parameters."""
    args = SOURCE_TABLES.get(keyword, {}).get(call)
    if args is not None:
        return [
            Candidate(arg_text(a), "argument", arg_doc(a), insert_text=f"{a.name} = ")
            for a in args
            if a.name.startswith(prefix)
        ]
    spec = OPS.get(call)
    if spec is None:
        return []
    return [
        Candidate(f"{p.name} =", "argument", p.kind, insert_text=f"{p.name} = ")
        for p in spec.static_params
        if p.name.startswith(prefix)
    ]


def _settings(prefix: str) -> list[Candidate]:
    return [
        Candidate(arg_text(a), "argument", arg_doc(a), insert_text=f"{a.name} = ")
        for a in SYNTH_SETTINGS.values()
        if a.name.startswith(prefix)
    ]


def _in_string(stmt: str, prefix: str, brackets: list[_Bracket], folder: Path | None) -> list[Candidate]:
    """Inside a string: layer names after `at`, architectures in `torchvision(`, else paths."""
    head = stmt[: len(stmt) - len(prefix) - 1].rstrip()
    if re.search(r"\bat\s*\[?[^()]*$", head) and stmt.lstrip().startswith("model"):
        arch = _TORCHVISION.search(stmt)
        names = layers_of(arch.group(1)) if arch else ()
        return [
            Candidate(n, "layer", f"layer of {arch.group(1)}" if arch else "")
            for n in names
            if n.startswith(prefix)
        ]
    if brackets and brackets[-1].name == "torchvision":
        return [
            Candidate(a, "source", "torchvision architecture")
            for a in architectures()
            if a.startswith(prefix)
        ]
    return _paths(prefix, folder, stdlib=stmt.lstrip().startswith("import"))


def is_layer_string(head: str, before: str) -> bool:
    """Does a string opened right after `head` name a layer? After `@` (`A@"`), or as an
    alternative of a nonterminal inside a `grammar` block (`l -> "layer1" | "`: only a layer hole
    has string alternatives). `before` is the text up to the cursor, to find the block."""
    head = head.rstrip()
    if head.endswith("@"):
        return True
    if not head.endswith(("->", "|")):
        return False
    starts = [m.start() for m in _GRAMMAR.finditer(before)]
    return bool(starts) and any(b.char == "{" for b in _scan(before[starts[-1] :])[2])


def model_layers(prefix: str, program: Program | None) -> list[Candidate]:
    """The layer paths of the declared models (across imports) starting with `prefix`, each with
    the models that have it."""
    owners: dict[str, list[str]] = {}
    for name, model in (program.models if program is not None else {}).items():
        for layer in declared_layers(model):
            owners.setdefault(layer, []).append(name)
    return [
        Candidate(layer, "layer", "layer of " + ", ".join(models))
        for layer, models in owners.items()
        if layer.startswith(prefix)
    ]


def _paths(prefix: str, folder: Path | None, *, stdlib: bool) -> list[Candidate]:
    """Files below `folder` (and the stdlib's `stdlib/*.cam` for imports) matching `prefix`."""
    out: list[Candidate] = []
    if stdlib:
        for path in sorted((stdlib_root() / "stdlib").glob("*.cam")):
            rel = f"stdlib/{path.name}"
            if rel.startswith(prefix):
                out.append(Candidate(rel, "file", "stdlib"))
    head, _, tail = prefix.rpartition("/")
    base = (folder or Path.cwd()) / head
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return out
    for entry in entries[:200]:
        if entry.name.startswith(tail) and not entry.name.startswith("."):
            shown = (f"{head}/" if head else "") + entry.name + ("/" if entry.is_dir() else "")
            if all(c.label != shown for c in out):
                out.append(Candidate(shown, "file", "folder" if entry.is_dir() else "file"))
    return out


def _statement_start(text: str) -> int:
    """Where the statement holding the end of `text` begins (a line opening with a keyword)."""
    last = 0
    for m in _STATEMENT.finditer(text):
        last = m.start(1)
    return last


def _word(text: str) -> str:
    m = _WORD.search(text)
    return m.group(0) if m else ""


def _scan(text: str) -> tuple[str, str, list[_Bracket]]:
    """Where the end of `text` is ("code", "string" with its text so far, or "comment"), and the
    brackets still open there."""
    brackets: list[_Bracket] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            if end < 0:
                return "comment", "", brackets
            i = end
        elif ch == '"':
            j = i + 1
            while j < len(text) and text[j] not in '"\n':
                j += 2 if text[j] == "\\" else 1
            if j >= len(text):
                return "string", text[i + 1 :], brackets
            i = j
        elif ch in "([{":
            brackets.append(_Bracket(ch, _word(text[:i].rstrip())))
        elif ch in ")]}" and brackets:
            brackets.pop()
        i += 1
    return "code", "", brackets
