"""Image folders: layouts, labels, masks, boxes, unreadable files, grey images, normalization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from camlang.data import NORMALIZATION_PRESETS, images
from camlang.errors import CamlangError


def _save(
    path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (20, 10), mode: str = "RGB"
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(path)


@pytest.fixture()
def classes(tmp_path: Path) -> Path:
    root = tmp_path / "cls"
    _save(root / "dog" / "b.png", (0, 255, 0))
    _save(root / "dog" / "a.png", (0, 0, 255))
    _save(root / "cat" / "c.jpg", (255, 0, 0))
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_class_subfolders_give_sorted_labels(classes: Path) -> None:
    ds = images(classes, size=8, normalize="none")
    assert ds.class_names == ["cat", "dog"] and len(ds) == 3 and ds.has_labels and not ds.has_masks
    b = ds.get(range(3))
    assert b.names == ["cat/c.jpg", "dog/a.png", "dog/b.png"]
    assert b.labels.tolist() == [0, 1, 1]
    assert b.x.shape == (3, 3, 8, 8) and b.raw.shape == (3, 3, 8, 8)
    assert torch.allclose(b.raw[2, :, 4, 4], torch.tensor([0.0, 1.0, 0.0]))
    assert float((b.raw[0, 0] - 1.0).abs().max()) < 0.02  # red JPEG, lossy but close


def test_class_name_list_maps_subfolders_to_model_indices(classes: Path) -> None:
    ds = images(classes, size=8, labels=["bird", "cat", "dog"])
    assert ds.get(range(3)).labels.tolist() == [1, 2, 2]
    with pytest.raises(CamlangError, match="'dog'") as err:
        images(classes, size=8, labels=["cat", "dgo"])
    assert "dgo" in str(err.value)


def test_flat_folder_with_labels_csv(tmp_path: Path) -> None:
    _save(tmp_path / "x1.png", (10, 10, 10))
    _save(tmp_path / "x2.png", (200, 200, 200))
    csv = tmp_path.parent / f"{tmp_path.name}_labels.csv"
    csv.write_text("filename,label\nx1.png,3\nx2.png,7\n")
    ds = images(tmp_path, size=4, labels=csv)
    assert ds.get([0, 1]).labels.tolist() == [3, 7]
    no_labels = images(tmp_path, size=4)
    assert not no_labels.has_labels and no_labels.get([0]).labels is None
    csv.write_text("x1.png,7\n")
    with pytest.raises(CamlangError, match="no label"):
        images(tmp_path, size=4, labels=csv)


def test_normalization_presets(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", (255, 128, 0))
    raw = images(tmp_path, size=4, normalize="none").get([0]).raw
    for preset in ("imagenet", "cifar"):
        b = images(tmp_path, size=4, normalize=preset).get([0])
        mean, std = (torch.tensor(v).view(3, 1, 1) for v in NORMALIZATION_PRESETS[preset])
        assert torch.allclose(b.x[0], (raw[0] - mean) / std, atol=1e-6)
        assert torch.equal(b.raw, raw)
    custom = images(tmp_path, size=4, normalize=((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))).get([0])
    assert torch.allclose(custom.x, raw * 2 - 1, atol=1e-6)
    assert images(tmp_path, size=4, normalize="cifar").describe()["std"] == [0.2470, 0.2435, 0.2616]
    with pytest.raises(CamlangError, match="unknown normalization"):
        images(tmp_path, size=4, normalize="imagenette")


def test_masks_folder_is_matched_and_binarised(tmp_path: Path) -> None:
    img_dir, mask_dir = tmp_path / "img", tmp_path / "masks"
    _save(img_dir / "a.jpg", (50, 50, 50), size=(16, 16))
    _save(img_dir / "b.jpg", (90, 90, 90), size=(16, 16))
    left = np.zeros((16, 16), dtype=np.uint8)
    left[:, :8] = 255
    mask_dir.mkdir()
    Image.fromarray(left).save(mask_dir / "a.png")
    Image.fromarray((left == 0).astype(np.uint8)).save(mask_dir / "b.bmp")  # 0/1 valued mask
    b = images(img_dir, size=8, masks=mask_dir).get([0, 1])
    assert b.masks.dtype == torch.bool and b.masks.shape == (2, 8, 8)
    assert b.masks[0, :, :4].all() and not b.masks[0, :, 4:].any()
    assert b.masks[1, :, 4:].all() and not b.masks[1, :, :4].any()
    (mask_dir / "b.bmp").unlink()
    with pytest.raises(CamlangError, match="no mask"):
        images(img_dir, size=8, masks=mask_dir)


def test_boxes_csv_is_rescaled(tmp_path: Path) -> None:
    _save(tmp_path / "img" / "a.png", (0, 0, 0), size=(100, 50))
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("filename,x0,y0,x1,y1\na.png,0,0,50,25\n")
    m = images(tmp_path / "img", size=10, boxes=boxes).get([0]).masks[0]
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[:5, :5] = True
    assert torch.equal(m, expected)
    boxes.write_text("a.png,0,0,ten,25\n")
    with pytest.raises(CamlangError, match="row 1"):
        images(tmp_path / "img", size=10, boxes=boxes)


def test_unreadable_files_are_counted_in_one_warning(tmp_path: Path) -> None:
    _save(tmp_path / "good.png", (1, 2, 3))
    for i in range(4):
        (tmp_path / f"bad{i}.jpg").write_bytes(b"definitely not a jpeg")
    ds = images(tmp_path, size=4)
    assert len(ds) == 1
    assert len(ds.warnings) == 1
    assert "4 unreadable" in ds.warnings[0] and "bad0.jpg" in ds.warnings[0]
    assert ds.describe()["warnings"] == ds.warnings


def test_grey_images_become_rgb_or_one_channel(tmp_path: Path) -> None:
    _save(tmp_path / "g.png", (128, 0, 0), mode="L")
    rgb = images(tmp_path, size=4, normalize="none").get([0])
    assert rgb.x.shape == (1, 3, 4, 4)
    assert torch.allclose(rgb.raw[0, 0], rgb.raw[0, 1]) and abs(float(rgb.raw[0, 0, 0, 0]) - 128 / 255) < 1e-6
    grey = images(tmp_path, size=4, channels=1, normalize="none").get([0])
    assert grey.x.shape == (1, 1, 4, 4) and grey.raw.shape == (1, 3, 4, 4)
    assert images(tmp_path, size=4, channels=1).describe()["channels"] == 1


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(CamlangError, match="does not exist") as err:
        images(tmp_path / "nowhere", size=8)
    assert "nowhere" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CamlangError, match="contains no images"):
        images(tmp_path / "empty", size=8)


def test_native_size_requires_uniform_square_images(tmp_path: Path) -> None:
    _save(tmp_path / "a.png", (0, 0, 0), size=(6, 6))
    assert images(tmp_path).size == 6
    _save(tmp_path / "b.png", (0, 0, 0), size=(7, 6))
    with pytest.raises(CamlangError, match="same square size"):
        images(tmp_path)
    assert images(tmp_path, size=5).get([1]).x.shape == (1, 3, 5, 5)


def test_lazy_batches(tmp_path: Path) -> None:
    for i in range(5):
        _save(tmp_path / f"{i}.png", (i * 40, 0, 0), size=(4, 4))
    ds = images(tmp_path, normalize="none")
    sizes = [len(b) for b in ds.batches(2)]
    assert sizes == [2, 2, 1]
    (tmp_path / "4.png").unlink()  # decoded only when its batch is asked for
    with pytest.raises(CamlangError, match="4.png"):
        ds.get([3, 4])
    batch = ds.get([3, 4], skip_unreadable=True)
    assert batch.indices.tolist() == [3] and len(batch.names) == 1
    assert (
        list(ds.unreadable) == [str(tmp_path / "4.png")]
        and "cannot decode" in ds.unreadable[str(tmp_path / "4.png")]
    )
    assert len(ds.get([4], skip_unreadable=True)) == 0
