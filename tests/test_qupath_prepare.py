"""`pseudoedgenet prepare qupath`: QuPath GeoJSON points and regions on images and slides.

Hand-computed expectations (QuPath coordinates: integers at pixel corners; package: at
pixel centres). The synthetic slide is 512 x 512 at level 0 and 256 x 256 at level 1
(mpp 0.25 / 0.5). Regions of :func:`two_regions`:

- rectangle x 100..140, y 100..132: level 0 -> 40 x 32 image, 1280 roi pixels;
  level 1 -> 20 x 16, 320.
- triangle (300, 200), (320, 200), (300, 210): pixel (r, c) is inside when
  (c + .5)/20 + (r + .5)/10 < 1, i.e. c + 2r <= 18: 19 + 17 + ... + 1 = 100 pixels in a
  20 x 10 box; level 1 (halved): c + 2r <= 8: 9 + 7 + 5 + 3 + 1 = 25 in 10 x 5.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.measure import points_in_poly

from conftest import error_line
from pseudoedgenet.config import Config, apply_overrides
from pseudoedgenet.data.datamodule import CropDataset
from pseudoedgenet.data.io import read_image, read_label_image, read_points_csv
from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset
from pseudoedgenet.data.qupath import (
    EDGE_NUDGE,
    qupath_to_pixels,
    rasterise_polygon,
    read_qupath_geojson,
)
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.data.slide import open_slide, write_synthetic_slide
from pseudoedgenet.errors import DataError
from pseudoedgenet.labels import IGNORE, voronoi_labels

E = EDGE_NUDGE  # 1/256: a point on a pixel's left/top edge is moved this far inside

# ------------------------------------------------------------------- synthetic exports


def feature(
    geometry: dict[str, Any],
    cls: str | None = None,
    fid: str | None = None,
    object_type: str = "annotation",
) -> dict[str, Any]:
    """A Feature as QuPath's File > Export objects as GeoJSON writes it."""
    props: dict[str, Any] = {"objectType": object_type}
    if cls is not None:
        props["classification"] = {"name": cls, "color": [255, 0, 0]}
    feat: dict[str, Any] = {"type": "Feature", "geometry": geometry, "properties": props}
    if fid is not None:
        feat["id"] = fid
    return feat


def point(x: float, y: float, **kw: Any) -> dict[str, Any]:
    return feature({"type": "Point", "coordinates": [x, y]}, **kw)


def multipoint(xys: list[tuple[float, float]], **kw: Any) -> dict[str, Any]:
    return feature({"type": "MultiPoint", "coordinates": [list(p) for p in xys]}, **kw)


def ring(*xys: tuple[float, float]) -> list[list[float]]:
    return [list(p) for p in (*xys, xys[0])]


def rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return ring((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def polygon(*rings: list[list[float]], **kw: Any) -> dict[str, Any]:
    return feature({"type": "Polygon", "coordinates": list(rings)}, **kw)


def write_geojson(path: Path, features: list[dict[str, Any]], form: str = "collection") -> Path:
    """``form``: ``collection`` (FeatureCollection), ``list`` (bare list) or ``single``."""
    data: Any = {"type": "FeatureCollection", "features": features}
    if form == "list":
        data = features
    elif form == "single":
        (data,) = features
    path.write_text(json.dumps(data))
    return path


def two_regions() -> list[dict[str, Any]]:
    return [
        polygon(rect(100, 100, 140, 132), cls="Region", fid="r-rect"),
        polygon(ring((300, 200), (320, 200), (300, 210)), cls="Region", fid="r-tri"),
        point(105.0, 110.0, fid="p-corner"),  # exactly on pixel (110, 105)'s corner
        point(139.75, 131.25),
        point(105.3, 110.9),  # same pixel as the first: a duplicate
        multipoint([(301.5, 200.5), (305.25, 202.75), (318.5, 208.5), (50.5, 50.5)]),
        # (318.5, 208.5): in the triangle's box, outside it; (50.5, 50.5): in no box
    ]


@pytest.fixture
def slide_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    write_synthetic_slide(src / "s.tif", size=512, levels=2, tile=256, compression="none")
    write_geojson(src / "s.geojson", two_regions())
    return src


def roi_png(out: Path, name: str) -> np.ndarray:
    arr = np.asarray(Image.open(out / "roi" / f"{name}.png"))
    assert arr.dtype == np.uint8 and set(np.unique(arr)) <= {0, 255}
    return arr == 255


def to_qupath(xy: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The documented way back: offset + (x + 0.5) * downsample."""
    return np.asarray(info["offset"]) + (xy + 0.5) * np.asarray(info["downsample"])


# ------------------------------------------------------------------------ happy paths


def test_two_regions_at_level_0(slide_src: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out"
    code, stdout, _ = cli("prepare", "qupath", "--src", slide_src, "--out", out)
    assert code == 0
    assert stdout.strip() == (
        f"{out}: 2 images, 4 points (points outside every region: 2, duplicates dropped: 1); "
        "2 fold(s), one per image (fewer than 10 images): too few for --fold, which needs 3; "
        "0.25 µm/px\n"
        "  s.tif: level 0 (0.25 µm/px); 2 regions"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "dataset.json",
        "folds.json",
        "images",
        "points",
        "roi",
    ]
    pts0 = read_points_csv(out / "points" / "s_r0.csv")
    np.testing.assert_array_equal(pts0, [[4.5 + E, 9.5 + E], [39.25, 30.75]])
    pts1 = read_points_csv(out / "points" / "s_r1.csv")
    np.testing.assert_array_equal(pts1, [[1.0, 0.0], [4.75, 2.25]])
    # the corner point labels pixel (row 110, col 105) of level 0: (10, 5) of the image
    assert (np.rint(pts0[0, 1]), np.rint(pts0[0, 0])) == (10, 5)

    roi0, roi1 = roi_png(out, "s_r0"), roi_png(out, "s_r1")
    assert roi0.shape == (32, 40) and roi0.sum() == 1280
    assert roi1.shape == (10, 20) and roi1.sum() == 100
    rr, cc = np.indices((10, 20))
    np.testing.assert_array_equal(roi1, cc + 2 * rr <= 18)

    with open_slide(slide_src / "s.tif", level=0) as slide:
        np.testing.assert_array_equal(
            read_image(out / "images" / "s_r0.png"), slide.read((100, 132, 100, 140))
        )
        np.testing.assert_array_equal(
            read_image(out / "images" / "s_r1.png"), slide.read((200, 210, 300, 320))
        )

    meta = json.loads((out / "dataset.json").read_text())
    assert meta["n_images"] == 2 and meta["n_points"] == 4 and meta["has_roi"] is True
    assert meta["has_instances"] is False and not (out / "instances").exists()
    assert meta["groups"] == {"s_r0": "s", "s_r1": "s"}
    q = meta["qupath"]
    assert (q["points_total"], q["points_used"], q["points_outside_regions"]) == (7, 4, 2)
    assert (q["duplicates_dropped"], q["features_skipped_by_class"], q["files"]) == (1, 0, 1)
    r0, r1 = meta["images"]["s_r0"], meta["images"]["s_r1"]
    assert r0["source"] == str(slide_src / "s.tif")
    assert r0["geojson"] == str(slide_src / "s.geojson")
    assert (r0["region"], r0["feature"], r0["id"], r0["class"]) == (0, 0, "r-rect", "Region")
    assert (r1["region"], r1["feature"], r1["id"]) == (1, 1, "r-tri")
    assert (r0["level"], r0["mpp"], r0["downsample"]) == (0, [0.25, 0.25], [1.0, 1.0])
    assert r0["offset"] == [100.0, 100.0] and r1["offset"] == [300.0, 200.0]
    assert r0["size"] == [40, 32] and r1["size"] == [20, 10]
    assert (r0["points"], r0["duplicates_dropped"], r1["duplicates_dropped"]) == (2, 1, 0)
    # mapped back, every point lies in the QuPath pixel it was clicked in
    np.testing.assert_array_equal(
        np.floor(to_qupath(pts0, r0)), np.floor([[105.0, 110.0], [139.75, 131.25]])
    )
    np.testing.assert_array_equal(to_qupath(pts1, r1), [[301.5, 200.5], [305.25, 202.75]])
    folds = json.loads((out / "folds.json").read_text())
    assert folds["k"] == 2 and sorted(n for f in folds["folds"] for n in f) == ["s_r0", "s_r1"]


@pytest.mark.parametrize("choice", [("--level", 1), ("--mpp", 0.5)])
def test_two_regions_at_level_1(slide_src: Path, tmp_path: Path, cli, choice) -> None:
    out = tmp_path / "out"
    code, stdout, _ = cli("prepare", "qupath", "--src", slide_src, "--out", out, *choice)
    assert code == 0, stdout
    # (105.0, 110.0) -> level (52.5, 55.0): column 52, row 55 (on its top edge)
    np.testing.assert_array_equal(
        read_points_csv(out / "points" / "s_r0.csv"), [[2.0, 4.5 + E], [19.375, 15.125]]
    )
    np.testing.assert_array_equal(
        read_points_csv(out / "points" / "s_r1.csv"), [[0.25, -0.25], [2.125, 0.875]]
    )
    roi0, roi1 = roi_png(out, "s_r0"), roi_png(out, "s_r1")
    assert roi0.shape == (16, 20) and roi0.sum() == 320
    assert roi1.shape == (5, 10) and roi1.sum() == 25
    with open_slide(slide_src / "s.tif", level=1) as slide:
        np.testing.assert_array_equal(
            read_image(out / "images" / "s_r1.png"), slide.read((100, 105, 150, 160))
        )
    meta = json.loads((out / "dataset.json").read_text())
    r0 = meta["images"]["s_r0"]
    assert (r0["level"], r0["mpp"], r0["downsample"]) == (1, [0.5, 0.5], [2.0, 2.0])
    assert r0["offset"] == [100.0, 100.0] and meta["images"]["s_r1"]["offset"] == [300.0, 200.0]
    assert meta["qupath"]["duplicates_dropped"] == 1
    assert meta["qupath"]["points_outside_regions"] == 2


@pytest.mark.parametrize("form", ["list", "single"])
def test_whole_small_image_and_ties_at_pixel_corners(tmp_path: Path, cli, form) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    Image.fromarray(image).save(src / "img.png")
    clicks = [(255.0, 0.0), (255.7, 255.99), (0.0, 0.0), (128.5, 127.0), (254.99, 3.0)]
    feats = [multipoint(clicks)] if form == "single" else [point(*p) for p in clicks]
    write_geojson(src / "img.geojson", feats, form)
    code, stdout, _ = cli("prepare", "qupath", "--src", src, "--out", out)
    assert code == 0
    assert stdout.strip().startswith(f"{out}: 1 image, 5 points (")
    assert stdout.strip().endswith(  # said, not silent: the whole image is used
        "\n  img.png: level 0 (no µm/px in the file); no region drawn: the whole image is one "
        "training image, so every nucleus in it must be clicked (unclicked ones count as "
        "background)"
    )
    assert not (out / "roi").exists()
    np.testing.assert_array_equal(read_image(out / "images" / "img.png"), image)
    pts = read_points_csv(out / "points" / "img.csv")
    np.testing.assert_allclose(
        pts,
        [
            [254.5 + E, -0.5 + E],
            [255.2, 255.49],
            [-0.5 + E, -0.5 + E],
            [128.0, 126.5 + E],
            [254.49, 2.5 + E],
        ],
        rtol=0,
        atol=1e-12,
    )
    # each point labels the pixel it was clicked in: (floor(y), floor(x))
    labels = voronoi_labels(pts, (256, 256))
    want = {(int(np.floor(y)), int(np.floor(x))) for x, y in clicks}
    assert {tuple(rc) for rc in np.argwhere(labels == 1)} == want
    info = json.loads((out / "dataset.json").read_text())["images"]["img"]
    assert (info["region"], info["offset"], info["size"], info["mpp"]) == (
        None,
        [0.0, 0.0],
        [256, 256],
        None,
    )


def test_qupath_to_pixels_ties_at_level_1() -> None:
    pix, xy = qupath_to_pixels(np.array([[10.0, 11.0], [11.999, 0.5]]), (2.0, 2.0))
    np.testing.assert_array_equal(pix, [[5, 5], [5, 0]])
    np.testing.assert_allclose(xy, [[4.5 + E, 5.0], [5.4995, -0.25]], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.rint(xy), pix)


def test_hole_class_filters_and_bare_list(tmp_path: Path, cli) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    write_synthetic_slide(src / "s.tif", size=512, levels=1, tile=256, compression="none")
    feats = [
        polygon(rect(400, 400, 420, 420), rect(405, 405, 415, 415), cls="Train", fid="ring"),
        polygon(rect(10, 10, 30, 30), cls="Other"),  # skipped by --region-class
        point(401.5, 401.5, cls="Nucleus"),
        point(416.5, 418.5, cls="Nucleus"),
        point(410.5, 410.5, cls="Nucleus"),  # in the hole: outside every region
        point(402.5, 402.5, cls="Mitosis"),  # skipped by --point-class
        point(20.5, 20.5, cls="Nucleus"),  # in the skipped region: outside
    ]
    write_geojson(src / "s.geojson", feats, "list")
    code, stdout, _ = cli(
        "prepare", "qupath", "--src", src, "--out", out,
        "--region-class", "Train", "--point-class", "Nucleus",
    )  # fmt: skip
    assert code == 0
    assert stdout.strip() == (
        f"{out}: 1 image, 2 points (points outside every region: 2, duplicates dropped: 0); "
        "1 fold(s), one per image (fewer than 10 images): too few for --fold, which needs 3; "
        "0.25 µm/px\n"
        "  s.tif: level 0 (0.25 µm/px); 1 region"
    )
    roi = roi_png(out, "s_r0")
    assert roi.shape == (20, 20) and roi.sum() == 400 - 100
    assert not roi[5:15, 5:15].any() and roi[:5].all()
    np.testing.assert_array_equal(read_points_csv(out / "points" / "s_r0.csv"), [[1, 1], [16, 18]])
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["qupath"]["features_skipped_by_class"] == 2
    assert meta["qupath"]["points_total"] == 4
    assert meta["source"]["region_class"] == "Train" and meta["source"]["point_class"] == "Nucleus"
    assert meta["images"]["s_r0"]["id"] == "ring"


def test_regions_sharing_an_edge_do_not_overlap_at_level_1(tmp_path: Path, cli) -> None:
    # x = 21 is level-1 column 10.5 - 0.5 = 10.0: exactly on the centres of column 10
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    write_synthetic_slide(src / "s.tif", size=64, levels=2, tile=16, compression="none")
    feats = [
        polygon(rect(11, 11, 21, 31)),
        polygon(rect(21, 11, 31, 31)),
        point(15.5, 15.5),
        point(25.5, 25.5),
    ]
    write_geojson(src / "s.geojson", feats)
    assert cli("prepare", "qupath", "--src", src, "--out", out, "--level", 1)[0] == 0
    left, right = roi_png(out, "s_r0"), roi_png(out, "s_r1")
    # boxes: columns 5..10 and 10..15, rows 5..15; centres on the top/left edge are inside
    assert left.shape == right.shape == (11, 6)
    assert left.sum() == right.sum() == 50
    assert left[:10, :5].all() and not left[:, 5].any() and not left[10].any()
    assert right[:10, :5].all() and not right[:, 5].any()
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["images"]["s_r1"]["offset"] == [20.0, 10.0]


def test_rasterise_polygon_matches_point_in_polygon() -> None:
    rng = np.random.default_rng(1)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    radii = rng.uniform(8, 30, 40)
    star = np.stack([70 + radii * np.cos(angles), 50 + radii * np.sin(angles)], axis=1)
    hole = np.array([[66.3, 47.1], [74.2, 46.7], [71.9, 55.3]])
    for ds, box in [((1.0, 1.0), (10, 90, 30, 110)), ((2.0, 3.0), (3, 30, 15, 55))]:
        mask = rasterise_polygon([star, hole], box, ds)
        y0, y1, x0, x1 = box
        rr, cc = np.indices((y1 - y0, x1 - x0))
        centres = np.stack([(cc + x0 + 0.5) * ds[0], (rr + y0 + 0.5) * ds[1]], -1).reshape(-1, 2)
        want = points_in_poly(centres, star) & ~points_in_poly(centres, hole)
        np.testing.assert_array_equal(mask, want.reshape(mask.shape))
        assert 0 < mask.sum() < mask.size


def test_read_qupath_geojson_names_feature_kinds(tmp_path: Path) -> None:
    multi = feature(
        {"type": "MultiPolygon", "coordinates": [[rect(0, 0, 2, 2)], [rect(5, 5, 6, 6)]]},
        cls="A",
        fid="m",
    )
    path = write_geojson(tmp_path / "a.geojson", [multi, multipoint([(1, 2), (3, 4)])])
    regions, points = read_qupath_geojson(path)
    assert (regions.kind, regions.id, regions.classification) == ("region", "m", "A")
    assert len(regions.polygons) == 2 and regions.polygons[1][0].shape == (5, 2)
    assert points.kind == "point" and points.label == "feature 1"
    np.testing.assert_array_equal(points.points, [[1, 2], [3, 4]])


# --------------------------------------------------------------------------- bad input

BAD = [
    "unreadable-slide",
    "not-json",
    "not-geojson",
    "linestring",
    "detection",
    "region-partly-outside",
    "region-without-point",
    "overlapping-regions",
    "no-geojson",
    "orphan-geojson",
    "big-image-without-region",
    "mpp-without-pixel-size",
    "missing-level",
    "point-outside-slide",
    "region-class-not-found",
    "point-class-of-unclassified",
    "qupath-default-name",
]


@pytest.mark.parametrize("problem", BAD)
def test_bad_input_is_one_line_naming_the_file(
    slide_src: Path, tmp_path: Path, cli, problem: str
) -> None:
    out = tmp_path / "out"
    gj = slide_src / "s.geojson"
    args: list[object] = []
    feats = two_regions()
    culprit: Path = gj
    if problem == "unreadable-slide":
        culprit = slide_src / "s.tif"
        culprit.write_bytes(b"II*\x00garbage")
        words = "cannot"
    elif problem == "not-json":
        gj.write_text('{"type": "FeatureCollection", ')
        words = "not JSON"
    elif problem == "not-geojson":
        gj.write_text('{"cells": []}')
        words = "not GeoJSON features"
    elif problem == "linestring":
        feats.insert(2, feature({"type": "LineString", "coordinates": [[1, 1], [5, 5]]}, fid="ln"))
        write_geojson(gj, feats)
        words = "feature 2 (id ln): unsupported geometry type 'LineString'"
    elif problem == "detection":
        feats.append(polygon(rect(1, 1, 9, 9), object_type="detection"))
        write_geojson(gj, feats)
        words = "feature 6: QuPath object type 'detection'"
    elif problem == "region-partly-outside":
        feats.append(polygon(rect(500, 10, 520, 30), fid="edge"))
        write_geojson(gj, feats)
        words = "region feature 6 (id edge) (x 500..520, y 10..30) lies (partly) outside"
    elif problem == "region-without-point":
        feats.append(polygon(rect(200, 300, 240, 340), fid="empty"))
        write_geojson(gj, feats)
        words = "region feature 6 (id empty) contains no point"
    elif problem == "overlapping-regions":
        feats.append(polygon(rect(130, 120, 150, 150), fid="over"))
        write_geojson(gj, feats)
        words = "regions feature 0 (id r-rect) and feature 6 (id over) overlap (120 shared"
    elif problem == "no-geojson":
        culprit = slide_src / "t.png"
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(culprit)
        words = "no t.geojson beside it"
    elif problem == "orphan-geojson":
        culprit = write_geojson(slide_src / "u.geojson", [point(1, 1)])
        words = "GeoJSON without an image"
    elif problem == "big-image-without-region":
        (slide_src / "s.tif").unlink()
        gj.unlink()
        Image.fromarray(np.zeros((8, 4097, 3), np.uint8)).save(slide_src / "wide.png")
        culprit = write_geojson(slide_src / "wide.geojson", [point(3, 3), point(4000, 5)])
        words = "points but no region on a 4097x8 image"
    elif problem == "mpp-without-pixel-size":
        (slide_src / "s.tif").unlink()
        culprit = slide_src / "s.png"
        Image.fromarray(np.zeros((512, 512, 3), np.uint8)).save(culprit)
        args = ["--mpp", 0.5]
        words = "no microns-per-pixel metadata"
    elif problem == "missing-level":
        culprit = slide_src / "s.tif"
        args = ["--level", 2]
        words = "level 2 does not exist"
    elif problem == "point-outside-slide":
        feats.append(point(512.0, 3.0, fid="far"))
        write_geojson(gj, feats)
        words = "feature 6 (id far): point (x=512, y=3) lies outside the 512x512 image s.tif"
    elif problem == "point-class-of-unclassified":
        args = ["--point-class", "Nuclei"]
        words = "no point annotation of class 'Nuclei' (classes here: unclassified); omit "
        words += "--point-class to use them all"
    elif problem == "qupath-default-name":
        culprit = gj.rename(slide_src / "s.tif.geojson")
        words = "GeoJSON without an image or slide of the same name beside it: name it s.geojson"
    else:
        args = ["--region-class", "Tumor"]
        words = "no region annotation of class 'Tumor' (classes here: Region)"
    code, stdout, stderr = cli("prepare", "qupath", "--src", slide_src, "--out", out, *args)
    assert code == 2 and stdout == ""
    line = error_line(stderr)
    assert line.startswith(f"error: {culprit}: "), line
    assert words in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing half-written


def test_big_image_with_a_region_is_fine(tmp_path: Path, cli) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    Image.fromarray(np.zeros((8, 4097, 3), np.uint8)).save(src / "wide.png")
    write_geojson(src / "wide.geojson", [polygon(rect(4000, 0, 4097, 8)), point(4096.5, 7.5)])
    assert cli("prepare", "qupath", "--src", src, "--out", out)[0] == 0
    assert read_image(out / "images" / "wide_r0.png").shape == (8, 97, 3)
    np.testing.assert_array_equal(read_points_csv(out / "points" / "wide_r0.csv"), [[96, 7]])


def test_qupath_options_refused_for_other_sources(tmp_path: Path, make_folder_dataset, cli):
    make_folder_dataset(tmp_path / "src", n=2)
    code, _, stderr = cli(
        "prepare", "folder", "--src", tmp_path / "src", "--out", tmp_path / "o", "--level", 1
    )
    assert code == 2
    assert error_line(stderr) == "error: --level: for `prepare qupath` only"
    assert not (tmp_path / "o").exists()


def test_prepare_folder_records_a_declared_pixel_size(
    tmp_path: Path, make_folder_dataset, cli
) -> None:
    """--mpp on a folder (or TNBC) declares the images' pixel size: every image record
    carries it, the dataset's resolution is it, and the summary line says so."""
    make_folder_dataset(tmp_path / "src", n=3)
    out = tmp_path / "o"
    code, stdout, err = cli(
        "prepare", "folder", "--src", tmp_path / "src", "--out", out, "--mpp", 0.5
    )
    assert code == 0, err
    assert stdout.strip().endswith("; 0.5 µm/px")
    meta = json.loads((out / "dataset.json").read_text())
    assert sorted(meta["images"]) == sorted(meta["groups"])
    assert all(i["mpp"] == [0.5, 0.5] for i in meta["images"].values())
    assert PreparedDataset(out).resolution().mpp == 0.5
    # not a pixel size, or MoNuSeg (read from its XML): one line each, nothing written
    for args, words in (
        (["folder", "--mpp", -1], "--mpp is the images' pixel size in µm per pixel, 0.01 to 10"),
        (["tnbc", "--mpp", 40], "(a 40x scan is about 0.25, 20x about 0.5), got 40"),
        (["monuseg", "--mpp", 0.25], "--mpp: MoNuSeg's pixel size is read from its XML"),
    ):
        code, _, stderr = cli("prepare", *args, "--src", tmp_path / "src", "--out", tmp_path / "x")
        assert code == 2 and words in error_line(stderr)
        assert not (tmp_path / "x").exists()


def test_prepare_qupath_input_mpp_declares_the_pixel_size_of_a_png(tmp_path: Path, cli) -> None:
    """A PNG exported from QuPath records no pixel size: --input-mpp declares it, the image
    records and the summary say so, and a TIFF recording another is refused."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(src / "img.png")
    write_geojson(src / "img.geojson", [point(10.0, 10.0), point(40.0, 30.0)])
    code, stdout, err = cli("prepare", "qupath", "--src", src, "--out", out, "--input-mpp", 0.5)
    assert code == 0, err
    assert "; 0.5 µm/px\n" in stdout
    assert "img.png: level 0 (0.5 µm/px declared by --input-mpp);" in stdout
    info = json.loads((out / "dataset.json").read_text())["images"]["img"]
    assert (info["mpp"], info["mpp_declared"]) == ([0.5, 0.5], True)
    assert PreparedDataset(out).resolution().mpp == 0.5
    # a file that records another pixel size: one line naming it, nothing written
    (src / "img.png").unlink()
    (src / "img.geojson").rename(src / "t.geojson")
    tifffile.imwrite(
        src / "t.tif",
        np.zeros((64, 64, 3), np.uint8),
        photometric="rgb",
        resolution=(40000, 40000),
        resolutionunit="CENTIMETER",
    )
    code, _, err = cli(
        "prepare", "qupath", "--src", src, "--out", tmp_path / "o2", "--input-mpp", 0.5
    )
    line = error_line(err)
    assert code == 2 and "t.tif" in line
    assert "records 0.25 µm/px at level 0 but --input-mpp says 0.5" in line
    assert not (tmp_path / "o2").exists()
    # for `prepare qupath` only; and a pixel size, not a magnification
    for args, words in (
        (["tnbc", "--input-mpp", 0.25], "--input-mpp: for `prepare qupath`; folder and tnbc"),
        (["qupath", "--input-mpp", 40], "(a 40x scan is about 0.25, 20x about 0.5), got 40"),
    ):
        code, _, err = cli("prepare", *args, "--src", src, "--out", tmp_path / "x")
        assert code == 2 and words in error_line(err)
        assert not (tmp_path / "x").exists()


def test_an_ome_tiff_export_pairs_with_its_name_and_gives_its_pixel_size(
    tmp_path: Path, cli
) -> None:
    """QuPath's OME-TIFF export 'img.ome.tif' has its pixel size in the OME-XML only; its
    GeoJSON is 'img.geojson' and its samples are named 'img'."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    tifffile.imwrite(
        src / "img.ome.tif",
        np.zeros((64, 64, 3), np.uint8),
        ome=True,
        photometric="rgb",
        metadata={"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
    )
    write_geojson(src / "img.ome.geojson", [point(10.0, 10.0), point(40.0, 30.0)])
    code, _, err = cli("prepare", "qupath", "--src", src, "--out", out)
    assert code == 2
    assert error_line(err) == (
        f"error: {src / 'img.ome.geojson'}: GeoJSON without an image or slide of the same "
        "name beside it: name it img.geojson (the image's name without its suffix)"
    )
    (src / "img.ome.geojson").rename(src / "img.geojson")
    code, stdout, err = cli("prepare", "qupath", "--src", src, "--out", out)
    assert code == 0, err
    assert "img.ome.tif: level 0 (0.5 µm/px)" in stdout
    info = json.loads((out / "dataset.json").read_text())["images"]["img"]
    assert (info["mpp"], info["mpp_declared"]) == ([0.5, 0.5], False)
    # declaring another pixel size is refused, naming the file
    code, _, err = cli(
        "prepare", "qupath", "--src", src, "--out", tmp_path / "o2", "--input-mpp", 0.25
    )
    assert code == 2 and "img.ome.tif: the file records 0.5 µm/px" in error_line(err)


# ----------------------------------------------------------------- roi downstream


def test_labels_and_show_ignore_outside_the_roi(tmp_path: Path, cli) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    image = np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(image).save(src / "img.png")
    clicks = [(2.5, 2.5), (30.5, 1.5), (1.5, 30.5)]
    write_geojson(
        src / "img.geojson", [polygon(ring((0, 0), (40, 0), (0, 40))), multipoint(clicks)]
    )
    assert cli("prepare", "qupath", "--src", src, "--out", out)[0] == 0
    assert cli("labels", out)[0] == 0
    ds = PreparedDataset(out)
    roi = ds.roi("img_r0")
    rr, cc = np.indices((40, 40))
    assert roi is not None and np.array_equal(roi, rr + cc <= 38)  # centres: x + y < 40
    lab = read_label_image(out / "labels" / "img_r0.png")
    full = voronoi_labels(ds.points("img_r0"), (40, 40))
    assert (full[~roi] == 0).sum() > 5  # without the roi, unclicked tissue is negative
    assert (lab[~roi] == IGNORE).all()
    np.testing.assert_array_equal(lab[roi], full[roi])
    assert (lab == 0).sum() > 10 and (lab == 1).sum() == 3

    picture = tmp_path / "show.png"
    assert cli("show", out, "img_r0", "--out", picture)[0] == 0
    pic = np.asarray(Image.open(picture)).astype(int)
    near_dot = np.zeros((40, 40), bool)
    for x, y in ds.points("img_r0"):
        near_dot |= np.hypot(rr - np.rint(y), cc - np.rint(x)) <= 3
    away = ~roi & ~near_dot
    assert away.sum() > 700
    np.testing.assert_array_equal(pic[away], np.rint(image[:40, :40][away] * 0.5))


def test_prepared_roi_rejects_bad_values(slide_src: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "out"
    assert cli("prepare", "qupath", "--src", slide_src, "--out", out)[0] == 0
    Image.fromarray(np.full((10, 20), 7, np.uint8)).save(out / "roi" / "s_r1.png")
    with pytest.raises(DataError, match="0 \\(outside\\) and 255"):
        PreparedDataset(out).roi("s_r1")
    Image.fromarray(np.full((10, 21), 255, np.uint8)).save(out / "roi" / "s_r1.png")
    with pytest.raises(DataError, match="roi size 21x10 does not match image size 20x10"):
        PreparedDataset(out).roi("s_r1", (10, 20))
    assert PreparedDataset(out).roi("nope") is None


def test_crop_dataset_labels_nothing_outside_the_roi(tmp_path: Path) -> None:
    size = 96
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    rr, cc = np.indices((size, size))
    roi = (rr + cc < 100) & (cc > 10)  # a triangle-ish region
    grid = np.arange(6, size, 12, dtype=np.float64)
    pts = np.array([(x, y) for y in grid for x in grid])  # points inside AND outside the roi
    # the instance mask is the roi, so the item's "mask" shows where the roi went
    sample = Sample("a", image, roi.astype(np.uint16), pts, "", None, roi)
    prepare_dataset([sample], tmp_path / "d", source={"reader": "synthetic"})
    ds = PreparedDataset(tmp_path / "d")
    cfg = apply_overrides(
        Config(),
        ["data.crop=64", "data.context=16", "data.crops_per_epoch=12", "data.batch_size=1"],
    )
    crops = CropDataset(ds, ["a"], cfg.data, seed=0)
    inside_labels = 0
    for i in range(12):
        item = crops[i]
        labels, mask = item["labels"].numpy(), item["mask"].numpy()
        assert labels.shape == mask.shape == (64, 64)
        assert (labels[mask == 0] == IGNORE).all()
        inside_labels += int((labels[mask == 1] != IGNORE).sum())
    assert inside_labels > 50
    # control: the same crops without the roi label unclicked tissue
    (tmp_path / "d" / "roi" / "a.png").unlink()
    plain = CropDataset(PreparedDataset(tmp_path / "d"), ["a"], cfg.data, seed=0)
    outside = sum(
        int((it["labels"][it["mask"] == 0] != IGNORE).sum())
        for it in map(plain.__getitem__, range(12))
    )
    assert outside > 0
