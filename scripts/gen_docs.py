"""Generate the docs pages that must not drift from the code: the language reference (from the
op table, the signature tables, the grammar's keywords and the diagnostic codes), the stdlib
(from `stdlib/*.cam`, with each declaration's comment) and the CLI (from `camlang.cli`'s parser).

The MkDocs site builds them on every build (`scripts/mkdocs_hooks.py`); this script writes them
to a folder to read or diff them.

Run: python scripts/gen_docs.py [OUT_DIR]   (default: site-generated/)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from camlang.cli import build_parser
from camlang.frontend import syntax as s
from camlang.frontend.diagnostics import CODES
from camlang.frontend.op_table import OPS, OpSpec
from camlang.frontend.parser import parse_with_recovery
from camlang.frontend.signatures import REQUIRED, SYNTH_REQUIRED, SYNTH_SETTINGS, Arg
from camlang.frontend.source import SourceFile
from camlang.lsp.describe import SOURCE_TABLES, arg_text, leading_comment

ROOT = Path(__file__).resolve().parents[1]

#: Op-table categories in reading order, with their section titles.
_CATEGORIES = (
    ("terminal", "Terminals"),
    ("elementwise", "Element-wise ops"),
    ("reduction", "Reductions"),
    ("method", "Gradient and perturbation methods"),
    ("metric", "Metric ops"),
)
_SOURCE_TITLES = {
    "model": 'Models: `model NAME = SOURCE(...) at "layer"`',
    "data": "Data: `data NAME = SOURCE(...)`",
    "property": "Properties: `property NAME = CLAIM(...)`",
    "concepts": "Concept sets: `concepts NAME = SOURCE(...)`",
    "monitor": "Monitors: `monitor NAME = KIND(...)`",
}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _op_row(spec: OpSpec) -> str:
    usage = f"`{spec.signature()}`"
    if spec.symbol is not None:
        usage += f" or `x {spec.symbol} y`"
    kind = str(spec.ty) if spec.category == "terminal" else ""
    contexts = ", ".join(sorted(spec.contexts))
    return f"| {usage} | {kind} | {contexts} | {_cell(spec.doc)} |"


def _arg_row(arg: Arg) -> str:
    default = "required" if arg.default is REQUIRED else f"`{arg_text(arg).split(' = ', 1)[1]}`"
    kinds = " \\| ".join(arg.kinds)
    return f"| `{arg.name}` | {kinds} | {default} | {_cell(arg.doc)} |"


def _args_table(args: Iterable[Arg]) -> list[str]:
    return ["| argument | accepts | default | meaning |", "|---|---|---|---|", *(_arg_row(a) for a in args)]


def language_reference() -> str:
    """The language reference page (Markdown)."""
    out = [
        "# Language reference",
        "",
        "Generated from the op table (`camlang/frontend/op_table.py`), the signature tables",
        "(`camlang/frontend/signatures.py`), the grammar (`grammars/camlang.lark`) and the",
        "diagnostic codes on every docs build, so it always matches the checker.",
        "",
        "## Statements",
        "",
        "Every statement starts with one of: "
        + ", ".join(f"`{k}`" for k in dict.fromkeys(s.STATEMENT_KEYWORDS))
        + ".",
        "Reserved words (no declaration may use them): "
        + ", ".join(f"`{k}`" for k in sorted(s.KEYWORDS))
        + ".",
        "",
        "```cam",
        'import "stdlib/cams.cam"',
        'model r18 = torchvision("resnet18") at "layer4"',
        "data test = synthetic_shapes(count = 64)",
        "cam mine = relu(sum_c(mean_hw(G) * A))",
        "metric m = minimize deletion_auc(L)",
        "evaluate [gradcam, mine] on r18, test with [m]",
        "```",
    ]
    for category, title in _CATEGORIES:
        rows = [spec for spec in OPS.values() if spec.category == category]
        out += ["", f"## {title}", "", "| use | type | in | meaning |", "|---|---|---|---|"]
        out += [_op_row(spec) for spec in rows]
    for keyword, table in SOURCE_TABLES.items():
        out += ["", f"## {_SOURCE_TITLES[keyword]}"]
        for name, args in table.items():
            out += ["", f"### `{name}`", "", *_args_table(args)]
    out += ["", "## `synthesize NAME from GRAMMAR { settings }`", ""]
    out += [f"Required settings: {', '.join(f'`{k}`' for k in SYNTH_REQUIRED)}.", ""]
    out += _args_table(SYNTH_SETTINGS.values())
    out += ["", "## Diagnostic codes", "", "| code | meaning |", "|---|---|"]
    out += [f"| `{code}` | {_cell(meaning)} |" for code, meaning in CODES.items()]
    return "\n".join(out) + "\n"


def stdlib_page() -> str:
    """The stdlib page: each file's declarations with the comment written above them."""
    out = [
        "# Standard library",
        "",
        'Import a file with `import "stdlib/NAME.cam"`. Generated from the files themselves.',
    ]
    for path in sorted((ROOT / "stdlib").glob("*.cam")):
        source = SourceFile(f"stdlib/{path.name}", path.read_text(encoding="utf-8"), path)
        module, _ = parse_with_recovery(source)
        out += [
            "",
            f"## `stdlib/{path.name}`",
            "",
            "| name | kind | definition | about |",
            "|---|---|---|---|",
        ]
        for stmt in module.statements:
            name = getattr(stmt, "name", None)  # declarations only; imports and actions have none
            if not isinstance(name, s.Ident):
                continue
            kind = type(stmt).__name__.removesuffix("Decl").lower()
            first = _cell(stmt.span.text.splitlines()[0])
            body = first if len(first) < 90 else first[:87] + "..."
            out.append(f"| `{name.name}` | {kind} | `{body}` | {_cell(leading_comment(stmt.span))} |")
    return "\n".join(out) + "\n"


def cli_page() -> str:
    """The CLI page: `camlang --help` and each command's help, from the argparse parser."""
    os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal's width; fix it for the docs
    parser = build_parser()
    out = ["# Command line", "", "Generated from `camlang.cli.build_parser()`.", "", "```text"]
    out += [parser.format_help().rstrip(), "```"]
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for name, sub in subparsers.choices.items():
        out += ["", f"## `camlang {name}`", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(out) + "\n"


#: Generated page path (inside the docs) -> its generator.
PAGES = {
    "reference/language.md": language_reference,
    "reference/stdlib.md": stdlib_page,
    "reference/cli.md": cli_page,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="site-generated")
    args = parser.parse_args()
    for rel, make in PAGES.items():
        path = Path(args.out) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make(), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
