"""Pictures a person looks at: label overlays and segmentation panels."""

from __future__ import annotations

import numpy as np
from skimage.draw import disk

from pseudoedgenet.labels.voronoi import NEGATIVE, POSITIVE


def draw_labels(image: np.ndarray, labels: np.ndarray, point_radius: int = 2) -> np.ndarray:
    """Overlays a Voronoi label map on an image.

    Voronoi boundaries (negatives) are drawn in yellow, point pixels (positives) as green
    dots of ``point_radius`` pixels.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        labels: ``(H, W)`` uint8, 1 = positive, 0 = negative, 255 = ignore.
        point_radius: dot radius in pixels (0 = the single labelled pixel).

    Returns:
        ``(H, W, 3)`` uint8 RGB picture.
    """
    out = image.copy()
    out[labels == NEGATIVE] = (255, 230, 0)
    for r, c in zip(*np.nonzero(labels == POSITIVE), strict=True):
        rr, cc = disk((r, c), point_radius + 0.5, shape=labels.shape)
        out[rr, cc] = (0, 220, 60)
    return out


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (0, 255, 0),
    alpha: float = 0.4,
) -> np.ndarray:
    """Blends a binary mask over an image. Shapes: ``(H, W, 3)`` uint8, ``(H, W)`` bool."""
    out = image.astype(np.float32)
    m = mask.astype(bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(color, dtype=np.float32)
    return out.round().astype(np.uint8)
