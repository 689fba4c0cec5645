"""Counting model calls: the cost unit that capture, metrics, evaluation and synthesis report."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CallCounter:
    """Counts model calls and the number of images they evaluated.

    Pass one instance to several metrics to total their cost; each metric also reports its own
    image count in its result.
    """

    calls: int = 0
    images: int = 0

    def add(self, images: int) -> None:
        """Record one model call on `images` images."""
        self.calls += 1
        self.images += images
