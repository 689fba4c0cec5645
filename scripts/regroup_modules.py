"""One-off: group the flat modules of `camlang/` into pipeline packages (issue 11, section 4).

Run from anywhere inside the checkout, on the final merged tree:

    python scripts/regroup_modules.py            # move, rewrite, fix import order, print what changed
    python scripts/regroup_modules.py --dry-run  # only print what it would do

What it does, in order:
1. `git mv` each module in `MOVES` (old dotted name -> new dotted name); creates the new packages'
   `__init__.py` from `NEW_PACKAGES`.
2. Rewrites every reference to a moved module, in whatever files the tree holds when it runs
   (`REWRITE_ROOTS`, `.ipynb` included): dotted names (`camlang.ops`, `camlang.ops.OPS`,
   `"camlang.runtime:load"`, mock.patch targets), paths (`camlang/ops.py`, `camlang/check/`),
   `from camlang import syntax as s` lists, and relative imports whose target moved.
   Matching is exact on module paths (never inside a longer name), longest names first.
3. Replaces the diagram of docs/ARCHITECTURE.md's "Pipeline = layout" section and README.md's
   "The pipeline is the layout" paragraph, and rewrites both files' bare backticked module names
   (`` `pretty.py` ``, `` `evaluation.MetricContext` ``).
4. Runs `ruff check --fix --select I` on the rewritten Python files (import order changes).

It is idempotent: no old name is a prefix of a new one, so a second run finds nothing to move or
rewrite. Flat modules the table does not name (added by a later branch) are listed at the end;
add a row for them and run again. The script does not rewrite itself; delete it once main has
been regrouped (it is a one-off tool, not part of the build).
"""

# ruff: noqa: E501 (the Markdown table rows below are one line each)
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

# old module (dotted, under camlang) -> new module. A package (check) moves as a whole.
MOVES: dict[str, str] = {
    # front end: text -> AST -> checked program -> IR
    "source": "frontend.source",
    "syntax": "frontend.syntax",
    "parser": "frontend.parser",
    "pretty": "frontend.pretty",
    "diagnostics": "frontend.diagnostics",
    "axes": "frontend.value_types",
    "ops": "frontend.op_table",
    "signatures": "frontend.signatures",
    "check": "frontend.check",
    "program": "frontend.program",
    "ir": "frontend.ir",
    "layout": "frontend.layer_layout",
    # execution: a checked program run on models and data
    "capture": "execution.capture",
    "calls": "execution.call_counter",
    "rng": "execution.per_image_rng",
    "engine": "execution.cam_engine",
    "evaluation": "execution.metric_evaluation",
    "runtime": "execution.declaration_loading",
    "runstate": "execution.run_state",
    "runcache": "execution.run_cache",
    "actions": "execution.run_actions",
    "run": "execution.run_program",
    "export": "execution.standalone_export",
}

# Stay at the top level: entry points and what every stage shares.
KEEP_AT_TOP = {"__init__", "__main__", "api", "cli", "errors", "notebook", "paths", "progress"}

NEW_PACKAGES: dict[str, str] = {
    "frontend": (
        '"""The front end: source text -> AST -> checked program -> IR, without torch.\n\n'
        "`source`/`diagnostics` (spans, rendering) -> `parser` (the only lark user) -> `syntax`\n"
        "(the AST) -> `check/` (imports, declarations, argument binding via `signatures`, typing\n"
        "with `value_types`, lowering) -> `program` (the checked program) and `ir` (the interned\n"
        "DAG of `op_table` rows). `pretty` prints the AST back as canonical source.\n"
        '"""\n'
    ),
    "execution": (
        '"""The execution layer: a checked program run on live models and data.\n\n'
        "`declaration_loading` turns declarations into models and datasets; `capture` takes a\n"
        "batch's terminals; `cam_engine` evaluates many CAMs on one capture; `metric_evaluation`\n"
        "runs compiled metrics over (cam x image) rows; `run_state`/`run_cache` hold what a run\n"
        "has loaded and produced; `run_actions` and `run_program` drive `camlang run`.\n"
        '"""\n'
    ),
}

REWRITE_ROOTS = [
    "camlang",
    "tests",
    "benchmarks",
    "scripts",
    "examples",
    "docs",
    "grammars",
    "stdlib",
    "README.md",
    "pyproject.toml",
    "setup.py",
    ".ci",
]
REWRITE_SUFFIXES = {
    ".py",
    ".ipynb",
    ".md",
    ".toml",
    ".sh",
    ".cfg",
    ".txt",
    ".yml",
    ".yaml",
    ".lark",
    ".cam",
    "",
}
SKIP_PARTS = {"__pycache__", ".git", ".venv", ".venv-ci", "golden", "node_modules"}
SELF = Path(__file__).resolve()

ARCH_PIPELINE = """## Pipeline = layout

`ls camlang/` shows the stages; data goes one way through them:

    source text -> camlang/frontend/parser.py (lark, grammars/camlang.lark) -> frontend/syntax.py (AST)
      -> camlang/frontend/check/ (imports, declarations, argument binding, lowering to IR)
      -> camlang/frontend/ir.py (interning builder) + camlang/frontend/op_table.py (the op table)
      -> camlang/passes/ (simplify, ...)
      -> camlang/backends/ (torch_eager.py, torch_source.py, z3_lower.py, reference.py + kernels)
      -> camlang/execution/ (load declarations, capture, CAM engine, metric evaluation, run state)
      -> drivers: camlang/execution/run_program.py (`camlang run`, the report), camlang/synth/,
         camlang/repl/, camlang/api.py, camlang/cli.py

| package / module | what |
|---|---|
| `camlang/frontend/` | imports no torch: `source.py` (spans), `diagnostics.py` (codes, rendering), `parser.py` (the only lark user), `syntax.py` (AST), `pretty.py` (`camlang fmt`), `check/`, `signatures.py` (declaration argument tables), `value_types.py` (types as sets of axes), `program.py` (the checked program), `ir.py`, `op_table.py` |
| `camlang/execution/` | `declaration_loading.py` (declarations -> live models and datasets), `capture.py` (`A`, `G` and score terminals of a batch), `cam_engine.py` (many CAMs on one capture), `metric_evaluation.py` (compiled metrics over (cam x image) rows), `per_image_rng.py`, `call_counter.py`, `run_state.py`, `run_cache.py`, `run_actions.py` (the `evaluate` and `check` actions), `run_program.py` (`camlang run FILE`), `standalone_export.py` (`camlang compile`, `export ... to`) |
| `camlang/api.py`, `camlang/cli.py` | the Python API and the command line |
| `camlang/errors.py`, `camlang/paths.py`, `camlang/progress.py` | shared by every stage: `CamlangError`; where the grammar and the stdlib live; progress display |

"""
README_LAYOUT = """The pipeline is the layout: `grammars/camlang.lark` -> `camlang/frontend/` (`parser.py`,
AST in `syntax.py`, `check/`, `ir.py` + `op_table.py`; no torch) -> `camlang/passes/` ->
`camlang/backends/` (`reference.py`, `torch_eager.py`, `torch_source.py`, `z3_lower.py`) ->
`camlang/execution/` (loading, capture, CAM engine, metric evaluation, run state) -> drivers
(`execution/run_program.py`, `synth/`, `repl/`, `api.py`, `cli.py`). Runtime libraries:
`camlang/data/`, `camlang/models/`, `camlang/metrics/`, `camlang/methods/`, `camlang/smt/`,
`camlang/report/`. See `docs/ARCHITECTURE.md`."""
ARCH_LIBRARIES_OLD = "Runtime libraries used by the drivers:"
ARCH_LIBRARIES_NEW = "Runtime libraries used by the execution layer and the drivers:"


def root_dir() -> Path:
    out = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=True,
        cwd=SELF.parent,
    )
    return Path(out.stdout.strip())


def module_path(root: Path, dotted: str) -> Path | None:
    """The file or package directory of `camlang.<dotted>`, or None."""
    base = root / "camlang" / Path(*dotted.split("."))
    if base.is_dir() and (base / "__init__.py").exists():
        return base
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def check_table() -> None:
    """No old name may be a prefix of a new or kept name: that is what makes a rerun a no-op."""
    news = list(MOVES.values()) + sorted(KEEP_AT_TOP)
    for old in MOVES:
        for new in news:
            if new == old or new.startswith(old + "."):
                raise SystemExit(f"mapping table: old name {old!r} is a prefix of {new!r}")


def do_moves(root: Path, dry: bool) -> list[tuple[str, str]]:
    moved = []
    for pkg, doc in NEW_PACKAGES.items():
        init = root / "camlang" / pkg / "__init__.py"
        if not init.exists():
            print(f"create  camlang/{pkg}/__init__.py")
            if not dry:
                init.parent.mkdir(parents=True, exist_ok=True)
                init.write_text(doc)
                subprocess.run(["git", "add", str(init)], check=True, cwd=root)
    for old, new in MOVES.items():
        src = module_path(root, old)
        dst = module_path(root, new)
        if src is None:
            if dst is None:
                print(f"WARNING camlang.{old}: neither it nor camlang.{new} exists; skipped")
            continue
        if dst is not None:
            raise SystemExit(f"both camlang.{old} and camlang.{new} exist: merge them by hand first")
        target = root / "camlang" / Path(*new.split("."))
        if src.suffix == ".py":
            target = target.with_suffix(".py")
        print(f"git mv  {src.relative_to(root)} -> {target.relative_to(root)}")
        moved.append((old, new))
        if not dry:
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "mv", str(src), str(target)], check=True, cwd=root)
            for cache in src.parent.glob(f"__pycache__/{src.stem}.*.pyc"):
                cache.unlink()
    return moved


def _old_alt() -> str:
    return "|".join(re.escape(o) for o in sorted(MOVES, key=len, reverse=True))


def rewrite_text(text: str) -> str:
    """Rewrite dotted names, paths and `from camlang import` lists that name a moved module."""
    alt = _old_alt()

    def from_import(m: re.Match[str]) -> str:
        indent, body = m.group("indent"), m.group("names")
        names = [n.strip() for n in body.replace("\n", " ").strip("()").split(",") if n.strip()]
        kept, lines = [], []
        for item in names:
            parts = item.split()
            name, alias = parts[0], (parts[2] if len(parts) == 3 else None)
            if name not in MOVES:
                kept.append(item)
                continue
            pkg, _, leaf = MOVES[name].rpartition(".")
            local = alias or name
            lines.append(f"from camlang.{pkg} import {leaf}" + ("" if local == leaf else f" as {local}"))
        if not lines:
            return m.group(0)
        if kept:
            lines.insert(0, "from camlang import " + ", ".join(kept))
        return ("\n" + indent).join([indent + lines[0], *lines[1:]]) if indent else "\n".join(lines)

    text = re.sub(
        r"^(?P<indent>[ \t]*)from camlang import (?P<names>\([^)]*\)|[^\n#]+?)(?=[ \t]*(#|$))",
        from_import,
        text,
        flags=re.M,
    )
    dotted = re.compile(rf"(?<![\w.]){re.escape('camlang')}\.({alt})(?![\w])")
    text = dotted.sub(lambda m: "camlang." + MOVES[m.group(1)], text)
    pathed = re.compile(rf"(?<![\w.-])camlang/({alt})(?=\.py\b|/)")
    text = pathed.sub(lambda m: "camlang/" + MOVES[m.group(1)].replace(".", "/"), text)
    return text


def rewrite_relative(text: str, old_pkg: list[str], new_pkg: list[str]) -> str:
    """Make relative imports absolute where the file or its target moved (resolved pre-move)."""
    moved_prefix = {tuple(o.split(".")): n for o, n in MOVES.items()}

    def new_name(parts: list[str]) -> list[str]:
        for k in range(len(parts), 0, -1):
            hit = moved_prefix.get(tuple(parts[:k]))
            if hit is not None:
                return hit.split(".") + parts[k:]
        return parts

    def repl(m: re.Match[str]) -> str:
        dots, rest = len(m.group("dots")), m.group("mod")
        base = old_pkg[: len(old_pkg) - (dots - 1)] if dots - 1 <= len(old_pkg) else []
        target = base + (rest.split(".") if rest else [])
        new_target = new_name(target)
        new_base = new_pkg[: len(new_pkg) - (dots - 1)]
        if new_base + (rest.split(".") if rest else []) == new_target:
            return m.group(0)
        return f"{m.group('lead')}from {'.'.join(['camlang', *new_target])} import"

    return re.sub(
        r"(?P<lead>^[ \t]*)from (?P<dots>\.+)(?P<mod>[\w.]*) import",
        repl,
        text,
        flags=re.M,
    )


def files_to_rewrite(root: Path) -> list[Path]:
    out = []
    for name in REWRITE_ROOTS:
        p = root / name
        cands = [p] if p.is_file() else (sorted(p.rglob("*")) if p.is_dir() else [])
        for f in cands:
            if not f.is_file() or f.resolve() == SELF or SKIP_PARTS & set(f.relative_to(root).parts):
                continue
            if f.suffix in REWRITE_SUFFIXES and (f.suffix or f.parent.name in {".ci", "scripts"}):
                out.append(f)
    return out


def rewrite_notebook(text: str) -> str:
    nb = json.loads(text)
    for cell in nb.get("cells", []):
        src = cell.get("source")
        if isinstance(src, list):
            joined = "".join(src)
            new = rewrite_text(joined)
            if new != joined:
                cell["source"] = new.splitlines(keepends=True)
        elif isinstance(src, str):
            cell["source"] = rewrite_text(src)
    new_text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    return new_text if json.loads(new_text) != json.loads(text) else text


def patch_readme(text: str) -> str:
    """The README's "Layout" paragraph, and its bare backticked module names."""
    text = rewrite_bare(text)
    start = text.find("The pipeline is the layout:")
    end = text.find("See `docs/ARCHITECTURE.md`.", start)
    if start < 0 or end < 0:
        print("WARNING README.md has no 'The pipeline is the layout' paragraph; not updated")
        return text
    return text[:start] + README_LAYOUT + text[end + len("See `docs/ARCHITECTURE.md`.") :]


def rewrite_bare(text: str) -> str:
    """Bare backticked names: `` `pretty.py` `` -> `` `frontend/pretty.py` ``,
    `` `evaluation.X` `` -> `` `execution.metric_evaluation.X` ``."""
    flat = {o: n for o, n in MOVES.items() if "." not in o}

    def bare(m: re.Match[str]) -> str:
        name, sep = m.group(1), m.group(2)
        new = flat[name]
        return "`" + (new.replace(".", "/") + ".py" if sep == ".py" else new + sep)

    alt = "|".join(sorted(flat, key=len, reverse=True))
    return re.sub(rf"`({alt})(\.py(?=`)|\.(?=[A-Za-z_]))", bare, text)


def patch_architecture(text: str) -> str:
    """Bare backticked module names -> package-relative ones; new diagram and layer table.

    Only the diagram (from the heading to the "Runtime libraries" paragraph) is replaced, so
    rows other branches added to the libraries table stay (their paths are rewritten above).
    """
    text = rewrite_bare(text)
    text = text.replace(ARCH_LIBRARIES_OLD, ARCH_LIBRARIES_NEW)
    start = text.find("## Pipeline = layout")
    if start < 0:
        print("WARNING docs/ARCHITECTURE.md has no 'Pipeline = layout' section; diagram not updated")
        return text
    lib = text.find(ARCH_LIBRARIES_NEW, start)
    nxt = text.find("\n## ", start + 3)
    end = lib if lib >= 0 and (nxt < 0 or lib < nxt) else (len(text) if nxt < 0 else nxt + 1)
    return text[:start] + ARCH_PIPELINE + text[end:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true")
    dry = ap.parse_args().dry_run
    check_table()
    root = root_dir()
    # relative imports are resolved against where each file was before the move
    pre_locations = {f: f for f in (root / "camlang").rglob("*.py")}
    moves = do_moves(root, dry)
    old_to_new_dirs = {
        (root / "camlang" / Path(*o.split("."))): (root / "camlang" / Path(*n.split("."))) for o, n in moves
    }
    post_to_pre: dict[Path, Path] = {}
    for pre in pre_locations:
        post = pre
        for od, nd in old_to_new_dirs.items():
            if pre == od.with_suffix(".py"):
                post = nd.with_suffix(".py")
            elif od in pre.parents:
                post = nd / pre.relative_to(od)
        post_to_pre[post] = pre

    changed: list[Path] = []
    for f in files_to_rewrite(root):
        text = f.read_text(encoding="utf-8")
        if f.suffix == ".ipynb":
            new = rewrite_notebook(text)
        else:
            new = rewrite_text(text)
            if f.suffix == ".py" and f in post_to_pre:
                old_pkg = list(post_to_pre[f].relative_to(root).parent.parts)
                new_pkg = list(f.relative_to(root).parent.parts)
                new = rewrite_relative(new, old_pkg[1:], new_pkg[1:]) if old_pkg[:1] == ["camlang"] else new
            if f.relative_to(root).as_posix() == "docs/ARCHITECTURE.md":
                new = patch_architecture(new)
            if f.relative_to(root).as_posix() == "README.md":
                new = patch_readme(new)
        if new != text:
            print(f"rewrite {f.relative_to(root)}")
            changed.append(f)
            if not dry:
                f.write_text(new, encoding="utf-8")

    py = [str(f) for f in changed if f.suffix == ".py"]
    if py and not dry:
        subprocess.run(["ruff", "check", "--fix", "--select", "I", "--quiet", *py], cwd=root)

    golden = root / "tests" / "golden"
    alt = _old_alt()
    stale = re.compile(rf"(?<![\w.])camlang[./]({alt})(?![\w])")
    for g in sorted(golden.rglob("*")) if golden.is_dir() else []:
        if g.is_file() and stale.search(g.read_text(encoding="utf-8", errors="replace")):
            print(f"WARNING golden file names a moved module (not rewritten): {g.relative_to(root)}")
    left = sorted(
        p.stem
        for p in (root / "camlang").glob("*.py")
        if p.stem not in KEEP_AT_TOP and not (dry and p.stem in MOVES)
    )
    if left:
        print("WARNING flat modules not in the table (add rows and rerun): " + ", ".join(left))
    print(f"{len(moves)} moved, {len(changed)} files rewritten" + (" (dry run)" if dry else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
