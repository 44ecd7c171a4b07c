"""A finished crossval run scored image by image (experiments/per_image.py) and the
TNBC fold-1 page's use of those files (findings and table, hand-computed)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pseudoedgenet.config import Config, apply_overrides
from pseudoedgenet.data.io import file_sha256
from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset
from pseudoedgenet.errors import DataError
from pseudoedgenet.experiments import per_image as pi
from pseudoedgenet.experiments import tnbc_fold1 as tf
from pseudoedgenet.experiments.crossval import crossval
from pseudoedgenet.experiments.records import load_holdout
from test_engine import SMOKE, synthetic_sample


def _prepare(out: Path, seed: int) -> Path:
    """Six synthetic images with masks, prepared in 3 folds drawn with ``seed``."""
    samples = [synthetic_sample(f"img{i}", i) for i in range(6)]
    prepare_dataset(samples, out, source={"reader": "synthetic"}, k=3, seed=seed)
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(prepared data, results folder, run folder) of a 1-epoch smoke crossval fold 1."""
    root = tmp_path_factory.mktemp("per_image")
    data = _prepare(root / "tiny", seed=0)
    cfg = apply_overrides(Config(method="baseline"), [*SMOKE, "train.epochs=1"])
    results, runs = root / "results", root / "runs"
    crossval(cfg, data, [1], results / "synthetic-smoke" / "baseline", runs, "smoke")
    return data, results, runs / "fold_1"


def test_score_run_reproduces_the_record_image_by_image(
    finished_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    data, results, run = finished_run
    path = pi.score_run(run, data, results, tmp_path / "out", "the command")
    assert path == tmp_path / "out" / "smoke_baseline_fold1.json"
    raw = json.loads(path.read_text())
    record = json.loads((results / "synthetic-smoke" / "baseline" / "fold_1.json").read_text())
    assert raw["command"] == "the command" and raw["run_commit"] == record["git_commit"]
    assert raw["record"].endswith("synthetic-smoke/baseline/fold_1.json")
    assert "schema_version" not in raw and "test_data" not in raw
    (scored,) = pi.read_per_image(tmp_path / "out")
    assert (scored.method, scored.protocol, scored.fold) == ("baseline", "smoke", 1)
    assert scored.eval_precision == raw["eval_precision"] == "32"  # a CPU smoke run
    files = [c.file for c in scored.checkpoints]
    assert files[0] == "best.ckpt" and files[-1] == "last.ckpt"
    assert set(files) <= {"best.ckpt", "best_points.ckpt", "last.ckpt"}
    last = scored.checkpoints[-1]
    assert last.record_test_iou is None and last.epoch == 1  # one epoch trained
    best = scored.checkpoints[0]
    assert best.test_iou == pytest.approx(record["test"]["iou"], abs=1e-9)
    assert best.record_test_iou == record["test"]["iou"]
    assert [r.image for r in best.images] == PreparedDataset(data).split(1).test
    assert best.test_iou == pytest.approx(sum(r.iou for r in best.images) / len(best.images))
    assert raw["checkpoints"][0]["sha256"] == file_sha256(run / "best.ckpt")
    assert pi.read_per_image_file(path) == scored
    # the per-image folder is not read as holdout records
    shutil.copytree(tmp_path / "out", tmp_path / "res" / "tnbc-fold1")
    assert load_holdout(tmp_path / "res") == []


def test_score_run_refuses_what_is_not_the_recorded_run(
    finished_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    data, results, run = finished_run
    out = tmp_path / "out"
    # no committed record
    with pytest.raises(DataError, match="commit the run's fold record first"):
        pi.score_run(run, data, tmp_path / "empty", out, "c")
    # a record of another run (other commit)
    other = tmp_path / "results"
    shutil.copytree(results, other)
    rec = other / "synthetic-smoke" / "baseline" / "fold_1.json"
    raw = json.loads(rec.read_text())
    rec.write_text(json.dumps({**raw, "git_commit": "0" * 40}))
    with pytest.raises(DataError, match=r"git_commit '0000.*differs.*not the run this record"):
        pi.score_run(run, data, other, out, "c")
    # a checkpoint whose scores are not the record's
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    res = json.loads((copy / "result.json").read_text())
    res["test"]["iou"] += 0.1
    (copy / "result.json").write_text(json.dumps(res))
    with pytest.raises(DataError, match=r"best\.ckpt: test IoU .* here, .* in the record"):
        pi.score_run(copy, data, results, out, "c")
    # a dataset with another split
    moved = _prepare(tmp_path / "moved", seed=5)
    assert PreparedDataset(moved).split(1).test != PreparedDataset(data).split(1).test
    with pytest.raises(DataError, match="fold 1 tests on"):
        pi.score_run(run, moved, results, out, "c")
    # not a run folder
    with pytest.raises(DataError, match=r"result\.json: not found"):
        pi.score_run(tmp_path, data, results, out, "c")
    assert not out.exists()  # nothing written on any refusal


def _row(image: str, iou: float, aji: float, true_px: int, fp: int, fn: int) -> pi.ImageRow:
    return pi.ImageRow(image, iou, aji, true_px, fp, fn, tp_nuclei=3, fn_nuclei=1, fp_nuclei=2)


def _stat(name: str, fold: int, foreground: float, px: int) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, fold=fold, nuclei=SimpleNamespace(foreground=foreground, nucleus_pixels=px)
    )


def test_fold1_findings_and_table_hand_computed() -> None:
    rows = (
        _row("a", 0.6, 0.5, 1000, 100, 300),  # dense
        _row("b", 0.2, 0.2, 50, 400, 0),  # sparse: 8 false-positive px per nucleus px
        _row("c", 0.7, 0.1, 2000, 200, 100),  # dense, instances poor (IoU - AJI 0.6)
    )
    ckpt = pi.ScoredCheckpoint("best.ckpt", "val IoU", 43, 0.5, 0.5, rows)
    scores = [pi.PerImageScores(Path("x.json"), "tnbc", "baseline", "cpu-long", 1, "abc", (ckpt,))]
    stats = [_stat("a", 1, 0.2, 1000), _stat("b", 1, 0.01, 50), _stat("c", 1, 0.1, 2000)]
    (text,) = tf.per_image_findings(scores, stats)  # type: ignore[arg-type]
    assert "`cpu-long` `baseline` best.ckpt, epoch 43" in text
    assert "IoU b 0.2000, a 0.6000, c 0.7000 (lowest first)" in text
    assert "the 1 images under 3 % nucleus pixels average 0.2000, the 2 others 0.6500" in text
    # false positives 700 of 700 + 400 wrong pixels = 64 %; more than missed on b and c
    assert "False-positive pixels are 64 % of the wrong pixels" in text
    assert "outnumber the missed ones on 2 of 3" in text
    assert "most on b: 400 false-positive px for 50 nucleus px (8.0×)" in text
    assert "Largest IoU − AJI: c (IoU 0.7000, AJI 0.1000; 3 of 4 nuclei matched" in text
    table = tf.per_image_table(scores, stats)  # type: ignore[arg-type]
    assert "| b | 50 | 0.2000 (400 / 0; 3 of 4) |" in table
    assert table[-1] == "| mean (record) | | 0.5000 (0.5000) |"
    # with the last epoch scored too: the spread over the checkpoints, and no record value
    last = pi.ScoredCheckpoint("last.ckpt", "last epoch", 60, 0.4625, None, rows)
    two = [dataclasses.replace(scores[0], checkpoints=(ckpt, last))]
    first, second = tf.per_image_findings(two, stats)  # type: ignore[arg-type]
    assert first == text
    assert second == (
        "The epoch choice, `cpu-long` `baseline`: test IoU by checkpoint best.ckpt (epoch 43, "
        "val IoU) 0.5000, last.ckpt (epoch 60, last epoch) 0.4625; the spread, 0.0375, is what "
        "choosing another of these epochs changes."
    )
    table = tf.per_image_table(two, stats)  # type: ignore[arg-type]
    assert table[-1] == "| mean (record) | | 0.5000 (0.5000) | 0.4625 (—) |"


def test_error_map_is_what_was_scored(
    finished_run: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, results, run = finished_run
    pi.score_run(run, data, results, tmp_path, "c")
    (scored,) = pi.read_per_image(tmp_path)
    best = scored.checkpoints[0]
    png = tf.draw_errors(PreparedDataset(data), run / "best.ckpt", best, "title")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert tf.draw_errors(PreparedDataset(data), run / "best.ckpt", best, "title") == png
    wrong = dataclasses.replace(best.images[0], iou=best.images[0].iou + 0.01)
    other = dataclasses.replace(best, images=(wrong, *best.images[1:]))
    with pytest.raises(DataError, match=f"{wrong.image}: IoU .* drawn, .* scored"):
        tf.draw_errors(PreparedDataset(data), run / "best.ckpt", other, "title")
    # fp32 scores are matched exactly; bf16 ones within BF16_DRAW_TOLERANCE, as drawn under
    # bf16 autocast (its pixels differ from fp32 by machine: the tolerance is widened here)
    near = dataclasses.replace(best.images[0], iou=best.images[0].iou + 4e-4)
    close = dataclasses.replace(best, images=(near, *best.images[1:]))
    with pytest.raises(DataError, match=f"{near.image}: IoU .* drawn, .* scored"):
        tf.draw_errors(PreparedDataset(data), run / "best.ckpt", close, "t", "32")
    with pytest.raises(DataError, match=f"{wrong.image}: IoU .* drawn, .* scored"):
        tf.draw_errors(PreparedDataset(data), run / "best.ckpt", other, "t", "bf16-mixed")
    monkeypatch.setattr(tf, "BF16_DRAW_TOLERANCE", 0.005)
    assert tf.draw_errors(PreparedDataset(data), run / "best.ckpt", close, "t", "bf16-mixed")


def test_read_per_image_refuses_other_files(tmp_path: Path) -> None:
    assert pi.read_per_image(tmp_path / "absent") == []
    (tmp_path / "a.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(DataError, match=r"a\.json: is not a per-image file \(kind 'something"):
        pi.read_per_image(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps({"kind": pi.KIND, "checkpoints": []}))
    with pytest.raises(DataError, match=r"a\.json: missing or bad field 'dataset'"):
        pi.read_per_image(tmp_path)
    (tmp_path / "a.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"a\.json: is not a JSON object"):
        pi.read_per_image(tmp_path)
