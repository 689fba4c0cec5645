"""Jupyter display: overlays of CAM maps on images, and an inline summary of a run.

`OverlayGrid` and `RunResult` implement `_repr_html_`, so the last expression of a notebook cell
shows itself: images as inline PNGs (data URIs, no files), metrics as an HTML table.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from camlang.report.colormap import overlay_rgb
from camlang.report.grid import png_bytes, render_grid
from camlang.report.html import data_uri
from camlang.report.model import RunReport
from camlang.report.ranking import direction_arrow, fmt_stat, rank_table


def overlay_batch(
    images: torch.Tensor | np.ndarray, maps: torch.Tensor | np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """Jet heatmaps of `maps` [B, H, W] in [0, 1] blended onto `images` [B, 3, H, W] in [0, 1]: uint8 [B, H,
    W, 3]."""
    imgs = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images.detach().cpu())
    ms = torch.as_tensor(np.asarray(maps) if isinstance(maps, np.ndarray) else maps.detach().cpu())
    if imgs.dim() != 4 or ms.dim() != 3 or imgs.shape[0] != ms.shape[0]:
        from camlang.errors import CamlangError

        raise CamlangError(
            f"overlay needs images [B, 3, H, W] and maps [B, H, W], got {tuple(imgs.shape)} and "
            f"{tuple(ms.shape)}",
            hint="pass the images in [0, 1] (raw), not normalized inputs",
        )
    return np.stack([overlay_rgb(imgs[i], ms[i], alpha) for i in range(imgs.shape[0])])


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True, eq=False)
class OverlayGrid:
    """CAM overlays `[B, H, W, 3]` uint8 that render as a row of images in Jupyter."""

    images: np.ndarray
    title: str = "cam"

    def _repr_html_(self) -> str:
        tiles = "".join(
            f'<img src="{data_uri(_png(img))}" alt="{escape(self.title)} {i}" style="margin:2px;width:160px;'
            'image-rendering:pixelated">'
            for i, img in enumerate(self.images)
        )
        return f"<div><b>{escape(self.title)}</b><br>{tiles}</div>"

    def save(self, path: str | Path) -> Path:
        """Write the overlays side by side as one PNG."""
        out = Path(path)
        out.write_bytes(_png(np.concatenate(list(self.images), axis=1)))
        return out


@dataclass(frozen=True, eq=False)
class RunResult:
    """A finished run of a `.cam` program: its report and where it was written."""

    report: RunReport
    out_dir: Path
    status: int = 0

    @property
    def html_path(self) -> Path:
        """The full HTML report on disk."""
        return self.out_dir / "report.html"

    def _repr_html_(self) -> str:
        parts = [
            f"<div><p><b>camlang run</b> of {escape(self.report.source_file)}"
            f"{' (partial)' if self.report.partial else ''}: report in "
            f"<code>{escape(str(self.html_path))}</code></p>"
        ]
        for ev in self.report.evaluations:
            parts.append(f"<h4>{escape(ev.name)}</h4>")
            ranks = rank_table(ev)
            head = "".join(f"<th>{escape(m.name)} {direction_arrow(m.direction)}</th>" for m in ev.metrics)
            rows = []
            for cam in ev.cams:
                cells = []
                for m in ev.metrics:
                    r = ranks[m.name][cam]
                    text = escape(fmt_stat(ev.table.get(cam, {}).get(m.name))) + f" #{r.rank}"
                    cells.append(f"<td><b>{text}</b></td>" if r.best else f"<td>{text}</td>")
                rows.append(f"<tr><th>{escape(cam)}</th>{''.join(cells)}</tr>")
            parts.append(f"<table><tr><th>cam</th>{head}</tr>{''.join(rows)}</table>")
            if ev.visuals is not None:
                grid = png_bytes(render_grid(ev.visuals, list(ev.cams), max_images=4))
                parts.append(
                    f'<img src="{data_uri(grid)}" alt="{escape(ev.name)}: heatmaps" style="max-width:100%">'
                )
        for w in self.report.warnings:
            parts.append(f"<p style='color:#a60'>warning: {escape(str(w))}</p>")
        return "\n".join(parts) + "</div>"
