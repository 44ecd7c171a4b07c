"""Pixel size: what the training images were read at, and predict's check of slides
against it (level choice, refusal, --any-resolution)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from conftest import error_line
from pseudoedgenet import __version__
from pseudoedgenet.config import Config, apply_overrides
from pseudoedgenet.data.io import write_png
from pseudoedgenet.data.monuseg import read_xml_mpp
from pseudoedgenet.data.prepared import PreparedDataset, Resolution, image_mpp, prepare_dataset
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.data.slide import (
    MPP_TOLERANCE,
    ome_mpp,
    open_slide,
    write_synthetic_slide,
)
from pseudoedgenet.errors import DataError
from pseudoedgenet.inference.run import PredictConfig, open_input
from pseudoedgenet.models.networks import build_model
from pseudoedgenet.models.trained import TRAINING_MPP_KEY, Segmenter, read_weights


def _dataset(tmp_path: Path, mpps: list[object]) -> PreparedDataset:
    """Three-point images whose dataset.json records give ``mpps`` (None: no record)."""
    samples = []
    for i, m in enumerate(mpps):
        image = np.full((32, 32, 3), 200, np.uint8)
        pts = np.array([[5.0, 5.0], [20.0, 10.0], [12.0, 25.0]])
        info = None if m is None else {"mpp": m}
        samples.append(Sample(f"im{i}", image, None, pts, "", None, info=info))
    out = tmp_path / "prep"
    prepare_dataset(samples, out, source={"reader": "test"}, k=3)
    return PreparedDataset(out)


def test_image_mpp_reads_pairs_and_numbers_and_ignores_the_rest() -> None:
    assert image_mpp({"mpp": [0.25, 0.25]}) == 0.25
    assert image_mpp({"mpp": [0.2, 0.8]}) == pytest.approx(0.4)  # geometric mean
    assert image_mpp({"mpp": 0.5}) == 0.5
    for bad in (None, {}, {"mpp": None}, {"mpp": [0.25]}, {"mpp": [0, 0.25]}, {"mpp": "x"}):
        assert image_mpp(bad) is None, bad
    assert image_mpp({"mpp": [True, 0.25]}) is None


def test_resolution_is_the_median_of_the_images_that_record_one(tmp_path: Path) -> None:
    ds = _dataset(tmp_path, [[0.25, 0.25], [0.26, 0.26], [0.24, 0.24], None])
    res = ds.resolution()
    assert res == Resolution(0.25, 4, 3, (0.24, 0.26))
    assert res.text() == "0.25 µm/px (3 of 4 images record one)"
    # a subset: the named images only
    assert ds.resolution(["im1", "im3"]) == Resolution(0.26, 2, 1, (0.26, 0.26))
    assert ds.resolution(["im0", "im1"]).text() == "0.255 µm/px"


def test_resolution_is_unknown_without_records_and_for_mixed_pixel_sizes(tmp_path: Path) -> None:
    none = _dataset(tmp_path / "a", [None, None, None])
    assert none.resolution() == Resolution(None, 3, 0, None)
    assert none.resolution().text() == "pixel size unknown (no image records one)"
    # 0.25 and 0.5 µm/px: a median would describe neither
    mixed = _dataset(tmp_path / "b", [0.25, 0.25, 0.5])
    assert mixed.resolution().mpp is None
    assert mixed.resolution().text() == (
        "pixel size mixed (0.25-0.5 µm/px): none recorded, predict cannot check it"
    )
    # within the tolerance of the median is one resolution
    edge = 0.25 * (1 + MPP_TOLERANCE) * 0.999
    assert _dataset(tmp_path / "c", [0.25, 0.25, edge]).resolution().mpp == 0.25


def test_read_xml_mpp(tmp_path: Path) -> None:
    xml = tmp_path / "a.xml"
    xml.write_text('<Annotations MicronsPerPixel="0.252000"><Annotation/></Annotations>')
    assert read_xml_mpp(xml) == pytest.approx(0.252)
    xml.write_text("<Annotations><Annotation/></Annotations>")
    assert read_xml_mpp(xml) is None
    xml.write_text('<Annotations MicronsPerPixel="0"/>')
    assert read_xml_mpp(xml) is None
    xml.write_text("<Annotations")
    assert read_xml_mpp(xml) is None
    assert read_xml_mpp(tmp_path / "missing.xml") is None


# ---------------------------------------------------------------------- predict's check


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Levels at 0.25, 0.5 and 1.0 µm/px."""
    path = tmp_path_factory.mktemp("slide") / "s.tif"
    return write_synthetic_slide(path, size=1024, levels=3, mpp=0.25, compression="zlib")


def _open(path: Path, trained: float | None, **kw: object) -> tuple[int, str, float | None]:
    s, check = open_input(path, PredictConfig(**kw), trained)  # type: ignore[arg-type]
    with s:
        return s.level, check.status, check.input_mpp


def test_without_a_level_predict_reads_the_level_nearest_the_training_pixel_size(
    slide: Path,
) -> None:
    assert _open(slide, 0.5) == (1, "as-trained", 0.5)
    assert _open(slide, 0.26) == (0, "as-trained", 0.25)
    assert _open(slide, 1.1) == (2, "as-trained", 1.0)
    # nothing known about the training: level 0, not checked
    assert _open(slide, None) == (0, "not-checked", 0.25)


def test_a_level_off_the_training_pixel_size_is_refused_with_the_level_to_pass(
    slide: Path,
) -> None:
    with pytest.raises(DataError) as exc:
        _open(slide, 0.5, level=0)
    msg = str(exc.value)
    assert "level 0 is 0.25 µm/px but the model was trained at 0.5 µm/px" in msg
    assert "pass --level 1 (0.5 µm/px)" in msg and "--any-resolution" in msg
    # in the option the user gave
    with pytest.raises(DataError, match=r"pass --mpp 0.25 \(level 0, 0.25 µm/px\)"):
        _open(slide, 0.25, mpp=1.0)
    # --any-resolution predicts there anyway, and says so
    assert _open(slide, 0.5, level=0, any_resolution=True) == (0, "any-resolution", 0.25)
    # within the tolerance is the same resolution
    assert _open(slide, 0.25 * (1 + MPP_TOLERANCE) * 0.999, level=0)[1] == "as-trained"


def test_no_level_near_the_training_pixel_size_is_refused(slide: Path) -> None:
    with pytest.raises(DataError) as exc:
        _open(slide, 0.1)
    msg = str(exc.value)
    assert "level 0 is 0.25 µm/px but the model was trained at 0.1 µm/px" in msg
    within = f"within {MPP_TOLERANCE:.0%} of it (levels: 0.25, 0.5, 1 µm/px)"
    assert f"no level of this file is {within}" in msg
    assert _open(slide, 0.1, any_resolution=True) == (0, "any-resolution", 0.25)


def test_an_image_without_pixel_size_is_not_checked(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    write_png(png, np.zeros((64, 64, 3), np.uint8))
    assert _open(png, 0.25) == (0, "not-checked", None)
    with open_slide(png) as s:
        assert s.level_mpp is None


def _f_file(path: Path, training_mpp: object) -> Path:
    """An exported f file (random resnet18 f) recording ``training_mpp``."""
    torch.manual_seed(0)
    cfg = apply_overrides(Config(), ["model.encoder=resnet18"])
    seg = Segmenter(build_model("segnet_fpn", encoder="resnet18"))
    payload = {
        "format": "pseudoedgenet-f",
        "format_version": 2,
        "version": __version__,
        "config": cfg.to_dict(),
        "state_dict": seg.state_dict(),
        TRAINING_MPP_KEY: training_mpp,
    }
    torch.save(payload, path)
    return path


def test_read_weights_reads_the_training_pixel_size(tmp_path: Path) -> None:
    assert read_weights(_f_file(tmp_path / "a.pt", 0.5)).training_mpp == 0.5
    assert read_weights(_f_file(tmp_path / "b.pt", None)).training_mpp is None
    for bad in (-1.0, "0.5", float("inf"), True):
        with pytest.raises(DataError, match=f"invalid {TRAINING_MPP_KEY}"):
            read_weights(_f_file(tmp_path / "c.pt", bad))


def test_predict_cli_reads_the_trained_level_and_refuses_another(  # type: ignore[no-untyped-def]
    cli, slide: Path, tmp_path: Path
) -> None:
    f = _f_file(tmp_path / "f.pt", 1.0)
    code, out, err = cli(
        "predict", f, slide, "--out", tmp_path / "o", "--device", "cpu", "--no-progress"
    )
    assert code == 0, err
    assert "level 2 256x256 (1 µm/px as trained)" in out
    summary = json.loads((tmp_path / "o" / "s" / "predict.json").read_text())
    assert summary["level"] == 2
    assert summary["resolution"] == {
        "training_mpp": 1.0,
        "input_mpp": 1.0,
        "status": "as-trained",
        "ignored_mpp": None,
        "declared_mpp": None,
        "agreeing_mpp": None,
    }
    code, out, err = cli(
        "predict", f, slide, "--out", tmp_path / "o2", "--level", "0", "--device", "cpu"
    )
    assert code == 2
    line = error_line(err)
    assert "level 0 is 0.25 µm/px but the model was trained at 1 µm/px" in line
    assert "pass --level 2" in line
    assert not (tmp_path / "o2").exists()  # refused before anything is written


def test_the_any_resolution_help_names_the_tolerance(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("predict", "--help")
    assert code == 0 and f"{MPP_TOLERANCE:.0%}" in out and "--any-resolution" in out


def _tiff_with_resolution(path: Path, resolution: float, unit: str) -> Path:
    """A two-level tiled TIFF whose resolution tags give ``resolution`` pixels per ``unit``."""
    image = np.zeros((512, 512, 3), np.uint8)
    with tifffile.TiffWriter(path) as tw:
        opts = {"tile": (256, 256), "photometric": "rgb"}
        tw.write(image, resolution=(resolution, resolution), resolutionunit=unit, subifds=1, **opts)
        tw.write(image[::2, ::2], subfiletype=1, **opts)
    return path


@pytest.mark.parametrize(
    ("resolution", "unit", "tag_mpp"),
    [(72.0, "INCH", 25400 / 72), (1.0, "MILLIMETER", 1000.0)],  # a print default; libvips'
)
def test_a_screen_or_print_resolution_is_no_pixel_size(
    tmp_path: Path, resolution: float, unit: str, tag_mpp: float
) -> None:
    path = _tiff_with_resolution(tmp_path / "s.tif", resolution, unit)
    with open_slide(path) as s:
        assert s.mpp is None and s.level_mpp is None
        assert s.ignored_mpp == pytest.approx(tag_mpp)
    # predict: level 0 as without tags, said in the per-input line
    slide, check = open_input(path, PredictConfig(), 0.25)
    with slide:
        assert (slide.level, check.status) == (0, "not-checked")
    assert check.text() == (
        f"the input's tags give {tag_mpp:.4g} µm/px, no scan's (ignored): not checked "
        "against the trained 0.25 µm/px (--input-mpp declares it)"
    )
    with pytest.raises(DataError, match="a screen or print default rather than a scan's"):
        open_slide(path, mpp=0.5)
    # a real scan's pixel size is kept
    with open_slide(_tiff_with_resolution(tmp_path / "ok.tif", 40000.0, "CENTIMETER")) as s:
        assert s.mpp == pytest.approx((0.25, 0.25)) and s.ignored_mpp is None


def test_a_small_single_page_tiff_keeps_its_pixel_size(tmp_path: Path) -> None:
    """Read into memory, its resolution tags still give the pixel size, and are checked."""
    path = tmp_path / "tile.tif"
    image = np.zeros((96, 96, 3), np.uint8)
    tifffile.imwrite(
        path, image, photometric="rgb", resolution=(20000, 20000), resolutionunit="CENTIMETER"
    )
    with open_slide(path) as s:
        assert not s.pyramidal and s.mpp == pytest.approx((0.5, 0.5)) and s.level_mpp == [0.5]
    assert _open(path, 0.5) == (0, "as-trained", 0.5)
    trained_elsewhere = r"level 0 is 0\.5 µm/px but the model was trained at 0\.25"
    with pytest.raises(DataError, match=trained_elsewhere) as exc:
        _open(path, 0.25)
    assert "this image has no other level: export it at 0.25 µm/px, or pass --any-res" in str(
        exc.value
    )
    # a print default in the same place: no pixel size, as a PNG
    tifffile.imwrite(path, image, photometric="rgb", resolution=(72, 72), resolutionunit="INCH")
    with open_slide(path) as s:
        assert s.mpp is None and s.ignored_mpp == pytest.approx(25400 / 72)


def _ome_tiff(path: Path, tile: tuple[int, int] | None = None, **physical: object) -> Path:
    """An OME-TIFF whose pixel size is in its OME-XML only (as QuPath writes it)."""
    image = np.zeros((96, 128, 3), np.uint8)
    tifffile.imwrite(path, image, ome=True, photometric="rgb", tile=tile, metadata=physical)
    return path


@pytest.mark.parametrize(
    ("physical", "expected"),
    [
        ({"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}, (0.5, 0.5)),  # OME's default unit: µm
        ({"PhysicalSizeX": 0.25, "PhysicalSizeXUnit": "\u00b5m"}, (0.25, 0.25)),  # x only
        (
            {
                "PhysicalSizeX": 250,
                "PhysicalSizeXUnit": "nm",
                "PhysicalSizeY": 0.0005,
                "PhysicalSizeYUnit": "mm",
            },
            (0.25, 0.5),
        ),
        ({"PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "pixel"}, None),  # not a length
        ({}, None),
    ],
)
def test_ome_physical_size_is_the_pixel_size(
    tmp_path: Path, physical: dict[str, object], expected: tuple[float, float] | None
) -> None:
    path = _ome_tiff(tmp_path / "region.ome.tif", **physical)
    assert ome_mpp(path) == (None if expected is None else pytest.approx(expected))
    with open_slide(path) as s:
        assert s.mpp == (None if expected is None else pytest.approx(expected))


def test_an_ome_tiff_pixel_size_is_read_checked_and_never_overridden(tmp_path: Path) -> None:
    small = _ome_tiff(tmp_path / "small.ome.tif", PhysicalSizeX=0.5, PhysicalSizeY=0.5)
    tiled = _ome_tiff(
        tmp_path / "tiled.ome.tif", (64, 64), PhysicalSizeX=500, PhysicalSizeXUnit="nm"
    )
    with open_slide(tiled, backend="tiffslide") as s:  # read region by region
        assert s.pyramidal and s.mpp == pytest.approx((0.5, 0.5))
    for path in (small, tiled):
        assert _open(path, 0.5) == (0, "as-trained", 0.5)
        with pytest.raises(DataError, match=r"level 0 is 0\.5 µm/px but the model was trained"):
            _open(path, 0.25)
        with pytest.raises(DataError, match=r"records 0\.5 µm/px at level 0 but --input-mpp"):
            open_slide(path, declared_mpp=0.25)
    # OME-XML that gives a screen default is no pixel size, as the same resolution tags
    dpi = _ome_tiff(tmp_path / "dpi.ome.tif", PhysicalSizeX=352.8)
    with open_slide(dpi) as s:
        assert s.mpp is None and s.ignored_mpp == pytest.approx(352.8)


# ------------------------------------------------------------- --input-mpp (declared)


def test_a_declared_pixel_size_stands_in_for_a_file_without_one(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    write_png(png, np.zeros((64, 64, 3), np.uint8))
    with open_slide(png, declared_mpp=0.5) as s:
        assert s.mpp == (0.5, 0.5) and s.level_mpp == [0.5] and s.declared_mpp == 0.5
    # now checked against the training pixel size, in both directions
    slide, check = open_input(png, PredictConfig(input_mpp=0.5), 0.5)
    slide.close()
    assert (check.status, check.input_mpp, check.declared_mpp) == ("as-trained", 0.5, 0.5)
    assert check.text() == "0.5 µm/px (--input-mpp) as trained"
    with pytest.raises(DataError) as exc:
        _open(png, 0.25, input_mpp=0.5)
    assert str(exc.value).endswith(
        "level 0 is 0.5 µm/px (--input-mpp) but the model was trained at 0.25 µm/px (nothing "
        "is resampled): check --input-mpp 0.5, or export the image at 0.25 µm/px, or pass "
        "--any-resolution to predict at this level anyway"
    )
    assert _open(png, 0.25, input_mpp=0.5, any_resolution=True) == (0, "any-resolution", 0.5)


def test_a_declared_pixel_size_never_overrides_the_files_own(slide: Path, tmp_path: Path) -> None:
    # agreeing (within the tolerance): the file's own is used, nothing is declared, and
    # predict says the given value agreed
    with open_slide(slide, declared_mpp=0.26) as s:
        assert s.mpp == pytest.approx((0.25, 0.25)) and s.declared_mpp is None
    s, check = open_input(slide, PredictConfig(input_mpp=0.26), 0.25)
    s.close()
    assert (check.declared_mpp, check.agreeing_mpp) == (None, 0.26)
    assert check.text() == "0.25 µm/px (the file's; --input-mpp 0.26 agrees) as trained"
    # contradicting: refused, naming both values
    with pytest.raises(DataError) as exc:
        open_slide(slide, declared_mpp=0.5)
    assert "records 0.25 µm/px at level 0 but --input-mpp says 0.5: drop --input-mpp" in str(
        exc.value
    )
    # tags that are no scan's (72 dpi) are replaced by the declaration, and --mpp then works
    tif = _tiff_with_resolution(tmp_path / "dpi.tif", 72.0, "INCH")
    with open_slide(tif, mpp=1.0, declared_mpp=0.5) as s:
        assert (s.level, s.level_mpp, s.declared_mpp) == (1, [0.5, 1.0], 0.5)
    assert s.ignored_mpp == pytest.approx(25400 / 72)
    s, check = open_input(tif, PredictConfig(input_mpp=0.5), 0.5)  # predict keeps both
    s.close()
    assert (check.status, check.declared_mpp, check.agreeing_mpp) == ("as-trained", 0.5, None)
    assert check.ignored_mpp == pytest.approx(25400 / 72)


def test_predict_cli_input_mpp(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    png = tmp_path / "tile.png"
    write_png(png, np.full((64, 64, 3), 200, np.uint8))
    f = _f_file(tmp_path / "f.pt", 0.5)
    args = ("predict", f, png, "--device", "cpu", "--no-progress")
    code, out, err = cli(*args, "--out", tmp_path / "o", "--input-mpp", 0.5)
    assert code == 0, err
    assert "(0.5 µm/px (--input-mpp) as trained)" in out
    summary = json.loads((tmp_path / "o" / "tile" / "predict.json").read_text())
    assert summary["mpp"] == [0.5, 0.5]
    assert summary["resolution"]["declared_mpp"] == 0.5
    assert summary["area_filter"]["unit"] == "um2"
    # declared off the training pixel size: refused before anything is written
    code, _, err = cli(*args, "--out", tmp_path / "o2", "--input-mpp", 0.25)
    assert code == 2 and "but the model was trained at 0.5 µm/px" in error_line(err)
    assert not (tmp_path / "o2").exists()
    # a magnification typed as a pixel size
    code, _, err = cli(*args, "--out", tmp_path / "o3", "--input-mpp", 40)
    assert code == 2
    assert "--input-mpp is the inputs' level-0 pixel size in µm per pixel" in error_line(err)
