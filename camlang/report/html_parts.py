"""The small pieces every part of report.html is built from: images as data URIs, key-value tables.

Every user-supplied string goes through `html.escape` here or in the caller.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from camlang.report.ranking import fmt_number


def data_uri(png: bytes) -> str:
    """A `data:image/png;base64,...` URI for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img(png: bytes, alt: str, cls: str = "") -> str:
    """An `<img>` holding `png` inline."""
    c = f' class="{cls}"' if cls else ""
    return f'<img{c} src="{data_uri(png)}" alt="{escape(alt)}">'


def meta_table(rows: Sequence[tuple[str, Any]]) -> str:
    """A two-column table of names and plainly written values."""
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(plain(v))}</td></tr>" for k, v in rows)
    return f'<table class="meta">{body}</table>'


def plain(v: object) -> str:
    """A value as short text: numbers compactly, mappings as `k=v`, lists in brackets."""
    if isinstance(v, float):
        return fmt_number(v)
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={plain(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return "[" + ", ".join(plain(x) for x in v) + "]"
    return "" if v is None else str(v)
