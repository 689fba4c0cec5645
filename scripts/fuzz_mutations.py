"""Mutation fuzzing of the front end: random edits of the examples and the stdlib.

Each case takes a shipped `.cam` file, applies a few random mutations (delete, insert, duplicate
or swap characters and tokens; truncate) and runs parse + check on the result. The only allowed
outcomes are a checked `Program` or clean diagnostics whose spans lie inside the text; any other
exception is a bug and makes the script exit 1 after printing the offending input. A sample of
the cases also goes through `camlang check FILE` in-process, which must exit 0 or 1.

    python scripts/fuzz_mutations.py --count 10000 --seed 0
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Tokens worth inserting: keywords, punctuation, literals, and characters the lexer rejects.
TOKEN_POOL = (
    "import",
    "model",
    "data",
    "cam",
    "metric",
    "grammar",
    "synthesize",
    "property",
    "evaluate",
    "check",
    "export",
    "at",
    "from",
    "on",
    "with",
    "to",
    "minimize",
    "maximize",
    "none",
    "true",
    "false",
    "A",
    "G",
    "S",
    "P",
    "X",
    "L",
    "MASK",
    "GX",
    "S_masked",
    "relu",
    "sum_c",
    "mean_hw",
    "pow",
    "where",
    "P_at",
    "ref",
    "gradcam",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "->",
    "|",
    "+",
    "-",
    "*",
    "/",
    "==",
    "<=",
    "<",
    "!=",
    "0",
    "1",
    "-1",
    "1e999",
    "3.5",
    ".5",
    '"x"',
    '"stdlib/cams.cam"',
    '"',
    "'",
    "#",
    "\n",
    " ",
    "\t",
    "^",
    "%",
    "@",
    "$",
    ";",
    "\\",
    "é",
    "\x00",
)
_TOKEN = re.compile(
    r'"[^"\n]*"|[A-Za-z_][A-Za-z_0-9]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|->|==|!=|<=|>=|\s+|.', re.DOTALL
)


def corpus() -> dict[str, str]:
    """The shipped programs: every `.cam` file under examples/ and stdlib/."""
    files = sorted((ROOT / "examples").glob("*.cam")) + sorted((ROOT / "stdlib").glob("*.cam"))
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in files}


def mutate(text: str, rng: random.Random) -> tuple[str, list[str]]:
    """Apply 1-4 random mutations; returns the new text and the mutation names."""
    applied: list[str] = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(MUTATIONS)
        text = kind(text, rng)
        applied.append(kind.__name__)
    return text, applied


def delete_char(text: str, rng: random.Random) -> str:
    if not text:
        return text
    i = rng.randrange(len(text))
    return text[:i] + text[i + 1 :]


def insert_char(text: str, rng: random.Random) -> str:
    i = rng.randint(0, len(text))
    ch = rng.choice(text) if text and rng.random() < 0.5 else rng.choice("()[]{},=|-+*/<>!\"'#\n _aZ09.")
    return text[:i] + ch + text[i:]


def duplicate_chars(text: str, rng: random.Random) -> str:
    if not text:
        return text
    i = rng.randrange(len(text))
    j = min(len(text), i + rng.randint(1, 12))
    return text[:j] + text[i:j] + text[j:]


def swap_chars(text: str, rng: random.Random) -> str:
    if len(text) < 2:
        return text
    i = rng.randrange(len(text) - 1)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def delete_token(text: str, rng: random.Random) -> str:
    toks = _tokens(text)
    if toks:
        del toks[rng.randrange(len(toks))]
    return "".join(toks)


def insert_token(text: str, rng: random.Random) -> str:
    toks = _tokens(text)
    tok = rng.choice(TOKEN_POOL) if not toks or rng.random() < 0.7 else rng.choice(toks)
    toks.insert(rng.randint(0, len(toks)), tok)
    return "".join(toks)


def duplicate_token(text: str, rng: random.Random) -> str:
    toks = _tokens(text)
    if toks:
        i = rng.randrange(len(toks))
        toks.insert(i, toks[i])
    return "".join(toks)


def swap_tokens(text: str, rng: random.Random) -> str:
    toks = _tokens(text)
    if len(toks) >= 2:
        i, j = rng.randrange(len(toks)), rng.randrange(len(toks))
        toks[i], toks[j] = toks[j], toks[i]
    return "".join(toks)


def replace_token(text: str, rng: random.Random) -> str:
    toks = _tokens(text)
    if toks:
        toks[rng.randrange(len(toks))] = rng.choice(TOKEN_POOL)
    return "".join(toks)


def truncate(text: str, rng: random.Random) -> str:
    return text[: rng.randint(0, len(text))]


def move_line(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    if len(lines) >= 2:
        line = lines.pop(rng.randrange(len(lines)))
        lines.insert(rng.randint(0, len(lines)), line)
    return "\n".join(lines)


MUTATIONS = (
    delete_char,
    insert_char,
    duplicate_chars,
    swap_chars,
    delete_token,
    insert_token,
    duplicate_token,
    swap_tokens,
    replace_token,
    truncate,
    move_line,
)


def check_case(text: str, name: str, path: Path) -> tuple[int, int]:
    """Parse and check one text; returns (errors, warnings). Raises AssertionError on a bad span."""
    from camlang.frontend.check import check_text

    program = check_text(text, name, path)
    n_err = n_warn = 0
    for d in program.diagnostics:
        span = d.span
        if span.source.name == name:
            assert 0 <= span.start <= span.end <= len(text), f"span {span.start}..{span.end} outside the text"
        assert d.code and d.message, "empty diagnostic"
        if d.is_error:
            n_err += 1
        else:
            n_warn += 1
    return n_err, n_warn


def run_cli(text: str, suffix_dir: Path) -> int:
    """`camlang check FILE` in-process on a temporary copy; returns its exit code."""
    from camlang.cli import main

    path = suffix_dir / "case.cam"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["check", str(path)])
    if "internal error" in err.getvalue():
        raise AssertionError(f"camlang check reported an internal error:\n{err.getvalue()}")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10000, help="number of mutated programs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cli-every", type=int, default=50, help="also run `camlang check` on every Nth case"
    )
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    files = corpus()
    names = sorted(files)
    outcomes: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    cli_codes: Counter[int] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        for i in range(args.count):
            name = rng.choice(names)
            text, applied = mutate(files[name], rng)
            # The mutant keeps its original path, so relative imports resolve as they would.
            try:
                n_err, n_warn = check_case(text, name, ROOT / name)
                if i % args.cli_every == 0:
                    code = run_cli(text, tmpdir)
                    cli_codes[code] += 1
                    if code not in (0, 1):
                        raise AssertionError(f"camlang check exited {code}")
            except Exception:  # noqa: BLE001 - any escape is the bug being hunted
                print(f"FAILED on case {i} ({name}, mutations {applied}); input:", file=sys.stderr)
                print(repr(text), file=sys.stderr)
                traceback.print_exc()
                return 1
            outcomes["clean" if n_err == 0 else "diagnostics"] += 1
            if n_err == 0 and n_warn:
                outcomes["warnings only"] += 1
            for kind in applied:
                codes[kind] += 1
    elapsed = time.perf_counter() - started
    print(f"{args.count} mutated programs from {len(names)} files in {elapsed:.1f} s: no exception escaped")
    print("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    print("  mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())))
    print("  camlang check exit codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(cli_codes.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
