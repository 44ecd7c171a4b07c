"""The points-only user's path end to end: QuPath clicks -> prepare -> train -> predict -> QuPath.

Two tests: an exact round trip of QuPath's coordinate convention through ``prepare qupath``
and ``predict`` with a predictor known in closed form (dark pixels are nuclei), and the
walkthrough of ``docs/own-data.md`` at smoke scale through the command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.draw import disk
from skimage.measure import points_in_poly
from typer.testing import CliRunner

from pseudoedgenet.cli import app
from pseudoedgenet.data.prepared import PreparedDataset
from pseudoedgenet.data.qupath import prepare_qupath
from pseudoedgenet.data.slide import open_slide
from pseudoedgenet.inference.run import PredictConfig, predict_slide
from pseudoedgenet.walkthrough import write_pyramidal_rgb

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "monuseg_crops"


def dark_detector(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, T, T)`` RGB 0..255 -> ``(N, 1, T, T)`` logits, high on dark pixels."""
    return (128.0 - x.float().mean(1, keepdim=True)) / 8.0


def _slide_with_nuclei(path: Path, centres: np.ndarray, size: int = 512) -> None:
    image = np.full((size, size, 3), 225, np.uint8)
    for r, c in centres:
        image[disk((r, c), 8.5, shape=(size, size))] = (70, 30, 120)
    write_pyramidal_rgb(path, image, mpp=0.5, tile=128)


def test_qupath_clicks_round_trip_through_prepare_and_predict(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # nuclei centred on pixel centres (row, col); clicks anywhere inside the centre pixel
    grid = np.stack(np.meshgrid(np.arange(40, 480, 40), np.arange(40, 480, 40)), -1)
    centres = grid.reshape(-1, 2) + rng.integers(-6, 7, size=(grid.size // 2, 2))
    src = tmp_path / "src"
    src.mkdir()
    _slide_with_nuclei(src / "slide.tif", centres)
    clicks = centres[:, ::-1] + rng.uniform(0.0, 0.999, size=centres.shape)  # QuPath (x, y)
    region = [[8, 8], [504, 8], [504, 260], [8, 260], [8, 8]]
    inside = clicks[:, 1] < 260
    features = [
        {
            "type": "Feature",
            "id": "r",
            "geometry": {"type": "Polygon", "coordinates": [region]},
            "properties": {"objectType": "annotation", "classification": {"name": "Region*"}},
        },
        {
            "type": "Feature",
            "id": "p",
            "geometry": {"type": "MultiPoint", "coordinates": clicks.tolist()},
            "properties": {"objectType": "annotation"},
        },
    ]
    (src / "slide.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )

    # prepare at level 1: every click labels the level-1 pixel it lies in, and maps back
    meta = prepare_qupath(src, tmp_path / "data", level=1)
    assert meta["qupath"]["points_outside_regions"] == int((~inside).sum())
    ds = PreparedDataset(tmp_path / "data")
    (name,) = ds.names
    info = ds.meta["images"][name]
    assert info["level"] == 1 and info["mpp"] == [1.0, 1.0]
    d, (ox, oy) = info["downsample"][0], info["offset"]
    pts = ds.points(name)
    assert len(pts) == int(inside.sum())
    labelled = np.rint(pts)  # package convention: the pixel a point labels
    back = (labelled + 0.5) * d + np.array([ox, oy])  # level-0 QuPath centre of that pixel
    want = (np.floor(clicks[inside] / d) + 0.5) * d
    np.testing.assert_allclose(np.sort(back, axis=0), np.sort(want, axis=0))

    # predict at level 0 and 1: every click lies inside exactly one nucleus outline, whose
    # centroid is the nucleus centre in QuPath's convention (pixel centre + 0.5)
    for level in (0, 1):
        out = tmp_path / f"pred{level}"
        out.mkdir()
        with open_slide(src / "slide.tif", level=level) as slide:
            cfg = PredictConfig(tile=128, overlap=16, progress=False, level=level)
            predict_slide(dark_detector, slide, out, cfg, torch.device("cpu"), None)
        nuclei = json.loads((out / "nuclei.geojson").read_text())["features"]
        assert len(nuclei) == len(centres)
        rings = [np.asarray(f["geometry"]["coordinates"][0]) for f in nuclei]
        hits = np.stack([points_in_poly(clicks, r) for r in rings])
        assert (hits.sum(axis=0) == 1).all()
        if level == 0:
            cxy = np.array(
                [[f["properties"]["centroid_x"], f["properties"]["centroid_y"]] for f in nuclei]
            )
            owner = hits.argmax(axis=0)
            np.testing.assert_allclose(cxy[owner], centres[:, ::-1] + 0.5, atol=0.01)


def test_walkthrough_runs_end_to_end_at_smoke_scale(tmp_path: Path) -> None:
    from pseudoedgenet.walkthrough import main as walkthrough

    walkthrough(["make", "--examples", str(EXAMPLES), "--out", str(tmp_path / "example")])
    src = tmp_path / "qupath"
    src.mkdir()
    for f in ("slide.tif", "slide.geojson"):
        (src / f).symlink_to(tmp_path / "example" / f)
    runner = CliRunner()

    def cli(*args: object) -> str:
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, res.output
        return res.output

    out = cli("prepare", "qupath", "--src", src, "--out", tmp_path / "data", "--mpp", 0.25)
    assert "6 images" in out
    out = cli(
        "train",
        "--data",
        tmp_path / "data",
        "--out",
        tmp_path / "run",
        "--max-steps",
        2,
        "--crop",
        64,
        "--set",
        "data.batch_size=2",
        "--set",
        "data.num_workers=0",
        "--set",
        "model.encoder=resnet18",
    )
    assert "points only — best.ckpt by point F1" in out
    assert (tmp_path / "run" / "best.ckpt").is_file()
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "val/point_f1" in header and "val/iou" not in header
    out = cli(
        "predict",
        tmp_path / "run" / "best.ckpt",
        src / "slide.tif",
        "--out",
        tmp_path / "pred",
        "--level",
        0,
        "--no-progress",
    )
    assert "slide.tif:" in out and "removed:" in out
    pred = tmp_path / "pred" / "slide"
    assert {"mask.tif", "instances.tif", "nuclei.geojson", "nuclei.csv"} <= {
        p.name for p in pred.iterdir()
    }
    walkthrough(
        [
            "score",
            "--example",
            str(tmp_path / "example"),
            "--mask",
            str(pred / "mask.tif"),
            "--json",
            str(tmp_path / "score.json"),
        ]
    )
    score = json.loads((tmp_path / "score.json").read_text())
    assert score["n"] == 2 and 0.0 <= score["mean"]["iou"] <= 1.0


def test_score_refuses_a_missing_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pseudoedgenet.walkthrough import main as walkthrough

    with pytest.raises(SystemExit) as exc:
        walkthrough(["score", "--example", str(tmp_path / "x"), "--mask", str(tmp_path / "m.tif")])
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "example.json" in line and "python -m pseudoedgenet.walkthrough make" in line
