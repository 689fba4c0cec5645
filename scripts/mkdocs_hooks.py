"""MkDocs hooks: add the generated pages (language reference, stdlib, CLI) to every build.

They are made from the code by `scripts/gen_docs.py` at build time and never committed, so the
site cannot describe an op, an argument or a command that does not exist.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

_spec = importlib.util.spec_from_file_location("gen_docs", Path(__file__).with_name("gen_docs.py"))
assert _spec is not None and _spec.loader is not None
gen_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_docs)


def on_files(files: Files, config: Any) -> Files:
    """Append each generated page to the site's files."""
    for rel, make in gen_docs.PAGES.items():
        files.append(File.generated(config, rel, content=make()))
    return files
