"""The own-data experiment's generated tables (exact text from hand-made step files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pseudoedgenet.config import apply_overrides, default_config
from pseudoedgenet.errors import DataError
from pseudoedgenet.experiments.owndata import (
    SlideResult,
    StepRecord,
    main,
    read_step,
    render,
    run_steps,
)
from pseudoedgenet.record import ResultRecord, Scores


def _scores(iou: float | None, dice: float = 0.0, f1: float = 0.0, aji: float = 0.0) -> Any:
    return None if iou is None else Scores(iou, dice, f1, aji)


def _write(
    folder: Path,
    step: str,
    test: float | None = None,
    test_point_selected: float | None = None,
    slide: SlideResult | None = None,
    **fields: Any,
) -> Path:
    """A step file of 10 epochs × 64 crops with the given scores (schema 2)."""
    cfg = apply_overrides(default_config(), ["train.epochs=10", "data.crops_per_epoch=64"])
    record = ResultRecord(
        method="pen_att",
        config=cfg.to_dict(),
        config_sha256="0" * 64,
        git_commit="0123456789abcdef0123456789abcdef01234567",
        device="cpu (2 threads)",
        precision="fp32",
        selected_by="val/iou" if test_point_selected is not None else "val/point_f1",
        wall_s=fields.pop("wall_s", 600.0),
        test=_scores(test),
        test_point_selected=_scores(test_point_selected),
        **fields,
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{step}.json"
    budget = ("train.epochs=10", "data.crops_per_epoch=64")
    path.write_text(json.dumps(StepRecord(step, budget, "cmd", 1.0, record, slide).to_dict()))
    return path


def test_render_selection_cost_and_finetune(tmp_path: Path) -> None:
    res = tmp_path / "r"
    _write(
        res,
        "finetune_scratch",
        test=0.40,
        test_point_selected=0.38,
        best_epoch=9,
        best_epoch_points=7,
    )
    _write(
        res,
        "finetune_init",
        test=0.50,
        test_point_selected=0.51,
        best_epoch=4,
        best_epoch_points=5,
    )
    _write(
        res,
        "select_monuseg",
        test=0.45,
        test_point_selected=0.42,
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
    assert (
        "over 3 runs (TNBC fold 0, from scratch, 10 epochs × 64 crops: -0.0200; TNBC fold 0, "
        "`--init` walkthrough f, g, h, 10 epochs × 64 crops: +0.0100; MoNuSeg fold 0, from "
        "scratch, 10 epochs × 64 crops: -0.0300); both chose the same epoch in 1 of 3." in readme[0]
    )
    assert "say little" not in readme[0]  # the runs chose different epochs
    assert "compares two poor checkpoints" not in readme[0]  # no val point F1 recorded
    _write(res, "select_tnbc", test=0.5, test_point_selected=0.5, val_point_f1=0.05)
    _, readme = render(res)
    assert readme[0].endswith(
        "; the run TNBC fold 1, from scratch ended with f still covering most tissue (best "
        "validation point F1 below 0.1), so its difference compares two poor checkpoints."
    )


def test_render_needs_step_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no step file"):
        render(tmp_path)


def test_render_writes_between_markers_only(tmp_path: Path) -> None:
    res = tmp_path / "r"
    _write(res, "finetune_scratch", test=0.4, test_point_selected=0.4)
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
    assert "both chose the same epoch in 1 of 1, so these runs say little" in readme.read_text()
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
    mean = Scores(0.35, 0.5, 0.06, 0.01)
    slide = SlideResult(("a.png",), 30, 100, {f"img{i}": mean for i in range(6)}, mean, 446.4, 9)
    path = _write(res, "walkthrough", slide=slide, best_epoch=12, val_point_f1=0.24)
    assert read_step(path).slide == slide  # the step file round-trips
    doc, readme = render(res)
    assert "| held-out MoNuSeg test images on the slide: IoU / Dice / object F1 / AJI " \
        "(n = 6) | 0.3500 / 0.5000 / 0.0600 / 0.0100 |" in doc  # fmt: skip
    assert "| best epoch by validation point F1 | 12 (point F1 0.2400) |" in doc
    assert "IoU 0.3500 on the 6 held-out MoNuSeg test images" in readme[0]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"schema_version": 1}, "not a step file of schema_version 2"),
        ({"extra": 1}, "a step file has the fields"),
        ({"step": "nope"}, "unknown step 'nope'"),
        ({"record": {"schema_version": 2}}, "missing the 'config' field"),
    ],
)
def test_invalid_step_file_is_refused(tmp_path: Path, change: dict, problem: str) -> None:
    path = _write(tmp_path, "finetune_scratch", test=0.4, test_point_selected=0.4)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(DataError, match=problem) as exc:
        read_step(path)
    assert exc.value.path == path


def test_scaled_maps_nested_geojson_coordinates() -> None:
    from pseudoedgenet.experiments.owndata import _scaled

    assert _scaled([2.0, 4.0], 0.5) == [1.0, 2.0]
    assert _scaled([[[0, 8], [8, 8]]], 0.25) == [[[0.0, 2.0], [2.0, 2.0]]]
