"""End to end, in process: the prompt_toolkit REPL driven through a pipe input and DummyOutput."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from camlang.models import ShapesCNN
from camlang.repl.app import history_path, run_repl

DEMO = """import "stdlib/cams.cam"
import "stdlib/metrics.cam"
model shapes = checkpoint("net.pt", arch = "shapes_cnn") at "features.6"
data test = synthetic_shapes(count = 8, size = 48, seed = 1)
"""
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.cam"


def write_demo(folder: Path) -> Path:
    torch.save(ShapesCNN().state_dict(), folder / "net.pt")
    (folder / "demo.cam").write_text(DEMO, encoding="utf-8")
    return folder / "demo.cam"


def drive(file: Path, tmp_path: Path, steps: list[tuple[str, str | None]]) -> tuple[int, str]:
    """Type each step's keys, then wait until the output shows its expected text (if any)."""
    out = io.StringIO()
    result: list[int] = []
    with create_pipe_input() as pipe:

        def wait_for(pattern: str, timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            while not re.search(pattern, out.getvalue()):
                assert time.monotonic() < deadline, f"timed out waiting for {pattern!r}:\n{out.getvalue()}"
                time.sleep(0.05)

        def feed() -> None:
            wait_for("REPL")
            for keys, expect in steps:
                pipe.send_text(keys)
                if expect is not None:
                    wait_for(expect)
                else:
                    time.sleep(0.8)  # completion runs asynchronously inside prompt_toolkit

        def run() -> None:
            result.append(
                run_repl(
                    str(file),
                    input=pipe,
                    output=DummyOutput(),
                    out=out,
                    out_dir=tmp_path / "out",
                    history=tmp_path / "history",
                    color=True,
                )
            )

        feeder: Callable[[], None] = feed
        thread = threading.Thread(target=feeder, daemon=True)
        thread.start()
        run()
        thread.join(5)
    return result[0], out.getvalue()


def test_session_through_prompt_toolkit(tmp_path: Path) -> None:
    demo = write_demo(tmp_path)
    rc, text = drive(
        demo,
        tmp_path,
        [
            ("cam mine = relu(sum_c(relu(G) *\r", None),  # unfinished: Enter continues the input
            ("A))\r", r"cam mine : Map\[H, W\]"),
            ("mine\r", r"wrote .*-mine\.png"),
            ("cam bad = sum_c(mean_c(A))\r", r"error\[E301\]"),
            ("hirescam\r", r"wrote .*-hirescam\.png"),  # recovered
            ("gradc", None),
            ("\t", None),
            ("\r", None),  # Enter on the selected completion closes the menu
            ("\r", r"wrote .*-gradcam\.png"),
            (f":export mine {tmp_path / 'mine.py'}\r", "exported mine"),
            (":quit\r", "bye"),
        ],
    )
    assert rc == 0
    assert "loaded" in text and "2 data" not in text
    assert "▀" in text and ("\x1b[38;2;" in text or "\x1b[38;5;" in text)  # colour preview
    assert "^~~~~~~~~~~~~~~~" in text  # caret under the error
    assert (tmp_path / "mine.py").read_text().startswith(('"""', "#", "from", "import"))
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert len(pngs) == 3 and any("gradcam" in p for p in pngs)
    history = (tmp_path / "history").read_text()
    assert "+gradcam" in history and "+mine" in history


def test_quickstart_loads(tmp_path: Path) -> None:
    if not QUICKSTART.is_file():
        pytest.skip(f"{QUICKSTART} is absent")
    rc, text = drive(
        QUICKSTART, tmp_path, [(":cams\r", "gradcam"), (":type gradcam\r", r"Map\[H, W\]"), ("\x04", None)]
    )  # Ctrl-D exits
    assert rc == 0 and "10 cams" in text and "evaluate" not in text.split("loaded")[0]


def test_history_path_from_environment(tmp_path: Path) -> None:
    assert history_path({"CAMLANG_HISTORY": str(tmp_path / "h")}) == tmp_path / "h"
    assert history_path({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "camlang" / "history"
    assert history_path({}).parts[-3:] == ("share", "camlang", "history")
