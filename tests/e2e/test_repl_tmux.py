"""A real terminal: `camlang repl FILE` under tmux shows the colour preview and the PNG path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from camlang.models import ShapesCNN

DEMO = """import "stdlib/cams.cam"
model shapes = checkpoint("net.pt", arch = "shapes_cnn") at "features.6"
data test = synthetic_shapes(count = 4, size = 48, seed = 1)
"""


def _capture(name: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-e", "-t", name], capture_output=True, text=True
    ).stdout


def _wait(name: str, needle: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = _capture(name)
        if needle in screen:
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} never appeared; screen:\n{screen}")
        time.sleep(0.2)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_repl_in_tmux(tmp_path: Path) -> None:
    torch.save(ShapesCNN().state_dict(), tmp_path / "net.pt")
    (tmp_path / "demo.cam").write_text(DEMO, encoding="utf-8")
    name = f"camlang-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CAMLANG_HISTORY": str(tmp_path / "history"),
        "COLORTERM": "truecolor",
        "CAMLANG_REPL_OUT": str(tmp_path / "out"),
        "TERM": "xterm-256color",
    }
    env.pop("NO_COLOR", None)
    command = f"{sys.executable} -m camlang repl demo.cam"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "50", "-c", str(tmp_path), command],
        check=True,
        env=env,
    )
    try:
        _wait(name, "cam>")
        subprocess.run(["tmux", "send-keys", "-t", name, "relu(sum_c(G * A))", "Enter"], check=True)
        screen = _wait(name, ".png")
        assert "▀" in screen and "\x1b[38;2;" in screen  # 24-bit half-block preview
        png = next((tmp_path / "out").glob("*.png"))
        assert png.name in screen.replace("\n", "")
        subprocess.run(["tmux", "send-keys", "-t", name, "C-d"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
