"""ONNX models, converted to PyTorch with the optional `onnx2torch` dependency."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from camlang.errors import CamlangError
from camlang.models.loaded import LoadedModel

if TYPE_CHECKING:  # onnx is an optional dependency, imported when a model is loaded
    from onnx import ValueInfoProto


def _static_dims(value_info: ValueInfoProto) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [int(d.dim_value) if d.HasField("dim_value") else None for d in dims]


def load_onnx(path: str | os.PathLike[str]) -> LoadedModel:
    """Load an `.onnx` file as an `nn.Module` (an fx GraphModule) via onnx2torch.

    The input size and class count are read from the graph's declared shapes when they are
    static (`[N, C, H, W]` with H == W; `[N, K]` outputs).
    """
    from camlang.models.state_dict import check_file

    p = check_file(path, "onnx model")
    try:
        import onnx
        from onnx2torch import convert
    except ImportError as exc:
        raise CamlangError(
            f"cannot load {str(path)!r}: onnx models need the optional extra: pip install 'camlang[onnx]'"
        ) from exc
    try:
        proto = onnx.load(str(p))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... for malformed files
        raise CamlangError(f"cannot read onnx model {str(path)!r}: {exc}") from exc
    try:
        module = convert(proto)
    except Exception as exc:  # onnx2torch raises NotImplementedError/KeyError for unsupported ops
        raise CamlangError(f"onnx2torch cannot convert {str(path)!r}: {exc}") from exc
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    input_size = None
    if inputs:
        dims = _static_dims(inputs[0])
        if len(dims) == 4 and dims[2] is not None and dims[2] == dims[3]:
            input_size = dims[2]
    num_classes = None
    if proto.graph.output:
        out = _static_dims(proto.graph.output[0])
        if len(out) == 2 and out[1] is not None:
            num_classes = out[1]
    return LoadedModel(module.eval(), p.stem, f"onnx {p}", input_size, None, num_classes, None)
