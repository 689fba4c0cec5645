"""camlang: a declarative language, compiler and REPL for class activation maps."""

from __future__ import annotations

__version__ = "0.1.0"
