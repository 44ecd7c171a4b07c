"""Pictures a person looks at: label overlays and segmentation panels."""

from __future__ import annotations

from typing import Any

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


def draw_geojson(
    image: np.ndarray,
    features: list[dict],
    origin: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    colors: dict[str, tuple[int, int, int]] | None = None,
    point_radius: float = 3.0,
) -> np.ndarray:
    """Draws GeoJSON features in QuPath's coordinates over an image.

    ``Polygon``/``MultiPolygon`` rings are drawn as 2-px lines (exterior yellow, holes
    blue), ``Point``/``MultiPoint`` as filled green dots. A feature coordinate ``(x, y)``
    (QuPath convention: integer values at pixel corners, so a pixel centre is at ``+0.5``)
    lands at picture position ``((x - origin_x) * scale, (y - origin_y) * scale)``; the
    picture is the image resized by ``scale`` (nearest neighbour), so one-pixel outlines stay
    visible at ``scale`` 2.

    Args:
        image: ``(H, W, 3)`` uint8 RGB showing the area that starts at ``origin``.
        features: GeoJSON ``Feature`` dicts.
        origin: coordinate of the image's top-left corner.
        scale: picture pixels per image pixel.
        colors: override ``{"exterior", "hole", "point"}`` colours.
        point_radius: dot radius in picture pixels.

    Returns:
        ``(round(H * scale), round(W * scale), 3)`` uint8 RGB picture.
    """
    from PIL import Image, ImageDraw

    col = {"exterior": (255, 230, 0), "hole": (0, 200, 255), "point": (0, 220, 60)}
    col.update(colors or {})
    pic = Image.fromarray(image)
    if scale != 1.0:
        size = (round(pic.width * scale), round(pic.height * scale))
        pic = pic.resize(size, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(pic)
    ox, oy = origin

    def to_pic(xy: list[float]) -> tuple[float, float]:
        return ((xy[0] - ox) * scale, (xy[1] - oy) * scale)

    for f in features:
        geom = f.get("geometry") or {}
        kind, coords = geom.get("type"), geom.get("coordinates") or []
        polygons: list[Any] = (
            [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
        )
        for poly in polygons:
            for k, ring in enumerate(poly):
                fill = col["exterior"] if k == 0 else col["hole"]
                draw.line([to_pic(p) for p in ring], fill=fill, width=2)
        points: list[Any] = [coords] if kind == "Point" else coords if kind == "MultiPoint" else []
        for p in points:
            x, y = to_pic(p)
            r = point_radius
            draw.ellipse((x - r, y - r, x + r, y + r), fill=col["point"])
    return np.asarray(pic)
