"""Tiling geometry (pure): read regions with context, write regions each tile owns.

The image plane is cut into a grid of write regions of side ``tile - 2 * margin``; they
are disjoint and cover every pixel exactly once. Each tile reads its write region plus
``margin`` pixels of context on every side (a fixed ``tile x tile`` window, which may
extend past the image border: those pixels are filled by reflection), and only its write
region is stitched into the output. With ``margin`` at least the receptive field that
matters, tiled prediction equals whole-image prediction.

Coordinates are ``(row, col)`` half-open boxes ``(y0, y1, x0, x1)`` in image pixels. The
reflecting read of a tile's window is :func:`pseudoedgenet.data.slide.read_window` (arrays)
or :meth:`pseudoedgenet.data.slide.Slide.window` (slides); :func:`tiles_with_tissue` keeps
the tiles that touch tissue (:func:`pseudoedgenet.data.slide.tissue_mask`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def tiles_with_tissue(
    tiles: Sequence[Tile], tissue: np.ndarray, shape: tuple[int, int]
) -> list[Tile]:
    """The tiles whose write region overlaps tissue.

    Args:
        tiles: tiles of an image of ``shape = (H, W)`` (level pixels).
        tissue: ``(h, w)`` bool mask covering the same extent at low resolution.
        shape: ``(H, W)`` of the level the tiles cut.

    Returns:
        The tiles (same order) whose write region maps onto at least one tissue pixel.
    """
    th, tw = tissue.shape
    h, w = shape
    # summed-area table: O(1) "any tissue in box" per tile
    sat = np.zeros((th + 1, tw + 1), np.int64)
    sat[1:, 1:] = np.cumsum(np.cumsum(tissue, axis=0), axis=1)
    kept = []
    for t in tiles:
        y0, y1, x0, x1 = t.write
        ty0, ty1 = int(y0 * th / h), min(th, max(int(y0 * th / h) + 1, math.ceil(y1 * th / h)))
        tx0, tx1 = int(x0 * tw / w), min(tw, max(int(x0 * tw / w) + 1, math.ceil(x1 * tw / w)))
        if sat[ty1, tx1] - sat[ty0, tx1] - sat[ty1, tx0] + sat[ty0, tx0] > 0:
            kept.append(t)
    return kept
