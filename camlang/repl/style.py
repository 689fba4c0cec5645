"""Colours of the REPL: token classes of the highlighter, the toolbar and the completion menu."""

from __future__ import annotations

from prompt_toolkit.styles import Style

STYLE = Style.from_dict(
    {
        "keyword": "bold #5f87ff",
        "op": "#00af87",
        "terminal": "bold #d78700",
        "declared": "#af87ff",
        "name": "",
        "number": "#d7af00",
        "string": "#87af5f",
        "comment": "italic #808080",
        "punctuation": "#a8a8a8",
        "error": "bg:#5f0000 #ffffff",
        "command": "bold #00afaf",
        "argument": "#87afaf",
        "prompt": "bold #5fafff",
        "continuation": "#606060",
        "toolbar.key": "bg:#303030 #808080",
        "toolbar.value": "bg:#303030 bold #ffffff",
        "completion-menu.meta.completion": "bg:#444444 #bcbcbc",
        "completion-menu.meta.completion.current": "bg:#5f87af #ffffff",
        "validation-toolbar": "bg:#5f0000 #ffffff",
    }
)
