"""Image archives read as folders: unpacked once into the cache, wrappers skipped, unsafe members refused.

The last test reads the 10,000 CIFAR-10 test images of `../shared/data` through a `.cam` file and
checks the selection and holdout splits the synthesis benchmark uses; it skips without that folder.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from camlang.data import archive, images
from camlang.errors import CamlangError
from tests.conftest import shared_data


def _png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (6, 6), colour).save(out, format="PNG")
    return out.getvalue()


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def test_class_archive_behind_a_wrapper_keeps_its_labels(tmp_path: Path, cache_home: Path) -> None:
    red, blue = _png((255, 0, 0)), _png((0, 0, 255))
    members = {"test/cat/1.png": red, "test/dog/2.png": blue, "test/dog/3.png": blue}
    src = _tar(tmp_path / "set.tar.gz", members)
    ds = images(src, size=4, normalize="none")
    assert ds.class_names == ["cat", "dog"] and len(ds) == 3
    b = ds.get(range(3))
    assert b.names == ["cat/1.png", "dog/2.png", "dog/3.png"] and b.labels.tolist() == [0, 1, 1]
    assert ds.name == str(src)  # reports and cache keys name the archive, not the cache folder
    unpacked = list((cache_home / "camlang" / "archives").iterdir())
    assert [p.name.startswith("set-") for p in unpacked] == [True]


def test_second_use_reads_the_cache_not_the_archive(
    tmp_path: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tar(tmp_path / "a.tgz", {"x/1.png": _png((1, 2, 3))})
    first = archive.unpacked_folder(src)

    def refuse(src: Path, into: Path) -> None:
        raise AssertionError("unpacked twice")

    monkeypatch.setattr(archive, "_extract", refuse)
    assert archive.unpacked_folder(src) == first
    assert [p.name for p in first.iterdir()] == ["x"]  # a folder of images: a class, not a wrapper
    os.utime(src, ns=(0, 10**9))  # a replaced archive is unpacked afresh
    with pytest.raises(AssertionError, match="unpacked twice"):
        archive.unpacked_folder(src)


def test_flat_zip_and_masks_archive(tmp_path: Path) -> None:
    src = tmp_path / "flat.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("a.png", _png((0, 255, 0)))
        zf.writestr("b.png", _png((0, 0, 0)))
        zf.writestr("__MACOSX/._a.png", b"junk")
    masks = _tar(tmp_path / "masks.tar", {"m/a.png": _png((255, 255, 255)), "m/b.png": _png((0, 0, 0))})
    ds = images(src, size=6, normalize="none", masks=masks)
    b = ds.get([0, 1])
    assert not ds.has_labels and b.names == ["a.png", "b.png"]
    assert b.masks is not None and bool(b.masks[0].all()) and not bool(b.masks[1].any())


def test_unsafe_or_broken_archives_are_refused(tmp_path: Path, cache_home: Path) -> None:
    evil = _tar(tmp_path / "evil.tar.gz", {"../escape.png": _png((0, 0, 0))})
    with pytest.raises(CamlangError, match="cannot read archive"):
        images(evil, size=4)
    assert not (tmp_path / "escape.png").exists()
    assert [p for p in (cache_home / "camlang" / "archives").iterdir()] == []  # no half-unpacked folder
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tar")
    with pytest.raises(CamlangError, match="cannot read archive"):
        images(broken, size=4)


def test_lost_race_keeps_the_winners_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tar(tmp_path / "r.tar.gz", {"w/c/1.png": _png((9, 9, 9))})
    real = archive._extract

    def race(src: Path, into: Path) -> None:
        real(src, into)
        real(src, into.parent / f"r-{archive._key(src)}")  # another process finishes first

    monkeypatch.setattr(archive, "_extract", race)
    folder = archive.unpacked_folder(src)
    assert folder.name == "w" and [p.name for p in folder.iterdir()] == ["c"]
    assert [p.name for p in folder.parent.parent.iterdir()] == [folder.parent.name]  # temp copy gone


def test_a_file_that_is_neither_folder_nor_archive(tmp_path: Path) -> None:
    f = tmp_path / "x.png"
    f.write_bytes(_png((0, 0, 0)))
    with pytest.raises(CamlangError, match="is not a folder") as err:
        images(f)
    assert ".tar.gz" in str(err.value.hint)


def test_cifar10_archive_gives_disjoint_seeded_splits(tmp_path: Path) -> None:
    shared = shared_data() / "cifar10_test_jpg" / "cifar10_test_jpg.tar.gz"
    from camlang.frontend.check import check_text
    from camlang.runtime.declaration_loading import load_data

    def split(seed: int) -> tuple[list[int], list[int]]:
        common = f'size = 32, normalize = "imagenet", shuffle = {seed}, split_fraction = 0.2'
        text = (
            f'data sel = images("{shared}", {common}, split = "train", limit = 1000)\n'
            f'data hold = images("{shared}", {common}, split = "holdout", limit = 2000)\n'
        )
        prog = check_text(text, str(tmp_path / "split.cam"))
        assert not prog.has_errors, prog.diagnostics
        sel, hold = load_data(prog.datas["sel"]), load_data(prog.datas["hold"])
        assert sel.class_names is not None and len(sel.class_names) == 10
        return sel.indices(range(len(sel))), hold.indices(range(len(hold)))

    sel, hold = split(7)
    assert len(sel) == 1000 and len(hold) == 2000 and not set(sel) & set(hold)
    other_sel, other_hold = split(11)
    assert set(other_sel) != set(sel) and not set(other_sel) & set(other_hold)
