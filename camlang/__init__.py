"""camlang: a declarative language, compiler and REPL for class activation maps.

`camlang.load(path)` and `camlang.CAM(expression, model, target_layer)` are the Python API
(imported lazily, so `camlang check` does not pay for torch).
"""

from __future__ import annotations

from typing import Any

from camlang.core.version import __version__

__all__ = ["CAM", "CAMModule", "LayerLayout", "LoadedProgram", "load", "tokens", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("CAM", "CAMModule", "LoadedProgram", "load"):
        from camlang import api

        return getattr(api, name)
    if name in ("tokens", "LayerLayout"):
        from camlang.frontend import layer_layout as layout

        return getattr(layout, name)
    raise AttributeError(f"module 'camlang' has no attribute {name!r}")
