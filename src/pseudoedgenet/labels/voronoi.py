"""Point-supervision targets: positives on points, negatives on Voronoi boundaries.

Section 3.1 of the paper (after Laradji et al., ECCV 2018): the pixel of each point is
positive, the pixels on the boundaries of the Voronoi diagram of the points are negative,
every other pixel is ignored.

Label map convention: ``uint8``, 1 = positive (point), 0 = negative (Voronoi boundary),
255 = ignore. Point convention: ``(x, y)`` pixels, ``x`` = column, ``y`` = row.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

POSITIVE = 1
NEGATIVE = 0
IGNORE = 255


def _point_pixels(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.rint(pts[:, 1]).astype(np.int64), np.rint(pts[:, 0]).astype(np.int64)


def _closer_to_bisector(
    rows: np.ndarray, cols: np.ndarray, near_r: np.ndarray, near_c: np.ndarray, axis: int
) -> tuple[np.ndarray, np.ndarray]:
    """For 4-adjacent pixel pairs along ``axis`` in different cells, flags the pixel of
    each pair that lies closer to the perpendicular bisector of the two cells' points.

    Returns boolean masks (first, second) over the pairs' first and second pixels.
    """
    a = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
    b = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
    differ = (near_r[a] != near_r[b]) | (near_c[a] != near_c[b])
    # f(p) = |p - point_a|^2 - |p - point_b|^2 is 0 on the bisector of point_a, point_b
    fa = (
        (rows[a] - near_r[a]) ** 2
        + (cols[a] - near_c[a]) ** 2
        - (rows[a] - near_r[b]) ** 2
        - (cols[a] - near_c[b]) ** 2
    )
    fb = (
        (rows[b] - near_r[a]) ** 2
        + (cols[b] - near_c[a]) ** 2
        - (rows[b] - near_r[b]) ** 2
        - (cols[b] - near_c[b]) ** 2
    )
    first = differ & (np.abs(fa) <= np.abs(fb))
    return first, differ & ~first


def voronoi_cells(points: np.ndarray, shape: tuple[int, int], margin: int = 0) -> np.ndarray:
    """Partitions the image into the Voronoi cells of the points, with 1-pixel boundaries.

    Every pixel belongs to the cell of its nearest point pixel (Euclidean distance
    transform with indices, ``scipy.ndimage.distance_transform_edt``). Between two
    4-adjacent pixels of different cells, the one closer to the perpendicular bisector of
    the two points is a boundary pixel (the first of the pair on a tie), so the boundary
    is one pixel thick, lies within half a pixel of the true bisector and separates the
    cells: no two pixels of different cells are 4-adjacent, unless both are point
    pixels (a point pixel is never a boundary pixel).

    Points outside the image (e.g. around a training crop) shape the diagram too when
    they lie within ``margin`` pixels of it; points farther out are dropped.

    Args:
        points: ``(N, 2)`` ``(x, y)`` pixel coordinates; may lie outside the image.
        shape: ``(H, W)`` of the image.
        margin: how far outside the image points are still taken into account.

    Returns:
        ``(H, W)`` int32: cell id ``i + 1`` for the point in row ``i`` of ``points``,
        0 on boundaries. Points that share a pixel share the later point's id. With no
        point in range the result is all ``-1`` (no cells).

    Shape:
        points: (N, 2) float; returns (H, W) int32.
    """
    h, w = shape
    rows, cols = _point_pixels(points)
    rows, cols = rows + margin, cols + margin
    hh, ww = h + 2 * margin, w + 2 * margin
    keep = (rows >= 0) & (rows < hh) & (cols >= 0) & (cols < ww)
    if not keep.any():
        return np.full((h, w), -1, dtype=np.int32)
    markers = np.zeros((hh, ww), dtype=np.int32)
    markers[rows[keep], cols[keep]] = np.flatnonzero(keep) + 1
    _, (near_r, near_c) = ndimage.distance_transform_edt(markers == 0, return_indices=True)
    cells = markers[near_r, near_c]
    grid_r, grid_c = np.indices((hh, ww))
    boundary = np.zeros((hh, ww), dtype=bool)
    for axis in (0, 1):
        first, second = _closer_to_bisector(grid_r, grid_c, near_r, near_c, axis)
        if axis == 0:
            boundary[:-1, :] |= first
            boundary[1:, :] |= second
        else:
            boundary[:, :-1] |= first
            boundary[:, 1:] |= second
    cells[boundary & (markers == 0)] = 0  # a point pixel stays in its own cell
    return np.ascontiguousarray(cells[margin : margin + h, margin : margin + w], dtype=np.int32)


def voronoi_labels(points: np.ndarray, shape: tuple[int, int], margin: int = 0) -> np.ndarray:
    """Builds the point-supervision label map.

    Args:
        points: ``(N, 2)`` ``(x, y)`` pixel coordinates of the nuclei; points outside the
            image within ``margin`` pixels shape the boundaries but label nothing.
        shape: ``(H, W)`` of the image.
        margin: see :func:`voronoi_cells`.

    Returns:
        ``(H, W)`` uint8 label map: 1 on point pixels, 0 on Voronoi boundaries, 255 on
        all other pixels. With fewer than two points there is no boundary.

    Shape:
        points: (N, 2) float; returns (H, W) uint8 in {0, 1, 255}.
    """
    h, w = shape
    labels = np.full((h, w), IGNORE, dtype=np.uint8)
    cells = voronoi_cells(points, shape, margin)
    labels[cells == 0] = NEGATIVE
    rows, cols = _point_pixels(points)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    labels[rows[inside], cols[inside]] = POSITIVE
    return labels
