"""Standalone module export: golden snapshots, equality with in-process maps, and no camlang import."""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from camlang.backends.torch_source import generate, load_generated
from camlang.frontend.check import check_file
from camlang.paths import stdlib_dir
from camlang.runtime.cam_engine import CamEngine

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "modules"
SNAPSHOT_CAMS = ("gradcam", "gradcampp", "scorecam", "ablationcam", "eigencam")


@pytest.fixture(scope="module")
def stdlib() -> dict:
    program = check_file(stdlib_dir() / "cams.cam")
    return program.cams


@pytest.mark.parametrize("name", SNAPSHOT_CAMS)
def test_generated_module_matches_golden_snapshot(name: str, stdlib: dict) -> None:
    cam = stdlib[name]
    source = generate(name, cam.node, cam.source_text)
    golden = GOLDEN / f"{name}.py"
    if os.environ.get("CAMLANG_UPDATE_GOLDEN"):
        golden.write_text(source)
    assert golden.exists(), f"missing snapshot {golden}; run with CAMLANG_UPDATE_GOLDEN=1"
    assert source == golden.read_text(), (
        f"generated source for {name} changed; review and update the snapshot"
    )


@pytest.mark.parametrize(
    "name",
    sorted(
        [
            "gradcam",
            "gradcampp",
            "xgradcam",
            "hirescam",
            "layercam",
            "gradcam_elementwise",
            "eigencam",
            "eigengradcam",
            "scorecam",
            "ablationcam",
        ]
    ),
)
def test_generated_module_equals_in_process(name: str, stdlib: dict, tmp_path: Path) -> None:
    cam = stdlib[name]
    module = load_generated(generate(name, cam.node, cam.source_text), str(tmp_path / f"{name}.py"))
    cls = next(
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__
    )
    model, layer = _small_cnn()
    x = torch.randn(2, 3, 24, 24)
    ours = CamEngine(model, layer, {name: cam.node})(x).maps[name]
    theirs = cls(model, layer)(x)
    assert theirs.shape == ours.shape
    # Eigen-CAMs: the exported module uses torch's SVD, in-process CPU evaluation LAPACK via numpy.
    atol = 1e-5 if name.startswith("eigen") else 1e-6
    assert torch.allclose(theirs, ours, atol=atol), float((theirs - ours).abs().max())
    targets = torch.tensor([3, 7])
    assert torch.allclose(
        cls(model, layer)(x, targets),
        CamEngine(model, layer, {name: cam.node})(x, targets).maps[name],
        atol=atol,
    )


def test_generated_source_reads_like_hand_written(stdlib: dict) -> None:
    source = generate("gradcampp", stdlib["gradcampp"].node, stdlib["gradcampp"].source_text)
    assert not re.search(r"^\s*\w+ = None\s*$", source, re.MULTILINE), "no `x = None` lines"
    assert "import camlang" not in source and "from camlang" not in source
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import torch", "import torch.nn.functional as F", "from torch import nn"]
    assert "cam gradcampp = relu(" in source  # the docstring quotes the camlang source
    compile(source, "gradcampp.py", "exec")


def test_generated_module_runs_without_camlang(stdlib: dict, tmp_path: Path) -> None:
    """Import the exported file in a fresh interpreter whose path has torch but not camlang."""
    cam = stdlib["gradcam"]
    path = tmp_path / "gradcam_module.py"
    path.write_text(generate("gradcam", cam.node, cam.source_text))
    expected = CamEngine(*_tiny(), {"gradcam": cam.node})(_input()).maps["gradcam"]
    torch.save({"model": _tiny()[0].state_dict(), "expected": expected}, tmp_path / "case.pt")
    site_dirs = [p for p in site.getsitepackages() if Path(p, "torch").is_dir()]
    script = f"""
import sys
sys.path[:0] = [{str(tmp_path)!r}] + {site_dirs!r}
try:
    import camlang
    raise SystemExit("camlang must not be importable here")
except ImportError:
    pass
import torch
from torch import nn
from gradcam_module import Gradcam
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
case = torch.load({str(tmp_path / "case.pt")!r}, weights_only=True)
model.load_state_dict(case["model"])
model.eval()
torch.manual_seed(1)
x = torch.randn(2, 3, 16, 16)
maps = Gradcam(model, model[1])(x)
assert torch.allclose(maps, case["expected"], atol=1e-6), (maps - case["expected"]).abs().max()
print("standalone ok")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "standalone ok" in result.stdout


def _small_cnn() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A small residual-free CNN with batchnorm and max-pooling (fast enough for Score-CAM)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).eval()
    return model, model[5]


def _tiny() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    ).eval()
    return model, model[1]


def _input() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 16, 16)
