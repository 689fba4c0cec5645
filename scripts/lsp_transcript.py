"""Print a session with `camlang lsp` as an editor sees it: the README's "Editors" transcript.

Starts the real server over stdio, opens a file with a type error, and asks for hover,
completion and a definition, printing each request and the interesting part of each answer.

Run: python scripts/lsp_transcript.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEXT = """import "stdlib/cams.cam"
model r18 = torchvision("resnet18") at "layer4"
cam mine = relu(sum_c(mean_hw(G) * A))
cam bad = sum_c(mean_c(A))
cam both = gradcam + mine
"""


class Client:
    """A minimal JSON-RPC client over the server's stdin and stdout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camlang", "lsp"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.next_id = 0

    def send(self, method: str, params: dict[str, Any], *, request: bool = True) -> int | None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            message["id"] = self.next_id
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return message.get("id")

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while line := self.proc.stdout.readline().strip():
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return json.loads(self.proc.stdout.read(length))  # type: ignore[no-any-return]

    def wait(self, *, ident: int | None = None, method: str | None = None) -> dict[str, Any]:
        while True:
            message = self.receive()
            if (ident is not None and message.get("id") == ident) or (
                method and message.get("method") == method
            ):
                return message

    def request(self, method: str, params: dict[str, Any]) -> Any:
        return self.wait(ident=self.send(method, params))["result"]


def _at(line: int, character: int) -> dict[str, int]:
    return {"line": line, "character": character}


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    (folder / "stdlib").symlink_to(ROOT / "stdlib")
    doc = folder / "demo.cam"
    doc.write_text(TEXT)
    uri = doc.as_uri()
    ident = {"textDocument": {"uri": uri}}
    client = Client()
    client.request("initialize", {"capabilities": {}, "rootUri": folder.as_uri()})
    client.send("initialized", {}, request=False)
    print("demo.cam:\n" + "".join(f"  {n} | {line}\n" for n, line in enumerate(TEXT.splitlines())))

    item = {"uri": uri, "languageId": "cam", "version": 1, "text": TEXT}
    client.send("textDocument/didOpen", {"textDocument": item}, request=False)
    published = client.wait(method="textDocument/publishDiagnostics")["params"]["diagnostics"]
    print("--> textDocument/didOpen demo.cam")
    for d in published:
        start = d["range"]["start"]
        print(f"<-- publishDiagnostics {start['line']}:{start['character']} {d['code']}: {d['message']!r}")

    hover = client.request("textDocument/hover", {**ident, "position": _at(4, 12)})
    print(f"\n--> textDocument/hover 4:12 (gradcam)\n<-- {hover['contents']['value']!r}")
    hover = client.request("textDocument/hover", {**ident, "position": _at(2, 24)})
    print(f"\n--> textDocument/hover 2:24 (mean_hw)\n<-- {hover['contents']['value']!r}")

    items = client.request("textDocument/completion", {**ident, "position": _at(1, 44)})["items"]
    print(f'\n--> textDocument/completion 1:44 (inside "layer4")\n<-- {[i["label"] for i in items]}')

    target = client.request("textDocument/definition", {**ident, "position": _at(4, 12)})
    where = target["uri"].rsplit("/", 2)[-2:]
    line = target["range"]["start"]["line"]
    print(f"\n--> textDocument/definition 4:12 (gradcam)\n<-- {'/'.join(where)}:{line}")

    client.request("shutdown", {})
    client.send("exit", {}, request=False)
    client.proc.wait(timeout=10)


if __name__ == "__main__":
    main()
