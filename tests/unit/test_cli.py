"""The `camlang` command line, in-process (and once as a subprocess): exit codes and messages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import camlang
from camlang import cli

ROOT = Path(__file__).resolve().parents[2]
TOUR = ROOT / "examples" / "language_tour.cam"
THREE = ROOT / "tests" / "golden" / "diagnostics" / "three_mistakes.cam"
SHIPPED = sorted((ROOT / "examples").glob("*.cam")) + sorted((ROOT / "stdlib").glob("*.cam"))


def test_check_the_language_tour(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(TOUR), "-v"]) == 0
    out = capsys.readouterr().out
    assert f"{TOUR}: ok (" in out
    assert "cam: " in out and "gradcam" in out and "synthesize: best" in out


def test_check_as_a_subprocess() -> None:
    env = dict(os.environ, NO_COLOR="1")
    done = subprocess.run(
        [sys.executable, "-m", "camlang", "check", str(TOUR)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "language_tour.cam: ok" in done.stdout
    assert "Traceback" not in done.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"camlang {camlang.__version__}"


def test_three_mistakes_give_three_diagnostics(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(THREE)]) == 1
    err = capsys.readouterr().err
    locations = re.findall(r"--> (\S+):(\d+):(\d+)", err)
    assert [(int(line), int(col)) for _, line, col in locations] == [(5, 11), (7, 31), (9, 33)]
    assert all(name == str(THREE) for name, _, _ in locations)
    assert len(re.findall(r"^\s+\| +\^~*$", err, re.MULTILINE)) == 3  # one caret underline each
    assert err.rstrip().endswith("3 errors")
    assert "Traceback" not in err


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_fmt_check_passes_after_formatting(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    assert cli.main(["fmt", str(copy)]) == 0
    once = copy.read_text()
    assert cli.main(["fmt", "--check", str(copy)]) == 0
    assert copy.read_text() == once
    assert "would reformat" not in capsys.readouterr().out


def test_fmt_check_reports_a_file_that_would_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messy = tmp_path / "messy.cam"
    messy.write_text("cam   a=relu( sum_c(A) )   # keep me\n")
    assert cli.main(["fmt", "--check", str(messy)]) == 1
    assert f"{messy}: would reformat" in capsys.readouterr().out
    assert messy.read_text() == "cam   a=relu( sum_c(A) )   # keep me\n"
    assert cli.main(["fmt", str(messy)]) == 0
    assert messy.read_text() == "cam a = relu(sum_c(A))  # keep me\n"


def test_fmt_refuses_a_file_with_syntax_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.cam"
    bad.write_text("cam a = relu(\n")
    assert cli.main(["fmt", str(bad)]) == 1
    assert "error[E001]" in capsys.readouterr().err
    assert bad.read_text() == "cam a = relu(\n"


@pytest.mark.parametrize("command", ["check", "fmt"])
def test_missing_file(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    absent = tmp_path / "absent.cam"
    assert cli.main([command, str(absent)]) == 1
    err = capsys.readouterr().err
    assert str(absent) in err and "check the path" in err
    assert "internal error" not in err and "Traceback" not in err


def test_internal_error_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import camlang.frontend.check

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(camlang.frontend.check, "check_file", broken)
    monkeypatch.delenv("CAMLANG_DEBUG", raising=False)
    assert cli.main(["check", str(TOUR)]) == 2
    err = capsys.readouterr().err
    assert "internal error, please report: RuntimeError: simulated bug" in err
    assert "CAMLANG_DEBUG=1" in err and "Traceback" not in err


def test_internal_error_traceback_with_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import camlang.frontend.check

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(camlang.frontend.check, "check_file", broken)
    monkeypatch.setenv("CAMLANG_DEBUG", "1")
    assert cli.main(["check", str(TOUR)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_keyboard_interrupt_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import camlang.frontend.check

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(camlang.frontend.check, "check_file", interrupted)
    assert cli.main(["check", str(TOUR)]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_usage_errors_exit_2_from_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["check"])
    assert info.value.code == 2
    assert "usage: camlang check" in capsys.readouterr().err
