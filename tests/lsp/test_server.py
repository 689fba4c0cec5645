"""`camlang lsp` driven over stdio by a real LSP client (pytest-lsp): diagnostics, hover,
completion, definition, references, formatting, symbols, and a broken file."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest_lsp = pytest.importorskip("pytest_lsp")
from lsprotocol import types as lsp  # noqa: E402  (after the skip: an optional extra)
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

from camlang.frontend.check import check_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "CAMLANG_LSP_DEBOUNCE": "0.05"}

GOOD = """import "stdlib/cams.cam"
import "stdlib/metrics.cam"

# A ResNet-18 at its last block.
model r18 = torchvision("resnet18") at "layer4"
data test = synthetic_shapes(count = 8, size = 64)

cam mine = relu(sum_c(mean_hw(G) * A))
evaluate [gradcam, mine] on r18, test with [deletion]
"""

# One statement does not parse, one has a type error; the others still check.
BROKEN = """import "stdlib/cams.cam"
cam ok = relu(sum_c(G * A))
cam bad = sum_c(mean_c(A))
model m = torchvision("resnet18") at
cam later = gradcam + ok
"""


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-m", "camlang", "lsp"], server_env=ENV),
    scope="module",
    loop_scope="module",
)
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(
        lsp.InitializeParams(capabilities=lsp.ClientCapabilities(), root_uri=ROOT.as_uri())
    )
    yield
    await lsp_client.shutdown_session()


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _open(client: LanguageClient, path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    uri = path.resolve().as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "cam", 1, text)))
    await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return uri


def _pos(text: str, needle: str, nth: int = 0, shift: int = 0) -> lsp.Position:
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    at += shift
    line = text.count("\n", 0, at)
    return lsp.Position(line, at - (text.rfind("\n", 0, at) + 1))


async def test_diagnostics_match_camlang_check(client: LanguageClient, tmp_path: Path) -> None:
    path = tmp_path / "broken.cam"
    uri = await _open(client, path, BROKEN)
    got = client.diagnostics[uri]
    expected = check_text(BROKEN, str(path), path.resolve()).diagnostics
    assert [d.code for d in got] == [d.code for d in expected]
    assert {"E001", "E301"} <= {d.code for d in got}
    e301 = next(d for d in got if d.code == "E301")
    span = next(d for d in expected if d.code == "E301").span
    assert e301.range.start == _pos(BROKEN, span.text)
    assert "hint:" in e301.message and e301.severity == lsp.DiagnosticSeverity.Error


async def test_broken_file_keeps_working(client: LanguageClient, tmp_path: Path) -> None:
    path = tmp_path / "broken2.cam"
    uri = await _open(client, path, BROKEN)
    doc = lsp.TextDocumentIdentifier(uri)
    hover = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(BROKEN, "+ ok", shift=2)))
    assert hover is not None and "cam ok : Map[H, W]" in hover.contents.value
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc))
    assert [s.name for s in symbols] == ["ok", "bad", "later"]
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(doc, lsp.FormattingOptions(2, True))
    )
    assert not edits  # no formatting while the file does not parse


async def test_diagnostics_follow_edits(client: LanguageClient, tmp_path: Path) -> None:
    path = tmp_path / "edit.cam"
    uri = await _open(client, path, "cam c = relu(sum_c(A))\n")
    assert client.diagnostics[uri] == []
    change = lsp.TextDocumentContentChangeEvent_Type2(text="cam c = relu(sum_c(Q))\n")
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(lsp.VersionedTextDocumentIdentifier(2, uri), [change])
    )
    await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert [d.code for d in client.diagnostics[uri]] == ["E101"]
    # Two lines above it: the statement (parsed once, then reused) moves, and so does its error.
    change = lsp.TextDocumentContentChangeEvent_Type2(
        text="cam a = relu(sum_c(A))\n\ncam c = relu(sum_c(Q))\n"
    )
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(lsp.VersionedTextDocumentIdentifier(3, uri), [change])
    )
    await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    (diag,) = client.diagnostics[uri]
    assert diag.code == "E101" and diag.range.start == lsp.Position(2, 19)


async def test_hover_shows_types_and_op_docs(client: LanguageClient, tmp_path: Path) -> None:
    uri = await _open(client, tmp_path / "good.cam", GOOD)
    doc = lsp.TextDocumentIdentifier(uri)
    hover = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(GOOD, "gradcam", shift=2)))
    assert hover is not None
    assert "cam gradcam : Map[H, W]" in hover.contents.value and "Selvaraju" in hover.contents.value
    hover = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(GOOD, "mean_hw")))
    assert hover is not None and "mean_hw(x)" in hover.contents.value
    hover = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(GOOD, "r18", nth=1)))
    assert (
        hover is not None and 'model r18 = torchvision(name = "resnet18") at "layer4"' in hover.contents.value
    )
    hover = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(GOOD, "torchvision")))
    assert hover is not None and "weights = none" in hover.contents.value
    hover = await client.text_document_hover_async(lsp.HoverParams(doc, _pos(GOOD, "count")))
    assert (
        hover is not None
        and "count = 128" in hover.contents.value
        and "number of images" in hover.contents.value
    )


async def test_completion(client: LanguageClient, tmp_path: Path) -> None:
    text = GOOD + 'model v = torchvision("vgg16") at "feat'
    uri = await _open(client, tmp_path / "complete.cam", text)
    doc = lsp.TextDocumentIdentifier(uri)
    end = _pos(text, '"feat', shift=5)
    items = await client.text_document_completion_async(lsp.CompletionParams(doc, end))
    assert items is not None and {"features", "features[-1]"} <= {i.label for i in items.items}
    here = _pos(text, "relu(sum_c", shift=2)  # in the middle of `relu`
    items = await client.text_document_completion_async(lsp.CompletionParams(doc, here))
    labels = {i.label for i in items.items}
    assert "relu" in labels  # the op, with its signature as detail
    here = _pos(text, "mean_hw(G)", shift=0)
    items = await client.text_document_completion_async(lsp.CompletionParams(doc, here))
    labels = {i.label for i in items.items}
    assert {"gradcam", "deletion", "mine", "r18"} <= labels  # declarations across imports
    here = _pos(text, "count = 8", shift=0)
    items = await client.text_document_completion_async(lsp.CompletionParams(doc, here))
    assert "size = 64" in {i.label for i in items.items}  # keyword arguments of the data source


async def test_definition_and_references_across_imports(client: LanguageClient, tmp_path: Path) -> None:
    uri = await _open(client, tmp_path / "defs.cam", GOOD)
    doc = lsp.TextDocumentIdentifier(uri)
    loc = await client.text_document_definition_async(lsp.DefinitionParams(doc, _pos(GOOD, "gradcam")))
    assert isinstance(loc, lsp.Location) and loc.uri.endswith("stdlib/cams.cam")
    stdlib = (ROOT / "stdlib" / "cams.cam").read_text()
    assert loc.range.start == _pos(stdlib, "gradcam = ")
    loc = await client.text_document_definition_async(lsp.DefinitionParams(doc, _pos(GOOD, "mine", nth=1)))
    assert isinstance(loc, lsp.Location) and loc.uri == uri and loc.range.start == _pos(GOOD, "mine")
    refs = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=doc,
            position=_pos(GOOD, "r18"),
            context=lsp.ReferenceContext(include_declaration=True),
        )
    )
    assert refs is not None and len(refs) == 2


async def test_formatting_is_camlang_fmt(client: LanguageClient, tmp_path: Path) -> None:
    from camlang.frontend.parser import parse
    from camlang.frontend.pretty import format_source

    messy = "cam   c=relu( sum_c(G*A) )\nmetric m = minimize   mean(M)\n"
    uri = await _open(client, tmp_path / "fmt.cam", messy)
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(uri), lsp.FormattingOptions(2, True))
    )
    assert edits is not None and len(edits) == 1
    assert edits[0].new_text == format_source(messy, parse(messy)) != messy
