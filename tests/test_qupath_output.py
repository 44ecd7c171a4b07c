"""``predict`` outputs as QuPath and napari read them: coordinates in QuPath's pixel-corner
convention, deterministic feature ids, µm measurements, area filters, pyramidal TIFFs."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import error_line
from pseudoedgenet.data.io import read_image
from pseudoedgenet.data.slide import ArraySlide, open_slide
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.inference.run import (
    CSV_COLUMNS,
    DEFAULT_AREA_PX,
    DEFAULT_AREA_UM2,
    PredictConfig,
    SourceRegion,
    _reduce2,
    area_filter,
    build_pyramid,
    feature_id,
    nucleus_feature,
    nucleus_row,
    source_region,
    write_tiff,
)
from pseudoedgenet.postprocess import measure, object_polygon, object_polygons

REPO = Path(__file__).resolve().parents[1]


def _slide(
    shape: tuple[int, int], downsample: int = 1, mpp: tuple[float, float] | None = None
) -> ArraySlide:
    """An in-memory slide of ``shape`` read at a level ``downsample`` times smaller than
    level 0; ``mpp`` is the pixel size of that level."""
    s = ArraySlide(np.zeros((*shape, 3), np.uint8), "img.tif", mpp)
    s.level0_shape = (shape[0] * downsample, shape[1] * downsample)
    s.level = 0 if downsample == 1 else 1
    return s


def _ring_box(ring: list[list[float]]) -> tuple[set[tuple[float, float]], float]:
    """(vertex set, shoelace area) of a closed ring."""
    xy = np.asarray(ring, np.float64)
    assert np.array_equal(xy[0], xy[-1])
    area = 0.5 * float(np.dot(xy[:-1, 0], xy[1:, 1]) - np.dot(xy[1:, 0], xy[:-1, 1]))
    return {(float(x), float(y)) for x, y in xy[:-1]}, area


def test_object_polygon_traces_pixel_edges() -> None:
    one = np.zeros((10, 10), bool)
    one[5, 7] = True  # pixel centred at (x=7, y=5): square [6.5, 7.5] x [4.5, 5.5]
    (ring,) = object_polygon(one)
    verts, area = _ring_box(ring.tolist())
    assert verts == {(6.5, 4.5), (7.5, 4.5), (7.5, 5.5), (6.5, 5.5)} and area == 1.0
    rect = np.zeros((10, 10), bool)
    rect[2:4, 3:6] = True  # 2 rows x 3 columns
    (ring,) = object_polygon(rect, offset=(10.0, 20.0))
    verts, area = _ring_box(ring.tolist())
    assert verts == {(12.5, 21.5), (15.5, 21.5), (15.5, 23.5), (12.5, 23.5)} and area == 6.0


def test_corner_contacts_give_simple_rings() -> None:
    # two pixels touching at the corner (x=0.5, y=0.5): one 8-connected nucleus, two
    # squares meeting at that point (a valid MultiPolygon), not one ring through it twice
    diag = np.array([[1, 0], [0, 1]], bool)
    assert len(object_polygon(diag)) == 1  # the single ring visits (0.5, 0.5) twice
    (a,), (b,) = object_polygons(diag)
    assert _ring_box(a.tolist()) == ({(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)}, 1.0)
    assert _ring_box(b.tolist()) == ({(0.5, 0.5), (1.5, 0.5), (1.5, 1.5), (0.5, 1.5)}, 1.0)
    # one 4-connected piece whose ends touch at a corner: the enclosed background pixel
    # (row 1, col 1) is a hole touching the exterior at (0.5, 0.5), both rings simple
    hook = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 1]], bool)
    ((ext, hole),) = object_polygons(hook)
    verts, area = _ring_box(ext.tolist())
    assert len(verts) == len(ext) - 1 == 6 and area == 8.0
    assert verts == {(0.5, -0.5), (2.5, -0.5), (2.5, 2.5), (-0.5, 2.5), (-0.5, 0.5), (0.5, 0.5)}
    assert _ring_box(hole.tolist()) == ({(0.5, 0.5), (1.5, 0.5), (1.5, 1.5), (0.5, 1.5)}, -1.0)
    # largest piece first; written as a MultiPolygon in QuPath's coordinates
    three = np.array([[1, 1, 0], [0, 0, 1]], bool)
    f = nucleus_feature(measure(three, np.full(three.shape, 0.5), 1), _slide((2, 3)))
    assert f["geometry"]["type"] == "MultiPolygon"
    (big,), (small,) = f["geometry"]["coordinates"]
    assert _ring_box(big)[1] == 2.0 and _ring_box(small) == ({(2, 1), (3, 1), (3, 2), (2, 2)}, 1.0)
    assert f["properties"]["area_px"] == 3


@pytest.mark.parametrize(
    ("downsample", "coords", "square", "centroid", "rect", "rect_centroid"),
    [
        # level 0, QuPath: pixel (row 5, col 7) covers [7, 8] x [5, 6]
        (1, "qupath", (7, 5, 8, 6), (7.5, 5.5), (3, 2, 6, 4), (4.5, 3.0)),
        # downsample 2: level pixel c covers level-0 [2c, 2c + 2)
        (2, "qupath", (14, 10, 16, 12), (15.0, 11.0), (6, 4, 12, 8), (9.0, 6.0)),
        # the package's convention: every value 0.5 less
        (1, "pixel-centre", (6.5, 4.5, 7.5, 5.5), (7.0, 5.0), (2.5, 1.5, 5.5, 3.5), (4.0, 2.5)),
        (
            2,
            "pixel-centre",
            (13.5, 9.5, 15.5, 11.5),
            (14.5, 10.5),
            (5.5, 3.5, 11.5, 7.5),
            (8.5, 5.5),
        ),
    ],
)
def test_feature_vertices_and_centroid_in_level0_coordinates(
    downsample: int,
    coords: str,
    square: tuple[float, float, float, float],
    centroid: tuple[float, float],
    rect: tuple[float, float, float, float],
    rect_centroid: tuple[float, float],
) -> None:
    slide = _slide((12, 12), downsample)
    prob = np.full((12, 12), 0.8)
    for (rows, cols), box, cen, area in (
        ((slice(5, 6), slice(7, 8)), square, centroid, 1),
        ((slice(2, 4), slice(3, 6)), rect, rect_centroid, 6),
    ):
        mask = np.zeros((12, 12), bool)
        mask[rows, cols] = True
        f = nucleus_feature(measure(mask, prob, 1), slide, coords)
        (ring,) = f["geometry"]["coordinates"]
        verts, poly_area = _ring_box(ring)
        x0, y0, x1, y1 = box
        assert verts == {(x0, y0), (x1, y0), (x1, y1), (x0, y1)}
        props = f["properties"]
        assert (props["centroid_x"], props["centroid_y"]) == cen
        assert props["area_px"] == area * downsample**2 == poly_area  # QuPath's own area
        assert props["measurements"]["centroid_x"] == cen[0]
        assert props["objectType"] == "detection"


def test_micron_measurements_only_with_a_pixel_size() -> None:
    mask = np.zeros((12, 12), bool)
    mask[2:4, 3:6] = True
    prob = np.full((12, 12), 0.5)
    n = measure(mask, prob, 4)
    # level read: 0.5 um/px, downsample 2 -> level 0 is 0.25 um/px
    with_mpp = _slide((12, 12), 2, mpp=(0.5, 0.5))
    props = nucleus_feature(n, with_mpp)["properties"]
    assert props["centroid_x_um"] == 9.0 * 0.25 and props["centroid_y_um"] == 6.0 * 0.25
    assert props["area_um2"] == 6 * 0.25  # 6 level pixels of 0.5 x 0.5 um
    assert props["perimeter_px"] == 2 * n.perimeter and props["perimeter_um"] == 0.5 * n.perimeter
    assert props["measurements"]["area_um2"] == props["area_um2"]
    row = dict(zip(CSV_COLUMNS, nucleus_row(n, with_mpp), strict=True))
    assert row["label"] == 4 and row["centroid_x_um"] == 2.25 and row["area_um2"] == 1.5
    assert row["id"] == nucleus_feature(n, with_mpp)["id"]  # joins the CSV to the GeoJSON
    no_mpp = _slide((12, 12), 2)
    props = nucleus_feature(n, no_mpp)["properties"]
    assert not {"centroid_x_um", "centroid_y_um", "area_um2", "perimeter_um"} & set(props)
    assert not {"area_um2"} & set(props["measurements"])
    row = dict(zip(CSV_COLUMNS, nucleus_row(n, no_mpp), strict=True))
    assert [row[k] for k in ("centroid_x_um", "centroid_y_um", "area_um2", "perimeter_um")] == [
        "",
        "",
        "",
        "",
    ]
    assert row["area_px"] == 24


def test_feature_ids_are_deterministic_uuids() -> None:
    a = feature_id("slide.svs", 0, 7)
    assert a == feature_id("slide.svs", 0, 7)  # reruns: same id
    assert uuid.UUID(a).version == 5
    others = {
        feature_id("slide.svs", 0, 8),
        feature_id("other.svs", 0, 7),
        feature_id("slide.svs", 1, 7),
    }
    assert a not in others and len(others) == 3
    mask = np.zeros((4, 4), bool)
    mask[1, 1] = True
    f = nucleus_feature(measure(mask, np.ones((4, 4)), 7), _slide((4, 4)))
    assert f["id"] == feature_id("img.tif", 0, 7)


@pytest.mark.parametrize(
    ("name", "shape", "want"),
    [
        ("slide [x=1024,y=2048,w=512,h=512].png", (512, 512), ("slide", 1024, 2048, 512, 512, 1.0)),
        (
            "TCGA 01 [d=2,x=1000,y=6,w=1024,h=1024].png",
            (512, 512),
            ("TCGA 01", 1000, 6, 1024, 1024, 2),
        ),
        ("a [d=4.5,x=0,y=0,w=900,h=450,z=1].tif", (100, 200), ("a", 0, 0, 900, 450, 4.5)),
        # QuPath rounds the exported size: within 1 px; .ome.tif is one suffix
        ("s [d=2,x=0,y=0,w=1025,h=1025].ome.tif", (513, 512), ("s", 0, 0, 1025, 1025, 2)),
        ("slide.png", (8, 8), None),
        ("slide [x=1,y=2].png", (8, 8), None),
        ("a[b].png", (8, 8), None),
    ],
)
def test_source_region_reads_qupaths_export_names(
    name: str, shape: tuple[int, int], want: tuple[object, ...] | None
) -> None:
    region = source_region(Path(name), shape)
    assert region == (None if want is None else SourceRegion(*want))  # type: ignore[arg-type]


def test_source_region_of_another_size_is_refused() -> None:
    with pytest.raises(DataError) as exc:
        source_region(Path("s [d=2,x=0,y=0,w=100,h=100].png"), (100, 100))
    msg = str(exc.value)
    assert "region of 100x100 px at downsample 2 (50x50 px) but the image is 100x100 px" in msg
    assert "--no-region-from-name" in msg


@pytest.mark.parametrize(("coords", "shift"), [("qupath", 0.0), ("pixel-centre", 0.5)])
def test_a_region_exported_from_qupath_maps_onto_its_source_slide(
    coords: str, shift: float
) -> None:
    """Pixel (row 5, col 7) of a tile exported at d=2 from (x=1000, y=2000) covers source
    level-0 [1014, 1016] x [2010, 2012]: area 4 source px, centroid (1015, 2011)."""
    region = SourceRegion("slide", 1000, 2000, 24, 24, 2.0)
    tile = _slide((12, 12), mpp=(0.5, 0.5))  # 0.5 µm/px tile: the source is 0.25 µm/px
    mask = np.zeros((12, 12), bool)
    mask[5, 7] = True
    f = nucleus_feature(measure(mask, np.full((12, 12), 0.8), 1), tile, coords, region)
    (ring,) = f["geometry"]["coordinates"]
    verts, area = _ring_box(ring)
    x0, y0, x1, y1 = (v - shift for v in (1014, 2010, 1016, 2012))
    assert verts == {(x0, y0), (x1, y0), (x1, y1), (x0, y1)} and area == 4.0
    props = f["properties"]
    assert (props["centroid_x"], props["centroid_y"]) == (1015 - shift, 2011 - shift)
    assert props["area_px"] == 4 and props["area_um2"] == 0.25  # one 0.5 µm tile pixel
    assert props["centroid_x_um"] == (1015 - shift) * 0.25
    assert f["id"] == nucleus_feature(measure(mask, np.ones((12, 12)), 1), tile)["id"]
    # without a pixel size, the px area limits are in source pixels too
    plain = _slide((12, 12))
    assert area_filter(PredictConfig(), plain, region).min_level_px == DEFAULT_AREA_PX[0] / 4


def test_area_filter_units_defaults_and_errors() -> None:
    # with a pixel size: um2 -> pixels of the level read (0.5 um/px: 4 px per um2)
    af = area_filter(PredictConfig(), _slide((8, 8), 2, mpp=(0.5, 0.5)))
    assert (af.unit, af.min, af.max) == ("um2", *DEFAULT_AREA_UM2)
    assert (af.min_level_px, af.max_level_px) == (40.0, 1600.0)
    # without: level-0 pixels -> level pixels (downsample 2: 4 level-0 px per level px)
    af = area_filter(PredictConfig(), _slide((8, 8), 2))
    assert (af.unit, af.min, af.max) == ("px", *DEFAULT_AREA_PX)
    assert (af.min_level_px, af.max_level_px) == (10.0, 1600.0)
    af = area_filter(PredictConfig(min_area=0, max_area=0), _slide((8, 8)))
    assert (af.min_level_px, af.max_level_px) == (0.0, None)  # 0 = keep everything
    with pytest.raises(ConfigError, match="below the smallest"):
        area_filter(PredictConfig(min_area=500), _slide((8, 8), mpp=(0.5, 0.5)))
    with pytest.raises(ConfigError, match="--max-area 5 is below --min-area 10"):
        PredictConfig(min_area=10, max_area=5)
    with pytest.raises(ConfigError, match="--min-area must be >= 0"):
        PredictConfig(min_area=-1)
    with pytest.raises(ConfigError, match="--coords must be one of qupath, pixel-centre"):
        PredictConfig(coords="corner")


def test_reductions_of_the_pyramid_levels() -> None:
    a = np.array([[1, 2, 9], [3, 4, 0], [5, 6, 7]], np.uint8)
    assert _reduce2(a, "stride").tolist() == [[1, 9], [5, 7]]
    assert _reduce2(a, "max").tolist() == [[4, 9], [6, 7]]
    # 2x2 means, the odd last row/column paired with itself: (1+2+3+4)/4 = 2.5 -> 2 (even)
    assert _reduce2(a, "mean").tolist() == [[2, 4], [6, 7]]
    assert _reduce2(a, "mean").dtype == np.uint8


def test_pyramidal_tiff_levels_tiles_resolution_and_readback(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2**32 - 1, (600, 700), dtype=np.uint32)
    prob = rng.integers(0, 256, (600, 700), dtype=np.uint8)

    def new(name: str, dtype: object, shape: tuple[int, int]):  # type: ignore[no-untyped-def]
        return zarr.open_array(
            store=str(tmp_path / f"{name}.zarr"), mode="w", shape=shape, chunks=(128, 128),
            dtype=dtype, fill_value=0,
        )  # fmt: skip

    stores = {}
    for name, arr in (("instances", labels), ("prob", prob)):
        z = new(name, arr.dtype, arr.shape)
        z[:, :] = arr
        stores[name] = z
    reduced = build_pyramid(stores["instances"], np.uint32, "stride", new, "instances", block=256)
    assert [r.shape for r in reduced] == [(300, 350), (150, 175)]  # stops once <= one tile
    out = tmp_path / "instances.tif"
    write_tiff(out, stores["instances"], np.uint32, True, (0.5, 0.5), reduced=reduced, uid=None)
    with tifffile.TiffFile(out) as tf:
        levels = tf.series[0].levels
        assert len(levels) == 3
        for k, level in enumerate(levels):
            page = level.keyframe
            assert page.is_tiled and page.tilewidth == page.tilelength == 256
            assert page.subfiletype == (1 if k else 0)
            # 0.5, 1, 2 um/px -> 20000, 10000, 5000 px/cm
            res = 2e4 / 2**k
            assert page.tags["XResolution"].value == (int(res), 1)
            assert page.tags["YResolution"].value == (int(res), 1)
            assert page.tags["ResolutionUnit"].value == 3  # CENTIMETER
            assert np.array_equal(level.asarray(), labels[:: 2**k, :: 2**k])
        assert tf.is_ome and 'PhysicalSizeX="0.5"' in tf.pages[0].description
    assert np.array_equal(tifffile.imread(out), labels)  # napari's reader: level 0
    # uint8 rasters open as slides (tiffslide reads the pyramid and the pixel size)
    red = build_pyramid(stores["prob"], np.uint8, "mean", new, "prob", block=256)
    write_tiff(tmp_path / "prob.tif", stores["prob"], np.uint8, True, (0.5, 0.5), reduced=red)
    with open_slide(tmp_path / "prob.tif", level=1) as s:
        assert s.level_count == 3 and s.shape == (300, 350) and s.mpp == (1.0, 1.0)
        assert np.array_equal(s.read((0, 300, 0, 350))[..., 0], np.asarray(red[0]))
    with open_slide(tmp_path / "prob.tif") as s:
        assert np.array_equal(s.read((0, 600, 0, 700))[..., 0], prob)


# --------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def f_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_inference import write_random_f

    return write_random_f(tmp_path_factory.mktemp("f") / "f.pt", bias=3.0)


def _features(folder: Path) -> list[dict]:
    return json.loads((folder / "nuclei.geojson").read_text())["features"]


def test_predict_cli_coords_and_area_options(cli, f_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = sorted((REPO / "examples/monuseg_crops/images").glob("*.png"))[0]
    runs = {
        "default": [],
        "centre": ["--coords", "pixel-centre"],
        "all": ["--min-area", "0", "--max-area", "0"],
    }
    meta, out = {}, {}
    for name, extra in runs.items():
        code, stdout, err = cli(
            "predict", f_file, image, "--out", tmp_path / name, "--device", "cpu",
            "--no-progress", *extra,
        )  # fmt: skip
        assert code == 0, err
        out[name] = stdout
        meta[name] = json.loads((tmp_path / name / image.stem / "predict.json").read_text())
    d = meta["default"]
    assert d["coords"] == "qupath" and meta["centre"]["coords"] == "pixel-centre"
    assert d["area_filter"]["unit"] == "px"  # a PNG has no pixel size
    removed = d["removed"]
    assert removed["smaller"] + removed["larger"] > 0
    assert (
        f"{image.name}: {d['nuclei']} nuclei (removed: {removed['smaller']} smaller than 40 px, "
        f"{removed['larger']} larger than 6400 px, 0 with a bounding box side over 1024 px"
    ) in out["default"]
    # no filter: the removed objects come back
    assert meta["all"]["nuclei"] == d["nuclei"] + removed["smaller"] + removed["larger"]
    assert meta["all"]["objects_removed"] == 0 and "removed: 0 with a bounding box" in out["all"]
    # pixel-centre = qupath - 0.5, same nuclei, same ids
    fq, fc = (
        _features(tmp_path / "default" / image.stem),
        _features(tmp_path / "centre" / image.stem),
    )
    assert [f["id"] for f in fq] == [f["id"] for f in fc] and len(fq) == d["nuclei"] > 0
    for a, b in zip(fq, fc, strict=True):
        for ra, rb in zip(a["geometry"]["coordinates"], b["geometry"]["coordinates"], strict=True):
            assert np.array_equal(np.asarray(ra) - 0.5, np.asarray(rb))
        assert a["properties"]["centroid_x"] == pytest.approx(b["properties"]["centroid_x"] + 0.5)
    rows = list(csv.DictReader((tmp_path / "default" / image.stem / "nuclei.csv").open()))
    assert tuple(rows[0]) == CSV_COLUMNS and rows[0]["area_um2"] == ""
    assert all(40 <= float(r["area_px"]) <= 6400 for r in rows)
    # bad values: one line, exit code 2
    for args, msg in (
        (["--min-area", "10", "--max-area", "5"], "--max-area 5 is below --min-area 10"),
        (["--coords", "corners"], "Invalid value for '--coords'"),
    ):
        code, _, err = cli("predict", f_file, image, "--out", tmp_path / "bad", *args)
        assert code == 2
        assert msg in (error_line(err) if msg.startswith("--") else err)
    assert not (tmp_path / "bad").exists()


def test_predict_cli_maps_a_qupath_export_onto_its_slide(cli, f_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same pixels under QuPath's export name: every vertex x' = 100 + 2 x (y alike),
    said in the per-input line and predict.json; --no-region-from-name keeps the tile's."""
    crop = sorted((REPO / "examples/monuseg_crops/images").glob("*.png"))[0]
    h, w = read_image(crop).shape[:2]
    tile = tmp_path / f"slide [d=2,x=100,y=200,w={2 * w},h={2 * h}].png"
    tile.write_bytes(crop.read_bytes())
    args = ("--device", "cpu", "--no-progress", "--min-area", "0", "--max-area", "0")
    code, out, err = cli("predict", f_file, tile, "--out", tmp_path / "src", *args)
    assert code == 0, err
    assert "coordinates in slide's level 0 (x=100, y=200, d=2, from the name)" in out
    code, _, err = cli(
        "predict", f_file, tile, "--out", tmp_path / "own", "--no-region-from-name", *args
    )
    assert code == 0, err
    meta = json.loads((tmp_path / "src" / tile.stem / "predict.json").read_text())
    assert meta["source_region"] == {
        "source": "slide", "x": 100, "y": 200, "w": 2 * w, "h": 2 * h, "d": 2.0,
    }  # fmt: skip
    assert (
        json.loads((tmp_path / "own" / tile.stem / "predict.json").read_text())["source_region"]
        is None
    )
    mapped, own = _features(tmp_path / "src" / tile.stem), _features(tmp_path / "own" / tile.stem)
    assert len(mapped) == len(own) > 0
    for a, b in zip(mapped, own, strict=True):
        for ra, rb in zip(a["geometry"]["coordinates"], b["geometry"]["coordinates"], strict=True):
            assert np.array_equal(np.asarray(ra), np.asarray(rb) * 2 + [100, 200])
        assert a["properties"]["area_px"] == 4 * b["properties"]["area_px"]
    # the same region exported as OME-TIFF: its pixel size read from the OME-XML, its
    # outputs in a folder named without '.ome', the same mapped objects
    ome = tile.with_name(f"{tile.stem}.ome.tif")
    tifffile.imwrite(
        ome, read_image(crop), ome=True, photometric="rgb", metadata={"PhysicalSizeX": 0.25}
    )
    code, out, err = cli("predict", f_file, ome, "--out", tmp_path / "ome", *args)
    assert code == 0, err
    assert f"-> {tmp_path / 'ome' / tile.stem}\n" in out and "0.25 µm/px" in out
    meta = json.loads((tmp_path / "ome" / tile.stem / "predict.json").read_text())
    assert meta["mpp"] == [0.25, 0.25] and meta["source_region"]["source"] == "slide"
    from_ome = _features(tmp_path / "ome" / tile.stem)
    assert [f["geometry"] for f in from_ome] == [f["geometry"] for f in mapped]
    for f in from_ome:  # µm² from the export's 0.25 µm/px = the slide's 0.125 (d=2)
        props = f["properties"]
        assert props["area_um2"] == pytest.approx(props["area_px"] * 0.125**2, abs=1e-3)
    # a name that gives another size: one line, nothing written
    bad = tmp_path / "slide [x=0,y=0,w=10,h=10].png"
    bad.write_bytes(crop.read_bytes())
    code, _, err = cli("predict", f_file, bad, "--out", tmp_path / "bad", *args)
    assert code == 2 and "--no-region-from-name" in error_line(err)
    assert not (tmp_path / "bad").exists()


def test_predict_help_states_the_defaults(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("predict", "--help")
    assert code == 0
    text = " ".join(out.replace("│", " ").split())
    um_lo, um_hi = DEFAULT_AREA_UM2
    px_lo, px_hi = DEFAULT_AREA_PX
    assert f"{um_lo:g} µm² / {px_lo:g} px" in text and f"{um_hi:g} µm² / {px_hi:g} px" in text
    assert "qupath" in text and "pixel-centre" in text
