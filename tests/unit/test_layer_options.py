"""`.cam` syntax for token layouts and multi-layer fusion: parse, pretty-print, check, run through the API."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import camlang
from camlang.frontend.check import check_text
from camlang.frontend.layer_layout import LayerLayout
from camlang.frontend.parser import parse
from camlang.frontend.pretty import pretty_module

SOURCE = """\
model vit = torchvision("vit_b_16") at "encoder.layers[-1].ln_1" tokens(prefix = 1, grid = [14, 14])
model r18 = torchvision("resnet18") at ["layer3", "layer4"] fuse("max")
model swin = torchvision("swin_t") at "features[-1][-1].norm1" channels_last()
model deit = torchvision("vit_b_16") at "encoder.layers[-1]" tokens(prefix = 2)
"""


def test_layer_options_round_trip_and_check() -> None:
    module = parse(SOURCE, "<t>")
    assert parse(pretty_module(module), "<t2>") == module
    program = check_text(SOURCE, "<t>", None)
    assert not program.has_errors, [d.message for d in program.diagnostics]
    m = program.models
    assert m["vit"].layout == LayerLayout("tokens", 1, (14, 14)) and m["vit"].fuse == "mean"
    assert m["r18"].layer == "layer3" and m["r18"].more_layers == ("layer4",) and m["r18"].fuse == "max"
    assert m["swin"].layout == LayerLayout("bhwc")
    assert m["deit"].layout == LayerLayout("tokens", 2, None)


@pytest.mark.parametrize(
    ("option", "code", "words"),
    [
        ("tokenz(prefix = 1)", "E101", "unknown layer option `tokenz`"),
        ("tokens(prefix = -1)", "E202", "prefix = ...) must be a whole number"),
        ("tokens(grid = [0, 3])", "E202", "grid = ...) must be a positive size"),
        ("tokens(cls = 1)", "E203", "no argument `cls`"),
        ('fuse("sum")', "E202", 'fuse takes "mean" or "max"'),
        ("channels_last() tokens(prefix = 1)", "E202", "repeats the layer layout"),
    ],
)
def test_bad_layer_options_are_diagnosed(option: str, code: str, words: str) -> None:
    program = check_text(f'model m = torchvision("resnet18") at "layer4" {option}\n', "<t>", None)
    errors = [d for d in program.diagnostics if d.is_error]
    assert errors and errors[0].code == code and words in errors[0].message, [e.message for e in errors]
    assert errors[0].span.start > 0  # points into the option, not at the file start


def test_program_fuses_layers_as_declared(tmp_path: Path) -> None:
    cam_file = tmp_path / "fuse.cam"
    cam_file.write_text(
        'import "stdlib/cams.cam"\nmodel r18 = torchvision("resnet18") at ["layer3", "layer4"] fuse("max")\n'
    )
    prog = camlang.load(cam_file)
    torch.manual_seed(0)  # random weights: fixed, so the maps are not all zero by chance
    live = prog.model("r18")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    from_file = prog.cam("gradcam", "r18")(x, [1, 2])
    direct = camlang.CAM("gradcam", live.module, [live.module.layer3, live.module.layer4], fuse="max")(
        x, [1, 2]
    )
    torch.testing.assert_close(from_file, direct)
    assert float(from_file.amax()) > 0.5
    mean = camlang.CAM("gradcam", live.module, [live.module.layer3, live.module.layer4], fuse="mean")(
        x, [1, 2]
    )
    assert (from_file - mean).abs().max() > 1e-3  # max and mean fusion really differ
