#!/usr/bin/env bash
# Acceptance check: exported CAM modules run in a clean virtual environment that has only torch
# and torchvision (no camlang), and give the same maps as in-process evaluation.
# Usage: scripts/check_standalone_venv.sh [VENV_DIR]   (run with the project's environment active)
set -euo pipefail
VENV=${1:-/tmp/camlang-clean-venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
fi
WORK=$(mktemp -d)
python - "$WORK" <<'PY'
import sys
from pathlib import Path

import torch
import torchvision

from camlang.frontend.check import check_file
from camlang.runtime.cam_engine import CamEngine
from camlang.run.export import write_module
from camlang.paths import stdlib_dir

work = Path(sys.argv[1])
cams = check_file(stdlib_dir() / "cams.cam").cams
torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None).eval()
x = torch.randn(2, 3, 64, 64)
expected = {}
for name in ("gradcam", "gradcampp", "xgradcam", "layercam", "eigencam", "ablationcam"):
    write_module(name, cams[name].node, cams[name].source_text, work / f"{name}_cam.py")
    expected[name] = CamEngine(model, model.layer4, {name: cams[name].node})(x).maps[name]
torch.save({"model": model.state_dict(), "x": x, "expected": expected}, work / "case.pt")
PY
cd "$WORK"  # not the checkout: the clean interpreter must not see the camlang sources
"$VENV/bin/python" - "$WORK" <<'PY'
import importlib.util
import sys
from pathlib import Path

import torch
import torchvision

work = Path(sys.argv[1])
try:
    import camlang  # noqa: F401
    sys.exit("camlang is importable in the clean environment: the check would prove nothing")
except ImportError:
    pass
case = torch.load(work / "case.pt", weights_only=True)
model = torchvision.models.resnet18(weights=None).eval()
model.load_state_dict(case["model"])
worst = 0.0
for name, want in case["expected"].items():
    spec = importlib.util.spec_from_file_location(name, work / f"{name}_cam.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = next(v for v in vars(module).values() if isinstance(v, type) and issubclass(v, torch.nn.Module)
               and v.__module__ == module.__name__)
    got = cls(model, model.layer4)(case["x"])
    diff = float((got - want).abs().max())
    worst = max(worst, diff)
    print(f"{name:14} max |diff| = {diff:.2e}")
assert worst <= 1e-5, worst
print(f"standalone modules match in a clean venv (torch {torch.__version__}, no camlang)")
PY
