"""The readers on the real MoNuSeg and TNBC copies in ``<repo>/../shared/data``.

Skipped when the data is absent. Expected counts come from ``shared/data/SOURCES.md``.
The big arrays are read once per module to keep this file well under a minute.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pseudoedgenet.data.monuseg import list_monuseg, read_monuseg
from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.data.tnbc import read_tnbc
from pseudoedgenet.errors import DataError
from pseudoedgenet.labels import points_from_instances

pytestmark = pytest.mark.realdata

#: The 13 training images whose XML is present; B0-5710 agrees less well with its mask.
XML_IMAGES = [
    "TCGA-21-5784-01Z-00-DX1",
    "TCGA-21-5786-01Z-00-DX1",
    "TCGA-50-5931-01Z-00-DX1",
    "TCGA-A7-A13E-01Z-00-DX1",
    "TCGA-AR-A1AK-01Z-00-DX1",
    "TCGA-AR-A1AS-01Z-00-DX1",
    "TCGA-B0-5698-01Z-00-DX1",
    "TCGA-B0-5710-01Z-00-DX1",
    "TCGA-B0-5711-01Z-00-DX1",
    "TCGA-CH-5767-01Z-00-DX1",
    "TCGA-E2-A1B5-01Z-00-DX1",
    "TCGA-G9-6362-01Z-00-DX1",
    "TCGA-NH-A8F7-01A-01-TS1",
]
POOR_XML = "TCGA-B0-5710-01Z-00-DX1"


def _sub(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def monuseg_root(shared_data: Path) -> Path:
    return _sub(shared_data, "monuseg")


@pytest.fixture(scope="module")
def tnbc_root(shared_data: Path) -> Path:
    return _sub(shared_data, "tnbc")


@pytest.fixture(scope="module")
def monuseg_train(monuseg_root: Path) -> list[Sample]:
    return list(read_monuseg(monuseg_root, "train", "masks"))


@pytest.fixture(scope="module")
def tnbc(tnbc_root: Path) -> list[Sample]:
    return list(read_tnbc(tnbc_root))


def assert_points_inside(sample: Sample) -> int:
    """Every point of the sample's instances lies in its own instance; returns the count."""
    assert sample.instances is not None
    pts = points_from_instances(sample.instances)
    ids = np.unique(sample.instances)
    ids = ids[ids != 0]
    assert len(pts) == len(ids)
    cols, rows = pts[:, 0].astype(int), pts[:, 1].astype(int)
    np.testing.assert_array_equal(sample.instances[rows, cols], ids, err_msg=sample.name)
    return len(pts)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# -------------------------------------------------------------------------- MoNuSeg


def test_monuseg_train_has_30_images_and_16958_points(monuseg_train: list[Sample]) -> None:
    assert len(monuseg_train) == 30
    assert len({s.name for s in monuseg_train}) == 30
    for s in monuseg_train:
        assert s.image.shape == (1000, 1000, 3) and s.image.dtype == np.uint8
        assert s.instances is not None and s.instances.dtype == np.uint16
        # ids are relabelled 1..N
        assert int(s.instances.max()) == len(np.unique(s.instances)) - 1
    assert sum(assert_points_inside(s) for s in monuseg_train) == 16958
    assert Counter(s.group for s in monuseg_train) == {
        "liver": 6,
        "breast": 6,
        "kidney": 6,
        "prostate": 6,
        "bladder": 2,
        "colon": 2,
        "stomach": 2,
    }
    # the pixel size comes from the XML's MicronsPerPixel: 12 of the 13 XML have one
    # (NH-A8F7's root element has no attributes)
    with_mpp = {s.name: s.info["mpp"][0] for s in monuseg_train if s.info and s.info["mpp"]}
    assert sorted(with_mpp) == sorted(set(XML_IMAGES) - {"TCGA-NH-A8F7-01A-01-TS1"})
    assert all(0.245 <= m <= 0.253 for m in with_mpp.values())
    assert with_mpp["TCGA-21-5784-01Z-00-DX1"] == pytest.approx(0.2527)


def test_monuseg_xml_reader_fails_on_the_first_missing_xml(monuseg_root: Path) -> None:
    first = list_monuseg(monuseg_root, "train")[0]
    assert first.stem == "TCGA-18-5592-01Z-00-DX1"  # one of the 17 without XML
    with pytest.raises(DataError) as exc:
        list(read_monuseg(monuseg_root, "train", "xml"))
    missing = monuseg_root / "train" / "annotations" / f"{first.stem}.xml"
    assert exc.value.path == missing
    assert str(exc.value) == f"{missing}: annotation for {first.name} not found"


def test_monuseg_xml_and_masks_agree(
    monuseg_root: Path, monuseg_train: list[Sample], tmp_path: Path
) -> None:
    # a MoNuSeg layout holding only the 13 images that have XML (symlinks, no copies)
    for sub, suffix in (("images", ".tif"), ("annotations", ".xml")):
        (tmp_path / "train" / sub).mkdir(parents=True)
        for name in XML_IMAGES:
            src = monuseg_root / "train" / sub / f"{name}{suffix}"
            (tmp_path / "train" / sub / src.name).symlink_to(src)
    masks = {s.name: s for s in monuseg_train}
    seen = []
    for s in read_monuseg(tmp_path, "train", "xml"):
        seen.append(s.name)
        ref = masks[s.name]
        np.testing.assert_array_equal(s.image, ref.image)
        assert s.group == ref.group
        fg_xml, fg_mask = s.instances > 0, ref.instances > 0
        score = iou(fg_xml, fg_mask)
        assert score >= (0.85 if s.name == POOR_XML else 0.97), (s.name, score)
        # the 1-based convention is the right one: reading the vertices as 0-based
        # (polygons one pixel down and right) agrees clearly worse
        shifted = np.zeros_like(fg_xml)
        shifted[1:, 1:] = fg_xml[:-1, :-1]
        assert iou(shifted, fg_mask) < score - 0.03, s.name
        n_xml = len(np.unique(s.instances)) - 1
        n_mask = int(ref.instances.max())
        assert abs(n_xml - n_mask) <= 1, (s.name, n_xml, n_mask)
        assert_points_inside(s)
    assert seen == XML_IMAGES


def test_monuseg_test_split_has_14_images(monuseg_root: Path) -> None:
    samples = list(read_monuseg(monuseg_root, "test"))  # no instance_masks: XML
    assert len(samples) == 14
    assert all(s.image.shape == (1000, 1000, 3) for s in samples)
    assert sum(assert_points_inside(s) for s in samples) == 6697


# ----------------------------------------------------------------------------- TNBC


def test_tnbc_has_50_images_and_4028_points(tnbc: list[Sample]) -> None:
    assert len(tnbc) == 50
    for s in tnbc:
        assert s.image.shape == (512, 512, 3) and s.image.dtype == np.uint8
        assert s.name.startswith(f"{s.group}_")
    assert sum(assert_points_inside(s) for s in tnbc) == 4028
    per_slide = Counter(s.group for s in tnbc)
    assert per_slide == {
        "01": 7,
        "02": 3,
        "03": 5,
        "04": 8,
        "05": 4,
        "06": 3,
        "07": 3,
        "08": 4,
        "09": 6,
        "10": 4,
        "11": 3,
    }


def test_tnbc_prepare_patient_folds(tnbc: list[Sample], tnbc_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "tnbc"
    meta = prepare_dataset(
        tnbc, out, source={"reader": "tnbc", "path": str(tnbc_root)}, k=10, split_by="group"
    )
    assert (meta["n_images"], meta["n_points"]) == (50, 4028)
    folds = json.loads((out / "folds.json").read_text())
    assert (folds["k"], folds["by"]) == (10, "group")
    patient_fold = {}
    for i, fold in enumerate(folds["folds"]):
        assert fold
        for name in fold:
            assert patient_fold.setdefault(name.split("_")[0], i) == i, name
    assert len(patient_fold) == 11
    ds = PreparedDataset(out)
    assert len(ds) == 50
    s = ds.sample("09_2")
    np.testing.assert_array_equal(s.image, next(t for t in tnbc if t.name == "09_2").image)
    assert s.group == "09"
