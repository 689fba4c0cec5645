"""Where the grammar and the stdlib live: inside the installed package, or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    # A built wheel carries the folders inside the package (camlang/grammars, camlang/stdlib);
    # a source checkout or an editable install has them beside the package.
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"camlang installation is missing its {name}/ folder (looked in {_PACKAGE_DIR})")


def grammar_path() -> Path:
    """The one lark grammar, `grammars/camlang.lark`."""
    return _data_dir("grammars") / "camlang.lark"


def stdlib_dir() -> Path:
    """The folder holding `cams.cam`, `metrics.cam`, `grammars.cam`, `methods.cam`."""
    return _data_dir("stdlib")


def stdlib_root() -> Path:
    """The folder that `import "stdlib/..."` paths are resolved against as a fallback."""
    return stdlib_dir().parent


def resolve_user_path(rel: str, base: Path | None) -> Path | None:
    """Find a file named in a `.cam` file; None when it exists nowhere.

    Looked up, in order: relative to the `.cam` file's folder, to the working directory, to
    the project root (a checkout), and to the installed package (which ships the demo
    checkpoints under `models/`).
    """
    p = Path(rel).expanduser()
    if p.is_absolute():
        return p if p.exists() else None
    roots = [base, Path.cwd(), stdlib_root(), _PACKAGE_DIR]
    for root in roots:
        if root is None:
            continue
        candidate = (root / p).resolve()
        if candidate.exists():
            return candidate
    if p.parts and p.parts[0] == "models":  # a wheel ships the demo checkpoints as camlang/weights
        shipped = _PACKAGE_DIR / "weights" / Path(*p.parts[1:])
        if shipped.exists():
            return shipped
    return None
