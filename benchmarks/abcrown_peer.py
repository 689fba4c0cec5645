"""Run alpha-beta-CROWN (the VNN-COMP winner) as a benchmark peer, from a local install.

The install lives outside the repository (`../shared/peers/abcrown/setup.sh DEST`; DEST defaults
to /work/abcrown, or $ABCROWN_HOME). Nothing in camlang imports it: this module only starts its
`abcrown.py` in a subprocess, one instance at a time, one thread, on copies of the inputs (it
writes a `.compiled` cache next to every VNN-LIB file it reads).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HOME = Path(os.environ.get("ABCROWN_HOME", "/work/abcrown"))
SRC = HOME / "src" / "alpha-beta-CROWN" / "complete_verifier"
PYTHON = HOME / "venv" / "bin" / "python"
# the shipped CPU configs: VNN-COMP 2022's mnistfc_small for 256x2, mnistfc for the deeper nets
CONFIGS = {
    "256x2": "mnistfc_small_cpu.yaml",
    "256x4": "mnistfc_large_cpu.yaml",
    "256x6": "mnistfc_large_cpu.yaml",
}


@dataclass(frozen=True)
class PeerResult:
    """One alpha-beta-CROWN run: "holds", "violated" or "unknown", the wall time with start-up,
    and its own verifier time (its last ``Time:`` line; None when it printed none)."""

    status: str
    wall_s: float
    verifier_s: float | None
    note: str = ""


def missing() -> str | None:
    """Why the peer cannot run here, or None when the install is complete."""
    if not PYTHON.is_file() or not (SRC / "abcrown.py").is_file():
        return f"alpha-beta-CROWN is not installed at {HOME} (run ../shared/peers/abcrown/setup.sh {HOME})"
    return None


def run(onnx: Path, vnnlib: Path, net: str, timeout: float) -> PeerResult:
    """alpha-beta-CROWN on one instance, with ``timeout`` as its own limit (plus start-up)."""
    config = HOME / "configs" / CONFIGS[net]
    with tempfile.TemporaryDirectory(prefix="abcrown-") as tmp:
        model, prop, res = Path(tmp) / onnx.name, Path(tmp) / vnnlib.name, Path(tmp) / "res.txt"
        shutil.copy(onnx, model)
        shutil.copy(vnnlib, prop)
        cmd = [str(PYTHON), "abcrown.py", "--config", str(config), "--onnx_path", str(model)]
        cmd += ["--vnnlib_path", str(prop), "--results_file", str(res), "--timeout", f"{timeout:g}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
        t = time.monotonic()
        try:
            out = subprocess.run(
                cmd, cwd=SRC, env=env, capture_output=True, text=True, timeout=timeout + 90
            ).stdout
        except subprocess.TimeoutExpired:
            return PeerResult("unknown", time.monotonic() - t, None, "killed past its limit + 90 s")
        wall = time.monotonic() - t
        first = res.read_text().split("\n", 1)[0].strip() if res.is_file() else ""
    status = {"unsat": "holds", "sat": "violated"}.get(first, "unknown")
    times = re.findall(r"^Time: ([0-9.]+)\s*$", out, flags=re.M)
    return PeerResult(status, wall, float(times[-1]) if times else None, first or "no result file")
