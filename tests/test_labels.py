"""Points from instance masks and Voronoi label maps (pseudoedgenet.labels).

The watershed-line facts pinned here were checked empirically against
``skimage.segmentation.watershed(..., watershed_line=True)`` (scikit-image 0.26):

* a line pixel is created when, as it comes off the heap, one of its 4-neighbours already
  carries another label; so every line pixel has at least one 4-neighbour inside a cell;
* a pixel is only labelled when none of its (unmasked) 4-neighbours carries another label,
  so two different cells touch 4-wise only at a point pixel (markers are pre-labelled and
  two 4-adjacent markers both keep their ids);
* line pixels keep flooding with their source's label, so cells need not be 4-connected and
  a line pixel need not touch two *different* cells, not even in its 8-neighbourhood.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.draw import disk

from pseudoedgenet.labels import (
    IGNORE,
    NEGATIVE,
    POSITIVE,
    points_from_instances,
    voronoi_cells,
    voronoi_labels,
)

# ----------------------------------------------------------------------------- helpers


def pts_xy(*xy: tuple[float, float]) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


def four_neighbours(a: np.ndarray, fill: int) -> np.ndarray:
    """``(4, H, W)``: the up, down, left, right neighbour of every pixel (``fill`` outside)."""
    p = np.pad(a, 1, constant_values=fill)
    return np.stack([p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])


@st.composite
def point_sets(draw, max_side: int = 24, max_points: int = 10):
    """(points (N, 2) float (x, y) at distinct integer pixels, (H, W))."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    n = draw(st.integers(1, min(max_points, h * w)))
    flat = draw(st.lists(st.integers(0, h * w - 1), min_size=n, max_size=n, unique=True))
    rows, cols = np.divmod(np.asarray(flat), w)
    return np.stack([cols, rows], axis=1).astype(np.float64), (h, w)


# ------------------------------------------------------------ points_from_instances


def test_points_are_exact_centres_of_disks_in_id_order() -> None:
    inst = np.zeros((40, 50), dtype=np.uint16)
    # ids deliberately not consecutive and not in spatial order
    for ident, (r, c, rad) in {40: (8, 9, 4), 2: (30, 12, 6), 7: (20, 40, 3)}.items():
        rr, cc = disk((r, c), rad + 0.5, shape=inst.shape)
        inst[rr, cc] = ident
    pts = points_from_instances(inst)
    assert pts.dtype == np.float64
    # id order 2, 7, 40; (x, y) = (column, row)
    np.testing.assert_array_equal(pts, [[12, 30], [40, 20], [9, 8]])


def test_points_of_rectangle_and_rounding_of_centre() -> None:
    inst = np.zeros((10, 12), dtype=np.int32)
    inst[2:5, 3:8] = 1  # rows 2..4, cols 3..7: centre (row 3, col 5), exact
    inst[7:9, 0:3] = 5  # rows 7..8 -> 7.5, cols 0..2 -> 1; 7.5 rounds half to even: 8
    np.testing.assert_array_equal(points_from_instances(inst), [[5, 3], [1, 8]])


def test_empty_mask_gives_zero_by_two() -> None:
    pts = points_from_instances(np.zeros((7, 9), dtype=np.uint16))
    assert pts.shape == (0, 2)
    assert pts.dtype == np.float64


def test_large_non_consecutive_ids() -> None:
    inst = np.zeros((6, 6), dtype=np.uint32)
    inst[1, 1] = 70000
    inst[4, 3] = 9
    np.testing.assert_array_equal(points_from_instances(inst), [[3, 4], [1, 1]])


def nearest_pixel_raster_first(mask: np.ndarray, centre: np.ndarray) -> tuple[int, int]:
    rr, cc = np.nonzero(mask)  # raster order
    d2 = (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2
    j = int(np.argmin(d2))
    return int(rr[j]), int(cc[j])


def test_point_of_c_shape_lies_inside_and_nearest_to_centroid() -> None:
    inst = np.zeros((24, 24), dtype=np.uint16)
    inst[2:20, 2:20] = 4
    inst[6:16, 6:20] = 0  # a C open to the right: the centroid falls in the opening
    inst[21:23, 21:23] = 9  # a second, convex instance
    com = np.asarray(ndimage.center_of_mass(inst == 4))
    r0, c0 = np.rint(com).astype(int)
    assert inst[r0, c0] == 0, "the test needs a centroid outside the C"
    pts = points_from_instances(inst)
    x, y = int(pts[0, 0]), int(pts[0, 1])
    assert inst[y, x] == 4
    assert (y, x) == nearest_pixel_raster_first(inst == 4, com)
    np.testing.assert_array_equal(pts[1], [22, 22])  # centre 21.5 rounds half to even


def test_point_of_ring_is_the_first_nearest_pixel_in_raster_order() -> None:
    inst = np.zeros((31, 31), dtype=np.uint16)
    rr, cc = disk((15, 15), 9, shape=inst.shape)
    inst[rr, cc] = 3
    rr, cc = disk((15, 15), 4.5, shape=inst.shape)
    inst[rr, cc] = 0  # ring centred on (15, 15): centroid exactly in the hole
    pts = points_from_instances(inst)
    # the nearest ring pixels are (10, 15), (15, 10), (15, 20), (20, 15), all at distance 5;
    # raster order picks the top one
    np.testing.assert_array_equal(pts, [[15, 10]])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 12),
    st.integers(1, 12),
    st.lists(st.integers(0, 5), min_size=144, max_size=144),
)
def test_every_point_lies_inside_its_instance(h: int, w: int, values: list[int]) -> None:
    # arbitrary (even disconnected) instances with ids from {0, 1, 2, 3, 5} (4 is skipped)
    inst = np.asarray(values[: h * w], dtype=np.uint16).reshape(h, w)
    inst[inst == 4] = 0
    ids = np.unique(inst[inst > 0])
    pts = points_from_instances(inst)
    assert pts.shape == (len(ids), 2)
    np.testing.assert_array_equal(pts, np.rint(pts))
    cols, rows = pts[:, 0].astype(int), pts[:, 1].astype(int)
    np.testing.assert_array_equal(inst[rows, cols], ids)


# --------------------------------------------------------------- Voronoi: exact cases


def test_two_points_give_the_perpendicular_bisector_column() -> None:
    shape = (41, 40)  # H = 41, W = 40
    pts = pts_xy((10, 20), (30, 20))
    cells = voronoi_cells(pts, shape)
    assert cells.shape == shape and cells.dtype == np.int32
    expected = np.ones(shape, dtype=np.int32)
    expected[:, 20] = 0
    expected[:, 21:] = 2
    np.testing.assert_array_equal(cells, expected)

    labels = voronoi_labels(pts, shape)
    assert labels.dtype == np.uint8
    assert set(np.unique(labels)) == {NEGATIVE, POSITIVE, IGNORE}
    np.testing.assert_array_equal(np.argwhere(labels == POSITIVE), [[20, 10], [20, 30]])
    np.testing.assert_array_equal(labels == NEGATIVE, expected == 0)


def test_two_points_one_above_the_other_give_a_row() -> None:
    cells = voronoi_cells(pts_xy((20, 10), (20, 30)), (40, 41))
    rows = np.argwhere(cells == 0)
    assert set(rows[:, 0]) == {20}
    assert len(rows) == 41
    assert (cells[:20] == 1).all() and (cells[21:] == 2).all()


def test_bisector_between_pixels_is_still_one_column() -> None:
    cells = voronoi_cells(pts_xy((10, 20), (31, 20)), (41, 42))
    cols = np.unique(np.argwhere(cells == 0)[:, 1])
    assert len(cols) == 1 and cols[0] in (20, 21)
    assert (cells[:, cols[0]] == 0).all()


def test_diagonal_points_give_a_one_pixel_8_connected_antidiagonal() -> None:
    shape = (41, 41)
    cells = voronoi_cells(pts_xy((10, 10), (30, 30)), shape)
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    np.testing.assert_array_equal(cells == 0, rr + cc == 40)
    assert (cells[rr + cc < 40] == 1).all() and (cells[rr + cc > 40] == 2).all()
    # one 8-connected line, and the two cells do not touch 4-wise across it
    _, n8 = ndimage.label(cells == 0, structure=np.ones((3, 3)))
    _, n4 = ndimage.label(cells == 0)
    assert n8 == 1 and n4 == 41
    nb = four_neighbours(cells, fill=0)
    assert not ((cells == 1) & (nb == 2).any(axis=0)).any()


def test_no_points_and_one_point() -> None:
    cells = voronoi_cells(np.zeros((0, 2)), (5, 6))
    assert cells.shape == (5, 6) and (cells == -1).all()
    labels = voronoi_labels(np.zeros((0, 2)), (5, 6))
    assert (labels == IGNORE).all()

    cells = voronoi_cells(pts_xy((2, 3)), (5, 6))
    assert (cells == 1).all()
    labels = voronoi_labels(pts_xy((2.4, 2.6)), (5, 6))  # labels pixel (row 3, col 2)
    np.testing.assert_array_equal(np.argwhere(labels != IGNORE), [[3, 2]])
    assert labels[3, 2] == POSITIVE


def test_adjacent_points_keep_both_positives() -> None:
    labels = voronoi_labels(pts_xy((5, 5), (6, 5), (5, 6)), (12, 12))
    np.testing.assert_array_equal(np.argwhere(labels == POSITIVE), [[5, 5], [5, 6], [6, 5]])
    assert set(np.unique(labels)) <= {NEGATIVE, POSITIVE, IGNORE}


# ------------------------------------------------------ Voronoi: hypothesis properties


@settings(max_examples=150, deadline=None)
@given(point_sets())
def test_voronoi_cells_partition_the_image(data) -> None:
    pts, shape = data
    n = len(pts)
    cells = voronoi_cells(pts, shape)
    assert cells.shape == shape
    rows, cols = pts[:, 1].astype(int), pts[:, 0].astype(int)
    # every point lies in its own cell; ids are exactly the point ids
    np.testing.assert_array_equal(cells[rows, cols], np.arange(1, n + 1))
    assert set(np.unique(cells)) - {0} == set(range(1, n + 1))
    # every boundary pixel lies within one pixel of a bisector: its second-nearest point
    # is at most 1 px farther than its nearest one
    nb = four_neighbours(cells, fill=0)
    if n >= 2:
        h, w = shape
        rr, cc = np.mgrid[:h, :w]
        d = np.sort(np.hypot(rr[..., None] - rows, cc[..., None] - cols), axis=-1)
        assert (d[cells == 0][:, 1] - d[cells == 0][:, 0] <= 1.0 + 1e-9).all()
    # two different cells touch 4-wise only at a point pixel
    is_point = np.zeros(shape, dtype=bool)
    is_point[rows, cols] = True
    nb_point = four_neighbours(is_point.astype(np.int8), fill=0).astype(bool)
    touching = (cells > 0) & (nb > 0) & (nb != cells)
    assert not (touching & ~is_point & ~nb_point).any()
    # label map: positives are exactly the points, negatives exactly the boundary
    labels = voronoi_labels(pts, shape)
    assert set(np.unique(labels)) <= {NEGATIVE, POSITIVE, IGNORE}
    np.testing.assert_array_equal(labels == POSITIVE, is_point)
    np.testing.assert_array_equal(labels == NEGATIVE, (cells == 0) & ~is_point)
    if n == 1:
        assert not (cells == 0).any()


def _nearest_gap(pts: np.ndarray, cells: np.ndarray) -> float:
    """Largest ``d(pixel, own point) - d(pixel, nearest point)`` over non-boundary pixels."""
    h, w = cells.shape
    rr, cc = np.mgrid[:h, :w]
    d = np.hypot(rr[..., None] - pts[:, 1], cc[..., None] - pts[:, 0])
    inside = cells > 0
    return float((d[inside, cells[inside] - 1] - d[inside].min(axis=1)).max())


@settings(max_examples=100, deadline=None)
@example(data=(pts_xy((8, 7), (17, 4)), (28, 27)))  # pixel (27, 16) is 1.48 px off
@given(point_sets(max_side=30))
def test_non_boundary_pixels_belong_to_their_nearest_point(data) -> None:
    pts, shape = data
    # exact nearest-point cells (ties between equidistant points aside)
    assert _nearest_gap(pts, voronoi_cells(pts, shape)) <= 1e-9


# -------------------------------------------------------------------- Voronoi: margin


def test_margin_zero_ignores_points_outside() -> None:
    inside = pts_xy((5, 10), (14, 3))
    outside = pts_xy((24, 10), (-3, -3))
    np.testing.assert_array_equal(
        voronoi_cells(np.vstack([inside, outside]), (20, 20)), voronoi_cells(inside, (20, 20))
    )


def test_point_within_margin_shapes_the_boundary() -> None:
    shape = (20, 20)
    pts = pts_xy((5, 10), (24, 10))  # second point 5 px right of the last column (x = 19)
    assert not (voronoi_cells(pts, shape, margin=4) == 0).any()  # x = 24 is beyond 4 px
    cells = voronoi_cells(pts, shape, margin=5)
    cols = np.unique(np.argwhere(cells == 0)[:, 1])
    assert len(cols) == 1 and cols[0] in (14, 15)  # bisector x = 14.5
    assert (cells[:, cols[0]] == 0).all()
    assert (cells[:, cols[0] + 1 :] == 2).all()
    labels = voronoi_labels(pts, shape, margin=5)
    np.testing.assert_array_equal(np.argwhere(labels == POSITIVE), [[10, 5]])  # only inside
    assert (labels[:, cols[0]] == NEGATIVE).all()


@st.composite
def points_around(draw, pad: int = 10):
    """(points at distinct pixels of a canvas ``pad`` px larger than the image, (H, W))."""
    h = draw(st.integers(1, 16))
    w = draw(st.integers(1, 16))
    xy = draw(
        st.lists(
            st.tuples(st.integers(-pad, w + pad - 1), st.integers(-pad, h + pad - 1)),
            min_size=1,
            max_size=10,
            unique=True,
        )
    )
    return np.asarray(xy, dtype=np.float64), (h, w)


@settings(max_examples=80, deadline=None)
@given(points_around(), st.integers(0, 6))
def test_points_beyond_the_margin_are_dropped(data, margin: int) -> None:
    pts, (h, w) = data
    cols, rows = pts[:, 0], pts[:, 1]
    keep = (cols >= -margin) & (cols < w + margin) & (rows >= -margin) & (rows < h + margin)
    cells = voronoi_cells(pts, (h, w), margin)
    if not keep.any():
        assert (cells == -1).all()
        return
    ref = voronoi_cells(pts[keep], (h, w), margin)
    ids = np.concatenate([[0], np.flatnonzero(keep) + 1])  # id j of pts[keep] -> original id
    np.testing.assert_array_equal(cells, ids[ref])
    labels = voronoi_labels(pts, (h, w), margin)
    inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    assert (labels == POSITIVE).sum() == inside.sum()


@settings(max_examples=80, deadline=None)
@given(point_sets(max_side=30, max_points=12), st.integers(1, 6))
def test_crop_with_margin_reaching_the_image_edge_equals_the_full_diagram(data, margin) -> None:
    # With the crop's margin reaching exactly the full image's edges, the padded canvas
    # *is* the full image with all its points, so the crop must be reproduced exactly.
    # (For a smaller margin there is no exact local property: the watershed is not local
    # and points beyond the margin are dropped.)
    pts, shape = data
    h, w = shape
    if h <= 2 * margin or w <= 2 * margin:
        return
    full = voronoi_cells(pts, shape)
    crop = voronoi_cells(pts - margin, (h - 2 * margin, w - 2 * margin), margin)
    np.testing.assert_array_equal(crop, full[margin : h - margin, margin : w - margin])
    labels = voronoi_labels(pts - margin, (h - 2 * margin, w - 2 * margin), margin)
    full_labels = voronoi_labels(pts, shape)
    np.testing.assert_array_equal(labels, full_labels[margin : h - margin, margin : w - margin])
