"""`make demo`'s job (pseudoedgenet.demo) on the bundled crops, one epoch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pseudoedgenet.demo import run_demo
from pseudoedgenet.inference.run import COVERAGE_HIGH


def test_demo_writes_what_the_readme_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo_out"
    result = run_demo(out, epochs=1)
    assert result.test is not None and 0 <= result.test.iou <= 1
    for rel in (
        "labels_example.png",
        "figure.png",
        "run/best.ckpt",
        "run/config.yaml",
        "run/metrics.csv",
        "run/result.json",
    ):
        assert (out / rel).is_file(), rel
    preds = sorted((out / "predictions").glob("*/predict.json"))
    assert len(preds) == 8  # every bundled crop
    for p in preds:
        for name in ("mask.png", "overlay.png", "nuclei.geojson", "nuclei.csv"):
            assert (p.parent / name).is_file()
    text = capsys.readouterr().out
    # the closing summary says how many crops got an implausible mask, and only then
    high = sum(json.loads(p.read_text())["foreground_fraction"] > COVERAGE_HIGH for p in preds)
    empty = sum(json.loads(p.read_text())["foreground_fraction"] == 0 for p in preds)
    if high + empty:
        assert f"  {high + empty} of 8 crops: f marks " in text
    else:
        assert " of 8 crops: f marks" not in text
    assert "demo done in" in text and "fold 0 test IoU" in text
