"""The VS Code TextMate grammar is generated from the op table and the grammar's keywords; the
committed file must be what the generator writes (`python scripts/gen_vscode_grammar.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_grammar_is_up_to_date() -> None:
    out = subprocess.run(
        [sys.executable, "scripts/gen_vscode_grammar.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
