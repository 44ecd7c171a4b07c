"""The walkthrough's example slide: geometry, QuPath conventions, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pseudoedgenet.data.folder import read_folder
from pseudoedgenet.data.slide import open_slide
from pseudoedgenet.errors import DataError
from pseudoedgenet.walkthrough import build_example, main, score_prediction

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "monuseg_crops"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    samples = list(read_folder(EXAMPLES))
    out = tmp_path_factory.mktemp("wt") / "example"
    build_example(samples[:6], samples[6:], out, mpp=0.5)
    return out, samples


def test_slide_holds_the_images_at_their_boxes(example: tuple[Path, list]) -> None:
    out, samples = example
    meta = json.loads((out / "example.json").read_text())
    assert meta["size"] == [3 * (256 + 32) + 32] * 2
    with open_slide(out / "slide.tif", level=0) as slide:
        assert slide.mpp == pytest.approx((0.5, 0.5))
        for t, s in zip(meta["tiles"], samples, strict=True):
            box = (t["y"], t["y"] + t["h"], t["x"], t["x"] + t["w"])
            np.testing.assert_array_equal(slide.read(box), s.image)
    tf = tifffile.TiffFile(out / "slide.tif")
    levels = tf.series[0].levels
    assert [lv.shape[:2] for lv in levels] == [(896, 896), (448, 448)]
    assert all(lv.keyframe.is_tiled for lv in levels)
    truth = tifffile.imread(out / "truth" / "instances.tif")
    t0, s0 = meta["tiles"][0], samples[0]
    np.testing.assert_array_equal(
        truth[t0["y"] : t0["y"] + 256, t0["x"] : t0["x"] + 256] > 0, s0.instances > 0
    )
    # instance ids are unique across the images
    t1 = meta["tiles"][1]
    a = set(np.unique(truth[t0["y"] : t0["y"] + 256, t0["x"] : t0["x"] + 256])) - {0}
    b = set(np.unique(truth[t1["y"] : t1["y"] + 256, t1["x"] : t1["x"] + 256])) - {0}
    assert a and b and not a & b


def test_clicks_are_in_qupath_convention_and_inside_their_nuclei(
    example: tuple[Path, list],
) -> None:
    out, _ = example
    fc = json.loads((out / "slide.geojson").read_text())
    truth = tifffile.imread(out / "truth" / "instances.tif")
    kinds = [f["geometry"]["type"] for f in fc["features"]]
    assert kinds == ["Polygon", "MultiPoint"] * 6
    ids = [f["id"] for f in fc["features"]]
    assert len(set(ids)) == len(ids)
    for f in fc["features"]:
        if f["geometry"]["type"] != "MultiPoint":
            continue
        q = np.asarray(f["geometry"]["coordinates"])
        # points_from_instances gives integer pixel centres; QuPath puts them at +0.5
        np.testing.assert_array_equal(q % 1, 0.5)
        cols, rows = np.floor(q[:, 0]).astype(int), np.floor(q[:, 1]).astype(int)
        assert (truth[rows, cols] > 0).all()
    # the third region is an octagon, the others rectangles (4 corners + closing vertex)
    rings = [f["geometry"]["coordinates"][0] for f in fc["features"][::2]]
    assert [len(r) for r in rings] == [5, 5, 9, 5, 5, 9]
    assert rings[0][0] == [32 + 4, 32 + 4] and rings[0][2] == [32 + 256 - 4, 32 + 256 - 4]


def test_score_prediction_perfect_empty_and_wrong_size(
    example: tuple[Path, list], tmp_path: Path
) -> None:
    out, _ = example
    truth = tifffile.imread(out / "truth" / "instances.tif")
    tifffile.imwrite(tmp_path / "perfect.tif", ((truth > 0) * 255).astype(np.uint8))
    res = score_prediction(out, tmp_path / "perfect.tif")
    assert res["n"] == 2 and res["mean"]["iou"] == 1.0 and res["mean"]["dice"] == 1.0
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros_like(truth, dtype=np.uint8))
    assert score_prediction(out, tmp_path / "empty.tif")["mean"]["iou"] == 0.0
    tifffile.imwrite(tmp_path / "small.tif", np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match="--level 0"):
        score_prediction(out, tmp_path / "small.tif")


def test_cli_refuses_an_existing_folder(
    example: tuple[Path, list], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = example
    with pytest.raises(SystemExit) as exc:
        main(["make", "--examples", str(EXAMPLES), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists" in err[0]


def test_draw_geojson_places_qupath_coordinates() -> None:
    from pseudoedgenet.viz import draw_geojson

    image = np.zeros((8, 8, 3), np.uint8)
    square = {
        "geometry": {"type": "Polygon", "coordinates": [[[2, 2], [6, 2], [6, 6], [2, 6], [2, 2]]]}
    }
    dot = {"geometry": {"type": "MultiPoint", "coordinates": [[10.5, 9.5]]}}
    pic = draw_geojson(image, [square, dot], origin=(8.0, 8.0), scale=2.0, point_radius=1)
    assert pic.shape == (16, 16, 3)
    # the square lies before the origin: nothing of it is drawn; the click at QuPath
    # (10.5, 9.5) is the centre of image pixel (row 1, col 2) -> picture (3, 5)
    assert (pic[3, 5] == (0, 220, 60)).all()
    assert int((pic.sum(axis=2) > 0).sum()) <= 9
    pic = draw_geojson(image, [square], scale=2.0)
    yellow = np.all(pic == (255, 230, 0), axis=2)
    rows, cols = np.nonzero(yellow)
    assert rows.min() >= 3 and rows.max() <= 13 and cols.min() >= 3 and cols.max() <= 13
    assert yellow[4, 8] and yellow[8, 4] and not yellow[8, 8]  # edges drawn, centre not
