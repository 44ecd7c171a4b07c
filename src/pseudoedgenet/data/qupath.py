"""Reader for images and slides annotated in QuPath: points per nucleus, regions drawn
around the areas where every nucleus was clicked (``pseudoedgenet prepare qupath``).

Layout::

    SRC/<stem>.<png|jpg|tif|svs|...>   an image or slide (anything ``predict`` reads)
    SRC/<stem>.geojson                 QuPath: File > Export objects as GeoJSON

(``<stem>`` of ``img.ome.tif`` is ``img``: the GeoJSON of an OME-TIFF is ``img.geojson``.)

A GeoJSON file is a FeatureCollection, a list of Features or a single Feature. ``Point`` and
``MultiPoint`` geometries are nucleus clicks; ``Polygon`` and ``MultiPolygon`` geometries
(rectangles, ellipses, polygons, brush strokes) are *regions*. Only QuPath annotations are
read (``properties.objectType`` ``"annotation"`` or absent); detections and other
geometry types are refused. ``region_class`` / ``point_class`` keep only the features whose
``properties.classification.name`` matches.

Each region becomes one training image ``<stem>_r<k>`` (``k`` = 0, 1, ... counts the regions
used, in file order): the pixels of the level read inside the region's bounding box, its
points, and its roi (the pixels whose centre lies inside the region; holes excluded).
An image without any region is used whole (named ``<stem>``, no roi) when it is at most
:data:`WHOLE_IMAGE_MAX_SIDE` pixels on each side at the level read.

Coordinates. QuPath puts integer coordinates at pixel *corners* of level 0; the package
puts them at pixel *centres* (see :mod:`pseudoedgenet.data.io`). At a level with downsample
``(sx, sy)``, a QuPath point ``(xq, yq)`` lies in level pixel ``(floor(xq / sx),
floor(yq / sy))``, and in an image whose top-left level pixel is ``(x0, y0)`` it becomes
``(xq / sx - 0.5 - x0, yq / sy - 0.5 - y0)``; a point within :data:`EDGE_NUDGE` of its
pixel's left/top edge is moved to that distance inside, so that ``round()`` gives the pixel
that contains the point (a point exactly on a corner, e.g. ``xq = 255.0``, labels pixel
255, not 254). Back to QuPath: ``xq = offset_x + (x + 0.5) * sx`` with ``offset`` (stored
per image in ``dataset.json``) the level-0 QuPath coordinates of the image's top-left corner.

Rasterising a region: level pixel ``(r, c)`` is inside when its centre, QuPath
``((c + 0.5) * sx, (r + 0.5) * sy)``, is inside the polygon by the even-odd rule; a centre
exactly on an edge belongs to the region on its right (vertical edge) or below it
(horizontal edge), so regions that share an edge never share a pixel. A point belongs to
the region whose roi contains its pixel.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pseudoedgenet.data.sample import Sample
from pseudoedgenet.data.slide import SUPPORTED_SUFFIXES, Box, image_stem, open_slide
from pseudoedgenet.errors import DataError

#: An image without a region annotation is used whole only up to this side (level read).
WHOLE_IMAGE_MAX_SIDE = 4096
#: Least distance (pixels of the level read) of a point from its pixel's left/top edge.
EDGE_NUDGE = 1.0 / 256.0
GEOJSON_SUFFIX = ".geojson"

POINT_TYPES = ("Point", "MultiPoint")
REGION_TYPES = ("Polygon", "MultiPolygon")

_DRAW_REGIONS = (
    "draw a rectangle/polygon annotation around each area where you clicked every nucleus"
)


# ---------------------------------------------------------------------------- GeoJSON


@dataclass(frozen=True)
class QuPathFeature:
    """One annotation of a QuPath GeoJSON export.

    Attributes:
        index: position in the file (0-based).
        id: the feature's ``id`` (a UUID in QuPath exports), or ``None``.
        name: ``properties.name``, or ``None``.
        classification: ``properties.classification.name``, or ``None``.
        kind: ``"point"`` or ``"region"``.
        points: ``(N, 2)`` float64 level-0 QuPath ``(x, y)`` (points; empty for regions).
        polygons: for regions, the polygons, each a list of rings (exterior first, then
            holes), each ring ``(M, 2)`` float64 level-0 QuPath ``(x, y)``.
    """

    index: int
    id: str | None
    name: str | None
    classification: str | None
    kind: str
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    polygons: list[list[np.ndarray]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``feature <index>`` with the id when there is one, for messages."""
        return f"feature {self.index}" + (f" (id {self.id})" if self.id else "")


def _label(index: int, feat: Any) -> str:
    fid = feat.get("id") if isinstance(feat, dict) else None
    return f"feature {index}" + (f" (id {fid})" if fid else "")


def _coords(path: Path, where: str, value: Any, depth: int) -> np.ndarray | list[Any]:
    """Nested coordinate lists -> arrays of ``(x, y)`` rows (depth 1 = one position)."""
    try:
        if depth == 1:
            arr = np.asarray([value[0], value[1]], dtype=np.float64)
        elif depth == 2:
            arr = np.asarray([[c[0], c[1]] for c in value], dtype=np.float64).reshape(-1, 2)
        else:
            if not isinstance(value, list):
                raise TypeError
            return [_coords(path, where, v, depth - 1) for v in value]
    except (TypeError, ValueError, IndexError, KeyError):
        raise DataError(path, f"{where}: coordinates must be [x, y] numbers") from None
    if not np.all(np.isfinite(arr)):
        raise DataError(path, f"{where}: a coordinate is NaN or infinite")
    return arr


def _classification(props: dict[str, Any]) -> str | None:
    cls = props.get("classification")
    if isinstance(cls, dict):
        if cls.get("name") is not None:
            return str(cls["name"])
        if isinstance(cls.get("names"), list):
            return ": ".join(map(str, cls["names"]))
        return None
    return None if cls is None else str(cls)


def read_qupath_geojson(path: str | Path) -> list[QuPathFeature]:
    """Reads the annotations of a QuPath GeoJSON export.

    Args:
        path: ``.geojson`` file: a FeatureCollection, a list of Features or one Feature.

    Returns:
        The point and region features in file order, coordinates in level-0 QuPath pixels
        (integers at pixel corners).

    Raises:
        DataError: not JSON, not GeoJSON features, a feature that is not a QuPath
            annotation (e.g. a detection), a geometry type other than Point, MultiPoint,
            Polygon and MultiPolygon, bad coordinates, a polygon ring with fewer than
            three positions. Messages name the feature (index and id).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            path, f"not JSON ({_first_line(exc)}): export it from QuPath as GeoJSON"
        ) from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        items = data.get("features")
    elif isinstance(data, list):
        items = data
    elif isinstance(data, dict) and data.get("type") == "Feature":
        items = [data]
    else:
        raise DataError(
            path,
            "not GeoJSON features: expected a FeatureCollection, a list of Features or "
            "a Feature (QuPath: File > Export objects as GeoJSON)",
        )
    if not isinstance(items, list):
        raise DataError(path, "not GeoJSON: 'features' must be a list")
    features = []
    for i, feat in enumerate(items):
        where = _label(i, feat)
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise DataError(path, f"{where}: not a GeoJSON Feature")
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            raise DataError(path, f"{where}: 'properties' must be an object")
        obj = props.get("objectType")
        if obj not in (None, "annotation"):
            raise DataError(
                path,
                f"{where}: QuPath object type {obj!r}; only annotations are read (export "
                f"annotations only, or remove the {obj} objects from this file)",
            )
        geom = feat.get("geometry")
        gtype = geom.get("type") if isinstance(geom, dict) else None
        if gtype not in POINT_TYPES + REGION_TYPES:
            raise DataError(
                path,
                f"{where}: unsupported geometry type {gtype!r}: only Point/MultiPoint (nucleus "
                "clicks) and Polygon/MultiPolygon (regions) are read; delete it or convert it",
            )
        assert isinstance(geom, dict)
        raw = geom.get("coordinates")
        fid, name = feat.get("id"), props.get("name")
        fid, name = (None if v is None else str(v) for v in (fid, name))
        cls = _classification(props)
        if gtype in POINT_TYPES:
            pts = _coords(path, where, raw, 1 if gtype == "Point" else 2)
            assert isinstance(pts, np.ndarray)
            features.append(QuPathFeature(i, fid, name, cls, "point", points=pts.reshape(-1, 2)))
            continue
        polys = _coords(path, where, raw, 3 if gtype == "Polygon" else 4)
        polygons: list[list[np.ndarray]] = [polys] if gtype == "Polygon" else polys  # type: ignore[list-item,assignment]
        for poly in polygons:
            if not poly or any(len(ring) < 3 for ring in poly):
                raise DataError(path, f"{where}: a polygon ring has fewer than 3 positions")
        features.append(QuPathFeature(i, fid, name, cls, "region", polygons=polygons))
    return features


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ----------------------------------------------------------------------- geometry (pure)


def qupath_to_pixels(
    points: np.ndarray, downsample: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Maps level-0 QuPath points to pixels and package coordinates of a level.

    Args:
        points: ``(N, 2)`` float level-0 QuPath ``(x, y)`` (integers at pixel corners).
        downsample: ``(sx, sy)`` level-0 pixels per pixel of the level.

    Returns:
        ``(pixels, xy)``: ``pixels`` ``(N, 2)`` int64 ``(col, row)`` of the level pixel that
        contains each point, ``(floor(x / sx), floor(y / sy))``; ``xy`` ``(N, 2)`` float64
        package coordinates at the level (pixel centres at integers),
        ``x / sx - 0.5`` nudged at least :data:`EDGE_NUDGE` inside the pixel, so that
        ``round(xy) == pixels`` (also for points exactly on a pixel corner).

    Shape:
        points: (N, 2) float; returns (N, 2) int64 and (N, 2) float64.
    """
    u = np.asarray(points, dtype=np.float64).reshape(-1, 2) / np.asarray(downsample, np.float64)
    pix = np.floor(u)
    xy = pix - 0.5 + np.maximum(u - pix, EDGE_NUDGE)
    return pix.astype(np.int64), xy


def read_qupath_points(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The clicks of a QuPath GeoJSON export of one image, in the package's convention.

    For the ``folder`` reader (``points/<name>.geojson`` beside ``images/<name>.png``):
    every ``Point``/``MultiPoint`` annotation is a click on the image at level 0. QuPath's
    coordinates (integers at pixel corners) become the package's (pixel centres at
    integers) by :func:`qupath_to_pixels`, so a click anywhere inside a pixel, also at
    x = 255.7 on a 256-px image, labels that pixel.

    Args:
        path: the ``.geojson``/``.json`` export.
        shape: ``(H, W)`` of the image, to check that every click lies on it, or ``None``.

    Returns:
        ``(N, 2)`` float64 ``(x, y)`` in the package's convention.

    Raises:
        DataError: anything :func:`read_qupath_geojson` refuses, a region (regions need
            ``prepare qupath``), no click, or a click outside the image.
    """
    path = Path(path)
    feats = read_qupath_geojson(path)
    region = next((f for f in feats if f.kind == "region"), None)
    if region is not None:
        raise DataError(
            path,
            f"{region.label} is a region: a folder dataset takes clicks only; for regions "
            "use `pseudoedgenet prepare qupath`",
        )
    clicks = [f.points for f in feats if f.kind == "point" and len(f.points)]
    if not clicks:
        raise DataError(path, "no Point or MultiPoint annotation (empty point file)")
    pixels, xy = qupath_to_pixels(np.concatenate(clicks), (1.0, 1.0))
    if shape is not None:
        h, w = shape
        out = (pixels[:, 0] < 0) | (pixels[:, 0] >= w) | (pixels[:, 1] < 0) | (pixels[:, 1] >= h)
        if out.any():
            i = int(np.argmax(out))
            q = np.concatenate(clicks)[i]
            raise DataError(
                path, f"click {i} at (x={q[0]:g}, y={q[1]:g}) lies outside the {w}x{h} image"
            )
    return xy


def rasterise_polygon(
    rings: list[np.ndarray],
    box: Box,
    downsample: tuple[float, float],
) -> np.ndarray:
    """The level pixels of a box whose centres lie inside a polygon (even-odd rule).

    A scanline fill (one row of pixel centres at a time) in O(rows x edges); a centre exactly
    on an edge counts as inside when the polygon lies to its right (vertical edges) or below
    it (horizontal edges), so polygons that share an edge share no pixel.

    Args:
        rings: the polygon's rings (exterior, then holes), each ``(M, 2)`` level-0 QuPath
            ``(x, y)``; closed or not.
        box: ``(y0, y1, x0, x1)`` pixels of the level, half-open.
        downsample: ``(sx, sy)`` of the level.

    Returns:
        ``(y1 - y0, x1 - x0)`` bool, ``True`` where pixel ``(r, c)``'s centre, QuPath
        ``((x0 + c + 0.5) * sx, (y0 + r + 0.5) * sy)``, is inside.
    """
    y0, y1, x0, x1 = box
    h, w = y1 - y0, x1 - x0
    sx, sy = downsample
    counts = np.zeros((h, w + 1), np.int32)
    for ring in rings:
        v = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
        # package coordinates of the box: pixel (r, c) centred at (c, r)
        v = np.stack([v[:, 0] / sx - 0.5 - x0, v[:, 1] / sy - 0.5 - y0], axis=1)
        a, b = v, np.roll(v, -1, axis=0)
        up = a[:, 1] > b[:, 1]  # orient every edge downwards: same rounding either way
        a, b = np.where(up[:, None], b, a), np.where(up[:, None], a, b)
        r0 = np.clip(np.ceil(a[:, 1]), 0, h).astype(np.int64)
        r1 = np.clip(np.ceil(b[:, 1]), 0, h).astype(np.int64)
        n = np.maximum(r1 - r0, 0)  # rows r with a_y <= r < b_y (none for horizontal edges)
        if not n.any():
            continue
        edge = np.repeat(np.arange(len(n)), n)
        rows = np.repeat(r0, n) + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        ax, ay, bx, by = a[edge, 0], a[edge, 1], b[edge, 0], b[edge, 1]
        xs = ax + (rows - ay) * (bx - ax) / (by - ay)
        cols = np.clip(np.ceil(xs), 0, w).astype(np.int64)  # first centre at or right of it
        np.add.at(counts, (rows, cols), 1)
    return (np.cumsum(counts, axis=1)[:, :w] & 1).astype(bool)


def region_mask(feature: QuPathFeature, box: Box, downsample: tuple[float, float]) -> np.ndarray:
    """The roi of a region feature in a box of a level: union of its polygons.

    Returns:
        ``(y1 - y0, x1 - x0)`` bool, see :func:`rasterise_polygon`.
    """
    y0, y1, x0, x1 = box
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    for rings in feature.polygons:
        mask |= rasterise_polygon(rings, box, downsample)
    return mask


def region_box(feature: QuPathFeature, downsample: tuple[float, float]) -> Box:
    """The level pixels the region's bounding box touches, ``(y0, y1, x0, x1)`` half-open."""
    v = np.concatenate([ring for poly in feature.polygons for ring in poly])
    sx, sy = downsample
    (minx, miny), (maxx, maxy) = v.min(axis=0), v.max(axis=0)
    return (
        math.floor(miny / sy),
        max(math.ceil(maxy / sy), math.floor(miny / sy) + 1),
        math.floor(minx / sx),
        max(math.ceil(maxx / sx), math.floor(minx / sx) + 1),
    )


# ---------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class QuPathImage:
    """One training image planned from a QuPath export (pixels not read yet).

    Attributes:
        name: ``<stem>_r<k>`` or ``<stem>``.
        source: the image or slide file.
        box: ``(y0, y1, x0, x1)`` pixels of the level read.
        points: ``(N, 2)`` float64 ``(x, y)`` package coordinates of the image.
        roi_bits: the roi, ``numpy.packbits`` of the ``(H, W)`` bool mask, or ``None``.
        info: the record for ``dataset.json``.
    """

    name: str
    source: Path
    box: Box
    points: np.ndarray
    roi_bits: np.ndarray | None
    info: dict[str, Any]

    @property
    def roi(self) -> np.ndarray | None:
        """``(H, W)`` bool, ``True`` inside the region, or ``None`` (whole image)."""
        if self.roi_bits is None:
            return None
        y0, y1, x0, x1 = self.box
        n = (y1 - y0) * (x1 - x0)
        return np.unpackbits(self.roi_bits, count=n).astype(bool).reshape(y1 - y0, x1 - x0)


@dataclass(frozen=True)
class QuPathPlan:
    """Everything read from the annotations of a source folder; no pixels yet.

    Attributes:
        images: the planned training images, sources in sorted order.
        level: ``--level`` given, or ``None``.
        mpp: ``--mpp`` given, or ``None``.
        input_mpp: ``--input-mpp`` given (level-0 µm/px of files that record none), or
            ``None``.
        summary: counts for ``dataset.json``: ``points_total`` (points of the selected
            class), ``points_used``, ``points_outside_regions``, ``duplicates_dropped``,
            ``features_skipped_by_class``, ``files``.
    """

    images: list[QuPathImage]
    level: int | None
    mpp: float | None
    summary: dict[str, Any]
    input_mpp: float | None = None


def list_qupath_sources(src: str | Path) -> list[tuple[Path, Path]]:
    """Pairs every image/slide of a folder with its ``<stem>.geojson``.

    Returns:
        ``(image, geojson)`` pairs sorted by name.

    Raises:
        DataError: not a folder, no image, an image without a GeoJSON file (or the reverse),
            two images with the same stem.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(src, "not a folder (expected images/slides with <stem>.geojson beside)")
    images: dict[str, Path] = {}
    geojsons: dict[str, Path] = {}
    for p in sorted(src.iterdir()):
        if not p.is_file():
            continue
        suffix = p.suffix.lower()
        if suffix in SUPPORTED_SUFFIXES:
            name = image_stem(p)
            if name in images:
                raise DataError(p, f"two images share the name {name!r} ({images[name].name})")
            images[name] = p
        elif suffix == GEOJSON_SUFFIX:
            geojsons[p.stem] = p
    if not images:
        raise DataError(src, "no image or slide found (" + ", ".join(SUPPORTED_SUFFIXES) + ")")
    for stem, g in geojsons.items():
        if stem not in images:
            hint = ""
            # QuPath's default name: slide.tif.geojson (or slide.ome.tif.geojson)
            name = image_stem(stem)  # also slide.ome.geojson for slide.ome.tif
            if Path(stem).suffix.lower() in (*SUPPORTED_SUFFIXES, ".ome") and name in images:
                hint = f": name it {name}{GEOJSON_SUFFIX} (the image's name without its suffix)"
            raise DataError(
                g, f"GeoJSON without an image or slide of the same name beside it{hint}"
            )
    for stem, img in images.items():
        if stem not in geojsons:
            raise DataError(
                img,
                f"no {stem}{GEOJSON_SUFFIX} beside it: export its annotations from QuPath "
                "(File > Export objects as GeoJSON) or move the file out of the folder",
            )
    return [(images[s], geojsons[s]) for s in sorted(images)]


def _select(
    path: Path, features: list[QuPathFeature], kind: str, wanted: str | None
) -> tuple[list[QuPathFeature], int]:
    """The features of one kind with the wanted class, and how many were skipped."""
    of_kind = [f for f in features if f.kind == kind]
    if wanted is None:
        return of_kind, 0
    kept = [f for f in of_kind if f.classification == wanted]
    if of_kind and not kept:
        found = sorted({f.classification for f in of_kind if f.classification is not None})
        what = "region" if kind == "region" else "point"
        unclassified = any(f.classification is None for f in of_kind)
        here = ", ".join(found + (["unclassified"] if unclassified else []))
        fix = f"omit --{what}-class to use them all" if not found else f"check --{what}-class"
        raise DataError(
            path, f"no {what} annotation of class {wanted!r} (classes here: {here}); {fix}"
        )
    return kept, len(of_kind) - len(kept)


def _drop_duplicates(pixels: np.ndarray) -> np.ndarray:
    """Indices of the first point per pixel, in input order."""
    if not len(pixels):
        return np.zeros(0, np.int64)
    _, first = np.unique(pixels, axis=0, return_index=True)
    return np.sort(first)


@dataclass(frozen=True)
class _Level:
    """The level read: index, (H, W), level-0 (H0, W0), downsample (sx, sy)."""

    level: int
    shape: tuple[int, int]
    level0_shape: tuple[int, int]
    downsample: tuple[float, float]


def _region_rois(
    regions: list[QuPathFeature], geojson: Path, image_name: str, lv: _Level
) -> list[tuple[QuPathFeature, Box, np.ndarray]]:
    """Each region's box on the level and its roi; refuses regions outside the image."""
    (h, w), (h0, w0) = lv.shape, lv.level0_shape
    planned = []
    for f in regions:
        v = np.concatenate([ring for poly in f.polygons for ring in poly])
        (minx, miny), (maxx, maxy) = v.min(axis=0), v.max(axis=0)
        if minx < 0 or miny < 0 or maxx > w0 or maxy > h0:
            raise DataError(
                geojson,
                f"region {f.label} (x {minx:g}..{maxx:g}, y {miny:g}..{maxy:g}) lies (partly) "
                f"outside the {w0}x{h0} image {image_name}: redraw it inside",
            )
        y0, y1, x0, x1 = region_box(f, lv.downsample)
        box = (max(y0, 0), min(y1, h), max(x0, 0), min(x1, w))
        roi = region_mask(f, box, lv.downsample)
        if not roi.any():
            raise DataError(
                geojson, f"region {f.label} covers no pixel centre at level {lv.level}: too small"
            )
        planned.append((f, box, roi))
    return planned


def _check_overlaps(
    planned: list[tuple[QuPathFeature, Box, np.ndarray]], geojson: Path, level: int
) -> None:
    """Refuses two regions whose rois share a pixel (boxes first, then masks)."""
    for i, (fa, ba, ra) in enumerate(planned):
        for fb, bb, rb in planned[i + 1 :]:
            y0, y1 = max(ba[0], bb[0]), min(ba[1], bb[1])
            x0, x1 = max(ba[2], bb[2]), min(ba[3], bb[3])
            if y0 >= y1 or x0 >= x1:
                continue
            a = ra[y0 - ba[0] : y1 - ba[0], x0 - ba[2] : x1 - ba[2]]
            b = rb[y0 - bb[0] : y1 - bb[0], x0 - bb[2] : x1 - bb[2]]
            shared = int((a & b).sum())
            if shared:
                raise DataError(
                    geojson,
                    f"regions {fa.label} and {fb.label} overlap ({shared} shared pixels at "
                    f"level {level}): make the regions disjoint",
                )


def _plan_file(
    image_path: Path,
    geojson: Path,
    level: int | None,
    mpp: float | None,
    input_mpp: float | None,
    region_class: str | None,
    point_class: str | None,
    counts: dict[str, int],
) -> list[QuPathImage]:
    features = read_qupath_geojson(geojson)
    regions, skipped_r = _select(geojson, features, "region", region_class)
    point_feats, skipped_p = _select(geojson, features, "point", point_class)
    counts["features_skipped_by_class"] += skipped_r + skipped_p
    with open_slide(image_path, level, mpp, declared_mpp=input_mpp) as slide:
        (h, w), (h0, w0) = slide.shape, slide.level0_shape
        lvl, ds, slide_mpp = slide.level, slide.downsample, slide.mpp
        declared = slide.declared_mpp
    slide_info = _Level(lvl, (h, w), (h0, w0), ds)
    sx, sy = ds
    qpts = np.concatenate([f.points for f in point_feats]) if point_feats else np.zeros((0, 2))
    owner = np.concatenate(
        [np.full(len(f.points), k, np.int64) for k, f in enumerate(point_feats)]
        if point_feats
        else [np.zeros(0, np.int64)]
    )
    pixels, xy = qupath_to_pixels(qpts, ds)
    outside = (pixels[:, 0] < 0) | (pixels[:, 0] >= w) | (pixels[:, 1] < 0) | (pixels[:, 1] >= h)
    if outside.any():
        i = int(np.argmax(outside))
        raise DataError(
            geojson,
            f"{point_feats[owner[i]].label}: point (x={qpts[i, 0]:g}, y={qpts[i, 1]:g}) lies "
            f"outside the {w0}x{h0} image {image_path.name}: is this its GeoJSON?",
        )
    counts["points_total"] += len(qpts)
    base = {
        "source": str(image_path),
        "geojson": str(geojson),
        "level": lvl,
        "mpp": None if slide_mpp is None else [float(slide_mpp[0]), float(slide_mpp[1])],
        "mpp_declared": declared is not None,
        "downsample": [float(sx), float(sy)],
    }
    stem = image_stem(image_path)
    if not regions:
        if not len(qpts):
            raise DataError(
                geojson, "no point annotation (Point/MultiPoint): click one point per nucleus"
            )
        if h > WHOLE_IMAGE_MAX_SIDE or w > WHOLE_IMAGE_MAX_SIDE:
            raise DataError(
                geojson,
                f"points but no region on a {w}x{h} image (level {lvl}; whole images are used "
                f"up to {WHOLE_IMAGE_MAX_SIDE}x{WHOLE_IMAGE_MAX_SIDE} only): {_DRAW_REGIONS}",
            )
        keep = _drop_duplicates(pixels)
        counts["duplicates_dropped"] += len(qpts) - len(keep)
        info = {
            **base,
            "region": None,
            "feature": None,
            "id": None,
            "name": None,
            "class": None,
            "offset": [0.0, 0.0],
            "size": [w, h],
            "points": len(keep),
            "duplicates_dropped": len(qpts) - len(keep),
        }
        return [QuPathImage(stem, image_path, (0, h, 0, w), xy[keep], None, info)]

    planned = _region_rois(regions, geojson, image_path.name, slide_info)
    _check_overlaps(planned, geojson, lvl)
    used = np.zeros(len(qpts), bool)
    images = []
    for k, (f, box, roi) in enumerate(planned):
        y0, y1, x0, x1 = box
        c, r = pixels[:, 0] - x0, pixels[:, 1] - y0
        inbox = (c >= 0) & (c < x1 - x0) & (r >= 0) & (r < y1 - y0)
        member = np.zeros(len(qpts), bool)
        member[inbox] = roi[r[inbox], c[inbox]]
        idx = np.flatnonzero(member)
        if not len(idx):
            raise DataError(
                geojson,
                f"region {f.label} contains no point: click every nucleus inside it, or "
                "delete the region",
            )
        used |= member
        keep = idx[_drop_duplicates(pixels[idx])]
        counts["duplicates_dropped"] += len(idx) - len(keep)
        info = {
            **base,
            "region": k,
            "feature": f.index,
            "id": f.id,
            "name": f.name,
            "class": f.classification,
            "offset": [float(x0 * sx), float(y0 * sy)],
            "size": [x1 - x0, y1 - y0],
            "points": len(keep),
            "duplicates_dropped": len(idx) - len(keep),
        }
        pts = xy[keep] - np.array([x0, y0], dtype=np.float64)
        images.append(
            QuPathImage(f"{stem}_r{k}", image_path, box, pts, np.packbits(roi, axis=None), info)
        )
    counts["points_outside_regions"] += int((~used).sum())
    return images


def plan_qupath(
    src: str | Path,
    *,
    level: int | None = None,
    mpp: float | None = None,
    input_mpp: float | None = None,
    region_class: str | None = None,
    point_class: str | None = None,
) -> QuPathPlan:
    """Reads and checks every annotation of a folder before any pixel is read.

    Args:
        src: folder of images/slides, each with ``<stem>.geojson`` beside it.
        level: pyramid level to read, or ``None``.
        mpp: target microns per pixel (the nearest level), or ``None``; with neither,
            level 0.
        input_mpp: level-0 microns per pixel of files that record none (PNG/JPEG, TIFFs
            without resolution tags), or ``None``; a file recording one more than 20 % away
            is refused (:func:`~pseudoedgenet.data.slide.declare_mpp`).
        region_class: keep only regions of this QuPath class (``None``: all).
        point_class: keep only points of this QuPath class (``None``: all).

    Returns:
        The plan: one :class:`QuPathImage` per region (or per small image without
        regions), points in the package convention of each image, and the counts.

    Raises:
        DataError: see the module docstring and :func:`read_qupath_geojson`; also an
            unreadable slide, a level that does not exist, ``mpp`` without pixel-size
            metadata, an ``input_mpp`` a file's own pixel size contradicts, points outside
            the slide, regions (partly) outside it, overlapping regions, a region without
            points, points but no region on a large image.
    """
    counts = dict.fromkeys(
        (
            "points_total",
            "points_used",
            "points_outside_regions",
            "duplicates_dropped",
            "features_skipped_by_class",
        ),
        0,
    )
    pairs = list_qupath_sources(src)
    images: list[QuPathImage] = []
    for image_path, geojson in pairs:
        images += _plan_file(
            image_path, geojson, level, mpp, input_mpp, region_class, point_class, counts
        )
    counts["points_used"] = sum(len(im.points) for im in images)
    summary: dict[str, Any] = {**counts, "files": len(pairs)}
    return QuPathPlan(images, level, mpp, summary, input_mpp)


def read_qupath(plan: QuPathPlan) -> Iterator[Sample]:
    """Reads the pixels of a plan's images, one slide open at a time.

    Yields:
        :class:`Sample` per planned image: ``image`` ``(H, W, 3)`` uint8 of the level
        read, ``points`` ``(N, 2)`` float64 ``(x, y)`` package coordinates, ``roi``
        ``(H, W)`` bool or ``None``, ``group`` = the source's stem, ``info`` the record.
    """
    by_source: dict[Path, list[QuPathImage]] = {}
    for im in plan.images:
        by_source.setdefault(im.source, []).append(im)
    for source, ims in by_source.items():
        with open_slide(source, plan.level, plan.mpp, declared_mpp=plan.input_mpp) as slide:
            for im in ims:
                yield Sample(
                    im.name,
                    slide.read(im.box),
                    None,
                    im.points,
                    image_stem(source),
                    source,
                    im.roi,
                    im.info,
                )


def prepare_qupath(
    src: str | Path,
    out: str | Path,
    *,
    level: int | None = None,
    mpp: float | None = None,
    input_mpp: float | None = None,
    region_class: str | None = None,
    point_class: str | None = None,
    k: int | None = None,
    seed: int = 0,
    split_by: str = "image",
    force: bool = False,
) -> dict[str, Any]:
    """Plans, reads and writes a QuPath-annotated folder as a prepared dataset.

    All annotations are read and checked (:func:`plan_qupath`) before any pixel is read;
    the dataset is then written atomically by
    :func:`~pseudoedgenet.data.prepared.prepare_dataset` (``images/``, ``points/``,
    ``roi/``, ``folds.json``, ``dataset.json``; no ``instances/``).

    Args:
        src: folder of images/slides with ``<stem>.geojson`` beside each.
        out: prepared dataset folder to create.
        level, mpp, input_mpp, region_class, point_class: see :func:`plan_qupath`.
        k: number of folds, or ``None`` (see
            :func:`~pseudoedgenet.data.prepared.prepare_dataset`).
        seed: fold seed.
        split_by: ``image`` or ``group`` (group = source file: the regions of one slide
            stay in one fold).
        force: replace an existing ``out``.

    Returns:
        The ``dataset.json`` content; its ``qupath`` entry holds the counts
        (``points_total``, ``points_used``, ``points_outside_regions``,
        ``duplicates_dropped``, ``features_skipped_by_class``, ``files``) and ``images``
        a record per image (source, region index, QuPath id/name/class, level, mpp,
        downsample, offset = level-0 QuPath ``(x, y)`` of the top-left corner, size).
    """
    from pseudoedgenet.data.prepared import check_output_dir, prepare_dataset

    check_output_dir(out, force)
    plan = plan_qupath(
        src,
        level=level,
        mpp=mpp,
        input_mpp=input_mpp,
        region_class=region_class,
        point_class=point_class,
    )
    return prepare_dataset(
        read_qupath(plan),
        out,
        k=k,
        seed=seed,
        split_by=split_by,
        force=force,
        total=len(plan.images),
        source={
            "reader": "qupath",
            "path": str(src),
            "level": level,
            "mpp": mpp,
            "input_mpp": input_mpp,
            "region_class": region_class,
            "point_class": point_class,
        },
        extra={
            "qupath": {
                **plan.summary,
                "to_qupath": "x_qupath = offset_x + (x + 0.5) * downsample_x, "
                "y_qupath = offset_y + (y + 0.5) * downsample_y",
            }
        },
    )
