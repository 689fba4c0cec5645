"""Model and CAM mistakes give diagnostics (exit 1), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from camlang.cli import main

HEADER = 'import "stdlib/cams.cam"\nimport "stdlib/metrics.cam"\n'
DATA = "data d = synthetic_shapes(count = 4, size = 64, seed = 0)\n"


def _run(tmp_path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "case.cam"
    path.write_text(HEADER + DATA + body)
    code = main(["run", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


def test_wrong_layer_name_lists_nearest_layers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        tmp_path,
        'model m = checkpoint("models/shapes_cnn.pt", arch = "shapes_cnn") at "feature.6"\n'
        "evaluate [gradcam] on m, d with [deletion]\n",
        capsys,
    )
    assert code == 1
    assert "feature.6" in err and "features.6" in err
    assert "case.cam:" in err  # the diagnostic points at the declaration


def test_missing_weight_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        tmp_path,
        'model m = checkpoint("models/nope.pt", arch = "shapes_cnn")\n'
        "evaluate [gradcam] on m, d with [deletion]\n",
        capsys,
    )
    assert code == 1 and "nope.pt" in err and "does not exist" in err


def test_pretrained_weights_not_cached_say_how_to_pass_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    code, err = _run(
        tmp_path,
        'model m = torchvision("resnet18", weights = "DEFAULT") at "layer4"\n'
        "evaluate [gradcam] on m, d with [deletion]\n",
        capsys,
    )
    assert code == 1
    assert "weights" in err and ".pth" in err  # shows how to pass a local file


def test_non_image_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        tmp_path, "model m = mlp([12288, 8, 4])\nevaluate [gradcam] on m, d with [deletion]\n", capsys
    )
    assert code == 1
    assert "layer" in err.lower()


def test_cam_whose_axes_do_not_reduce_to_a_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.cam"
    path.write_text("cam bad = relu(G * A)\ncam weights_only = mean_hw(G)\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("error[E303]") == 2
    assert "bad.cam:1:" in err and "bad.cam:2:" in err and "sum_c" in err
