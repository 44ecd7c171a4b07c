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
from skimage.segmentation import watershed

POSITIVE = 1
NEGATIVE = 0
IGNORE = 255


def _point_pixels(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.rint(pts[:, 1]).astype(np.int64), np.rint(pts[:, 0]).astype(np.int64)


def voronoi_cells(points: np.ndarray, shape: tuple[int, int], margin: int = 0) -> np.ndarray:
    """Partitions the image into the Voronoi cells of the points, with 1-pixel boundaries.

    The cells are the watershed of the Euclidean distance to the nearest point, flooded
    from the point pixels (``skimage.segmentation.watershed`` with
    ``watershed_line=True``): a pixel belongs to the cell of its nearest point and the
    one-pixel-wide watershed line separating the cells is the Voronoi boundary.

    Points outside the image (e.g. around a training crop) shape the diagram too when
    they lie within ``margin`` pixels of it; points farther out are dropped.

    Args:
        points: ``(N, 2)`` ``(x, y)`` pixel coordinates; may lie outside the image.
        shape: ``(H, W)`` of the image.
        margin: how far outside the image points are still taken into account.

    Returns:
        ``(H, W)`` int32: cell id ``i + 1`` for the point in row ``i`` of ``points``,
        0 on boundaries. Points that share a pixel share the later point's id; with no
        point in range, all pixels get id 0... except that then there are no cells, and
        the result is all ``-1``.

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
    distance = ndimage.distance_transform_edt(markers == 0)
    cells = watershed(distance, markers, watershed_line=True)
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
