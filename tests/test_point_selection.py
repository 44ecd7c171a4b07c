"""Validation and model selection from points alone, ``train --init``, defaults for own data."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.draw import disk

from conftest import error_line
from pseudoedgenet.config import Config, apply_overrides, default_config, load_config
from pseudoedgenet.data.datamodule import PointDataModule, WholeImageDataset
from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.engine.module import PseudoEdgeNetModule
from pseudoedgenet.engine.train import (
    default_val_images,
    export_segmenter,
    init_weights,
    train_fold,
)
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.metrics import PointMetric, PointScores, point_scores

# --------------------------------------------------------------------------------------
# point scores
# --------------------------------------------------------------------------------------

#: 5 x 8 mask with three 8-connected components: A (rows 0-1, cols 0-2), B (row 3,
#: cols 0-1) and C (rows 2-4, col 7).
MASK = np.array(
    [
        [1, 1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 1],
        [1, 1, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 1],
    ],
    dtype=bool,
)


def test_point_scores_hand_computed() -> None:
    # (x, y): two points in A (merged), one in B, one on background; C has no point
    pts = [(0.0, 0.0), (2.0, 1.0), (1.0, 3.0), (5.0, 4.0)]
    s = point_scores(MASK, pts)
    assert s == PointScores(points=4, points_matched=2, components=3, components_hit=2)
    assert s.recall == 0.5 and s.precision == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(4 / 7)  # 2 * 1/2 * 2/3 / (1/2 + 2/3)
    assert s.as_dict() == {"f1": s.f1, "recall": 0.5, "precision": s.precision}


def test_point_pixel_is_round_y_round_x() -> None:
    # (x=6.6, y=2.4) labels pixel (row 2, col 7) = C; swapped it would be (7, 2): outside
    assert point_scores(MASK, [(6.6, 2.4)]).points_matched == 1
    # x = column: (x=1, y=3) is in B, (x=3, y=1) is background
    assert point_scores(MASK, [(3.0, 1.0)]).points_matched == 0
    with pytest.raises(ValueError, match=r"point 0 .* outside the 5x8 mask"):
        point_scores(MASK, [(2.0, 4.6)])  # round(4.6) = 5 = H


def test_all_foreground_recalls_one_point_per_component() -> None:
    """One component holding every click is not a perfect segmentation."""
    full = np.ones((5, 8), bool)
    s = point_scores(full, [(0, 0), (3, 2), (7, 4), (5, 0)])
    assert (s.recall, s.precision) == (0.25, 1.0)
    assert s.f1 == pytest.approx(0.4)


def test_roi_counts_components_touching_it() -> None:
    roi = np.zeros((5, 8), bool)
    roi[:, :3] = True  # A and B inside, C outside: C is not counted
    s = point_scores(MASK, [(0.0, 0.0), (1.0, 3.0)], roi)
    assert (s.components, s.components_hit, s.precision) == (2, 2, 1.0)
    roi2 = np.zeros((5, 8), bool)
    roi2[4, 7] = True  # one pixel of C in the roi is enough to count C
    s2 = point_scores(MASK, [(0.0, 0.0)], roi2)
    assert (s2.components, s2.components_hit, s2.precision) == (1, 0, 0.0)
    # every point counts for recall, inside the roi or not
    assert (s2.points, s2.points_matched, s2.recall) == (1, 1, 1.0)
    with pytest.raises(ValueError, match="roi has shape"):
        point_scores(MASK, [], np.ones((4, 8), bool))


def test_empty_cases() -> None:
    empty = np.zeros((5, 8), bool)
    nothing = point_scores(empty, np.zeros((0, 2)))
    assert (nothing.recall, nothing.precision, nothing.f1) == (1.0, 1.0, 1.0)
    missed = point_scores(empty, [(1.0, 1.0)])
    assert (missed.recall, missed.precision, missed.f1) == (0.0, 0.0, 0.0)
    unasked = point_scores(MASK, [])
    assert (unasked.recall, unasked.precision, unasked.f1) == (0.0, 0.0, 0.0)


def test_connectivity() -> None:
    diagonal = np.eye(3, dtype=bool)
    assert point_scores(diagonal, [(0, 0), (2, 2)]).points_matched == 1  # 8-connected
    assert point_scores(diagonal, [(0, 0), (2, 2)], connectivity=1).points_matched == 2


def test_point_metric_pools_counts() -> None:
    m = PointMetric()
    with pytest.raises(RuntimeError):
        m.compute()
    m.update(MASK, [(0.0, 0.0), (2.0, 1.0), (1.0, 3.0), (5.0, 4.0)])  # 2/4 points, 2/3 comps
    m.update(np.zeros((4, 4), bool), [(1.0, 1.0), (2.0, 2.0)])  # 0/2 points, 0/0 comps
    assert len(m) == 2 and m.total == PointScores(6, 2, 3, 2)
    got = m.compute()
    assert got["recall"] == pytest.approx(2 / 6) and got["precision"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 * (1 / 3) * (2 / 3) / (1 / 3 + 2 / 3))
    m.reset()
    assert len(m) == 0 and m.total == PointScores()


# --------------------------------------------------------------------------------------
# defaults
# --------------------------------------------------------------------------------------


def test_default_config_is_the_papers_method() -> None:
    # the base; tests/test_config.py checks it against the old configs/*/pen_att.yaml
    assert default_config() == load_config("pen_att")


def test_default_val_images() -> None:
    assert [default_val_images(n) for n in (3, 9, 10, 19, 20, 35)] == [1, 1, 1, 1, 2, 3]


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------


def _sample(name: str, seed: int, masks: bool, size: tuple[int, int] = (80, 96)) -> Sample:
    """Dark disks on a light background, their centres as points (and their mask)."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = np.full((h, w, 3), 220, np.uint8)
    inst = np.zeros((h, w), np.uint16)
    pts = []
    for k, (cy, cx) in enumerate(
        [(y, x) for y in range(14, h - 8, 26) for x in range(14, w - 8, 26)]
    ):
        rr, cc = disk((cy, cx), rng.uniform(5, 8), shape=(h, w))
        inst[rr, cc] = k + 1
        image[rr, cc] = (90, 40, 140)
        pts.append((cx, cy))
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    return Sample(name, image, inst if masks else None, np.array(pts, float), "", None)


def _prepare(root: Path, n: int, masks: bool, k: int | None = 3) -> PreparedDataset:
    prepare_dataset(
        [_sample(f"img{i}", i, masks) for i in range(n)], root, source={"reader": "s"}, k=k
    )
    return PreparedDataset(root)


@pytest.fixture(scope="module")
def points_only(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return _prepare(tmp_path_factory.mktemp("pts") / "data", 6, masks=False)


def test_held_out_validation_split(points_only: PreparedDataset) -> None:
    cfg = Config().data
    dm = PointDataModule(points_only, None, cfg, seed=0, val=2)
    names = points_only.names
    order = np.random.default_rng(0).permutation(6)
    assert dm.val_names == sorted(names[i] for i in order[:2]) and dm.test_names == []
    assert sorted(dm.train_names + dm.val_names) == names
    assert PointDataModule(points_only, None, cfg, seed=0, val=2).val_names == dm.val_names
    assert PointDataModule(points_only, None, cfg, seed=0, val=0).train_names == names
    for bad in (6, -1):
        with pytest.raises(ConfigError, match=rf"--val {bad}: must be 0\.\.5"):
            PointDataModule(points_only, None, cfg, val=bad)
    with pytest.raises(ConfigError, match="--val applies without --fold"):
        PointDataModule(points_only, 0, cfg, val=1)


def test_whole_image_items_carry_points_and_roi(points_only: PreparedDataset) -> None:
    ds = WholeImageDataset(points_only, ["img0"])
    item = ds[0]
    assert item["image"].shape == (3, 80, 96)  # unpadded: the model pads (run_padded)
    assert item["points"].dtype == torch.float64
    assert torch.equal(item["points"], torch.from_numpy(points_only.points("img0")))
    assert item["roi"].shape == (80, 96) and bool(item["roi"].all())  # no roi: every pixel
    assert item["has_mask"] is False and not ds.has_masks and ds.n_with_masks == 0


def test_whole_image_items_carry_the_roi(tmp_path: Path) -> None:
    s = _sample("r", 0, masks=False)
    roi = np.zeros(s.image.shape[:2], bool)
    roi[10:50, 20:70] = True
    prepare_dataset(
        [Sample(s.name, s.image, None, s.points, "", None, roi)],
        tmp_path / "d",
        source={"reader": "s"},
    )
    item = WholeImageDataset(PreparedDataset(tmp_path / "d"), ["r"])[0]
    assert torch.equal(item["roi"], torch.from_numpy(roi))


def test_module_scores_points_within_the_roi_and_masks_only_when_present() -> None:
    """validation_step on one planted mask (MASK above): point counts with the batch's roi;
    IoU only for images with masks."""
    module = _module()
    module._predict_mask = lambda batch: MASK  # type: ignore[method-assign]
    roi = np.zeros((5, 8), bool)
    roi[:, :3] = True
    batch = {
        "points": torch.tensor([[[0.0, 0.0], [2.0, 1.0], [5.0, 4.0]]], dtype=torch.float64),
        "roi": torch.from_numpy(roi)[None],
        "instances": torch.from_numpy(MASK.astype(np.int64))[None],
        "has_mask": torch.tensor([False]),
    }
    module.on_validation_epoch_start()
    module.validation_step(batch, 0)
    assert module.val_point_metric.total == PointScores(3, 1, 2, 1)
    assert len(module.val_metric) == 0
    module.validation_step({**batch, "has_mask": torch.tensor([True])}, 1)
    assert len(module.val_metric) == 1 and len(module.val_point_metric) == 2


# --------------------------------------------------------------------------------------
# --init
# --------------------------------------------------------------------------------------

TINY = ["model.encoder=resnet18", "model.attention_encoder=resnet18", "train.channels_last=false"]


def _module(*overrides: str, seed: int = 0) -> PseudoEdgeNetModule:
    torch.manual_seed(seed)
    return PseudoEdgeNetModule(apply_overrides(Config(), [*TINY, *overrides]))


def _checkpoint(module: PseudoEdgeNetModule, path: Path) -> Path:
    """A file shaped like Lightning's best.ckpt (epoch 7, so a fresh start is visible)."""
    payload = {
        "epoch": 7,
        "global_step": 70,
        "hyper_parameters": {"config": module.cfg.to_dict()},
        "state_dict": module.state_dict(),
    }
    torch.save(payload, path)
    return path


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[PseudoEdgeNetModule, Path]:
    module = _module("model.edge_init=default", seed=1)
    return module, _checkpoint(module, tmp_path_factory.mktemp("init") / "best.ckpt")


def test_init_from_a_training_checkpoint(trained: tuple[PseudoEdgeNetModule, Path]) -> None:
    src, path = trained
    new = _module(seed=2)
    assert not _same(new.net.f, src.net.f)
    rec = init_weights(new, path)
    assert rec["loaded"] == ["f", "g", "h"] and rec["scratch"] == {}
    assert rec["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert _same(new.net.f, src.net.f) and _same(new.net.g, src.net.g)
    assert _same(new.net.h, src.net.h)
    # another g: f and h still load, g starts from scratch and the record says why
    other_g = _module("model.edge_layers=2", seed=2)
    before = {k: v.clone() for k, v in other_g.net.g.state_dict().items()}
    rec = init_weights(other_g, path)
    assert rec["loaded"] == ["f", "h"] and list(rec["scratch"]) == ["g"]
    assert "the file's g differs" in rec["scratch"]["g"]
    assert all(torch.equal(v, other_g.net.g.state_dict()[k]) for k, v in before.items())
    # a config without g and h takes f alone
    baseline = _module("model.edge=none", "model.attention=false")
    assert init_weights(baseline, path) == {**rec, "loaded": ["f"], "scratch": {}}


def test_init_from_an_exported_f(trained: tuple[PseudoEdgeNetModule, Path], tmp_path: Path) -> None:
    src, path = trained
    exported = export_segmenter(path, tmp_path / "f.pt")
    new = _module(seed=2)
    rec = init_weights(new, exported)
    assert rec["loaded"] == ["f"] and set(rec["scratch"]) == {"g", "h"}
    assert _same(new.net.f, src.net.f)


def test_init_with_another_f_is_one_line_error(
    trained: tuple[PseudoEdgeNetModule, Path], tmp_path: Path
) -> None:
    _, path = trained
    with pytest.raises(DataError, match=r"best\.ckpt: f does not match this config's f: ") as e:
        init_weights(_module("model.encoder=resnet34"), path)
    msg = str(e.value)
    assert "\n" not in msg and "(its f: model.encoder=resnet18; this config: resnet34)" in msg
    assert "encoder." in msg  # the first mismatching key
    junk = tmp_path / "junk.ckpt"
    torch.save({"weights": 1}, junk)
    with pytest.raises(DataError, match=r"junk\.ckpt: not a training checkpoint"):
        init_weights(_module(), junk)


# --------------------------------------------------------------------------------------
# training runs (a few steps on 64 px crops)
# --------------------------------------------------------------------------------------

RUN = [
    *TINY,
    "data.crop=64",
    "data.crops_per_epoch=4",
    "data.batch_size=4",
    "data.num_workers=0",
    "train.precision=32",
]


def _csv_column(path: Path, column: str) -> dict[str, float]:
    with path.open() as fh:
        return {
            str(int(r["epoch"]) + 1): float(r[column]) for r in csv.DictReader(fh) if r.get(column)
        }


def test_points_only_run_selects_by_point_f1(
    points_only: PreparedDataset, trained: tuple[PseudoEdgeNetModule, Path], tmp_path: Path
) -> None:
    """3 epochs of 1 step, validation every 2 epochs: epoch 2 validates as scheduled and
    the last epoch (3) validates too; best.ckpt is the better one by point F1."""
    cfg = apply_overrides(Config(), [*RUN, "train.epochs=3", "train.val_every=2"])
    lines: list[str] = []
    out = tmp_path / "run"
    res = train_fold(cfg, points_only.root, None, out, val=2, init=trained[1], log=lines.append)
    assert len(lines) == 1
    assert f"f, g, h from {trained[1]}" in lines[0]
    assert "split: 2 validation image(s) held out by seed 0; train: 4 images" in lines[0]
    assert "validation: 2 images, points only — best.ckpt by point F1" in lines[0]
    assert "schedule: 3 epochs × 4 crops of 64²" in lines[0]
    assert lines[0].endswith("no test set")
    assert res is not None and res.selected_by == "val/point_f1"
    assert res.val_iou is None and res.test is None
    curve = _csv_column(out / "metrics.csv", "val/point_f1")
    assert sorted(curve) == ["2", "3"] and res.val_curve_points == {
        int(e): v for e, v in curve.items()
    }
    assert res.val_point_f1 == pytest.approx(max(curve.values()))
    assert res.val_point_f1 == pytest.approx(curve[str(res.best_epoch)])
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert {"val/point_recall", "val/point_precision"} <= set(header.split(","))
    assert "val/iou" not in header
    assert torch.load(out / "best.ckpt", weights_only=True)["epoch"] + 1 == res.best_epoch
    assert not (out / "best_points.ckpt").exists()
    run = json.loads((out / "run.json").read_text())
    dm = PointDataModule(points_only, None, cfg.data, 0, val=2)
    assert run["split"] == {"train": dm.train_names, "val": dm.val_names, "test": []}
    # --init is recorded, and the run starts fresh (epoch counters from 0, not 7)
    sha = hashlib.sha256(trained[1].read_bytes()).hexdigest()
    assert res.init is not None and run["init"]["sha256"] == res.init.sha256 == sha
    assert res.init.loaded == ("f", "g", "h")
    assert torch.load(out / "last.ckpt", weights_only=True)["global_step"] == 3
    # --init with a run to resume is refused before anything is touched
    with pytest.raises(DataError, match=r"holds a run .*use a new --out"):
        train_fold(cfg, points_only.root, None, out, val=2, init=trained[1], log=lines.append)
    assert len(lines) == 1


def test_cli_own_data_short_run_validates_and_errors(
    points_only: PreparedDataset, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    """No --config (the packaged pen_att), no --fold: one validation image (max(1, 6 // 10));
    --max-steps 2 stops inside a 4-step epoch, and the run still validates at its end."""
    sets = [a for s in RUN if not s.startswith("data.crops") for a in ("--set", s)]
    run = tmp_path / "run"
    code, out, err = cli(
        "train", "--data", points_only.root, "--out", run, "--max-steps", 2,
        *sets, "--set", "data.crops_per_epoch=16",
    )  # fmt: skip
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith(
        "config: packaged default (pen_att, the paper's method) + --max-steps 2"
    )
    assert "1 validation image(s) held out by seed 0; train: 5 images" in first
    assert "points only — best.ckpt by point F1" in first
    res = json.loads(out.splitlines()[-1])
    assert res["selected_by"] == "val/point_f1" and res["fold"] is None
    assert 0.0 <= res["val_point_f1"] <= 1.0
    assert (run / "best.ckpt").is_file()
    assert torch.load(run / "last.ckpt", weights_only=True)["global_step"] == 2
    assert json.loads((run / "run.json").read_text())["split"]["val"] != []
    assert (run / "config.yaml").read_text().count("edge_warmup_epochs: 5") == 1
    # mistakes: one line, exit 2, no run folder
    bad = tmp_path / "bad"
    for args, message in [
        (("--val", 6), "--val 6: must be 0..5"),
        (("--val", -1), "--val -1: must be 0..5"),
        (("--fold", 3), "--fold 3 out of range 0..2"),
        (("--fold", -1), "--fold -1 out of range 0..2"),
        (("--fold", 0, "--val", 1), "--val applies without --fold only"),
    ]:
        code, _, err = cli("train", "--data", points_only.root, "--out", bad, *args)
        assert code == 2 and message in error_line(err), (args, err)
        assert not bad.exists()
    stamp = (run / "last.ckpt").stat().st_mtime_ns
    code, _, err = cli(
        "train", "--data", points_only.root, "--out", run, "--init", run / "best.ckpt"
    )
    assert code == 2 and "use a new --out" in error_line(err)
    assert (run / "last.ckpt").stat().st_mtime_ns == stamp


def test_fewer_than_three_images_is_refused(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    data = _prepare(tmp_path / "two", 2, masks=False, k=None)
    code, _, err = cli("train", "--data", data.root, "--out", tmp_path / "run")
    assert code == 2 and "2 image(s); training needs at least 3" in error_line(err)
    assert "annotate more" in error_line(err) and not (tmp_path / "run").exists()


def test_points_only_fold_tests_with_point_scores(
    points_only: PreparedDataset, tmp_path: Path
) -> None:
    cfg = apply_overrides(Config(), [*RUN, "train.epochs=1"])
    lines: list[str] = []
    res = train_fold(cfg, points_only.root, 0, tmp_path / "run", log=lines.append)
    split = points_only.split(0)
    assert (
        f"split: fold 0 of 3 (test fold 0, validation fold 1); train: {len(split.train)}"
        in (lines[0])
    )
    assert lines[0].endswith(f"test: {len(split.test)} images (points only: point scores)")
    assert res is not None and res.validation is not None
    assert res.selected_by == "val/point_f1" and res.test_images == len(split.test)
    assert res.test is None and res.test_point_selected is None and res.test_points is not None
    assert res.validation in lines[0]
