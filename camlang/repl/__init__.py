"""The interactive REPL (`camlang repl`): a pure `Session` and thin prompt_toolkit adapters.

`session.py` (with `commands.py` and `show.py`, which see the session through the
`context.ReplSession` protocol) holds everything that executes input and has no prompt_toolkit
import; `lexer.py`, `completer.py`, `validator.py`, `keys.py`, `toolbar.py` and
`style.py` adapt it to prompt_toolkit, and `app.py` wires them into `run_repl`.
"""
