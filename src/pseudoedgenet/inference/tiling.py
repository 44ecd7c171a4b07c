"""Tiling geometry (pure): read regions with context, write regions each tile owns.

The image plane is cut into a grid of write regions of side ``tile - 2 * margin``; they
are disjoint and cover every pixel exactly once. Each tile reads its write region plus
``margin`` pixels of context on every side (a fixed ``tile x tile`` window, which may
extend past the image border: those pixels are filled by reflection), and only its write
region is stitched into the output. With ``margin`` at least the receptive field that
matters, tiled prediction equals whole-image prediction.

Coordinates are ``(row, col)`` half-open boxes ``(y0, y1, x0, x1)`` in image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One tile.

    Attributes:
        read: ``(y0, y1, x0, x1)`` window to read, ``tile x tile``; may exceed the image.
        write: ``(y0, y1, x0, x1)`` region of the image this tile alone writes.
    """

    read: tuple[int, int, int, int]
    write: tuple[int, int, int, int]

    @property
    def inner(self) -> tuple[slice, slice]:
        """Slices of the write region inside the tile's own (read-window) pixels."""
        ry0, _, rx0, _ = self.read
        wy0, wy1, wx0, wx1 = self.write
        return slice(wy0 - ry0, wy1 - ry0), slice(wx0 - rx0, wx1 - rx0)


def make_tiles(shape: tuple[int, int], tile: int = 512, margin: int = 64) -> list[Tile]:
    """Cuts an image of ``shape = (H, W)`` into tiles (row-major order).

    Args:
        shape: image size ``(H, W)``.
        tile: side of the read window (a multiple of 32 for the FPN).
        margin: context on each side; the write step is ``tile - 2 * margin``.

    Returns:
        Tiles whose write regions partition ``[0, H) x [0, W)``.

    Raises:
        ValueError: ``tile - 2 * margin < 1`` or an empty shape.
    """
    h, w = shape
    step = tile - 2 * margin
    if step < 1:
        raise ValueError(f"tile {tile} leaves no write region with margin {margin}")
    if h < 1 or w < 1:
        raise ValueError(f"empty image shape {shape}")
    tiles = []
    for y in range(0, h, step):
        for x in range(0, w, step):
            write = (y, min(y + step, h), x, min(x + step, w))
            tiles.append(
                Tile((y - margin, y - margin + tile, x - margin, x - margin + tile), write)
            )
    return tiles


def read_window(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Reads ``image[y0:y1, x0:x1]``, reflecting at the image borders where the box exceeds it.

    Works for boxes larger than the image (the reflection repeats, ``numpy.pad`` mode
    ``symmetric``). Shapes: ``(H, W, ...)`` -> ``(y1 - y0, x1 - x0, ...)``.
    """
    y0, y1, x0, x1 = box
    h, w = image.shape[:2]
    cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    crop = image[cy0:cy1, cx0:cx1]
    pad = [(cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1)] + [(0, 0)] * (image.ndim - 2)
    if any(p for pair in pad for p in pair):
        crop = np.pad(crop, pad, mode="symmetric")
    return crop
