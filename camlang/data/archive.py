"""Image archives (`.tar`, `.tar.gz`, `.tgz`, `.tar.bz2`, `.tar.xz`, `.zip`) read as folders.

`images("cifar10_test_jpg.tar.gz", ...)` unpacks the archive once into the user's cache folder
(`$XDG_CACHE_HOME/camlang/archives/`, else `~/.cache/camlang/archives/`) and reads that folder;
later runs, and other processes, find the folder and never open the archive again. The folder
is named by the archive's stem and a digest of its resolved path, size and modification time,
so a replaced archive is unpacked afresh.

What survives a crash: an archive is unpacked into a hidden temporary sibling that is renamed
into place only when complete, so a half-unpacked archive is never read. Two processes that
unpack at once (ranks of one run) each unpack; the first rename wins and the other copy is
removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from camlang.errors import CamlangError

#: File name endings read as archives (lower case).
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")


def is_archive(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a file whose name ends like an archive this module unpacks."""
    p = Path(path).expanduser()
    return p.name.lower().endswith(ARCHIVE_SUFFIXES) and p.is_file()


def archive_cache_root() -> Path:
    """The folder that holds unpacked archives, in the user's own cache folder."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "camlang" / "archives"


def unpacked_folder(archive: str | os.PathLike[str], cache_root: Path | None = None) -> Path:
    """The folder of `archive`'s contents, unpacking it into the cache on first use.

    When the archive wraps everything in folders that hold no images of their own (`test/`
    around `test/<class>/*.jpg`), the innermost such wrapper is returned, so that a
    class-per-subfolder archive keeps its labels.
    """
    src = Path(archive).expanduser().resolve()
    if not src.is_file():
        raise CamlangError(f"archive {str(archive)!r} does not exist (resolved to {src})")
    root = archive_cache_root() if cache_root is None else cache_root
    dest = root / f"{_stem(src)}-{_key(src)}"
    if not dest.is_dir():
        _unpack_into(src, dest)
    return _content_root(dest)


def _stem(src: Path) -> str:
    name = src.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "archive"
    return name


def _key(src: Path) -> str:
    # Path, size and mtime rather than the contents: hashing a large archive on every run would
    # cost what the cache is there to save.
    st = src.stat()
    return hashlib.sha256(f"{src}\n{st.st_size}\n{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _unpack_into(src: Path, dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as exc:
        raise CamlangError(
            f"cannot unpack archive {str(src)!r}: the cache folder {dest.parent} is not writable ({exc})",
            hint="set XDG_CACHE_HOME to a writable folder, or unpack the archive yourself",
        ) from exc
    try:
        _extract(src, tmp)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():  # not a lost race: a real failure
                raise
    except OSError as exc:
        raise CamlangError(f"cannot unpack archive {str(src)!r} into {dest}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _extract(src: Path, into: Path) -> None:
    try:
        if src.name.lower().endswith(".zip"):
            with zipfile.ZipFile(src) as zf:
                zf.extractall(into)  # zipfile drops absolute paths and ".." from member names
        else:
            with tarfile.open(src) as tf:
                tf.extractall(into, filter="data")  # refuses links and paths outside `into`
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise CamlangError(f"cannot read archive {str(src)!r}: {exc}") from exc


def _visible(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]


def _content_root(folder: Path) -> Path:
    entries = _visible(folder)
    while len(entries) == 1 and entries[0].is_dir():
        inner = _visible(entries[0])
        if any(p.is_file() for p in inner):  # a folder of images: a class, not a wrapper
            break
        folder, entries = entries[0], inner
    return folder
