"""The language server: `camlang lsp`, editor features over the project's own front end.

`analysis` checks a document with the checker and indexes its names (definitions and uses,
across imports); `hover`, `completion` and `symbols` answer questions about that index;
`server` wires them to the Language Server Protocol through pygls. Nothing here imports torch:
the server is as light as `camlang check`.
"""
