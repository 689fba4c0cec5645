"""`camlang check` and `camlang fmt` are editor-speed linters: they never import torch.

The front end (parse, check, lower to IR, pretty-print) needs only the op table's rows; every
kernel is resolved lazily through the table's kernel registry. A fresh interpreter runs the
CLI and reports which heavy packages ended up in `sys.modules`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "numpy", "z3", "sympy", "PIL")

_PROBE = """
import json, sys
from camlang.cli import main
code = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _run(*argv: str) -> dict[str, object]:
    probe = _PROBE.replace("HEAVY", repr(json.dumps(HEAVY)))
    out = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "argv",
    [("check", "examples/quickstart.cam"), ("fmt", "--check", "examples/quickstart.cam")],
    ids=["check", "fmt"],
)
def test_front_end_commands_import_no_heavy_package(argv: tuple[str, ...]) -> None:
    result = _run(*argv)
    assert result["code"] == 0
    assert result["heavy"] == [], f"`camlang {' '.join(argv)}` imported {result['heavy']}"


def test_a_check_with_errors_imports_no_heavy_package(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cam"
    bad.write_text("cam c = sum_c(mean_c(A))\nmetric m = minimize mean(A)\n")
    result = _run("check", str(bad))
    assert result["code"] == 1 and result["heavy"] == []
