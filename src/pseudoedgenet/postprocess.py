"""Probability map -> instance labels, per-nucleus measurements and polygons.

Everything works block by block on 2-D arrays that may be far larger than memory: numpy
arrays, ``numpy.memmap`` or chunked on-disk stores such as zarr arrays (anything with
``shape`` and 2-D slice ``__getitem__``/``__setitem__``, :class:`Array2D`).

- :func:`connected_components` labels a binary mask exactly as a whole-image labelling
  would (:func:`skimage.measure.label`, same ids): each block is labelled on its own, the
  labels that touch across block seams are merged with a union-find (connected components
  of the seam graph), and a second pass rewrites the ids. Ids follow the raster order of
  each object's first pixel. A nucleus cut by block (or tile) borders is therefore one
  object, never split or duplicated.
- :func:`iter_nuclei` visits each object once, in the block that holds its first pixel
  (its *anchor*; the write-region rule of :mod:`pseudoedgenet.inference.tiling` applied to
  objects), reads just the object's bounding box, optionally splits touching nuclei with a
  distance-transform watershed (:func:`split_touching`), and yields its measurements and
  polygon (:class:`Nucleus`).
- Size filters (:class:`PostprocessConfig` ``min_area``, ``max_area``, ``max_size``) drop
  objects and count each dropped object under one reason (:class:`Components`,
  :func:`iter_nuclei`'s ``removed``); with the watershed, ``max_area`` (and ``min_area``
  again) applies to the split pieces, so a large clump that splits into nuclei is kept.
- Outlines (:func:`object_polygon`) trace pixel edges: the polygon covers exactly the
  object's pixels, so its area is the pixel count and its centroid the mean pixel centre.

Coordinates: ``(x, y)`` = (column, row) pixel coordinates of the array, pixel centres at
integer coordinates (the package's point convention, :mod:`pseudoedgenet.data.io`); boxes
are ``(y0, y1, x0, x1)`` half-open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as _graph_components

Box = tuple[int, int, int, int]


class Array2D(Protocol):
    """A 2-D array read and written by slices (numpy array, memmap, zarr array)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, key: Any) -> Any: ...

    def __setitem__(self, key: Any, value: Any) -> None: ...


@dataclass(frozen=True)
class PostprocessConfig:
    """How a binary mask becomes nuclei.

    Attributes:
        connectivity: 1 (4-neighbourhood) or 2 (8-neighbourhood) for connected components.
        watershed: split touching nuclei with a distance-transform watershed.
        min_distance: least distance in pixels between two watershed seeds (about a
            nucleus radius).
        depth: least depth in pixels of a watershed seed: how much narrower than both
            nuclei a neck must be to be cut.
        min_area: objects (with ``watershed``: also pieces) with fewer pixels are dropped.
        max_area: objects with more pixels are dropped, or ``None`` for no limit; with
            ``watershed`` it applies to the split pieces instead of the objects.
        max_size: objects whose bounding box is larger than this many pixels in height or
            width are dropped (not nuclei; this also bounds the memory of one object), or
            ``None`` for no limit.
        block: block side for the block-wise passes.
        tolerance: polygon simplification tolerance in pixels
            (:func:`skimage.measure.approximate_polygon`); 0 (default) keeps the exact
            pixel-edge outline (only collinear vertices are dropped).
    """

    connectivity: int = 2
    watershed: bool = False
    min_distance: int = 5
    depth: float = 2.0
    min_area: float = 0
    max_area: float | None = None
    max_size: int | None = 1024
    block: int = 2048
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.connectivity not in (1, 2):
            raise ValueError(f"connectivity must be 1 or 2, got {self.connectivity}")
        if self.block < 1 or self.min_distance < 1 or self.min_area < 0:
            raise ValueError("block and min_distance must be >= 1, min_area >= 0")
        if self.max_area is not None and self.max_area < self.min_area:
            raise ValueError(f"max_area {self.max_area} is below min_area {self.min_area}")
        if self.max_size is not None and self.max_size < 1:
            raise ValueError(f"max_size must be >= 1 or None, got {self.max_size}")


@dataclass(frozen=True)
class Components:
    """Connected components found by :func:`connected_components`.

    Object ``i`` (0-based) has label ``i + 1``.

    Attributes:
        n: number of objects kept.
        anchor: ``(n,)`` int64 raster index ``y * W + x`` of each object's first pixel.
        bbox: ``(n, 4)`` int64 ``(y0, y1, x0, x1)``.
        area: ``(n,)`` int64 pixel counts.
        removed: components dropped by the size filters (set to 0), all reasons.
        shape: ``(H, W)`` of the labelled array.
        removed_small: of ``removed``, those with fewer than ``min_area`` pixels.
        removed_large: of ``removed``, those with more than ``max_area`` pixels (and not
            too small).
        removed_box: of ``removed``, those whose bounding box exceeds ``max_size`` (and
            whose area passed).
    """

    n: int
    anchor: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    removed: int
    shape: tuple[int, int]
    removed_small: int = 0
    removed_large: int = 0
    removed_box: int = 0


@dataclass(frozen=True)
class Nucleus:
    """One nucleus: measurements and outline.

    Attributes:
        id: its label in the instance image.
        centroid: ``(x, y)`` mean pixel position.
        area: pixel count.
        perimeter: :func:`skimage.measure.perimeter` (4-neighbourhood), pixels.
        mean_prob: mean foreground probability over its pixels, in [0, 1].
        bbox: ``(y0, y1, x0, x1)``.
        polygons: the outline (:func:`object_polygons`): one polygon per 4-connected
            piece, largest first (one for most nuclei; more where the object's pixels hold
            together only at corners), each a list of closed rings ``(K, 2)`` float64
            ``(x, y)``, first == last vertex, the exterior first (positive shoelace area
            in ``(x, y)``), holes after it (negative). They trace the object's pixel
            edges: vertices are pixel corners (half-integers), within
            ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
    """

    id: int
    centroid: tuple[float, float]
    area: int
    perimeter: float
    mean_prob: float
    bbox: Box
    polygons: list[list[np.ndarray]] = field(repr=False)


def block_grid(shape: tuple[int, ...], block: int) -> list[Box]:
    """Row-major ``(y0, y1, x0, x1)`` blocks of side ``block`` covering ``shape[:2]``."""
    h, w = int(shape[0]), int(shape[1])
    return [
        (y, min(y + block, h), x, min(x + block, w))
        for y in range(0, h, block)
        for x in range(0, w, block)
    ]


def _seam_edges(a: np.ndarray, b: np.ndarray, connectivity: int) -> list[np.ndarray]:
    """Label pairs ``(2, k)`` touching across a seam between pixel lines ``a`` and ``b``."""
    pairs = [(a, b)]
    if connectivity == 2 and len(a) > 1:
        pairs += [(a[:-1], b[1:]), (a[1:], b[:-1])]
    out = []
    for u, v in pairs:
        keep = (u > 0) & (v > 0) & (u != v)
        if keep.any():
            out.append(np.stack([u[keep], v[keep]]).astype(np.int64))
    return out


def connected_components(
    mask: Array2D,
    out: Array2D,
    connectivity: int = 2,
    block: int = 2048,
    min_area: float = 0,
    max_size: int | None = None,
    max_area: float | None = None,
) -> Components:
    """Labels the connected components of a binary mask, block by block.

    Equal to ``skimage.measure.label(mask, connectivity=connectivity)`` (same ids: raster
    order of each object's first pixel) whatever the block size, with objects of fewer
    than ``min_area`` pixels, more than ``max_area`` pixels or a bounding box larger than
    ``max_size`` set to 0 and the rest renumbered consecutively. Each dropped object is
    counted once, under the first of these reasons that applies. Memory: two blocks plus
    one image row and column, plus O(number of objects).

    Args:
        mask: ``(H, W)`` binary mask (nonzero = foreground).
        out: ``(H, W)`` integer array (uint32 recommended) to write the labels into; may
            be an on-disk store.
        connectivity: 1 for the 4-neighbourhood, 2 for the 8-neighbourhood.
        block: block side in pixels.
        min_area: least object area kept, pixels.
        max_size: largest bounding-box side kept, or ``None``.
        max_area: largest object area kept, pixels, or ``None``.

    Returns:
        :class:`Components` (anchors, boxes, areas of the objects kept).

    Shape:
        - mask: ``(H, W)``, any dtype; out: ``(H, W)``, integer, values ``0..n``.
    """
    h, w = int(mask.shape[0]), int(mask.shape[1])
    structure = ndimage.generate_binary_structure(2, connectivity)
    anchors: list[np.ndarray] = [np.array([np.iinfo(np.int64).max])]  # node 0 = background
    boxes: list[np.ndarray] = [np.array([[h, 0, w, 0]])]
    areas: list[np.ndarray] = [np.zeros(1, np.int64)]
    edges: list[np.ndarray] = []
    offset = 0
    prev_bottom: np.ndarray | None = None
    for by0 in range(0, h, block):
        by1 = min(by0 + block, h)
        top, bottom = np.zeros(w, np.uint32), np.zeros(w, np.uint32)
        left: np.ndarray | None = None
        for bx0 in range(0, w, block):
            bx1 = min(bx0 + block, w)
            m = np.asarray(mask[by0:by1, bx0:bx1]) != 0
            lab32, n = ndimage.label(m, structure)
            lab = lab32.astype(np.uint32)
            if n:
                flat = lab.ravel()
                ids, first = np.unique(flat, return_index=True)
                first = first[ids > 0]
                ry, rx = np.divmod(first, bx1 - bx0)
                anchors.append((by0 + ry).astype(np.int64) * w + bx0 + rx)
                sl = ndimage.find_objects(lab32)
                box = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in sl])
                boxes.append(box.astype(np.int64) + np.array([by0, by0, bx0, bx0]))
                areas.append(np.bincount(flat, minlength=n + 1)[1:].astype(np.int64))
                lab[lab > 0] += np.uint32(offset)
            out[by0:by1, bx0:bx1] = lab
            if left is not None:
                edges += _seam_edges(left, lab[:, 0], connectivity)
            left = lab[:, -1].copy()
            top[bx0:bx1], bottom[bx0:bx1] = lab[0], lab[-1]
            offset += n
        if prev_bottom is not None:
            edges += _seam_edges(prev_bottom, top, connectivity)
        prev_bottom = bottom

    nodes = offset + 1
    if edges:
        e = np.concatenate(edges, axis=1)
        graph = coo_matrix((np.ones(e.shape[1], np.int8), (e[0], e[1])), shape=(nodes, nodes))
        ncomp, comp = _graph_components(graph, directed=False)
    else:
        ncomp, comp = nodes, np.arange(nodes)
    node_anchor = np.concatenate(anchors)
    node_box = np.concatenate(boxes)
    node_area = np.concatenate(areas)
    c_anchor = np.full(ncomp, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(c_anchor, comp, node_anchor)
    c_box = np.empty((ncomp, 4), np.int64)
    c_box[:, [0, 2]] = np.iinfo(np.int64).max
    c_box[:, [1, 3]] = np.iinfo(np.int64).min
    for j, ufunc in ((0, np.minimum), (1, np.maximum), (2, np.minimum), (3, np.maximum)):
        col = c_box[:, j].copy()
        ufunc.at(col, comp, node_box[:, j])
        c_box[:, j] = col
    c_area = np.bincount(comp, weights=node_area, minlength=ncomp).astype(np.int64)
    valid = np.ones(ncomp, bool)
    valid[comp[0]] = False
    side = np.maximum(c_box[:, 1] - c_box[:, 0], c_box[:, 3] - c_box[:, 2])
    small = valid & (c_area < min_area)
    large = valid & ~small & (c_area > (np.inf if max_area is None else max_area))
    boxed = valid & ~small & ~large & (side > (np.inf if max_size is None else max_size))
    keep = valid & ~(small | large | boxed)
    kept = np.nonzero(keep)[0]
    kept = kept[np.argsort(c_anchor[kept], kind="stable")]
    final = np.zeros(ncomp, np.uint32)
    final[kept] = np.arange(1, len(kept) + 1, dtype=np.uint32)
    lut = final[comp]
    lut[0] = 0
    if not np.array_equal(lut, np.arange(nodes)):
        for y0, y1, x0, x1 in block_grid((h, w), block):
            out[y0:y1, x0:x1] = lut[np.asarray(out[y0:y1, x0:x1])]
    return Components(
        n=len(kept),
        anchor=c_anchor[kept],
        bbox=c_box[kept],
        area=c_area[kept],
        removed=int(valid.sum()) - len(kept),
        shape=(h, w),
        removed_small=int(small.sum()),
        removed_large=int(large.sum()),
        removed_box=int(boxed.sum()),
    )


def label_components(mask: Array2D, out: Array2D, cfg: PostprocessConfig) -> Components:
    """:func:`connected_components` with the options of ``cfg``.

    With ``cfg.watershed``, ``max_area`` is left to :func:`iter_nuclei` (it applies to the
    split pieces: a clump larger than ``max_area`` may split into nuclei of normal size).

    Shape:
        - mask: ``(H, W)`` binary; out: ``(H, W)`` integer labels ``0..n``.
    """
    return connected_components(
        mask,
        out,
        cfg.connectivity,
        cfg.block,
        cfg.min_area,
        cfg.max_size,
        None if cfg.watershed else cfg.max_area,
    )


def label_mask(mask: np.ndarray, cfg: PostprocessConfig | None = None) -> np.ndarray:
    """In-memory :func:`connected_components`: ``(H, W)`` binary -> ``(H, W)`` uint32 labels.

    The size filters of ``cfg`` apply (``max_area`` to whole objects: no watershed here).
    """
    cfg = cfg or PostprocessConfig()
    out = np.zeros(mask.shape[:2], np.uint32)
    connected_components(
        mask, out, cfg.connectivity, cfg.block, cfg.min_area, cfg.max_size, cfg.max_area
    )
    return out


def split_touching(mask: np.ndarray, min_distance: int = 5, depth: float = 2.0) -> np.ndarray:
    """Splits touching nuclei in one object mask by a distance-transform watershed.

    Seeds are the regional maxima of the Euclidean distance to the background that stand
    at least ``depth`` pixels above their surroundings (h-maxima; Soille 2003,
    "Morphological Image Analysis", 6.3.4) and at least ``min_distance`` apart; the object
    is flooded from them on the negated distance (Beucher & Meyer 1993). A neck must
    therefore be ``depth`` px narrower than both cores to be cut, so elongated nuclei whose
    distance ridge is flat are not sliced.

    Args:
        mask: ``(h, w)`` bool, one connected object.
        min_distance: least seed separation in pixels.
        depth: least height of a seed above the saddle to its neighbour, pixels.

    Returns:
        ``(h, w)`` int32 labels ``0..k`` (0 outside the mask; ``k = 1`` when nothing splits).
    """
    from skimage.feature import peak_local_max
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    mask = np.asarray(mask, bool)
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    regional, k = ndimage.label(h_maxima(dist, depth) > 0, np.ones((3, 3), bool))
    if k <= 1:
        return mask.astype(np.int32)
    peaks = peak_local_max(dist, min_distance=min_distance, labels=regional, exclude_border=False)
    seeds = np.zeros(mask.shape, bool)
    seeds[tuple(peaks.T)] = True
    markers, k = ndimage.label(seeds, np.ones((3, 3), bool))
    if k <= 1:
        return mask.astype(np.int32)
    labels = watershed(-dist, markers, mask=mask)
    return np.asarray(labels, np.int32)


def _shoelace(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))


def _drop_collinear(ring: np.ndarray) -> np.ndarray:
    """Removes the vertices of a closed rectilinear ring (first == last) where it runs
    straight on; returns it closed again."""
    pts = ring[:-1]
    d_in = pts - np.roll(pts, 1, axis=0)
    d_out = np.roll(pts, -1, axis=0) - pts
    turn = (np.sign(d_in) != np.sign(d_out)).any(axis=1)
    pts = pts[turn]
    return np.vstack([pts, pts[:1]])


def object_polygon(
    mask: np.ndarray, offset: tuple[float, float] = (0.0, 0.0), tolerance: float = 0.0
) -> list[np.ndarray]:
    """Outline of one object as closed polygon rings along its pixel edges.

    The rings follow the edges between object and background pixels, so vertices are
    pixel corners: a single pixel centred at ``(x, y)`` gives the square
    ``[x - 0.5, x + 0.5] x [y - 0.5, y + 0.5]``. The polygon therefore covers exactly the
    object's pixels: its area is the pixel count, its centroid the mean pixel centre, and
    rasterising it by pixel centres (:func:`skimage.draw.polygon`) gives the mask back.
    (Built from the marching-squares contour at level 0.5, foreground 8-connected: each
    contour segment joins the midpoints of two pixel edges of one 2x2 cell of pixel
    centres; the pixel boundary between them runs through the cell's centre, a pixel
    corner. Where two pixels of the object touch only diagonally the ring passes twice
    through that corner: :func:`object_polygons` splits such objects first.)

    Args:
        mask: ``(h, w)`` bool, one 8-connected object.
        offset: ``(x, y)`` of ``mask[0, 0]`` in the output coordinates.
        tolerance: Douglas-Peucker simplification in pixels (0 = none: the exact pixel
            outline with collinear vertices dropped); a ring is kept unsimplified when
            simplifying would leave fewer than 4 vertices.

    Returns:
        Rings ``(K, 2)`` float64 ``(x, y)`` in the package's convention (pixel centres at
        integers, so vertices at half-integers), closed (first == last); the exterior
        first with positive shoelace area, holes after it with negative area. Empty list
        for an empty mask.
    """
    from skimage.measure import approximate_polygon, find_contours

    contours = find_contours(
        np.pad(np.asarray(mask, bool), 1).astype(np.float32), 0.5, fully_connected="high"
    )
    rings: list[np.ndarray] = []
    for c in contours:
        if not np.array_equal(c[0], c[-1]):  # cannot happen with the zero padding
            c = np.vstack([c, c[:1]])
        corners = np.floor(np.minimum(c[:-1], c[1:])) + 0.5  # (row, col) of cell centres
        closed = np.vstack([corners, corners[:1]])
        xy = _drop_collinear(closed[:, ::-1] - 1.0 + np.asarray(offset, np.float64))
        if tolerance > 0:
            s = approximate_polygon(xy, tolerance)
            if len(s) >= 4:
                xy = s
        if len(xy) >= 4:
            rings.append(xy)
    if not rings:
        return []
    areas = [_shoelace(r) for r in rings]
    outer = int(np.argmax(np.abs(areas)))
    ordered = [rings[outer]] + [r for i, r in enumerate(rings) if i != outer]
    signs = [1.0] + [-1.0] * (len(ordered) - 1)
    return [
        r if np.sign(_shoelace(r)) == s else r[::-1].copy()
        for r, s in zip(ordered, signs, strict=True)
    ]


def object_polygons(
    mask: np.ndarray, offset: tuple[float, float] = (0.0, 0.0), tolerance: float = 0.0
) -> list[list[np.ndarray]]:
    """Outline of one object as valid polygons (OGC simple features): one per 4-connected
    piece of it.

    An 8-connected object whose pixels hold together only at a corner would give a ring
    that passes twice through that corner (invalid for GEOS/JTS, so for shapely and
    QuPath's geometry operations). Traced piece by piece, every ring is simple: within a
    4-connected piece a diagonal contact closes a pocket of background, which becomes a
    hole touching the exterior at that one corner (valid), and two pieces meet only at
    corners (a valid ``MultiPolygon``).

    Args:
        mask: ``(h, w)`` bool, one object.
        offset: ``(x, y)`` of ``mask[0, 0]`` in the output coordinates.
        tolerance: as :func:`object_polygon`.

    Returns:
        One ring list per piece (:func:`object_polygon`), largest piece first (ties by
        the first pixel in row-major order); empty for an empty mask.
    """

    pieces, n = ndimage.label(np.asarray(mask, bool))
    if n <= 1:
        rings = object_polygon(mask, offset, tolerance)
        return [rings] if rings else []
    sizes = np.bincount(pieces.ravel())[1:]
    order = np.argsort(-sizes, kind="stable") + 1
    out = []
    for k in order:
        rings = object_polygon(pieces == k, offset, tolerance)
        if rings:
            out.append(rings)
    return out


def measure(
    mask: np.ndarray,
    prob: np.ndarray,
    label: int,
    offset: tuple[int, int] = (0, 0),
    tolerance: float = 0.25,
) -> Nucleus:
    """Measurements and outline of one object.

    Args:
        mask: ``(h, w)`` bool, the object inside its crop.
        prob: ``(h, w)`` probabilities of the crop, float in [0, 1] or uint8 0..255.
        label: the object's id.
        offset: ``(y0, x0)`` of the crop in the image.
        tolerance: polygon simplification (see :func:`object_polygons`).

    Returns:
        :class:`Nucleus` in image coordinates.
    """
    from skimage.measure import perimeter

    y0, x0 = offset
    rr, cc = np.nonzero(mask)
    p = prob[rr, cc].astype(np.float64)
    if np.issubdtype(prob.dtype, np.integer):
        p /= 255.0
    return Nucleus(
        id=int(label),
        centroid=(float(cc.mean()) + x0, float(rr.mean()) + y0),
        area=len(rr),
        perimeter=float(perimeter(mask, neighborhood=4)),
        mean_prob=float(p.mean()),
        bbox=(
            y0 + int(rr.min()),
            y0 + int(rr.max()) + 1,
            x0 + int(cc.min()),
            x0 + int(cc.max()) + 1,
        ),
        polygons=object_polygons(mask, (float(x0), float(y0)), tolerance),
    )


def iter_nuclei(
    labels: Array2D,
    prob: Array2D,
    comps: Components,
    cfg: PostprocessConfig | None = None,
    out: Array2D | None = None,
    removed: Counter[str] | None = None,
) -> Iterator[Nucleus]:
    """Measures (and optionally splits) every object once, block by block.

    Each object is handled in the block holding its anchor (first pixel), reading only
    the union of the bounding boxes of that block's objects. With ``cfg.watershed`` each
    object is split by :func:`split_touching`; pieces with fewer than ``cfg.min_area`` or
    more than ``cfg.max_area`` pixels are dropped (left 0 in ``out``, counted in
    ``removed["small"]`` / ``removed["large"]``), and the others, numbered 1, 2, ... in
    the order visited, are written into ``out``. Otherwise ids are those of ``labels``
    (whose objects :func:`label_components` has already filtered).

    Args:
        labels: ``(H, W)`` component labels from :func:`connected_components`.
        prob: ``(H, W)`` probabilities, float [0, 1] or uint8 0..255.
        comps: what :func:`connected_components` returned for ``labels``.
        cfg: post-processing options (``watershed``, ``min_distance``, ``block``,
            ``tolerance``).
        out: ``(H, W)`` zeroed integer array for the split labels; required with
            ``cfg.watershed``.
        removed: a counter that receives the watershed pieces dropped by the size
            filters (keys ``"small"``, ``"large"``), or ``None``.

    Yields:
        :class:`Nucleus` records, each object (or watershed piece) exactly once.
    """
    cfg = cfg or PostprocessConfig()
    if cfg.watershed and out is None:
        raise ValueError("watershed needs an output array for the split labels")
    if comps.n == 0:
        return
    w = comps.shape[1]
    b = cfg.block
    rows, cols = np.divmod(comps.anchor, w)
    nbx = -(-w // b)
    key = (rows // b) * nbx + cols // b
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(key[order]) != 0])
    ends = np.r_[starts[1:], len(order)]
    next_id = 1
    for s, e in zip(starts, ends, strict=True):
        idx = order[s:e]
        bb = comps.bbox[idx]
        ry0, ry1 = int(bb[:, 0].min()), int(bb[:, 1].max())
        rx0, rx1 = int(bb[:, 2].min()), int(bb[:, 3].max())
        lab = np.asarray(labels[ry0:ry1, rx0:rx1])
        pr = np.asarray(prob[ry0:ry1, rx0:rx1])
        split = np.array(out[ry0:ry1, rx0:rx1]) if out is not None and cfg.watershed else None
        for i in idx:
            y0, y1, x0, x1 = (int(v) for v in comps.bbox[i])
            sl = (slice(y0 - ry0, y1 - ry0), slice(x0 - rx0, x1 - rx0))
            obj = lab[sl] == i + 1
            if split is None:
                yield measure(obj, pr[sl], int(i) + 1, (y0, x0), cfg.tolerance)
                continue
            pieces = split_touching(obj, cfg.min_distance, cfg.depth)
            target = split[sl]
            for k in range(1, int(pieces.max()) + 1):
                piece = pieces == k
                area = int(piece.sum())
                if area == 0:
                    continue
                if area < cfg.min_area or (cfg.max_area is not None and area > cfg.max_area):
                    if removed is not None:
                        removed["small" if area < cfg.min_area else "large"] += 1
                    continue
                target[piece] = next_id
                yield measure(piece, pr[sl], next_id, (y0, x0), cfg.tolerance)
                next_id += 1
        if split is not None and out is not None:
            out[ry0:ry1, rx0:rx1] = split


def foreground(prob: Any, threshold: float) -> Any:
    """The package's one thresholding rule: foreground where ``prob > threshold``.

    A pixel exactly at the threshold is background, in the test metrics (validation, testing,
    ``evaluate``) and in ``predict`` alike. Works on numpy arrays and torch tensors of any
    shape (returns a bool array or tensor of that shape).
    """
    return prob > threshold


def instances_from_probability(
    prob: np.ndarray, threshold: float = 0.5, cfg: PostprocessConfig | None = None
) -> tuple[np.ndarray, list[Nucleus]]:
    """In-memory convenience: probabilities -> instance labels and nuclei.

    Args:
        prob: ``(H, W)`` float probabilities in [0, 1].
        threshold: foreground where ``prob > threshold`` (:func:`foreground`).
        cfg: post-processing options.

    Returns:
        ``(labels, nuclei)``: ``(H, W)`` uint32 instance ids (0 = background) and one
        :class:`Nucleus` per id.
    """
    cfg = cfg or PostprocessConfig()
    labels = np.zeros(prob.shape, np.uint32)
    comps = label_components(foreground(prob, threshold), labels, cfg)
    if not cfg.watershed:
        return labels, list(iter_nuclei(labels, prob, comps, cfg))
    split = np.zeros(prob.shape, np.uint32)
    nuclei = list(iter_nuclei(labels, prob, comps, cfg, split))
    return split, nuclei
