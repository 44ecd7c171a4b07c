"""Readers: images, masks, point files, folder/MoNuSeg/TNBC layouts, Aperio XML.

Every bad input must raise a one-line :class:`DataError` that names the file at fault.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pseudoedgenet.data.folder import read_folder
from pseudoedgenet.data.io import (
    read_image,
    read_label_image,
    read_points,
    read_points_csv,
    write_points_csv,
)
from pseudoedgenet.data.monuseg import (
    organ_of,
    rasterize_polygons,
    read_monuseg,
    read_xml_polygons,
)
from pseudoedgenet.data.tnbc import read_tnbc
from pseudoedgenet.errors import DataError

RNG = np.random.default_rng(1234)
RGB = RNG.integers(0, 256, (12, 17, 3), dtype=np.uint8)  # non-square on purpose


def assert_names(exc: pytest.ExceptionInfo[DataError], path: Path, *words: str) -> str:
    """The error is one line, starts with the offending file and contains ``words``."""
    msg = str(exc.value)
    assert "\n" not in msg
    assert exc.value.path == path
    assert msg.startswith(f"{path}: ")
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)
    return msg


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array)
    if mode is not None:
        im = im.convert(mode)
    im.save(path)
    return path


# ------------------------------------------------------------------------ read_image


def test_rgb_png_and_tiff_round_trip(tmp_path: Path) -> None:
    np.testing.assert_array_equal(read_image(save_png(tmp_path / "a.png", RGB)), RGB)
    tifffile.imwrite(tmp_path / "a.tif", RGB, photometric="rgb", compression="lzw")
    out = read_image(tmp_path / "a.tif")
    assert out.dtype == np.uint8 and out.shape == (12, 17, 3)
    np.testing.assert_array_equal(out, RGB)


def test_planar_tiff_is_moved_to_channels_last(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "p.tif", np.moveaxis(RGB, -1, 0), photometric="rgb", planarconfig="separate"
    )
    np.testing.assert_array_equal(read_image(tmp_path / "p.tif"), RGB)


def test_grayscale_png_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = RGB[:, :, 1]
    out = read_image(save_png(tmp_path / "g.png", gray))
    assert out.shape == (12, 17, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_rgba_png_drops_alpha(tmp_path: Path) -> None:
    rgba = np.dstack([RGB, RNG.integers(0, 256, RGB.shape[:2], dtype=np.uint8)])
    out = read_image(save_png(tmp_path / "a.png", rgba))
    assert out.shape == (12, 17, 3)
    np.testing.assert_array_equal(out, RGB)  # colour kept as is, not composited


def test_palette_and_one_bit_png(tmp_path: Path) -> None:
    p = save_png(tmp_path / "p.png", RGB, mode="P")
    np.testing.assert_array_equal(read_image(p), np.asarray(Image.open(p).convert("RGB")))
    bits = RGB[:, :, 0] > 127
    out = read_image(save_png(tmp_path / "b.png", bits))
    np.testing.assert_array_equal(out[:, :, 2], np.where(bits, 255, 0))


@pytest.mark.parametrize(
    "array",
    [RGB.astype(np.uint16) * 257, RGB[:, :, 0].astype(np.uint16) * 257],
    ids=["rgb16", "gray16"],
)
def test_sixteen_bit_tiff_is_refused(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, array)
    with pytest.raises(DataError) as exc:
        read_image(path)
    assert_names(exc, path, "uint16", "8-bit")


def test_sixteen_bit_png_is_refused(tmp_path: Path) -> None:
    path = save_png(tmp_path / "deep.png", RGB[:, :, 0].astype(np.uint16) * 257)
    assert Image.open(path).mode.startswith("I;16")
    with pytest.raises(DataError) as exc:
        read_image(path)
    assert_names(exc, path, "uint16")


def test_truncated_png(tmp_path: Path) -> None:
    good = save_png(tmp_path / "good.png", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = good.read_bytes()
    for cut, name in ((len(data) // 2, "half.png"), (40, "header.png")):
        bad = tmp_path / name
        bad.write_bytes(data[:cut])
        with pytest.raises(DataError) as exc:
            read_image(bad)
        assert_names(exc, bad, "cannot decode")


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_non_image_file(tmp_path: Path, suffix: str) -> None:
    bad = tmp_path / f"notes{suffix}"
    bad.write_text("this is not an image\n")
    with pytest.raises(DataError) as exc:
        read_image(bad)
    assert_names(exc, bad, "cannot decode")


def test_missing_image_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        read_image(tmp_path / "nope.png")
    assert_names(exc, tmp_path / "nope.png", "not found")


def test_truncated_lzw_tiff(tmp_path: Path) -> None:
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), compression="lzw")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError) as exc:
        read_image(bad)
    assert_names(exc, bad)


@pytest.mark.parametrize("compression", ["packbits", "zlib"])
def test_truncated_compressed_tiff(tmp_path: Path, compression: str) -> None:
    good = tmp_path / "good.tif"
    img = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    tifffile.imwrite(good, img, compression=compression, photometric="rgb")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError) as exc:
        read_image(bad)
    assert_names(exc, bad)


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(RGB).convert("CMYK").save(path, quality=95)
    expected = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(read_image(path), expected)


# ------------------------------------------------------------------ read_label_image


def test_label_image_keeps_sixteen_bit_ids(tmp_path: Path) -> None:
    ids = np.zeros((9, 11), dtype=np.uint16)
    ids[1:3, 2:5] = 300
    ids[5:8, 6:9] = 65000
    out = read_label_image(save_png(tmp_path / "m.png", ids))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, ids)


def test_label_image_gray_rgb_is_collapsed_colour_refused(tmp_path: Path) -> None:
    gray = RGB[:, :, 0]
    out = read_label_image(save_png(tmp_path / "grey_rgb.png", np.dstack([gray] * 3)))
    np.testing.assert_array_equal(out, gray)
    path = save_png(tmp_path / "colour.png", RGB)
    with pytest.raises(DataError) as exc:
        read_label_image(path)
    assert_names(exc, path, "single-channel")


def test_label_image_float_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, np.ones((4, 5), dtype=np.float32))
    with pytest.raises(DataError) as exc:
        read_label_image(path)
    assert_names(exc, path, "integer")


# ------------------------------------------------------------------------ point CSV


def test_points_csv_header_variants_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id, X ,Y,class\n1,3.5,2,tumour\n2,0,11,immune\n", encoding="utf-8-sig")
    pts = read_points_csv(path, shape=(12, 17))
    assert pts.dtype == np.float64
    np.testing.assert_array_equal(pts, [[3.5, 2], [0, 11]])  # (x, y), not (row, col)


def test_points_csv_round_trip(tmp_path: Path) -> None:
    pts = np.array([[1.25, 7.5], [16, 0]])
    write_points_csv(tmp_path / "p.csv", pts)
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == "x,y"
    np.testing.assert_array_equal(read_points(tmp_path / "p.csv", (12, 17)), pts)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("x,y\n", ["empty"]),
        ("a,b\n1,2\n", ["header", "x,y"]),
        ("1,2\n3,4\n", ["header"]),
        ("", ["header"]),
        ("x,y\n1,2\nnan,3\n", ["point 1", "nan"]),
        ("x,y\n1,inf\n", ["point 0", "infinite"]),
        ("x,y\n1,2\n17,3\n", ["point 1", "outside", "17x12"]),
        ("x,y\n-1,2\n", ["outside"]),
        ("x,y\n1,12\n", ["outside"]),
        ("x,y\n1,2\nfoo,3\n", ["line 3", "numbers"]),
        ("x,y\n1\n", ["line 2"]),
    ],
    ids=[
        "header-only",
        "wrong-header",
        "no-header",
        "empty-file",
        "nan",
        "inf",
        "x-too-large",
        "x-negative",
        "y-too-large",
        "not-a-number",
        "missing-y",
    ],
)
def test_bad_points_csv(tmp_path: Path, content: str, words: list[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        read_points_csv(path, shape=(12, 17))
    assert_names(exc, path, *words)


def test_points_on_the_last_pixel_are_inside(tmp_path: Path) -> None:
    path = tmp_path / "edge.csv"
    path.write_text("x,y\n16,11\n0,0\n16.4,-0.4\n")
    assert read_points_csv(path, shape=(12, 17)).shape == (3, 2)


def test_points_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"x,y\n1,2\n\xff\xfe3,4\n")
    with pytest.raises(DataError) as exc:
        read_points_csv(path)
    assert_names(exc, path)


# -------------------------------------------------------------------- point GeoJSON


def qupath_points() -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "a",
                "geometry": {"type": "Point", "coordinates": [3.5, 9.0]},
                "properties": {"objectType": "annotation", "classification": {"name": "T"}},
            },
            {
                "type": "Feature",
                "geometry": {"type": "MultiPoint", "coordinates": [[1, 2], [16, 11, 0.0]]},
                "properties": {"objectType": "annotation"},
            },
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
                "properties": {},
            },
        ],
    }


N = 1 / 256  # qupath.EDGE_NUDGE: a click on a pixel's corner is moved this far inside


def _clicks_only() -> dict:
    fc = qupath_points()
    fc["features"] = [f for f in fc["features"] if f["geometry"]["type"] != "Polygon"]
    return fc


def test_geojson_clicks_in_qupath_convention(tmp_path: Path) -> None:
    """QuPath puts integer coordinates at pixel corners: (3.5, 9) is in pixel (col 3,
    row 9), so the package point is its centre (3, 9) up to the corner nudge."""
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps(_clicks_only()))
    pts = read_points(path, shape=(12, 17))
    np.testing.assert_allclose(pts, [[3.0, 8.5 + N], [0.5 + N, 1.5 + N], [15.5 + N, 10.5 + N]])
    np.testing.assert_array_equal(np.rint(pts), [[3, 9], [1, 2], [16, 11]])
    # inside the last pixel of a 17-px row: valid (x = 16.7 -> column 16)
    one = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [16.7, 11.99]},
        "properties": {"objectType": "annotation"},
    }
    (tmp_path / "one.geojson").write_text(json.dumps(one))
    np.testing.assert_array_equal(
        np.rint(read_points(tmp_path / "one.geojson", (12, 17))), [[16, 11]]
    )
    (tmp_path / "list.json").write_text(json.dumps(_clicks_only()["features"]))
    np.testing.assert_allclose(read_points(tmp_path / "list.json"), pts)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", ["not json"]),
        ('{"type": "FeatureCollection", "features": []}', ["no point"]),
        (
            '{"type": "Feature", "geometry": {"type": "Point", "coordinates": [17, 0]}}',
            ["outside"],
        ),
        (
            '{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
            "[[[0, 0], [1, 0], [1, 1], [0, 0]]]}}",
            ["region", "prepare qupath"],
        ),
    ],
    ids=["invalid", "no-points", "outside", "region"],
)
def test_bad_geojson(tmp_path: Path, content: str, words: list[str]) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        read_points(path, shape=(12, 17))
    assert_names(exc, path, *words)


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Point", "coordinates": ["a", "b"]},
        {"type": "Point", "coordinates": [1]},
        {"type": "Point"},
        {"type": "Point", "coordinates": [float("nan"), 0]},
    ],
    ids=["strings", "one-coordinate", "no-coordinates", "nan"],
)
def test_malformed_geojson_geometry(tmp_path: Path, geometry: dict) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "Feature", "geometry": geometry}))
    with pytest.raises(DataError) as exc:
        read_points(path)
    assert_names(exc, path)


def test_unsupported_point_file_type(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(DataError) as exc:
        read_points(path)
    assert_names(exc, path, "unsupported")


# --------------------------------------------------------------------- folder reader


def test_folder_reader_reads_what_was_written(tmp_path: Path, make_folder_dataset) -> None:
    written = make_folder_dataset(tmp_path, n=3)
    samples = list(read_folder(tmp_path))
    assert [s.name for s in samples] == ["img0", "img1", "img2"]
    for s in samples:
        w = written[s.name]
        np.testing.assert_array_equal(s.image, w.image)
        np.testing.assert_array_equal(s.instances, w.instances)
        np.testing.assert_array_equal(s.points, w.points)
        assert s.source == tmp_path / "images" / f"{s.name}.png"


def test_folder_reader_masks_only_and_geojson(tmp_path: Path, make_folder_dataset) -> None:
    make_folder_dataset(tmp_path, n=2, points=False)
    assert all(s.points is None and s.instances is not None for s in read_folder(tmp_path))
    (tmp_path / "points").mkdir()
    (tmp_path / "points" / "img1.geojson").write_text(
        json.dumps({"type": "Feature", "geometry": {"type": "Point", "coordinates": [4, 5]}})
    )
    pts = {s.name: s.points for s in read_folder(tmp_path)}
    assert pts["img0"] is None
    # QuPath's (4, 5) is the corner of pixel (col 4, row 5): that pixel is labelled
    np.testing.assert_array_equal(np.rint(pts["img1"]), [[4, 5]])


@pytest.mark.parametrize("kind", ["points", "masks"])
def test_folder_annotation_without_image(tmp_path: Path, make_folder_dataset, kind: str) -> None:
    make_folder_dataset(tmp_path, n=2)
    orphan = tmp_path / kind / ("ghost.csv" if kind == "points" else "ghost.png")
    if kind == "points":
        orphan.write_text("x,y\n1,1\n")
    else:
        save_png(orphan, np.zeros((24, 32), dtype=np.uint16))
    with pytest.raises(DataError) as exc:
        list(read_folder(tmp_path))
    assert_names(exc, orphan, "no matching image")


def test_folder_mask_size_mismatch(tmp_path: Path, make_folder_dataset) -> None:
    make_folder_dataset(tmp_path, n=2)
    mask = save_png(tmp_path / "masks" / "img1.png", np.zeros((32, 24), dtype=np.uint16))
    with pytest.raises(DataError) as exc:
        list(read_folder(tmp_path))
    assert_names(exc, mask, "24x32", "32x24")


def test_folder_points_outside_image(tmp_path: Path, make_folder_dataset) -> None:
    make_folder_dataset(tmp_path, n=2)
    csv = tmp_path / "points" / "img0.csv"
    csv.write_text("x,y\n5,5\n5,24\n")  # H = 24: row 24 is outside
    with pytest.raises(DataError) as exc:
        list(read_folder(tmp_path))
    assert_names(exc, csv, "point 1", "outside")


def test_folder_image_without_annotation(tmp_path: Path, make_folder_dataset) -> None:
    make_folder_dataset(tmp_path, n=2, masks=False)
    (tmp_path / "points" / "img1.csv").unlink()
    with pytest.raises(DataError) as exc:
        list(read_folder(tmp_path))
    assert_names(exc, tmp_path / "images" / "img1.png", "no point file")


def test_folder_duplicate_stems_and_no_images(tmp_path: Path, make_folder_dataset) -> None:
    make_folder_dataset(tmp_path, n=1)
    tifffile.imwrite(tmp_path / "images" / "img0.tif", RGB)
    with pytest.raises(DataError) as exc:
        list(read_folder(tmp_path))
    assert_names(exc, tmp_path / "images" / "img0.tif", "img0")
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    with pytest.raises(DataError) as exc:
        list(read_folder(empty))
    assert_names(exc, empty / "images", "no images")


def test_folder_bad_image_is_named(tmp_path: Path, make_folder_dataset) -> None:
    make_folder_dataset(tmp_path, n=2)
    img = tmp_path / "images" / "img1.png"
    img.write_bytes(img.read_bytes()[:60])
    with pytest.raises(DataError) as exc:
        list(read_folder(tmp_path))
    assert_names(exc, img, "cannot decode")


# ----------------------------------------------------------------------- Aperio XML


def aperio_xml(regions: list[list[tuple[float, float]]]) -> str:
    body = []
    for i, verts in enumerate(regions, start=1):
        vs = "".join(f'<Vertex X="{x}" Y="{y}" Z="0"/>' for x, y in verts)
        body.append(
            f'<Region Id="{i}" Type="0" Zoom="1"><Attributes/><Vertices>{vs}</Vertices></Region>'
        )
    return (
        '<?xml version="1.0"?>\n<Annotations MicronsPerPixel="0.252000">\n'
        '<Annotation Id="1"><Regions><RegionAttributeHeaders/>'
        + "".join(body)
        + "</Regions></Annotation>\n</Annotations>\n"
    )


def test_xml_square_with_one_based_vertices(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(aperio_xml([[(2, 2), (5, 2), (5, 5), (2, 5)]]))
    polys = read_xml_polygons(path)
    assert len(polys) == 1
    np.testing.assert_array_equal(polys[0], [[1, 1], [4, 1], [4, 4], [1, 4]])
    inst = rasterize_polygons(polys, (7, 8))
    # skimage.draw.polygon includes the pixels on the polygon's edges: rows 1..4, cols 1..4
    expected = np.zeros((7, 8), dtype=np.uint16)
    expected[1:5, 1:5] = 1
    np.testing.assert_array_equal(inst, expected)


def test_xml_rectangle_is_not_transposed_and_later_regions_win(tmp_path: Path) -> None:
    path = tmp_path / "b.xml"
    rect = [(2, 3), (7, 3), (7, 4), (2, 4)]  # X = cols 1..6, Y = rows 2..3
    tri = [(1, 1), (4, 1), (1, 4)]  # 0-based (0,0), (3,0), (0,3): the triangle x + y <= 3
    path.write_text(aperio_xml([rect, tri, [(9, 9), (10, 10)]]))  # 2-vertex region dropped
    polys = read_xml_polygons(path)
    assert len(polys) == 2
    inst = rasterize_polygons(polys, (6, 9))
    rr, cc = np.mgrid[:6, :9]
    expected = np.zeros((6, 9), dtype=np.uint16)
    expected[2:4, 1:7] = 1
    expected[rr + cc <= 3] = 2
    np.testing.assert_array_equal(inst, expected)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("<Annotations><Region></Annotations>", ["invalid xml"]),
        ("", ["invalid xml"]),
        ("<Annotations></Annotations>", ["no <region>"]),
        (aperio_xml([[(1, 1), (2, 1), (2, 2)]]).replace('X="2"', 'X="abc"', 1), ["vertex"]),
    ],
    ids=["mismatched-tag", "empty", "no-regions", "non-numeric"],
)
def test_bad_xml(tmp_path: Path, content: str, words: list[str]) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        read_xml_polygons(path)
    assert_names(exc, path, *words)


# -------------------------------------------------------------------- MoNuSeg layout

MONU = "TCGA-21-5784-01Z-00-DX1"  # liver
MONU2 = "TCGA-B0-5710-01Z-00-DX1"  # kidney


def make_monuseg(root: Path, masks: bool = True, xml: bool = True) -> None:
    for name in (MONU, MONU2):
        (root / "train" / "images").mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(root / "train" / "images" / f"{name}.tif", RGB, photometric="rgb")
        if xml:
            (root / "train" / "annotations").mkdir(parents=True, exist_ok=True)
            (root / "train" / "annotations" / f"{name}.xml").write_text(
                aperio_xml([[(2, 2), (5, 2), (5, 5), (2, 5)], [(9, 3), (12, 3), (12, 8), (9, 8)]])
            )
        if masks:
            ids = np.zeros(RGB.shape[:2], dtype=np.uint16)
            ids[1:5, 1:5] = 17  # non-consecutive ids: relabelled to 1, 2
            ids[2:8, 8:12] = 40
            save_png(root / "train" / "instance_masks" / f"{name}.png", ids)


def test_monuseg_masks_and_xml_agree_and_are_relabelled(tmp_path: Path) -> None:
    make_monuseg(tmp_path)
    by_mask = list(read_monuseg(tmp_path, "train", "masks"))
    by_xml = list(read_monuseg(tmp_path, "train", "xml"))
    auto = list(read_monuseg(tmp_path, "train"))
    assert [s.name for s in by_mask] == [MONU, MONU2]
    assert [s.group for s in by_mask] == ["liver", "kidney"]
    for a, b, c in zip(by_mask, by_xml, auto, strict=True):
        assert a.info == b.info == c.info == {"mpp": [0.252, 0.252]}  # the XML's
        np.testing.assert_array_equal(a.image, RGB)
        assert a.instances.dtype == np.uint16
        assert set(np.unique(a.instances)) == {0, 1, 2}
        np.testing.assert_array_equal(a.instances, b.instances)
        np.testing.assert_array_equal(a.instances, c.instances)


def test_monuseg_without_xml_records_no_pixel_size(tmp_path: Path) -> None:
    make_monuseg(tmp_path, xml=False)
    assert [s.info for s in read_monuseg(tmp_path, "train", "masks")] == [{"mpp": None}] * 2


def test_monuseg_auto_uses_xml_without_masks_folder(tmp_path: Path) -> None:
    make_monuseg(tmp_path, masks=False)
    (sample, _) = read_monuseg(tmp_path, "train")
    assert int(sample.instances.max()) == 2 and sample.instances[1, 1] == 1


def test_monuseg_orphan_missing_and_mismatched_annotations(tmp_path: Path) -> None:
    make_monuseg(tmp_path)
    orphan = tmp_path / "train" / "instance_masks" / "TCGA-XX-0000-01Z-00-DX1.png"
    save_png(orphan, np.zeros((12, 17), dtype=np.uint16))
    with pytest.raises(DataError) as exc:
        list(read_monuseg(tmp_path, "train", "masks"))
    assert_names(exc, orphan, "no matching image")
    orphan.unlink()

    missing = tmp_path / "train" / "annotations" / f"{MONU2}.xml"
    missing.unlink()
    with pytest.raises(DataError) as exc:
        list(read_monuseg(tmp_path, "train", "xml"))
    assert_names(exc, missing, "not found")

    mask = save_png(tmp_path / "train" / "instance_masks" / f"{MONU}.png", np.zeros((12, 16), "u2"))
    with pytest.raises(DataError) as exc:
        list(read_monuseg(tmp_path, "train", "masks"))
    assert_names(exc, mask, "16x12", "17x12")

    with pytest.raises(DataError) as exc:
        list(read_monuseg(tmp_path, "test"))
    assert_names(exc, tmp_path / "test" / "images", "not found")


def test_organ_of() -> None:
    assert organ_of("TCGA-NH-A8F7-01A-01-TS1") == "colon"
    assert organ_of("TCGA-G9-6362-01Z-00-DX1") == "prostate"
    assert organ_of("TCGA-ZZ-0000-01Z") == ""
    assert organ_of("img") == ""


# ----------------------------------------------------------------------- TNBC layout


def make_tnbc(root: Path) -> dict[str, np.ndarray]:
    gt = np.zeros((12, 17), dtype=np.uint8)
    gt[1:3, 1:3] = 255
    gt[3:5, 3:5] = 255  # touches the first blob diagonally only: one 8-connected nucleus
    gt[8:10, 10:15] = 255
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])
    save_png(root / "Slide_01" / "01_1.png", rgba)
    save_png(root / "GT_01" / "01_1.png", gt)
    save_png(root / "Slide_01" / "01_2.png", RGB)
    save_png(root / "GT_01" / "01_2.png", gt[::-1].copy())
    save_png(root / "Slide_02" / "02_1.png", RGB[:, :, 0])
    save_png(root / "GT_02" / "02_1.png", np.zeros_like(gt))
    return {"gt": gt}


def test_tnbc_reader(tmp_path: Path) -> None:
    make_tnbc(tmp_path)
    samples = list(read_tnbc(tmp_path))
    assert [(s.name, s.group) for s in samples] == [("01_1", "01"), ("01_2", "01"), ("02_1", "02")]
    np.testing.assert_array_equal(samples[0].image, RGB)  # alpha dropped
    np.testing.assert_array_equal(samples[1].image, RGB)
    assert samples[2].image.shape == (12, 17, 3)
    inst = samples[0].instances
    assert inst.dtype == np.uint16
    assert set(np.unique(inst)) == {0, 1, 2}
    assert inst[1, 1] == inst[4, 4] != inst[8, 10]
    assert samples[2].instances.max() == 0
    assert all(s.points is None for s in samples)


def test_tnbc_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        list(read_tnbc(tmp_path))
    assert_names(exc, tmp_path, "slide_")

    make_tnbc(tmp_path)
    orphan = save_png(tmp_path / "GT_02" / "02_9.png", np.zeros((12, 17), np.uint8))
    with pytest.raises(DataError) as exc:
        list(read_tnbc(tmp_path))
    assert_names(exc, orphan, "no matching image")
    orphan.unlink()

    lonely = save_png(tmp_path / "Slide_02" / "02_2.png", RGB)
    with pytest.raises(DataError) as exc:
        list(read_tnbc(tmp_path))
    assert_names(exc, lonely, "no mask")
    lonely.unlink()

    bad = save_png(tmp_path / "GT_01" / "01_2.png", np.zeros((17, 12), np.uint8))
    with pytest.raises(DataError) as exc:
        list(read_tnbc(tmp_path))
    assert_names(exc, bad, "does not match")
