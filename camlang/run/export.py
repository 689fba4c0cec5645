"""Export a CAM as a standalone `nn.Module` source file (`camlang compile`, `export ... to`)."""

from __future__ import annotations

from pathlib import Path

from camlang.backends.torch_source import NoSourceLowering, generate
from camlang.errors import CamlangError
from camlang.frontend.check import check_file
from camlang.frontend.diagnostics import CompileError
from camlang.frontend.ir import Node


def write_module(name: str, node: Node, source_text: str, path: str | Path) -> Path:
    """Generate the module for `node` and write it to `path` (folders are created)."""
    try:
        source = generate(name, node, source_text)
    except NoSourceLowering as err:
        raise CamlangError(
            f"cannot export `{name}`: {err}",
            code="E601",
            hint="standalone modules support the layer-expression ops only",
        ) from None
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(source, encoding="utf-8")
        tmp.replace(out)
    except OSError as err:
        raise CamlangError(f"cannot write {out}: {err.strerror}", hint="check the output folder") from None
    return out


def export_cam_from_file(file: str | Path, cam: str, output: str | Path) -> Path:
    """`camlang compile FILE --cam NAME -o out.py`."""
    program = check_file(file)
    if program.has_errors:
        raise CompileError([d for d in program.diagnostics if d.is_error])
    cdef = program.cams.get(cam)
    if cdef is None or cdef.node is None:
        if cam in program.synths:
            raise CamlangError(
                f"`{cam}` is synthesized; `camlang run {file}` exports it with `export {cam} to ...`"
            )
        known = ", ".join(sorted(program.cams))
        raise CamlangError(f"no cam named `{cam}` in {file}", hint=f"cams: {known}")
    return write_module(cam, cdef.node, cdef.source_text, output)
