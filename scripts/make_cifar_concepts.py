"""Concept annotations and disjoint splits for the CIFAR-10 JPEG test images, made without a VLM.

Reads the image-folder layout `<class>/NNNN.jpg` (a folder, or the shared `cifar10_test_jpg`
tar.gz, which is unpacked into the output folder first), and writes into `--out`, a cache folder
outside the checkout:

- `probe_train/`, `probe_heldout/`, `fit/`, `calibrate/`, `test/`: disjoint splits (15/10/25/25/25%
  of every class, by a seeded permutation), each in the same `<class>/NNNN.jpg` layout (links to
  the unpacked images);
- `concepts.csv`: `filename,<concept>,...` with one 0/1 row per image, read by
  `images(..., concepts = ".../concepts.csv")`.

The concepts are of two kinds:
- eight *pixel* concepts, measured on the 32x32 image and cut at the median over all images, so
  each holds on half of them: `sky_blue` (the top third is bluer than red), `green` (green
  dominates), `bright`, `saturated`, `textured` (mean luminance gradient), `centred` (the centre's
  luminance stands out from the border), `warm` (red over blue), `plain_background` (little
  luminance variation along the border);
- four *class attributes*, from the label (as in attribute datasets such as AwA): `animal`,
  `wings` (airplane, bird), `wheels` (automobile, truck), `four_legs` (cat, deer, dog, horse).

Run: python scripts/make_cifar_concepts.py [--source PATH] [--out DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

# `../shared/data` beside the checkout, as the optional tests expect it; `--source` overrides it.
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SPLITS = (("probe_train", 0.15), ("probe_heldout", 0.10), ("fit", 0.25), ("calibrate", 0.25), ("test", 0.25))
PIXEL = ("sky_blue", "green", "bright", "saturated", "textured", "centred", "warm", "plain_background")
ATTRIBUTES = {
    "animal": {"bird", "cat", "deer", "dog", "frog", "horse"},
    "wings": {"airplane", "bird"},
    "wheels": {"automobile", "truck"},
    "four_legs": {"cat", "deer", "dog", "horse"},
}


def unpacked(source: Path, out: Path) -> Path:
    """The image folder: `source` itself, or the tar.gz unpacked (once) under `out/images`."""
    if source.is_dir():
        return source
    target = out / "images"
    marker = target / ".unpacked"
    if not marker.exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(source) as tar:
            tar.extractall(target, filter="data")
        marker.touch()
    # The archive holds one top folder (`test/`) with the class folders inside.
    tops = [p for p in target.iterdir() if p.is_dir()]
    return tops[0] if len(tops) == 1 else target


def pixel_scores(rgb: np.ndarray) -> list[float]:
    """The eight continuous pixel measures of one `[H, W, 3]` image in [0, 1], in `PIXEL` order."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    h, w = lum.shape
    top = slice(0, h // 3)
    border = np.concatenate([lum[0], lum[-1], lum[:, 0], lum[:, -1]])
    centre = lum[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    grad = np.abs(np.diff(lum, axis=0)).mean() + np.abs(np.diff(lum, axis=1)).mean()
    return [
        float((b[top] - r[top]).mean()),
        float(np.clip(g - (r + b) / 2, 0, None).mean()),
        float(lum.mean()),
        float((rgb.max(axis=2) - rgb.min(axis=2)).mean()),
        float(grad),
        float(abs(centre.mean() - border.mean())),
        float((r - b).mean()),
        float(-border.std()),
    ]


def main(argv: list[str] | None = None) -> int:
    """Unpack, split and annotate; print the concepts' prevalences."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=SHARED / "cifar10_test_jpg" / "cifar10_test_jpg.tar.gz")
    ap.add_argument("--out", type=Path, default=Path("~/.cache/camlang/cifar10_concepts").expanduser())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = args.out.expanduser()
    root = unpacked(args.source, out)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    rng = np.random.default_rng(args.seed)
    names, measures = [], []
    for cls in classes:
        files = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        order = rng.permutation(len(files))
        start = 0
        for i, (split, share) in enumerate(SPLITS):
            count = len(files) - start if i == len(SPLITS) - 1 else round(share * len(files))
            folder = out / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for k in order[start : start + count]:
                link = folder / files[k].name
                if not link.exists():
                    link.symlink_to(files[k].resolve())
            start += count
        for f in files:
            rgb = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0
            names.append((f"{cls}/{f.name}", cls))
            measures.append(pixel_scores(rgb))
    values = np.array(measures)
    present = values > np.median(values, axis=0)
    with open(out / "concepts.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", *PIXEL, *ATTRIBUTES])
        for (name, cls), row in zip(names, present):
            attrs = [int(cls in members) for members in ATTRIBUTES.values()]
            writer.writerow([name, *(int(v) for v in row), *attrs])
    print(f"{len(names)} images of {len(classes)} classes into {out}")
    for split, _ in SPLITS:
        print(f"  {split}: {sum(1 for _ in (out / split).rglob('*.jpg'))} images")
    for k, name in enumerate(PIXEL):
        print(f"  {name}: {present[:, k].mean():.0%} of images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
