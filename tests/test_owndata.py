"""The own-data experiment's generated tables (exact text from hand-made step files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pseudoedgenet.errors import DataError
from pseudoedgenet.experiments.owndata import main, render, run_steps

COMMON = {
    "epochs": 10,
    "crops_per_epoch": 64,
    "crop": 256,
    "pretrained": "none",
    "device": "cpu (2 threads)",
    "precision": "32",
}


def _write(folder: Path, step: str, **fields: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{step}.json").write_text(json.dumps({"step": step, **COMMON, **fields}))


def test_render_selection_cost_and_finetune(tmp_path: Path) -> None:
    res = tmp_path / "r"
    _write(
        res,
        "finetune_scratch",
        test={"iou": 0.40},
        test_point_selected={"iou": 0.38},
        best_epoch=9,
        best_epoch_points=7,
    )
    _write(
        res,
        "finetune_init",
        test={"iou": 0.50},
        test_point_selected={"iou": 0.51},
        best_epoch=4,
        best_epoch_points=5,
    )
    _write(
        res,
        "select_monuseg",
        test={"iou": 0.45},
        test_point_selected={"iou": 0.42},
        best_epoch=10,
        best_epoch_points=10,
    )
    doc, readme = render(res)
    assert (
        "| TNBC fold 0, from scratch | 10 epochs × 64 crops | 0.4000 (epoch 9) | "
        "0.3800 (epoch 7) | -0.0200 |" in doc
    )
    assert (
        "| MoNuSeg fold 0, from scratch | 10 epochs × 64 crops | 0.4500 (epoch 10) | "
        "0.4200 (epoch 10) | -0.0300 |" in doc
    )
    # mean of -0.02, +0.01, -0.03
    assert readme[0].startswith(
        "- Choosing the epoch by clicks instead of masks changed test IoU by -0.0133"
    )
    assert "TNBC fold-0 test IoU 0.5000, against 0.4000 from scratch" in readme[1]
    assert "(+0.1000)" in readme[1]
    assert "random crops of 256²" in readme[2]
    assert "3 runs of 10 epochs × 64 crops" in readme[0]


def test_render_needs_step_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no step file"):
        render(tmp_path)


def test_render_writes_between_markers_only(tmp_path: Path) -> None:
    res = tmp_path / "r"
    _write(res, "finetune_scratch", test={"iou": 0.4}, test_point_selected={"iou": 0.4})
    doc = tmp_path / "doc.md"
    readme = tmp_path / "README.md"
    from pseudoedgenet.experiments.owndata import DOC_BEGIN, DOC_END, README_BEGIN, README_END

    doc.write_text(f"intro\n{DOC_BEGIN}\nSTALE\n{DOC_END}\noutro\n")
    readme.write_text(f"a\n{README_BEGIN}\nSTALE\n{README_END}\nb\n")
    main(["render", "--results", str(res), "--doc", str(doc), "--readme", str(readme)])
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "STALE" not in text
    assert "| TNBC fold 0, from scratch | 10 epochs × 64 crops | 0.4000" in text
    assert "+0.0000" in readme.read_text()
    before = text
    main(["render", "--results", str(res), "--doc", str(doc), "--readme", str(readme)])
    assert doc.read_text() == before  # regenerating changes nothing


def test_run_refuses_bad_steps_and_overrides(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown step 'nope'"):
        run_steps(tmp_path, tmp_path, tmp_path, ["nope"])
    with pytest.raises(Exception, match="nosuch"):
        run_steps(tmp_path, tmp_path, tmp_path, ["walkthrough"], ["train.nosuch=1"])


def test_render_walkthrough_row(tmp_path: Path) -> None:
    res = tmp_path / "r"
    score = {"mean": {"iou": 0.35, "dice": 0.5, "f1": 0.06, "aji": 0.01}, "n": 6}
    _write(res, "walkthrough", regions=30, clicks=100, slide_score=score, best_epoch=12,
           val_point_f1=0.24, wall_s=600.0, predict_s=446.4)  # fmt: skip
    doc, readme = render(res)
    assert "| held-out MoNuSeg test images on the slide: IoU / Dice / object F1 / AJI " \
        "(n = 6) | 0.3500 / 0.5000 / 0.0600 / 0.0100 |" in doc  # fmt: skip
    assert "| best epoch by validation point F1 | 12 (point F1 0.2400) |" in doc
    assert "IoU 0.3500 on the 6 held-out MoNuSeg test images" in readme[0]


def test_scaled_maps_nested_geojson_coordinates() -> None:
    from pseudoedgenet.experiments.owndata import _scaled

    assert _scaled([2.0, 4.0], 0.5) == [1.0, 2.0]
    assert _scaled([[[0, 8], [8, 8]]], 0.25) == [[[0.0, 2.0], [2.0, 2.0]]]
