"""Slide reading, the predict driver and its outputs, the predict CLI, and the memory bound."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from skimage.draw import disk, polygon
from skimage.measure import label

import pseudoedgenet.inference.run as run_mod
from conftest import error_line
from pseudoedgenet import __version__
from pseudoedgenet.config import Config, apply_overrides
from pseudoedgenet.data.io import read_image, read_label_image
from pseudoedgenet.data.slide import (
    ArraySlide,
    TiffSlideSlide,
    open_slide,
    read_window,
    tissue_mask,
    write_synthetic_slide,
)
from pseudoedgenet.engine.module import Segmenter
from pseudoedgenet.errors import DataError
from pseudoedgenet.inference.run import PredictConfig, predict_slide
from pseudoedgenet.inference.tiling import make_tiles, tiles_with_tissue
from pseudoedgenet.models import build_model

REPO = Path(__file__).resolve().parents[1]


def write_random_f(path: Path, encoder: str = "resnet18", bias: float = 0.0) -> Path:
    """An f file (the export format) with random weights; ``bias`` shifts its logits."""
    torch.manual_seed(0)
    seg = Segmenter(build_model("segnet_fpn", encoder=encoder))
    with torch.no_grad():
        seg[1].segmentation_head[0].bias += bias
    cfg = apply_overrides(Config(), [f"model.encoder={encoder}"])
    payload = {
        "format": "pseudoedgenet-f",
        "version": __version__,
        "config": cfg.to_dict(),
        "state_dict": seg.state_dict(),
    }
    torch.save(payload, path)
    return path


def dark_detector(x: torch.Tensor) -> torch.Tensor:
    """A predictor with a 1-pixel receptive field: high logits on dark (nucleus) pixels.

    Shape: ``(N, 3, T, T)`` RGB 0..255 -> ``(N, 1, T, T)`` logits.
    """
    return (128.0 - x.float().mean(1, keepdim=True)) / 8.0


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1500 x 1500 synthetic pyramidal TIFF (levels 1, 1/2, 1/4; 0.25 um/px at level 0)."""
    path = tmp_path_factory.mktemp("slide") / "slide.tif"
    return write_synthetic_slide(path, size=1500, levels=3, seed=3, compression="zlib")


# ------------------------------------------------------------------------------ reading


def test_pyramidal_tiff_levels_mpp_and_regions(small_slide: Path) -> None:
    with open_slide(small_slide) as s0:
        assert isinstance(s0, TiffSlideSlide) and s0.pyramidal
        assert s0.level_count == 3 and s0.shape == (1500, 1500)
        assert s0.mpp == pytest.approx((0.25, 0.25))
        full0 = tifffile.imread(small_slide)
        assert np.array_equal(s0.read((0, 1500, 0, 1500)), full0)
    with open_slide(small_slide, level=1) as s1:
        assert s1.shape == (750, 750) and s1.downsample == (2.0, 2.0)
        assert s1.mpp == pytest.approx((0.5, 0.5))
        with tifffile.TiffFile(small_slide) as tf:
            full1 = tf.series[0].levels[1].asarray()
        rng = np.random.default_rng(0)
        for _ in range(20):
            y0, x0 = rng.integers(-100, 740, 2)
            box = (int(y0), int(y0 + rng.integers(1, 300)), int(x0), int(x0 + rng.integers(1, 300)))
            if min(box[1], 750) <= max(box[0], 0) or min(box[3], 750) <= max(box[2], 0):
                continue
            assert np.array_equal(s1.window(box), read_window(full1, box)), box
        # level 1 pixel (x, y) is centred at level-0 ((x + 0.5) * 2 - 0.5, ...)
        assert s1.to_level0(np.array([0.0, 10.0])).tolist() == [0.5, 20.5]
        # in QuPath's convention it covers level-0 [0, 2) x [20, 22): centre (1, 21)
        assert s1.to_level0(np.array([0.0, 10.0]), "qupath").tolist() == [1.0, 21.0]
    with open_slide(small_slide, mpp=0.9) as s:
        assert s.level == 2  # 1.0 um/px is the nearest
    with open_slide(small_slide, mpp=0.3) as s:
        assert s.level == 0


def test_level_errors_are_one_line(small_slide: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"level 3 does not exist \(the file has levels 0..2\)"):
        open_slide(small_slide, level=3)
    png = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    with pytest.raises(DataError, match=r"level 1 does not exist \(the file has level 0\)"):
        open_slide(png, level=1)
    with pytest.raises(DataError, match="no microns-per-pixel metadata"):
        open_slide(png, mpp=0.5)
    with pytest.raises(DataError, match="--level and --mpp both given"):
        open_slide(small_slide, level=1, mpp=0.5)
    # a level far from the asked resolution is refused, never silently read
    levels = r"level 0: 0.25, level 1: 0.5, level 2: 1 µm/px"
    with pytest.raises(DataError, match=rf"no level near 5 µm/px \(the file has {levels}"):
        open_slide(small_slide, mpp=5)
    with pytest.raises(DataError, match=r"no level near 0\.36 µm/px"):
        open_slide(small_slide, mpp=0.36)


def test_plain_images_are_read_into_memory(tmp_path: Path) -> None:
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    for name in ("a.png", "a.tif"):
        p = tmp_path / name
        if name.endswith(".png"):
            Image.fromarray(img).save(p)
        else:
            tifffile.imwrite(p, img, photometric="rgb")
        with open_slide(p) as s:
            assert isinstance(s, ArraySlide) and not s.pyramidal
            assert np.array_equal(s.read((0, 40, 0, 60)), img)
            assert s.thumbnail(30).shape == (20, 30, 3)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        open_slide(tmp_path / "missing.tif")
    bmp = tmp_path / "x.bmp"
    bmp.write_bytes(b"BM")
    with pytest.raises(DataError, match=r"unsupported format '\.bmp'"):
        open_slide(bmp)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(DataError, match="cannot decode image"):
        open_slide(bad)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="cannot decode image"):
        open_slide(junk)


def test_truncated_slide_fails_with_one_line(small_slide: Path, tmp_path: Path) -> None:
    data = small_slide.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError) as exc, open_slide(cut) as s:
        s.read((0, s.shape[0], 0, s.shape[1]))
    assert "\n" not in str(exc.value)


def test_tissue_mask_skips_glass(small_slide: Path) -> None:
    with open_slide(small_slide) as s:
        thumb = s.thumbnail(256)
        assert thumb.shape == (256, 256, 3)
        tissue = tissue_mask(thumb)
        truth = thumb.mean(axis=2) < 235  # pink tissue and nuclei vs glass (~242)
        assert 0.05 < tissue.mean() < 0.6
        assert tissue[truth].mean() > 0.99  # no tissue is skipped
        tiles = make_tiles(s.shape, 256, 32)
        kept = tiles_with_tissue(tiles, tissue, s.shape)
        assert 0 < len(kept) < len(tiles)
        full = s.read((0, 1500, 0, 1500))
        for t in tiles:
            if t not in kept:  # skipped tiles are all glass
                y0, y1, x0, x1 = t.write
                assert full[y0:y1, x0:x1].mean(axis=2).min() > 235
    all_tissue = np.full((50, 50, 3), 150, np.uint8)
    all_tissue[::2] = 90
    assert tissue_mask(all_tissue).all()  # no bright glass in view: keep everything


# ------------------------------------------------------------------------------ driver


def _disk_image(shape: tuple[int, int], centres: list[tuple[int, int]], r: float = 7) -> np.ndarray:
    img = np.full((*shape, 3), 225, np.uint8)
    for c in centres:
        img[disk(c, r, shape=shape)] = (70, 30, 120)
    return img


def _run_driver(tmp_path: Path, slide, cfg: PredictConfig) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    predict_slide(dark_detector, slide, out, cfg, torch.device("cpu"), None)
    return out


def _check_geojson(path: Path, size: tuple[int, int]) -> list[dict]:
    """Validates the FeatureCollection (QuPath coordinates: pixel corners at integers,
    level-0 extent [0, W0] x [0, H0]); returns its features."""
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection"
    h0, w0 = size
    ids = [f["id"] for f in data["features"]]
    assert len(set(ids)) == len(ids) and all(str(uuid.UUID(i)) == i for i in ids)
    for f in data["features"]:
        assert f["type"] == "Feature"
        assert f["geometry"]["type"] in {"Polygon", "MultiPolygon"}
        props = f["properties"]
        assert props["objectType"] == "detection"
        assert props["classification"]["name"] == "Nucleus"
        assert {"area_px", "centroid_x", "centroid_y"} <= set(props)
        assert props["measurements"]["area_px"] == props["area_px"]
        for ring in (r for p in _polygons(f) for r in p):
            assert len(ring) >= 4 and ring[0] == ring[-1]  # closed
            assert len({tuple(v) for v in ring[:-1]}) == len(ring) - 1  # simple
            xy = np.asarray(ring)
            assert xy[:, 0].min() >= 0 and xy[:, 0].max() <= w0
            assert xy[:, 1].min() >= 0 and xy[:, 1].max() <= h0
    return data["features"]


def _polygons(feature: dict) -> list[list[list[list[float]]]]:
    """The rings of each polygon of a ``Polygon`` or ``MultiPolygon`` feature."""
    g = feature["geometry"]
    return [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]


def _rasterise(feature: dict, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre (QuPath ``(c + 0.5, r + 0.5)``) lies inside the polygon(s)."""
    out = np.zeros(shape, bool)
    for rings in _polygons(feature):
        part = np.zeros(shape, bool)
        for k, ring in enumerate(rings):
            xy = np.asarray(ring) - 0.5  # QuPath -> package convention
            rr, cc = polygon(xy[:, 1], xy[:, 0], shape)
            part[rr, cc] = k == 0
        out |= part
    return out


def test_nuclei_on_tile_borders_appear_once_whole(tmp_path: Path) -> None:
    # tile 64, margin 8: write regions are 48 px; put nuclei on seams and corners
    centres = [(48, 48), (48, 100), (96, 50), (20, 96), (130, 144), (100, 100), (10, 10)]
    image = _disk_image((160, 200), centres)
    cfg = PredictConfig(tile=64, overlap=8, whole_image=False, progress=False)
    out = _run_driver(tmp_path, ArraySlide(image, tmp_path / "img.png"), cfg)
    inst = read_label_image(out / "instances.tif")
    truth = label(image.mean(axis=2) < 128)
    assert inst.max() == len(centres) == truth.max()
    assert np.array_equal(inst, truth)  # every nucleus whole, one id, no seams
    feats = _check_geojson(out / "nuclei.geojson", (160, 200))
    assert sorted(f["properties"]["label"] for f in feats) == list(range(1, len(centres) + 1))
    for f in feats:
        obj = inst == f["properties"]["label"]
        assert np.array_equal(_rasterise(f, inst.shape), obj)  # pixel-edge outline: exact
        xs = np.nonzero(obj)[1]
        # QuPath convention: pixel column c is centred at c + 0.5
        assert f["properties"]["centroid_x"] == pytest.approx(xs.mean() + 0.5, abs=0.01)
        assert f["properties"]["area_px"] == obj.sum()
        assert "area_um2" not in f["properties"]  # no pixel size
    rows = list(csv.DictReader((out / "nuclei.csv").open()))
    assert len(rows) == len(centres)
    assert {int(r["label"]) for r in rows} == set(range(1, len(centres) + 1))
    # the CSV's id is the GeoJSON feature's: the two files join on it (and on label)
    assert {(r["id"], int(r["label"])) for r in rows} == {
        (f["id"], f["properties"]["label"]) for f in feats
    }
    assert float(rows[0]["mean_prob"]) > 0.99
    assert all(r["area_um2"] == r["centroid_x_um"] == r["perimeter_um"] == "" for r in rows)
    mask = np.asarray(Image.open(out / "mask.png"))
    assert set(np.unique(mask)) == {0, 255} and np.array_equal(mask > 0, truth > 0)
    prob = tifffile.imread(out / "prob.tif")
    assert prob.dtype == np.uint8 and prob.shape == (160, 200)
    assert read_image(out / "overlay.png").shape == (160, 200, 3)
    meta = json.loads((out / "predict.json").read_text())
    assert meta["nuclei"] == len(centres) and not meta["whole_image"]
    assert meta["coords"] == "qupath" and meta["area_filter"]["unit"] == "px"
    assert meta["removed"] == {"smaller": 0, "larger": 0, "bounding_box": 0}
    assert meta["foreground_fraction"] == round(float(np.mean(truth > 0)), 4)
    assert run_mod.coverage_note(meta, 0.5) is None  # 7 disks on 160 × 200: plausible
    # the whole-image path gives the same instances for this local predictor
    out2 = tmp_path / "whole"
    out2.mkdir()
    whole = PredictConfig(whole_image=True, progress=False)
    predict_slide(dark_detector, ArraySlide(image), out2, whole, torch.device("cpu"), None)
    assert np.array_equal(read_label_image(out2 / "instances.tif"), inst)


def test_slide_outputs_are_tiled_and_in_level0_coordinates(
    small_slide: Path, tmp_path: Path
) -> None:
    cfg = PredictConfig(tile=256, overlap=32, progress=False, overlay_max_side=300)
    with open_slide(small_slide, level=1) as s:
        out = _run_driver(tmp_path, s, cfg)
        level1 = s.read((0, 750, 0, 750))
    meta = json.loads((out / "predict.json").read_text())
    assert meta["tissue_mask"] and meta["tiles_run"] < meta["tiles"]
    assert meta["downsample"] == [2.0, 2.0] and meta["mpp"] == [0.5, 0.5]
    for name in ("prob.tif", "mask.tif", "instances.tif"):
        with tifffile.TiffFile(out / name) as tf:
            assert tf.pages[0].is_tiled and tf.pages[0].shape == (750, 750)
            assert len(tf.series[0].levels) == 3  # 750 -> 375 -> 188 (fits a 256 tile)
    inst = tifffile.imread(out / "instances.tif")
    assert inst.dtype == np.uint32
    # the default area filter (mpp 0.5 at level 1: 10 um2 = 40 px) removes cut specks
    truth = label(level1.mean(axis=2) < 128)
    sizes = np.bincount(truth.ravel())[1:]
    assert meta["area_filter"] == {
        "unit": "um2", "min": 10.0, "max": 400.0, "min_level_px": 40.0, "max_level_px": 1600.0
    }  # fmt: skip
    assert meta["removed"]["smaller"] == (sizes < 40).sum() > 0
    assert meta["removed"]["larger"] == (sizes > 1600).sum()
    kept = np.isin(truth, 1 + np.flatnonzero((sizes >= 40) & (sizes <= 1600)))
    assert inst.max() == label(kept).max() > 20
    assert np.array_equal(inst > 0, kept)
    assert read_image(out / "overlay.png").shape == (250, 250, 3)  # stride 3
    feats = _check_geojson(out / "nuclei.geojson", (1500, 1500))
    assert len(feats) == inst.max() == meta["nuclei"]
    rng = np.random.default_rng(0)
    for f in rng.choice(feats, 10, replace=False):
        obj = inst == f["properties"]["label"]
        ys, xs = np.nonzero(obj)
        # level-1 pixel (x, y) covers QuPath level-0 [2x, 2x + 2): centred at 2x + 1
        props = f["properties"]
        assert props["centroid_x"] == pytest.approx(2 * xs.mean() + 1, abs=0.01)
        assert props["centroid_y"] == pytest.approx(2 * ys.mean() + 1, abs=0.01)
        assert props["centroid_x_um"] == pytest.approx((2 * xs.mean() + 1) * 0.25, abs=1e-3)
        assert props["area_px"] == 4 * obj.sum()
        assert props["area_um2"] == pytest.approx(obj.sum() * 0.25, abs=1e-3)
        assert props["measurements"]["perimeter_um"] == props["perimeter_um"]
        obj0 = np.kron(obj, np.ones((2, 2), bool))
        assert np.array_equal(_rasterise(f, (1500, 1500)), obj0)
    assert not (out / "_scratch").exists()


# --------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def f_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_f(tmp_path_factory.mktemp("f") / "f.pt", bias=3.0)


def test_predict_cli_end_to_end(cli, f_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = REPO / "examples/monuseg_crops/images"
    inputs = sorted(src.glob("*.png"))[:3]
    code, out, err = cli("predict", f_file, *inputs, "--out", tmp_path / "o", "--device", "cpu")
    assert code == 0, err
    for p in inputs:
        d = tmp_path / "o" / p.stem
        names = sorted(x.name for x in d.iterdir())
        assert names == [
            "instances.tif",
            "mask.png",
            "nuclei.csv",
            "nuclei.geojson",
            "overlay.png",
            "predict.json",
            "prob.tif",
        ]
        assert f"{p.name}:" in out
        meta = json.loads((d / "predict.json").read_text())
        assert meta["whole_image"] and meta["nuclei"] > 0
        _check_geojson(d / "nuclei.geojson", (256, 256))
    assert not [x for x in (tmp_path / "o").iterdir() if x.name.startswith(".")]
    # an existing output folder is refused, then replaced with --force
    code, _, err = cli("predict", f_file, inputs[0], "--out", tmp_path / "o")
    assert code == 2
    assert "output folder exists (use --force to replace it)" in error_line(err)
    code, _, err = cli(
        "predict", f_file, inputs[0], "--out", tmp_path / "o", "--force", "--tiled",
        "--tile-size", "128", "--overlap", "16", "--watershed", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    meta = json.loads((tmp_path / "o" / inputs[0].stem / "predict.json").read_text())
    assert not meta["whole_image"] and meta["tiles"] == 9 and meta["config"]["watershed"]


@pytest.mark.slow
def test_predict_cli_compile_gives_the_eager_result(cli, f_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = sorted((REPO / "examples/monuseg_crops/images").glob("*.png"))[0]
    opts = ["--tiled", "--tile-size", "128", "--overlap", "16", "--precision", "fp32"]
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        code, _, err = cli(
            "predict", f_file, image, "--out", tmp_path / name, *opts, *extra, "--no-progress"
        )
        assert code == 0, err
    eager = tifffile.imread(tmp_path / "eager" / image.stem / "prob.tif").astype(int)
    compiled = tifffile.imread(tmp_path / "compiled" / image.stem / "prob.tif").astype(int)
    assert np.abs(compiled - eager).max() <= 1  # 9 tiles in batches of 4, 4 and 1 (padded)
    meta = json.loads((tmp_path / "compiled" / image.stem / "predict.json").read_text())
    assert meta["config"]["compile"] and meta["tiles"] == 9


def test_predict_cli_shards_split_the_inputs(cli, f_file: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inputs = sorted((REPO / "examples/monuseg_crops/images").glob("*.png"))[:5]
    for i in range(2):
        code, _, err = cli(
            "predict", f_file, *inputs, "--out", tmp_path, "--shard", f"{i}/2", "--no-progress"
        )
        assert code == 0, err
    done = sorted(p.name for p in tmp_path.iterdir())
    assert done == sorted(p.stem for p in inputs)


def test_predict_cli_bad_input_is_one_line(
    cli, f_file: Path, small_slide: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    good = sorted((REPO / "examples/monuseg_crops/images").glob("*.png"))[0]
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    sidecar = tmp_path / "slide.geojson"  # what slides/* picks up beside a QuPath slide
    sidecar.write_text("{}")
    cases = [
        ((junk,), "cannot decode image"),
        ((txt,), "unsupported format '.txt'"),
        ((good, sidecar), "is an annotation file, not an image: give only the images"),
        ((small_slide, "--level", "0", "--mpp", "0.25"), "give either --level or --mpp, not both"),
        ((tmp_path / "missing.tif",), "file not found"),
        ((tmp_path / "*.svs",), "*.svs: no file matches this pattern"),
        ((small_slide, "--level", "7"), "level 7 does not exist"),
        ((good, "--mpp", "0.5"), "no microns-per-pixel metadata"),
        ((good, "--shard", "2/2"), "--shard 2/2"),
        ((good, "--tile-size", "100"), "multiple of 32"),
    ]
    out = tmp_path / "out"
    for args, msg in cases:
        code, _, err = cli("predict", f_file, *args, "--out", out)
        assert code == 2, (args, err)
        assert msg in error_line(err), (args, err)
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
    code, _, err = cli("predict", tmp_path / "nope.pt", good, "--out", out)
    assert code == 2 and "checkpoint not found" in error_line(err)


def test_a_failed_run_leaves_no_partial_output(  # type: ignore[no-untyped-def]
    cli, f_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    good = sorted((REPO / "examples/monuseg_crops/images").glob("*.png"))[0]
    out = tmp_path / "out"
    code, _, err = cli("predict", f_file, good, "--out", out, "--no-progress")
    assert code == 0, err
    before = sorted(p.name for p in (out / good.stem).iterdir())

    def disk_full(model, slide, out_dir, *args):  # type: ignore[no-untyped-def]
        (out_dir / "prob.tif").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_mod, "predict_slide", disk_full)
    code, _, err = cli("predict", f_file, good, "--out", out, "--force", "--no-progress")
    assert code == 2
    assert "cannot write outputs (No space left on device)" in error_line(err)
    assert sorted(p.name for p in out.iterdir()) == [good.stem]  # no temporary folder left
    assert sorted(p.name for p in (out / good.stem).iterdir()) == before  # old result kept
    assert (out / good.stem / "prob.tif").read_bytes() != b"half"


# ------------------------------------------------------------------------ memory bound


@pytest.mark.slow
def test_20k_slide_runs_with_bounded_memory(tmp_path: Path) -> None:
    """``pseudoedgenet predict`` on a 20,000 x 20,000 pyramidal TIFF: peak RSS << 4 GB.

    Level 2 (5,000 x 5,000, ~45 s on 2 cores) keeps the test short; the scratch stores,
    outputs and the reading are the same code at every level (benchmarks/infer.py
    --slide runs level 1 or 0). Peak RSS is that of the child process alone.
    """
    slide = write_synthetic_slide(tmp_path / "big.tif", size=20000, levels=4)
    f = write_random_f(tmp_path / "f.pt", bias=3.0)
    exe = Path(sys.executable).with_name("pseudoedgenet")
    proc = subprocess.run(
        [str(exe), "predict", str(f), str(slide), "--out", str(tmp_path / "out"),
         "--level", "2", "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "out/big/predict.json").read_text())
    assert meta["level0_shape"] == [20000, 20000] and meta["shape"] == [5000, 5000]
    assert meta["tiles_run"] < meta["tiles"] / 2  # the glass is skipped
    assert meta["nuclei"] > 100
    with tifffile.TiffFile(tmp_path / "out/big/instances.tif") as tf:
        assert tf.pages[0].is_tiled and tf.pages[0].shape == (5000, 5000)
    # The child's own VmHWM: ru_maxrss of a child also counts the pytest process it was
    # forked from (the high-water mark survives exec), several GiB late in a full run.
    print(f"peak RSS {meta['peak_rss_mib']:.0f} MiB")
    assert 100 < meta["peak_rss_mib"] < 2.5 * 1024  # well under 4 GB


def test_a_probability_exactly_at_the_threshold_is_background_everywhere(tmp_path: Path) -> None:
    """One rule, p > threshold, in predict and in the test metrics: logit 0 gives p = 0.5
    exactly, which is background in both; prob.tif stores rint(255 p) (= 128 there)."""

    def half_on_dark(x: torch.Tensor) -> torch.Tensor:  # logit 0 on dark pixels, -20 elsewhere
        return torch.where(x.float().mean(1, keepdim=True) < 128, 0.0, -20.0)

    image = _disk_image((96, 96), [(48, 48)])
    dark = image.mean(axis=2) < 128
    out = tmp_path / "pred"
    out.mkdir()
    cfg = PredictConfig(whole_image=True, progress=False)
    predict_slide(half_on_dark, ArraySlide(image), out, cfg, torch.device("cpu"), None)
    assert not np.asarray(Image.open(out / "mask.png")).any()
    assert json.loads((out / "predict.json").read_text())["nuclei"] == 0
    prob = tifffile.imread(out / "prob.tif")
    assert (prob[dark] == 128).all() and (prob[~dark] == 0).all()
    # one step above the tie is foreground: the disk, whole
    cfg = PredictConfig(whole_image=True, progress=False, threshold=0.4999)
    out2 = tmp_path / "pred2"
    out2.mkdir()
    predict_slide(half_on_dark, ArraySlide(image), out2, cfg, torch.device("cpu"), None)
    assert np.array_equal(np.asarray(Image.open(out2 / "mask.png")) > 0, dark)

    # the validation/test path: f's mask of a whole image, same rule
    from pseudoedgenet.engine.module import PseudoEdgeNetModule

    module = PseudoEdgeNetModule(
        apply_overrides(Config(), ["model.encoder=resnet18", "train.channels_last=false"])
    )

    class Zero(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(x[:, :1])

    module.net.f = Zero()
    batch = {"image": torch.from_numpy(image.transpose(2, 0, 1).copy())[None].float()}
    assert not module._predict_mask(batch).any()


@pytest.mark.parametrize(("value", "fraction"), [(0.9, 1.0), (0.1, 0.0)])
def test_an_implausible_mask_gets_a_note(tmp_path: Path, value: float, fraction: float) -> None:
    # an undertrained f marks everything (one object, removed as too large) or nothing:
    # predict says so instead of a bare "0 nuclei"
    def constant(x: torch.Tensor) -> torch.Tensor:
        return torch.logit(torch.full_like(x[:, :1], value))

    out = tmp_path / "out"
    out.mkdir()
    cfg = PredictConfig(tile=64, overlap=8, whole_image=False, progress=False, max_area=4000)
    meta = predict_slide(
        constant,
        ArraySlide(_disk_image((96, 128), [(40, 40)])),
        out,
        cfg,
        torch.device("cpu"),
        None,
    )
    assert meta["nuclei"] == 0 and meta["foreground_fraction"] == fraction
    note = run_mod.coverage_note(meta, 0.5)
    if fraction:
        assert note == (
            "note: f marks 100 % of the pixels read as nucleus (threshold 0.5), far more than "
            "nuclei cover: the model looks undertrained; train it longer, or raise --threshold"
        )
    else:
        assert note is not None and note.startswith("note: f marks no pixel as nucleus")
    assert run_mod.coverage_note({"foreground_fraction": run_mod.COVERAGE_HIGH}, 0.5) is None
