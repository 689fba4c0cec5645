"""Fuzz: 1,000 random lines into Session.execute; each gives a result or a diagnostic, never a crash."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from camlang.models import ShapesCNN
from camlang.repl.session import Session

WORDS = [
    "cam",
    "metric",
    "model",
    "data",
    "evaluate",
    "check",
    "export",
    "import",
    "grammar",
    "synthesize",
    "property",
    "on",
    "with",
    "to",
    "from",
    "at",
    "maximize",
    "minimize",
    "none",
    "true",
    "false",
    "relu",
    "sum_c",
    "mean_hw",
    "pc1",
    "pow",
    "where",
    "upsample",
    "mean",
    "gini",
    "blur",
    "noise",
    "A",
    "G",
    "S",
    "L",
    "X",
    "MASK",
    "P",
    "gradcam",
    "hirescam",
    "net",
    "test",
    "x",
    "y",
    "_",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "+",
    "-",
    "*",
    "/",
    "<",
    "==",
    "->",
    "|",
    "0",
    "1",
    "2.5",
    "1e-3",
    '"s"',
    '"net.pt"',
    "#",
    ":",
    ":type",
    ":ir",
    ":simplify",
    ":use",
    ":image",
    ":cams",
    ":grid",
    ":help",
    ":history",
    ":models",
    ":bogus",
    "'",
    "$",
    "\\",
    "\t",
]


def random_line(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 30)))
    return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 12)))


def test_thousand_random_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save(ShapesCNN().state_dict(), tmp_path / "net.pt")
    session = Session(tmp_path / "out", opener=lambda p: None)
    for line in (
        'import "stdlib/cams.cam"',
        'import "stdlib/metrics.cam"',
        'model net = checkpoint("net.pt", arch = "shapes_cnn") at "features.6"',
        "data test = synthetic_shapes(count = 4, size = 32, seed = 0)",
    ):
        assert session.execute(line).kind == "ok"
    rng = random.Random(1234)
    kinds: dict[str, int] = {}
    for _ in range(1000):
        line = random_line(rng)
        result = session.execute(line)
        kinds[result.kind] = kinds.get(result.kind, 0) + 1
        assert result.kind != "internal", f"{line!r}: {result.output}"
        if result.kind == "error":
            assert result.diagnostics, line
        result.render()  # rendering never fails either
    assert kinds.get("error", 0) > 500 and len(kinds) >= 2
