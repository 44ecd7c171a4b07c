"""Post-processing: block-wise connected components, watershed, measurements, polygons."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.draw import disk, polygon
from skimage.measure import label, regionprops

from pseudoedgenet.postprocess import (
    PostprocessConfig,
    connected_components,
    foreground,
    instances_from_probability,
    iter_nuclei,
    label_components,
    label_mask,
    object_polygon,
    object_polygons,
    split_touching,
)


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray:
    h = draw(st.integers(1, 48))
    w = draw(st.integers(1, 48))
    density = draw(st.floats(0.05, 0.8))
    seed = draw(st.integers(0, 2**31))
    return np.random.default_rng(seed).random((h, w)) < density


@settings(max_examples=150, deadline=None)
@given(masks(), st.sampled_from([1, 2]), st.sampled_from([1, 2, 5, 16, 1000]))
def test_block_labelling_equals_whole_image_labelling(
    mask: np.ndarray, connectivity: int, block: int
) -> None:
    out = np.zeros(mask.shape, np.uint32)
    comps = connected_components(mask, out, connectivity, block)
    ref = label(mask, connectivity=connectivity)
    assert np.array_equal(out, ref)  # same ids: raster order of first pixels
    assert comps.n == ref.max() and comps.removed == 0
    for i, p in enumerate(regionprops(ref)):
        y0, x0, y1, x1 = p.bbox
        assert tuple(comps.bbox[i]) == (y0, y1, x0, x1)
        assert comps.area[i] == p.area
        ys, xs = np.nonzero(ref == p.label)
        first = np.lexsort((xs, ys))[0]
        assert comps.anchor[i] == ys[first] * mask.shape[1] + xs[first]


def test_objects_across_block_seams_are_one_object_each() -> None:
    """Disks centred on block corners and seams stay whole, each with one id."""
    mask = np.zeros((200, 200), bool)
    centres = [(64, 64), (64, 128), (128, 100), (30, 64), (150, 150), (127, 127)]
    for c in centres:
        mask[disk(c, 9, shape=mask.shape)] = True
    out = np.zeros(mask.shape, np.uint32)
    comps = connected_components(mask, out, block=64)
    ref = label(mask)
    assert comps.n == ref.max()
    assert np.array_equal(out, ref)
    # a diagonal-only contact across a block corner joins with 8-connectivity only
    m2 = np.zeros((8, 8), bool)
    m2[3, 3] = m2[4, 4] = True
    for conn, n in ((2, 1), (1, 2)):
        o = np.zeros(m2.shape, np.uint32)
        assert connected_components(m2, o, conn, block=4).n == n


def test_min_area_and_max_size_drop_objects() -> None:
    mask = np.zeros((100, 100), bool)
    mask[5, 5] = True  # 1 px speck
    mask[20:30, 20:30] = True  # 100 px nucleus
    mask[40:95, 10:20] = True  # 55 px tall strip
    out = np.zeros(mask.shape, np.uint32)
    comps = connected_components(mask, out, block=16, min_area=2, max_size=50)
    assert comps.n == 1 and comps.removed == 2
    assert (comps.removed_small, comps.removed_large, comps.removed_box) == (1, 0, 1)
    assert np.array_equal(out > 0, np.pad(np.ones((10, 10), bool), ((20, 70), (20, 70))))
    assert out.max() == 1
    # max_area: the 100 px nucleus is too large at 99 px, kept at 100; each object counted
    # under the first reason only (the 550 px strip, 55 px tall, is "large" before "box")
    for max_area, n, counts in ((99, 0, (1, 2, 0)), (100, 1, (1, 1, 0)), (None, 1, (1, 0, 1))):
        out = np.zeros(mask.shape, np.uint32)
        comps = connected_components(mask, out, 2, 16, 1.5, 50, max_area)
        assert comps.n == n and comps.removed == 3 - n
        assert (comps.removed_small, comps.removed_large, comps.removed_box) == counts


def test_area_limits_apply_to_watershed_pieces() -> None:
    """A clump above max_area is dropped whole without the watershed, but its pieces are
    kept when they split into nuclei of normal size; pieces below min_area are dropped."""
    from collections import Counter

    prob = np.zeros((60, 120), np.float32)
    prob[disk((30, 28), 12)] = 0.9
    prob[disk((30, 50), 12)] = 0.9  # touching pair, ~450 px each
    prob[disk((30, 100), 2)] = 0.9  # a 9 px speck
    clump, speck = label(prob >= 0.5) == 1, label(prob >= 0.5) == 2
    assert clump.sum() == 865 and speck.sum() == 9  # the watershed splits 437 + 428
    plain = PostprocessConfig(min_area=20, max_area=600)
    labels, nuclei = instances_from_probability(prob, 0.5, plain)
    assert labels.max() == 0 and nuclei == []
    removed: Counter[str] = Counter()
    cfg = PostprocessConfig(watershed=True, min_area=20, max_area=600)
    labels = np.zeros(prob.shape, np.uint32)
    comps = label_components(prob >= 0.5, labels, cfg)
    assert (comps.n, comps.removed_small, comps.removed_large) == (1, 1, 0)  # clump waits
    split = np.zeros(prob.shape, np.uint32)
    nuclei = list(iter_nuclei(labels, prob, comps, cfg, split, removed))
    assert [n.id for n in nuclei] == [1, 2] and np.array_equal(split > 0, clump)
    assert all(n.area <= 600 for n in nuclei) and removed == Counter()
    tight = PostprocessConfig(watershed=True, min_area=20, max_area=400)
    split = np.zeros(prob.shape, np.uint32)
    labels = np.zeros(prob.shape, np.uint32)
    comps = label_components(prob >= 0.5, labels, tight)
    assert list(iter_nuclei(labels, prob, comps, tight, split, removed)) == []
    assert removed == Counter(large=2) and split.max() == 0
    # min_area between the piece sizes: the clump passes, its 428 px piece does not
    removed.clear()
    cfg = PostprocessConfig(watershed=True, min_area=430)
    labels, split = np.zeros(prob.shape, np.uint32), np.zeros(prob.shape, np.uint32)
    comps = label_components(prob >= 0.5, labels, cfg)
    nuclei = list(iter_nuclei(labels, prob, comps, cfg, split, removed))
    assert [(n.id, n.area) for n in nuclei] == [(1, 437)] and removed == Counter(small=1)
    assert (split == 1).sum() == 437 and split.max() == 1


def test_connected_components_on_a_zarr_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(0)
    mask = rng.random((300, 250)) < 0.4
    zm = zarr.open_array(
        store=str(tmp_path / "m.zarr"), mode="w", shape=mask.shape, chunks=(64, 64), dtype="uint8"
    )
    zm[:, :] = mask.astype(np.uint8)
    zl = zarr.open_array(
        store=str(tmp_path / "l.zarr"),
        mode="w",
        shape=mask.shape,
        chunks=(64, 64),
        dtype="uint32",
        fill_value=0,
    )
    comps = connected_components(zm, zl, block=128)
    assert np.array_equal(zl[:, :], label(mask, connectivity=2))
    assert comps.n == label(mask).max()


def test_watershed_splits_two_touching_disks_but_not_one() -> None:
    mask = np.zeros((60, 80), bool)
    mask[disk((30, 28), 12)] = True
    mask[disk((30, 50), 12)] = True
    assert label(mask).max() == 1
    pieces = split_touching(mask, min_distance=5)
    assert pieces.max() == 2
    assert np.array_equal(pieces > 0, mask)
    a, b = pieces[30, 20], pieces[30, 58]
    assert a != b and a > 0 and b > 0
    single = np.zeros((40, 40), bool)
    single[disk((20, 20), 12)] = True
    assert split_touching(single, 5).max() == 1


def _rasterise(rings: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for k, ring in enumerate(rings):
        rr, cc = polygon(ring[:, 1], ring[:, 0], shape)
        out[rr, cc] = k == 0  # exterior fills, holes clear
    return out


def test_polygons_are_closed_oriented_and_rasterise_back() -> None:
    rng = np.random.default_rng(0)
    shapes = []
    for r in (1, 2, 4, 7, 12):
        m = np.zeros((40, 40), bool)
        m[disk((20, 20), r)] = True
        shapes.append(m)
    blob = np.zeros((40, 40), bool)
    blob[10:30, 8:33] = rng.random((20, 25)) < 0.9
    blob = label(blob, connectivity=2) == 1
    shapes.append(blob)
    ring_mask = np.zeros((40, 40), bool)
    ring_mask[disk((20, 20), 12)] = True
    ring_mask[disk((20, 20), 5)] = False  # a hole
    shapes.append(ring_mask)
    for m in shapes:
        rings = object_polygon(m, tolerance=0.25)
        assert rings
        for k, ring in enumerate(rings):
            assert np.array_equal(ring[0], ring[-1]) and len(ring) >= 4
            x, y = ring[:, 0], ring[:, 1]
            area = 0.5 * (np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))
            assert (area > 0) if k == 0 else (area < 0)
            assert x.min() >= -0.5 and y.min() >= -0.5 and x.max() <= 39.5 and y.max() <= 39.5
        back = _rasterise(rings, m.shape)
        iou = (back & m).sum() / (back | m).sum()
        assert iou > 0.9, (m.sum(), iou)
        # without simplification the outline follows the pixel edges exactly: same pixels,
        # signed area (holes negative) = pixel count, vertices at pixel corners
        exact = object_polygon(m)
        assert np.array_equal(_rasterise(exact, m.shape), m)
        signed = sum(0.5 * (r[:-1, 0] @ r[1:, 1] - r[1:, 0] @ r[:-1, 1]) for r in exact)
        assert signed == m.sum()
        assert all(np.array_equal(r % 1, np.full(r.shape, 0.5)) for r in exact)
    assert len(object_polygon(ring_mask)) == 2


@settings(max_examples=150, deadline=None)
@given(masks())
def test_object_polygons_are_valid_and_give_the_object_back(mask: np.ndarray) -> None:
    # any 8-connected object: one polygon per 4-connected piece, each ring simple (no
    # vertex twice), each polygon rasterises to exactly its piece (so its interior is
    # connected), signed areas add up to the pixel count
    objects = label(mask, connectivity=2)
    if objects.max() == 0:
        assert object_polygons(mask) == []
        return
    obj = objects == np.bincount(objects.ravel())[1:].argmax() + 1
    pieces = label(obj, connectivity=1)
    polys = object_polygons(obj)
    assert len(polys) == pieces.max()
    sizes = [int(_rasterise(p, obj.shape).sum()) for p in polys]
    assert sizes == sorted(sizes, reverse=True)
    union = np.zeros(obj.shape, bool)
    for p in polys:
        for ring in p:
            verts = {tuple(v) for v in ring[:-1]}
            assert len(verts) == len(ring) - 1
        filled = _rasterise(p, obj.shape)
        (k,) = np.unique(pieces[filled])
        assert k > 0 and np.array_equal(filled, pieces == k)
        signed = sum(0.5 * (r[:-1, 0] @ r[1:, 1] - r[1:, 0] @ r[:-1, 1]) for r in p)
        assert signed == filled.sum()
        union |= filled
    assert np.array_equal(union, obj)


def test_iter_nuclei_measures_each_object_once() -> None:
    rng = np.random.default_rng(1)
    prob = np.zeros((150, 170), np.float32)
    centres = rng.uniform(10, 140, (25, 2))
    for cy, cx in centres:
        rr, cc = disk((cy, cx), rng.uniform(3, 8), shape=prob.shape)
        prob[rr, cc] = rng.uniform(0.6, 1.0)
    cfg = PostprocessConfig(block=32, max_size=None)
    labels, nuclei = instances_from_probability(prob, 0.5, cfg)
    ref = label(prob >= 0.5)
    assert np.array_equal(labels, ref)
    assert sorted(n.id for n in nuclei) == list(range(1, ref.max() + 1))
    props = {p.label: p for p in regionprops(ref, intensity_image=prob)}
    for n in nuclei:
        p = props[n.id]
        assert n.area == p.area
        assert n.centroid == pytest.approx((p.centroid[1], p.centroid[0]))
        assert n.mean_prob == pytest.approx(p.intensity_mean, rel=1e-5)
        assert n.perimeter == pytest.approx(p.perimeter)
        assert n.bbox == (p.bbox[0], p.bbox[2], p.bbox[1], p.bbox[3])


def test_watershed_labels_partition_the_mask_and_ids_are_unique() -> None:
    prob = np.zeros((120, 200), np.float32)
    for cx in (30, 52, 120, 142, 164):  # two touching pairs... and a chain of three
        prob[disk((60, cx), 12, shape=prob.shape)] = 0.9
    cfg = PostprocessConfig(watershed=True, block=40)
    labels, nuclei = instances_from_probability(prob, 0.5, cfg)
    assert np.array_equal(labels > 0, prob >= 0.5)
    assert len(nuclei) == labels.max() == 5
    assert sorted(n.id for n in nuclei) == list(range(1, 6))
    for n in nuclei:
        assert n.area == int((labels == n.id).sum())
    assert label_mask(prob >= 0.5).max() == 2  # without the watershed: two blobs


def test_uint8_probabilities_are_rescaled() -> None:
    prob = np.zeros((20, 20), np.uint8)
    prob[5:10, 5:10] = 204
    labels = label_mask(prob >= 128)
    comps_out = np.zeros(prob.shape, np.uint32)
    comps = connected_components(labels > 0, comps_out)
    (n,) = list(iter_nuclei(comps_out, prob, comps))
    assert n.mean_prob == pytest.approx(0.8)


def test_foreground_is_strictly_above_the_threshold() -> None:
    p = np.array([0.0, 0.4999, 0.5, 0.5001, 1.0], np.float32)
    assert foreground(p, 0.5).tolist() == [False, False, False, True, True]
    assert foreground(torch.from_numpy(p), 0.5).tolist() == [False, False, False, True, True]
    labels, nuclei = instances_from_probability(np.full((4, 4), 0.5), 0.5)
    assert not labels.any() and nuclei == []  # a tie everywhere: no nucleus
