"""`camlang lsp`: the language server over stdio (pygls, from the `camlang[lsp]` extra).

It keeps the last analysis of each open document. Opening or saving a document checks it at
once; edits are debounced (`CAMLANG_LSP_DEBOUNCE` seconds, default 0.2), so a burst of
keystrokes costs one check. Requests re-check only when the text changed since the last check.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from lsprotocol import types as lsp
from pygls.server import LanguageServer
from pygls.uris import to_fs_path

from camlang.core.version import __version__
from camlang.lsp import features
from camlang.lsp.analysis import Analysis, analyze, internal_error
from camlang.lsp.incremental import PieceParser


class CamServer(LanguageServer):
    """The pygls server with a per-document analysis cache and debounced checks."""

    def __init__(self) -> None:
        super().__init__("camlang", __version__)
        self.analyses: dict[str, Analysis] = {}
        self.parsers: dict[str, PieceParser] = {}  # per document: its statements parsed so far
        self.pending: dict[str, asyncio.Task[None]] = {}
        self.debounce = float(os.environ.get("CAMLANG_LSP_DEBOUNCE", "0.2"))

    def analysis(self, uri: str) -> Analysis:
        """The analysis of the document's current text (re-checked if the text changed)."""
        text = self.workspace.get_text_document(uri).source
        cached = self.analyses.get(uri)
        if cached is None or cached.source.text != text:
            try:
                parser = self.parsers.setdefault(uri, PieceParser())
                cached = analyze(text, _path(uri), _display_name(uri), parser)
            except Exception as err:  # noqa: BLE001 - a checker bug must not take the editor's server down
                cached = internal_error(text, _path(uri), _display_name(uri), err)
            self.analyses[uri] = cached
        return cached

    def publish(self, uri: str) -> None:
        """Check the document now and publish its diagnostics."""
        doc = self.workspace.get_text_document(uri)
        self.publish_diagnostics(uri, features.diagnostics(self.analysis(uri)), doc.version)

    def schedule(self, uri: str) -> None:
        """Publish after the debounce delay, replacing an earlier pending check of `uri`."""
        previous = self.pending.pop(uri, None)
        if previous is not None:
            previous.cancel()

        async def later() -> None:
            await asyncio.sleep(self.debounce)
            self.pending.pop(uri, None)
            self.publish(uri)

        self.pending[uri] = asyncio.ensure_future(later())


def _path(uri: str) -> Path | None:
    """The file behind a `file:` URI (resolved, as the checker's import paths are); None otherwise."""
    fs = to_fs_path(uri) if uri.startswith("file:") else None
    return Path(fs).resolve() if fs else None


def _display_name(uri: str) -> str:
    path = _path(uri)
    if path is None:
        return uri
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def build_server() -> CamServer:
    """A server with every feature registered."""
    server = CamServer()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CamServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CamServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CamServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CamServer, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.analyses.pop(uri, None)
        ls.parsers.pop(uri, None)
        task = ls.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        ls.publish_diagnostics(uri, [])

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: CamServer, params: lsp.HoverParams) -> lsp.Hover | None:
        return features.hover(ls.analysis(params.text_document.uri), params.position)

    @server.feature(
        lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=['"', "(", ",", "/", "="])
    )
    def completion(ls: CamServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        text = ls.workspace.get_text_document(uri).source
        path = _path(uri)
        # The last analysis is good enough for names: the text just typed is rarely a declaration.
        return features.completion(ls.analyses.get(uri), text, params.position, path.parent if path else None)

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: CamServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        uri = params.text_document.uri
        return features.definition(ls.analysis(uri), params.position, uri)

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def references(ls: CamServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        uri = params.text_document.uri
        include = params.context.include_declaration
        return features.references(ls.analysis(uri), params.position, uri, include)

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: CamServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        uri = params.text_document.uri
        return features.formatting(ls.workspace.get_text_document(uri).source, _display_name(uri))

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(ls: CamServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        return features.document_symbols(ls.analysis(params.text_document.uri))

    return server


def serve() -> int:
    """Run the server on stdin and stdout until the client exits."""
    build_server().start_io()
    return 0
