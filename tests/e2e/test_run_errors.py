"""`camlang run` on bad data and bad cams: clean messages (exit 1), NaN maps counted, Ctrl-C kept.

Everything runs in-process through `camlang.cli.main` on the demo CNN with tiny temp image folders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camlang import cli

ROOT = Path(__file__).resolve().parents[2]
MODEL = (
    f'model shapes = checkpoint("{ROOT / "models" / "shapes_cnn.pt"}", arch = "shapes_cnn") at "features.6"'
)
HEADER = f'import "stdlib/cams.cam"\nimport "stdlib/metrics.cam"\n{MODEL}\n'


def _images(folder: Path, count: int, size: int, mode: str = "RGB") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"img{i}.png")
    return folder


def _run(tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    src = tmp_path / "prog.cam"
    src.write_text(HEADER + body, encoding="utf-8")
    out = tmp_path / "out"
    code = cli.main(["run", str(src), "--out", str(out), "--batch-size", "4"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "internal error" not in err, err
    return code, err, out


def test_missing_image_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = 'data d = images("no/such/folder", size = 64, normalize = "none")\nevaluate [gradcam] on shapes, d with [sparsity]\n'
    code, err, _ = _run(tmp_path, body, capsys)
    assert code == 1
    assert "no/such/folder" in err and "does not exist" in err


def test_folder_without_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    body = 'data d = images("empty", size = 64, normalize = "none")\nevaluate [gradcam] on shapes, d with [sparsity]\n'
    code, err, _ = _run(tmp_path, body, capsys)
    assert code == 1
    assert "contains no images" in err and "empty" in err


def test_grey_images_for_an_rgb_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _images(tmp_path / "grey", 3, 64, "L")
    body = 'data d = images("grey", size = 64, normalize = "none", channels = 1)\nevaluate [gradcam] on shapes, d with [sparsity]\n'
    code, err, _ = _run(tmp_path, body, capsys)
    assert code == 1
    assert "model `shapes`" in err and "data `d`" in err
    assert "(3, 1, 64, 64)" in err and "channels" in err


def test_images_too_small_for_the_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _images(tmp_path / "tiny", 2, 32)
    body = 'data d = images("tiny", size = 2, normalize = "none")\nevaluate [gradcam] on shapes, d with [sparsity]\n'
    code, err, _ = _run(tmp_path, body, capsys)
    assert code == 1
    assert "model `shapes`" in err and "(2, 3, 2, 2)" in err and "size" in err


def test_mask_metric_on_data_without_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _images(tmp_path / "photos", 2, 64)
    body = (
        'data d = images("photos", size = 64, normalize = "none")\n'
        "evaluate [gradcam] on shapes, d with [sparsity, pointing_game, iou_50]\n"
    )
    code, err, _ = _run(tmp_path, body, capsys)
    assert code == 1
    assert "pointing_game" in err and "iou_50" in err and "MASK" in err and "no ground-truth masks" in err
    assert "sparsity" not in err.splitlines()[0]


def test_nan_cam_is_reported_and_the_run_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = (
        "cam nan = relu(sum_c(A / (A - A)))\n"
        "data d = synthetic_shapes(count = 4, size = 64, seed = 1)\n"
        "evaluate [gradcam, nan] on shapes, d with [average_drop, deletion, sparsity, pointing_game]\n"
    )
    code, err, out = _run(tmp_path, body, capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    (evaluation,) = report["evaluations"]
    table = evaluation["table"]
    for metric in ("average_drop", "deletion", "sparsity", "pointing_game"):
        assert table["nan"][metric]["nan_count"] == 4, (metric, table["nan"][metric])
        assert table["gradcam"][metric]["nan_count"] == 0
        assert table["gradcam"][metric]["mean"] is not None
    assert any("`nan` produced NaN maps on 4 image(s)" in w for w in report["warnings"])


def test_ctrl_c_keeps_the_finished_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import camlang.run.actions

    real = camlang.run.actions.run_evaluate
    calls: list[int] = []

    def interrupt_second(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(camlang.run.actions, "run_evaluate", interrupt_second)
    body = (
        "data d = synthetic_shapes(count = 4, size = 64, seed = 1)\n"
        "evaluate [gradcam] on shapes, d with [sparsity]\n"
        "evaluate [layercam] on shapes, d with [entropy]\n"
    )
    code, err, out = _run(tmp_path, body, capsys)
    assert code == 130
    assert len(calls) == 2
    report = json.loads((out / "report.json").read_text())
    assert report["partial"] is True
    (evaluation,) = report["evaluations"]
    assert evaluation["cams"] == ["gradcam"]
    assert any("interrupted" in w for w in report["warnings"])
