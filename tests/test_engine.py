"""Training pipeline: augmentation invariants, a tiny end-to-end run, checkpoints, export."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from skimage.draw import disk

from conftest import error_line
from pseudoedgenet.config import SECTIONS, Config, apply_overrides, config_from_dict, resolve_config
from pseudoedgenet.data.datamodule import CropDataset
from pseudoedgenet.data.io import file_sha256
from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.data.transforms import augment_window, geometric_transform, photometric_transform
from pseudoedgenet.engine.train import export_segmenter, load_module, load_segmenter, train_fold
from pseudoedgenet.errors import DataError
from pseudoedgenet.labels import points_from_instances, voronoi_labels
from pseudoedgenet.models.trained import TRAINING_MPP_KEY, read_weights
from pseudoedgenet.record import SCHEMA_VERSION, read_record


def synthetic_sample(name: str, seed: int, size: int = 160) -> Sample:
    """Dark disks ("nuclei") on a light background, with their instance mask."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 220, np.uint8)
    inst = np.zeros((size, size), np.uint16)
    k = 0
    for cy in range(12, size - 12, 26):
        for cx in range(12, size - 12, 26):
            k += 1
            r = rng.uniform(5, 9)
            rr, cc = disk((cy + rng.uniform(-3, 3), cx + rng.uniform(-3, 3)), r, shape=inst.shape)
            inst[rr, cc] = k
            image[rr, cc] = (90, 40, 140)
    noise = rng.normal(0, 6, image.shape)
    return Sample(name, np.clip(image + noise, 0, 255).astype(np.uint8), inst, None, "", None)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    out = tmp_path_factory.mktemp("prep") / "tiny"
    # read at 0.5 µm/px (two records a little off, as scanners are): training records the
    # median, 0.5, in the checkpoints
    mpps = [0.5, 0.5, 0.48, 0.5, 0.52, 0.5]
    samples = [
        replace(synthetic_sample(f"img{i}", i), info={"mpp": [m, m]}) for i, m in enumerate(mpps)
    ]
    prepare_dataset(samples, out, source={"reader": "synthetic"}, k=3, seed=0)
    return PreparedDataset(out)


def test_augmentation_keeps_points_single_positive_pixels_inside_nuclei() -> None:
    s = synthetic_sample("a", 1, size=192)
    pts = points_from_instances(s.instances)
    geo, photo = geometric_transform(True), photometric_transform(True)
    geo.set_random_seed(3)
    photo.set_random_seed(4)
    inside_nucleus = total = 0
    for _ in range(20):
        img, inst, kps = augment_window(geo, photo, s.image, s.instances, pts)
        assert img.shape == s.image.shape and inst.shape == s.instances.shape
        labels = voronoi_labels(kps, inst.shape)
        r, c = np.rint(kps[:, 1]).astype(int), np.rint(kps[:, 0]).astype(int)
        ok = (r >= 0) & (r < 192) & (c >= 0) & (c < 192)
        # every in-window point is exactly one positive pixel, nothing else is positive
        assert (labels == 1).sum() == len(set(zip(r[ok], c[ok], strict=True)))
        assert np.all(labels[r[ok], c[ok]] == 1)
        inside_nucleus += int((inst[r[ok], c[ok]] > 0).sum())
        total += int(ok.sum())
    # the points moved with the mask (elastic interpolation may nudge a handful)
    assert inside_nucleus >= 0.97 * total


def test_identity_augmentation_keeps_every_point() -> None:
    s = synthetic_sample("a", 2)
    pts = points_from_instances(s.instances)
    img, inst, kps = augment_window(
        geometric_transform(False), photometric_transform(False), s.image, s.instances, pts
    )
    assert np.array_equal(img, s.image) and np.array_equal(inst, s.instances)
    assert np.allclose(kps, pts)


def test_crop_dataset_items(tiny_dataset: PreparedDataset) -> None:
    cfg = apply_overrides(Config(), ["data.crop=96", "data.crops_per_epoch=8", "data.batch_size=2"])
    ds = CropDataset(tiny_dataset, tiny_dataset.names, cfg.data, seed=0)
    assert len(ds) == 8
    item = ds[0]
    assert item["image"].shape == (3, 96, 96) and item["image"].dtype == torch.uint8
    labels = item["labels"].numpy()
    assert set(np.unique(labels)) <= {0, 1, 255}
    assert (labels == 1).sum() >= 4 and (labels == 0).sum() > 50
    assert set(np.unique(item["mask"].numpy())) <= {0, 1}
    # same seed, same stream
    again = CropDataset(tiny_dataset, tiny_dataset.names, cfg.data, seed=0)[0]
    assert torch.equal(again["image"], item["image"])


@pytest.mark.filterwarnings("error::UserWarning")  # albumentations warned on an empty pipeline
def test_crop_geometry_without_augmentation_is_exact(tmp_path: Path) -> None:
    """augment=false: each item is image[oy:oy+c, ox:ox+c] of a non-square noise image (its
    offset found by matching the pixels), its labels are exactly the Voronoi labels of the
    points shifted by (ox, oy) with the context as margin, and its mask is the instances'
    foreground there; a swap of x and y anywhere would break all three."""
    h, w, c, m = 40, 70, 32, 8
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    pts = np.array([(5, 4), (20, 30), (33, 9), (50, 25), (66, 37), (12, 35), (41, 20)], float)
    inst = np.zeros((h, w), np.uint16)
    for i, (x, y) in enumerate(pts.astype(int)):
        inst[disk((y, x), 3, shape=(h, w))] = i + 1
    prepare_dataset([Sample("a", image, inst, pts)], tmp_path / "d", source={"reader": "s"})
    cfg = apply_overrides(Config(), [f"data.crop={c}", f"data.context={m}", "data.augment=false"])
    crops = CropDataset(PreparedDataset(tmp_path / "d"), ["a"], cfg.data, seed=0)
    offsets = set()
    for i in range(12):
        item = crops[i]
        got = item["image"].numpy().transpose(1, 2, 0)
        found = [
            (oy, ox)
            for oy in range(h - c + 1)
            for ox in range(w - c + 1)
            if np.array_equal(image[oy : oy + c, ox : ox + c], got)
        ]
        assert len(found) == 1
        oy, ox = found[0]
        offsets.add((oy, ox))
        expected = voronoi_labels(pts - np.array([ox, oy]), (c, c), margin=m)
        np.testing.assert_array_equal(item["labels"].numpy(), expected)
        np.testing.assert_array_equal(item["mask"].numpy(), inst[oy : oy + c, ox : ox + c] > 0)
    assert len(offsets) > 6  # the offsets are random


def test_train_fold_end_to_end_and_checkpoint_round_trip(
    tiny_dataset: PreparedDataset, tmp_path: Path
) -> None:
    cfg = apply_overrides(
        Config(),
        [
            "model.encoder=resnet18",
            "train.epochs=2",
            "data.crop=64",
            "data.crops_per_epoch=8",
            "data.batch_size=4",
            "data.num_workers=0",
            "train.precision=32",
        ],
    )
    out = tmp_path / "run"
    res = train_fold(cfg, tiny_dataset.root, 0, out, dataset="synthetic")
    for name in ("best.ckpt", "last.ckpt", "config.yaml", "metrics.csv", "run.json", "result.json"):
        assert (out / name).is_file(), name
    assert res is not None and res.test is not None and res.best_epoch is not None
    assert res.method == "pen_att" and res.fold == 0 and res.dataset == "synthetic"
    assert 0.0 <= res.test.iou <= 1.0 and res.best_epoch in (1, 2)
    # result.json is the same record, in the versioned schema, read back strictly
    assert read_record(out / "result.json") == res
    assert json.loads((out / "result.json").read_text())["schema_version"] == SCHEMA_VERSION
    # the complete resolved config travels in the record, so a report can list what differs
    assert config_from_dict(res.config) == cfg and res.config == cfg.to_dict()
    assert res.precision == "fp32" and res.epochs == 2 and res.crop == 64
    # and so does the validation curve (1-based epochs), with the best epoch's value on it
    assert res.val_curve is not None and sorted(res.val_curve) == [1, 2]
    assert res.val_curve[res.best_epoch] == pytest.approx(res.val_iou)
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "train/edge" in header and "val/iou" in header
    # with masks, a second checkpoint is kept by point F1 and tested too
    assert res.selected_by == "val/iou" and (out / "best_points.ckpt").is_file()
    assert {"val/dice", "val/point_f1", "val/point_recall"} <= set(header.split(","))
    assert res.val_curve_points is not None and res.best_epoch_points is not None
    assert res.val_curve_points[res.best_epoch_points] == pytest.approx(res.val_point_f1)
    assert res.test_point_selected is not None and res.test_points is not None
    assert 0.0 <= res.test_point_selected.iou <= 1.0 and 0.0 <= res.test_points.f1 <= 1.0

    module = load_module(out / "best.ckpt")
    assert module.cfg == cfg
    # the training images' pixel size travels with the weights (for predict's check),
    # outside the config: the median of the training images' records
    run = json.loads((out / "run.json").read_text())
    train_mpps = [tiny_dataset.meta["images"][n]["mpp"][0] for n in run["split"]["train"]]
    expected = float(np.median(train_mpps))
    assert run["training_resolution"]["mpp"] == pytest.approx(expected)
    assert run["training_resolution"]["with_mpp"] == len(train_mpps)
    for name in ("best.ckpt", "best_points.ckpt", "last.ckpt"):
        ckpt = torch.load(out / name, weights_only=True)
        assert ckpt[TRAINING_MPP_KEY] == pytest.approx(expected), name
    x = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    exported = export_segmenter(out / "best.ckpt", tmp_path / "f.pt")
    assert read_weights(exported).training_mpp == pytest.approx(expected)
    f1, f2 = load_segmenter(exported), load_segmenter(out / "best.ckpt")
    with torch.no_grad():
        ref = module.segmenter()(x)
        assert torch.allclose(f1(x), ref, atol=1e-5) and torch.allclose(f2(x), ref, atol=1e-5)
    # the exported file holds f only: no g or h parameters
    sd = torch.load(exported, weights_only=True)["state_dict"]
    assert len(sd) < len(module.state_dict())


def test_train_fold_resumes_from_last_checkpoint(
    tiny_dataset: PreparedDataset, tmp_path: Path
) -> None:
    base = [
        "model.encoder=resnet18",
        "model.edge=none",
        "model.attention=false",
        "data.crop=64",
        "data.crops_per_epoch=4",
        "data.batch_size=4",
        "data.num_workers=0",
        "train.precision=32",
    ]
    out = tmp_path / "run"
    train_fold(apply_overrides(Config(), [*base, "train.epochs=1"]), tiny_dataset.root, 0, out)
    first = torch.load(out / "last.ckpt", weights_only=True)
    assert first["epoch"] == 0
    # resuming on training images of another pixel size is refused, before anything changes
    other = tmp_path / "at_0.25"
    shutil.copytree(tiny_dataset.root, other)
    meta = json.loads((other / "dataset.json").read_text())
    for info in meta["images"].values():
        info["mpp"] = [0.25, 0.25]
    (other / "dataset.json").write_text(json.dumps(meta))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(DataError, match=r"trained on images of 0\.5\d* µm/px, but .* 0\.25 µm/px"):
        train_fold(apply_overrides(Config(), [*base, "train.epochs=2"]), other, 0, out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    # wall time adds up over the attempts: the first attempt's seconds travel in last.ckpt
    # (set to a known value here, so the sum is checked exactly, not by timing)
    clock = [k for k in first["callbacks"] if "TrainClock" in k]
    assert len(clock) == 1 and first["callbacks"][clock[0]]["elapsed_s"] > 0
    first["callbacks"][clock[0]]["elapsed_s"] = 1000.0
    torch.save(first, out / "last.ckpt")
    t0 = time.perf_counter()
    res = train_fold(
        apply_overrides(Config(), [*base, "train.epochs=2"]), tiny_dataset.root, 0, out
    )
    second_s = time.perf_counter() - t0
    second = torch.load(out / "last.ckpt", weights_only=True)
    assert second["global_step"] == 2 * first["global_step"]
    assert res is not None
    assert 1000.0 < res.wall_s <= 1000.0 + second_s + 0.1 and res.attempts == 2
    # the second attempt trained epoch 1 only: epoch 0 was restored, not re-run
    import csv

    def epochs(path: Path) -> set[str]:
        with path.open() as fh:
            return {r["epoch"] for r in csv.DictReader(fh) if r.get("train/loss")}

    assert epochs(out / "logs" / "attempt_0" / "metrics.csv") == {"0"}
    assert epochs(out / "logs" / "attempt_1" / "metrics.csv") == {"1"}
    assert epochs(out / "metrics.csv") == {"0", "1"}


def _synthetic_batch(n: int = 4, size: int = 64) -> dict[str, torch.Tensor]:
    samples = [synthetic_sample(f"s{i}", i, size=size) for i in range(n)]
    return {
        "image": torch.stack(
            [torch.from_numpy(s.image.transpose(2, 0, 1).copy()) for s in samples]
        ),
        "labels": torch.stack(
            [
                torch.from_numpy(voronoi_labels(points_from_instances(s.instances), (size, size)))
                for s in samples
            ]
        ),
        "mask": torch.stack(
            [torch.from_numpy((s.instances > 0).astype(np.uint8)) for s in samples]
        ),
    }


def _overfit(cfg: Config, batch: dict[str, torch.Tensor], steps: int) -> tuple[list[float], float]:
    """Trains on one fixed batch; returns the losses and the mean probability at point
    pixels minus that at Voronoi pixels afterwards (eval mode)."""
    from pseudoedgenet.engine.module import PseudoEdgeNetModule

    torch.manual_seed(0)
    module = PseudoEdgeNetModule(cfg)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = module.compute_losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    module.eval()
    with torch.no_grad():
        prob = torch.sigmoid(module(batch["image"])["logits"])[:, 0]
    lab = batch["labels"]
    return losses, float(prob[lab == 1].mean() - prob[lab == 0].mean())


TINY = ["model.encoder=resnet18", "train.channels_last=false"]


def test_pen_att_does_not_collapse_to_a_constant() -> None:
    """With the paper's weights and λ = 1, f must still separate points from boundaries."""
    _, gap = _overfit(apply_overrides(Config(), TINY), _synthetic_batch(), steps=30)
    assert gap > 0.3


@pytest.mark.realdata
@pytest.mark.slow
def test_short_real_tnbc_run_lowers_the_loss(shared_data: Path, tmp_path: Path) -> None:
    """A few dozen steps of PseudoEdgeNet (g + h) on real TNBC crops: the loss goes down."""
    from itertools import islice

    from pseudoedgenet.data.tnbc import read_tnbc

    prepare_dataset(
        islice(read_tnbc(shared_data / "tnbc"), 4),
        tmp_path / "tnbc",
        source={"reader": "tnbc"},
        k=3,
    )
    cfg = apply_overrides(
        Config(), [*TINY, "data.crop=128", "data.crops_per_epoch=4", "data.batch_size=4"]
    )
    crops = CropDataset(
        PreparedDataset(tmp_path / "tnbc"), ["01_1", "01_2", "01_3", "01_4"], cfg.data, seed=0
    )
    items = [crops[i] for i in range(4)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    losses, gap = _overfit(cfg, batch, steps=30)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert gap > 0.2


SMOKE = [
    "model.encoder=resnet18",
    "model.attention_encoder=resnet18",
    "data.crop=64",
    "data.crops_per_epoch=8",
    "data.batch_size=4",
    "data.num_workers=0",
    "train.precision=32",
]


def test_evaluate_checkpoint_repeats_the_test_of_training(
    tiny_dataset: PreparedDataset, tmp_path: Path
) -> None:
    from pseudoedgenet.engine.evaluate import evaluate_checkpoint
    from pseudoedgenet.errors import ConfigError, DataError

    cfg = apply_overrides(Config(), [*SMOKE, "train.epochs=1"])
    res = train_fold(cfg, tiny_dataset.root, 1, tmp_path / "run")
    again = evaluate_checkpoint(tmp_path / "run" / "best.ckpt", tiny_dataset.root, 1, "cpu")
    assert res is not None and res.test is not None
    assert again["test_images"] == res.test_images == len(tiny_dataset.split(1).test)
    for k, v in vars(res.test).items():
        assert again["test"][k] == pytest.approx(v, abs=1e-9), k
    # one row per test image, in the split's order, whose mean is the reported mean
    rows = again["test_per_image"]
    assert [r["image"] for r in rows] == tiny_dataset.split(1).test
    for k in ("iou", "dice", "f1", "aji"):
        assert sum(r[k] for r in rows) / len(rows) == pytest.approx(again["test"][k], abs=1e-12)
    for r in rows:  # the pixel counts explain the IoU: inter / (inter + fp + fn)
        inter = r["pred_px"] - r["fp_px"]
        assert inter == r["true_px"] - r["fn_px"]
        union = inter + r["fp_px"] + r["fn_px"]
        assert r["iou"] == pytest.approx(inter / union if union else 1.0, abs=1e-12)
    assert again["checkpoint_sha256"] == file_sha256(tmp_path / "run" / "best.ckpt")
    every = evaluate_checkpoint(tmp_path / "run" / "best.ckpt", tiny_dataset.root, None, "cpu")
    assert every["test_images"] == len(tiny_dataset.names) and every["fold"] is None
    with pytest.raises(ConfigError, match=r"fold 3 out of range 0\.\.2"):
        evaluate_checkpoint(tmp_path / "run" / "best.ckpt", tiny_dataset.root, 3, "cpu")
    # a folder where only some images have masks: a fold whose test images lack one is
    # refused in one line naming them (it was a RuntimeError traceback)
    samples = [synthetic_sample(f"img{i}", i) for i in range(6)]
    mixed = [
        s if i % 2 else replace(s, instances=None, points=points_from_instances(s.instances))
        for i, s in enumerate(samples)
    ]
    prepare_dataset(mixed, tmp_path / "mixed", source={"reader": "synthetic"}, k=3, seed=0)
    split = PreparedDataset(tmp_path / "mixed").split(0).test
    no_mask = [n for n in split if int(n[-1]) % 2 == 0]
    assert no_mask
    with pytest.raises(
        DataError, match=rf"test image\(s\) of fold 0 have no instance mask \({no_mask[0]}"
    ):
        evaluate_checkpoint(tmp_path / "run" / "best.ckpt", tmp_path / "mixed", 0, "cpu")


def test_holdout_trains_on_all_and_tests_the_other_set(
    tiny_dataset: PreparedDataset, tmp_path: Path
) -> None:
    from pseudoedgenet.errors import DataError
    from pseudoedgenet.experiments.holdout import holdout

    test_root = tmp_path / "test"
    prepare_dataset(
        [synthetic_sample(f"t{i}", 100 + i) for i in range(2)],
        test_root,
        source={"reader": "synthetic"},
    )
    cfg = apply_overrides(Config(), [*SMOKE, "train.epochs=1"])
    out = tmp_path / "res" / "pen_att.json"
    rec = holdout(cfg, tiny_dataset.root, test_root, out, tmp_path / "runs", "smoke")
    assert rec is not None and rec.test is not None
    assert rec.test_images == 2 and rec.train_images == len(tiny_dataset.names)
    assert rec.selected_by == "last" and rec.fold is None and rec.protocol == "smoke"
    assert rec.dataset == "synthetic-test" and 0.0 <= rec.test.aji <= 1.0
    assert rec.test_data == str(test_root) and read_record(out) == rec
    # a second call reads the file back instead of training again
    stamp = (tmp_path / "runs" / "last.ckpt").stat().st_mtime_ns
    assert holdout(cfg, tiny_dataset.root, test_root, out, tmp_path / "runs", "smoke") == rec
    assert (tmp_path / "runs" / "last.ckpt").stat().st_mtime_ns == stamp
    # the same images on both sides is refused before any training
    with pytest.raises(DataError, match="shares 6 image"):
        holdout(
            cfg, tiny_dataset.root, tiny_dataset.root, tmp_path / "x.json", tmp_path / "r2", "smoke"
        )


def test_cli_train_then_evaluate(tiny_dataset: PreparedDataset, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    sets = [a for s in SMOKE if not s.startswith("data.crop=") for a in ("--set", s)]
    run = tmp_path / "run"
    code, out, _ = cli(
        "train", "--config", "pen_att", "--data", tiny_dataset.root,
        "--fold", 0, "--out", run, "--max-steps", 2, "--crop", 128, *sets,
    )  # fmt: skip
    assert code == 0, out
    assert {"best.ckpt", "last.ckpt", "config.yaml", "metrics.csv"} <= {
        p.name for p in run.iterdir()
    }
    # the saved config is complete (every field) and is the layered one: base, pen_att,
    # --max-steps, --crop, then --set
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert {k: list(v) for k, v in saved.items() if k != "method"} == {
        k: [f.name for f in fields(c)] for k, c in SECTIONS.items()
    }
    sets_only = [s for s in SMOKE if not s.startswith("data.crop=")]
    assert config_from_dict(saved) == resolve_config(
        "pen_att", max_steps=2, crop=128, overrides=sets_only
    )
    scores = tmp_path / "scores.json"
    code, out, _ = cli(
        "evaluate", run / "best.ckpt", "--data", tiny_dataset.root, "--fold", 0, "--json", scores
    )
    assert code == 0 and "IoU" in out
    assert json.loads(scores.read_text())["test"] == json.loads(out.splitlines()[-1])["test"]
    per_image = json.loads(scores.read_text())["test_per_image"]
    lines = [ln.strip() for ln in out.splitlines() if ln.startswith("  ")]
    assert [ln.split(":")[0] for ln in lines] == [r["image"] for r in per_image]
    assert all("false positive" in ln and "nuclei found" in ln for ln in lines)
    code, _, err = cli("evaluate", run / "best.ckpt", "--data", tiny_dataset.root, "--fold", 7)
    assert code != 0 and "fold 7 out of range" in error_line(err)
    code, _, err = cli("evaluate", tmp_path / "scores.json", "--data", tiny_dataset.root)
    assert code != 0 and "scores.json" in error_line(err)


def test_results_subdir_keeps_protocols_apart() -> None:
    from pseudoedgenet.experiments.crossval import results_subdir

    assert results_subdir("tnbc", "cpu-long", "pen_att") == Path("tnbc/pen_att")
    assert results_subdir("tnbc", "cpu", "pen_att") == Path("tnbc-cpu/pen_att")
    assert results_subdir("monuseg", "paper", "baseline") == Path("monuseg-paper/baseline")


def test_crossval_skips_done_folds_and_refuses_another_protocol(
    tiny_dataset: PreparedDataset, tmp_path: Path
) -> None:
    from pseudoedgenet.errors import ConfigError
    from pseudoedgenet.experiments.crossval import crossval

    cfg = apply_overrides(Config(), [*SMOKE, "model.edge=none", "model.attention=false",
                                     "method=baseline", "train.epochs=1"])  # fmt: skip
    out, runs = tmp_path / "res", tmp_path / "runs"
    (first,) = crossval(cfg, tiny_dataset.root, [2], out, runs, "smoke")
    assert first.fold == 2 and first.protocol == "smoke" and first.dataset == "synthetic"
    assert read_record(out / "fold_2.json") == first
    stamp = (runs / "fold_2" / "last.ckpt").stat().st_mtime_ns
    assert crossval(cfg, tiny_dataset.root, [2], out, runs, "smoke") == [first]
    assert (runs / "fold_2" / "last.ckpt").stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match=r"fold_2.json holds method 'baseline', protocol 'smoke'"):
        crossval(cfg, tiny_dataset.root, [2], out, runs, "cpu")


def _fit_edges_to_frozen_target(overrides: list[str], steps: int) -> tuple[float, float]:
    """Trains g and h alone against the Sobel edges of a soft true mask (f frozen).

    Returns ``edge_fit`` (1 − |s − g⊗h| / |s|) and the mean attention on the edges."""
    import torch.nn.functional as F

    from pseudoedgenet.engine.module import Normalize, build_network
    from pseudoedgenet.models import sobel

    batch = _synthetic_batch(n=4, size=96)
    x = Normalize()(batch["image"])
    s = sobel(F.avg_pool2d(batch["mask"].float()[:, None], 3, 1, 1), normalized=True)
    torch.manual_seed(0)
    net = build_network(apply_overrides(Config(), ["model.attention_encoder=resnet18", *overrides]))
    assert net.g is not None and net.h is not None
    opt = torch.optim.Adam([*net.g.parameters(), *net.h.parameters()], lr=1e-3)
    for _ in range(steps):
        out = net.edges(x)
        loss = (s - out["edge"]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    edge = s.abs().amax(1, keepdim=True) > 0.05
    fit = 1.0 - float(loss.detach()) / float(s.abs().mean())
    return fit, float(out["attention"].detach()[edge].mean())


def test_attention_survives_with_the_output_scales() -> None:
    """The failure the scales fix: with PyTorch's init and no scaling (Adam, lr 1e-3), h is
    driven to 0 everywhere and g ⊗ h explains none of the edges; with the defaults
    (zero-initialised g output, γ_g = 0.02, γ_h = 0.05) g ⊗ h learns them."""
    fit, h_edge = _fit_edges_to_frozen_target(
        ["model.edge_init=default", "model.edge_scale=1", "model.attention_scale=1"], 30
    )
    assert abs(fit) < 0.01 and h_edge < 0.01
    fit, h_edge = _fit_edges_to_frozen_target([], 30)
    assert fit > 0.5 and h_edge > 0.5


def test_checkpoints_from_before_the_output_scales_load_with_what_they_used() -> None:
    from pseudoedgenet.models.trained import _v1_config as _legacy_model_keys

    old = {"method": "pen_att", "model": {"encoder": "resnet50"}}
    assert _legacy_model_keys(old)["model"] == {
        "encoder": "resnet50", "edge_init": "default", "edge_scale": 1.0, "attention_scale": 1.0,
    }  # fmt: skip
    new = {"model": {"edge_scale": 0.02}}
    assert _legacy_model_keys(new) is new
