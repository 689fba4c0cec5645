"""One-off helper of scripts/format_code.sh: fix the E501 lines the formatter leaves, where safe.

Two mechanical fixes, each kept only if the module's AST is unchanged (docstrings compared with
their whitespace collapsed):
- a prose line inside a docstring: the overflowing words move to the next line of the same
  paragraph (or a new line), never splitting a backticked span;
- a line that is one string literal inside brackets (`f"...",`): split at a space (outside `{}`
  and backticks) into two adjacent literals, which Python concatenates.
Everything else is printed for a person. Usage: python scripts/fix_long_lines.py LIMIT FILE:LINE...
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path


def _normalised(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):
                node.value.value = " ".join(node.value.value.split())
    return ast.dump(tree)


def _docstring_lines(tree: ast.AST) -> set[int]:
    """Every line of each docstring (a string statement: module, class, def or attribute docs)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            c = node.value
            if isinstance(c.value, str) and c.end_lineno:
                out.update(range(c.lineno, c.end_lineno + 1))
    return out


def _split_point(text: str, limit: int, start: int, braces: bool) -> int | None:
    """The last space at or before `limit` (past `start`) outside backticks (and `{}`)."""
    best = None
    ticks = depth = 0
    for i, ch in enumerate(text[: limit + 1]):
        if ch == "`":
            ticks += 1
        elif braces and ch == "{":
            depth += 1
        elif braces and ch == "}":
            depth -= 1
        elif ch == " " and i > start and ticks % 2 == 0 and depth == 0:
            best = i
    return best


_LIST_ITEM = re.compile(r"\s*([-*|]|\d+\.|>>>|\"\"\"|$)")


def reflow_docstring(lines: list[str], idx: int, limit: int, doc: set[int]) -> bool:
    changed = False
    while idx < len(lines) and len(lines[idx].rstrip("\n")) > limit:
        line = lines[idx].rstrip("\n")
        indent = len(line) - len(line.lstrip())
        cut = _split_point(line, limit, indent, braces=False)
        if cut is None:
            return changed
        head, tail = line[:cut].rstrip(), line[cut + 1 :].strip()
        nxt = lines[idx + 1].rstrip("\n") if idx + 1 < len(lines) else ""
        same_para = (
            idx + 2 in doc
            and nxt.strip()
            and not _LIST_ITEM.match(nxt)
            and len(nxt) - len(nxt.lstrip()) == indent
        )
        lines[idx] = head + "\n"
        if same_para:
            lines[idx + 1] = " " * indent + tail + " " + nxt.lstrip() + "\n"
        else:
            lines.insert(idx + 1, " " * indent + tail + "\n")
        changed = True
        idx += 1
    return changed


_ONE_LITERAL = re.compile(
    r"^(?P<ind>\s*)(?P<lhs>[\w.]+ = |\"[^\"]*\": )?(?P<pre>[rfbRFB]{0,2})(?P<q>[\"'])"
    r"(?P<body>(?:(?!(?P=q))[^\\]|\\.)*)(?P=q)(?P<end>,?)$"
)


def split_literal(lines: list[str], idx: int, limit: int) -> bool:
    m = _ONE_LITERAL.match(lines[idx].rstrip("\n"))
    prev = next((p.rstrip() for p in reversed(lines[:idx]) if p.strip()), "")
    if m is None:
        return False
    ind, lhs, pre, q, body, end = m["ind"], m["lhs"] or "", m["pre"], m["q"], m["body"], m["end"]
    assign = lhs.endswith(" = ")
    if not (assign or lhs or prev.endswith(("(", "[", "{", ",", '"', "'"))):
        return False
    inner = ind + "    " if lhs else ind
    first = len(ind) + (0 if assign else len(lhs))
    room = limit - (len(inner) if assign else first) - len(pre) - 2
    cut = _split_point(body, room - 1, 0, braces="f" in pre.lower())
    while cut is not None and body[cut - 1] == "\\":
        cut = _split_point(body, cut - 1, 0, braces="f" in pre.lower())
    if cut is None or (assign and end):
        return False
    a, b = f"{pre}{q}{body[: cut + 1]}{q}", f"{pre}{q}{body[cut + 1 :]}{q}"
    if assign:  # `x = "..."`: parenthesise, one level deeper
        lines[idx] = f"{ind}{lhs}(\n{inner}{a}\n{inner}{b}\n{ind})\n"
    else:  # inside brackets (a dict value keeps its key on the first line)
        lines[idx] = f"{ind}{lhs}{a}\n{inner}{b}{end}\n"
    return True


def main() -> int:
    limit = int(sys.argv[1])
    by_file: dict[str, list[int]] = {}
    for arg in sys.argv[2:]:
        path, line = arg.rsplit(":", 1)
        by_file.setdefault(path, []).append(int(line))
    left = []
    for path, numbers in by_file.items():
        src = Path(path).read_text()
        tree = ast.parse(src)
        doc = _docstring_lines(tree)
        for n in sorted(numbers, reverse=True):  # bottom up: earlier line numbers stay valid
            lines = src.splitlines(keepends=True)
            fixed = (
                reflow_docstring(lines, n - 1, limit, doc) if n in doc else split_literal(lines, n - 1, limit)
            )
            new = "".join(lines)
            try:
                same = fixed and _normalised(ast.parse(new)) == _normalised(ast.parse(src))
            except SyntaxError:
                same = False
            if same:
                src = new
                print(f"fixed   {path}:{n}")
            else:
                left.append(f"{path}:{n}")
        Path(path).write_text(src)
    for item in left:
        print(f"by hand {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
