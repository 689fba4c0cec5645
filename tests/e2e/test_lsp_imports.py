"""`camlang lsp` is an editor-speed server: like `check` and `fmt`, it never imports torch.

A fresh interpreter runs the real server on a scripted LSP session (open a file that imports
the stdlib, hover, complete a layer name, format, shut down) and reports, when it exits, which
heavy packages ended up in `sys.modules`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "numpy", "z3", "sympy", "PIL")

_PROBE = """
import atexit, json, sys
def report():
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
    with open(sys.argv[1], "w") as f:
        json.dump(heavy, f)
atexit.register(report)
from camlang.cli import main
sys.exit(main(["lsp"]))
"""


def _frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_the_language_server_imports_no_heavy_package(tmp_path: Path) -> None:
    doc = tmp_path / "a.cam"
    text = 'import "stdlib/cams.cam"\nmodel r = torchvision("resnet18") at "layer4"\ncam c = gradcam\n'
    doc.write_text(text)
    uri = doc.as_uri()
    ident = {"textDocument": {"uri": uri}}
    session = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "cam", "version": 1, "text": text}},
        },
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "textDocument/hover",
            "params": {**ident, "position": {"line": 2, "character": 10}},
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "textDocument/completion",
            "params": {**ident, "position": {"line": 1, "character": 41}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "textDocument/formatting",
            "params": {**ident, "options": {"tabSize": 2, "insertSpaces": True}},
        },
        {"jsonrpc": "2.0", "id": 5, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    out_file = tmp_path / "heavy.json"
    probe = _PROBE.replace("HEAVY", repr(HEAVY))
    out = subprocess.run(
        [sys.executable, "-c", probe, str(out_file)],
        cwd=ROOT,
        input=b"".join(_frame(m) for m in session),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert b"gradcam" in out.stdout and b"layer4" in out.stdout, out.stderr.decode()[-2000:]
    assert json.loads(out_file.read_text()) == [], "`camlang lsp` imported a heavy package"


def test_without_pygls_the_command_says_which_extra_to_install() -> None:
    probe = "import sys; sys.modules['pygls'] = None\nfrom camlang.cli import main\nsys.exit(main(['lsp']))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "`camlang lsp` needs pygls" in out.stderr and 'pip install "camlang[lsp]"' in out.stderr
