"""The TNBC fold-1 analysis: statistics on hand-computable cases, tables from the committed
records, and the whole module on the real TNBC copy (marked ``realdata``)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, error_line
from pseudoedgenet.experiments import tnbc_fold1 as tf
from pseudoedgenet.experiments.records import load_results
from pseudoedgenet.labels import IGNORE, NEGATIVE, POSITIVE, voronoi_labels

#: The fold-1 test images of TNBC prepared with k=10 (seed 0): the fold assignment the
#: committed fold-1 records were made with.
FOLD1_TEST = ["03_2", "04_3", "04_5", "05_1", "09_3"]


def _three_nuclei() -> tuple[np.ndarray, np.ndarray]:
    """20 × 30 image: A (id 3) 4 × 4 at rows 2–5, cols 2–5; B (id 7) 6 × 6 at rows 10–15,
    cols 20–25; C (id 9) 2 × 8 at rows 6–7, cols 6–13, diagonal neighbour of A at (5, 5) /
    (6, 6). Labels: one positive per nucleus, negatives on column 18 (20 px, outside every
    nucleus) and on row 14, cols 20–29 (10 px, 6 of them inside B)."""
    inst = np.zeros((20, 30), np.uint16)
    inst[2:6, 2:6] = 3
    inst[10:16, 20:26] = 7
    inst[6:8, 6:14] = 9
    labels = np.full((20, 30), IGNORE, np.uint8)
    labels[:, 18] = NEGATIVE
    labels[14, 20:30] = NEGATIVE
    for r, c in ((3, 3), (12, 22), (6, 9)):
        labels[r, c] = POSITIVE
    return inst, labels


def test_nucleus_stats_hand_computed() -> None:
    inst, labels = _three_nuclei()
    s = tf.nucleus_stats(inst, labels)
    assert s.n_nuclei == 3
    assert s.density == pytest.approx(3 / (600 / 10_000))  # 50 per 100 × 100 px
    assert s.mean_area == pytest.approx(68 / 3) and s.median_area == 16
    assert s.nucleus_pixels == 68 and s.foreground == pytest.approx(68 / 600)
    assert s.positive_share == pytest.approx(3 / 68)
    assert s.negatives_in_nuclei == pytest.approx(6 / 30)
    assert s.nuclei_cut == pytest.approx(1 / 3)  # B only
    assert s.touching == pytest.approx(2 / 3)  # A and C, diagonally
    # squares 1, the 2 × 8 rectangle 4 (unit-square moments): mean 2
    assert s.elongation == pytest.approx(2.0)


def test_nucleus_stats_voronoi_between_separate_squares() -> None:
    """Two squares far apart with their centres as points: the Voronoi boundary runs
    between them, so no negative falls inside a nucleus; no nucleus touches another."""
    inst = np.zeros((16, 24), np.uint16)
    inst[4:8, 2:6] = 1  # 16 px, centre (x, y) = (3.5, 5.5) -> use pixel (3, 5)
    inst[6:12, 14:20] = 2  # 36 px
    points = np.array([[3.0, 5.0], [16.0, 8.0]])
    labels = voronoi_labels(points, inst.shape)
    s = tf.nucleus_stats(inst, labels)
    assert (labels == NEGATIVE).sum() > 0
    assert s.negatives_in_nuclei == 0 and s.nuclei_cut == 0 and s.touching == 0
    assert s.positive_share == pytest.approx(2 / 52)
    assert s.elongation == pytest.approx(1.0)


def test_nucleus_stats_without_nuclei_or_negatives() -> None:
    s = tf.nucleus_stats(np.zeros((8, 8), np.uint16), np.full((8, 8), IGNORE, np.uint8))
    assert s.n_nuclei == 0 and s.foreground == 0
    assert all(
        math.isnan(v)
        for v in (s.mean_area, s.positive_share, s.negatives_in_nuclei, s.nuclei_cut, s.elongation)
    )
    with pytest.raises(ValueError, match="must be"):
        tf.nucleus_stats(np.zeros((8, 8)), np.zeros((8, 9), np.uint8))


def test_colour_stats() -> None:
    inst, _ = _three_nuclei()
    image = np.full((20, 30, 3), 230, np.uint8)
    image[inst > 0] = (50, 20, 120)
    image[0, 0] = (199, 255, 255)  # not white: one channel under 200
    c = tf.colour_stats(image, inst)
    n_fg = 68
    expected_r = (50 * n_fg + 199 + 230 * (600 - n_fg - 1)) / 600
    assert c.mean_rgb[0] == pytest.approx(expected_r)
    assert c.mean_rgb[1] == pytest.approx((20 * n_fg + 255 + 230 * (600 - n_fg - 1)) / 600)
    assert c.white == pytest.approx((600 - n_fg - 1) / 600)
    assert c.h_nuclei > c.h_outside  # dark purple nuclei carry haematoxylin


def test_record_tables_read_the_committed_records() -> None:
    groups = tf.tnbc_records(load_results(REPO / "results"))
    lines = tf.record_tables(groups)
    text = "\n".join(lines)
    fold1 = {m: g for (p, m), g in groups.items() if p == tf.PROTOCOL and tf.TEST_FOLD in g}
    assert fold1, "the committed results hold TNBC fold-1 records"
    for m, g in fold1.items():
        rec = g[tf.TEST_FOLD].record
        assert rec.test is not None
        row = next(ln for ln in lines if ln.startswith(f"| `{m}` |"))
        assert f"{rec.test.iou:.4f}" in row
        assert f"{rec.best_epoch}/{rec.epochs}" in row
    assert text.count("| `cpu` |") >= len(fold1)


def test_protocol_table_names_each_runs_schedule_and_device() -> None:
    groups = tf.tnbc_records(load_results(REPO / "results"))
    rows = [ln for ln in tf.protocol_table(groups) if ln.startswith("| `")]
    assert len(rows) == len(groups)  # one row per protocol and method
    assert rows[0].startswith(f"| `{tf.PROTOCOL}` | `baseline` | 0, 1, 2 |")  # cpu first
    for (protocol, method), folds in groups.items():
        row = next(r for r in rows if r.startswith(f"| `{protocol}` | `{method}` |"))
        for r in folds.values():
            rec = r.record
            assert f"{rec.epochs} × {rec.crops_per_epoch} of {rec.crop}²" in row
            assert f"| {rec.pretrained} |" in row and rec.device in row and rec.precision in row


def _exit_code(tmp_path: Path) -> object:
    """The exit code of the module's main on ``tmp_path`` (data, work, out under it)."""
    args = ["--data", tmp_path, "--work", tmp_path / "work", "--out", tmp_path / "docs"]
    with pytest.raises(SystemExit) as exc:
        tf.main([str(a) for a in [*args, "--results", REPO / "results"]])
    return exc.value.code


def test_bad_inputs_end_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a --score folder that holds no finished run, named before the data are looked at
    args = ["--data", tmp_path, "--work", tmp_path / "work", "--out", tmp_path / "docs"]
    with pytest.raises(SystemExit) as exc:
        tf.main([str(a) for a in [*args, "--results", REPO / "results", "--score", tmp_path]])
    assert exc.value.code == 2
    assert error_line(capsys.readouterr().err) == (
        f"error: {tmp_path / 'result.json'}: cannot read: --score takes a finished crossval "
        "run folder"
    )
    (tmp_path / "result.json").write_text('{"dataset": "tnbc", "fold": 0}')
    with pytest.raises(SystemExit) as exc:
        tf.main([str(a) for a in [*args, "--results", REPO / "results", "--score", tmp_path]])
    assert "is not a TNBC fold-1 run" in error_line(capsys.readouterr().err)
    (tmp_path / "result.json").unlink()
    assert _exit_code(tmp_path) == 2
    assert error_line(capsys.readouterr().err) == (
        f"error: {tmp_path / 'tnbc'}: TNBC folder not found: give --data the folder that "
        "holds tnbc/"
    )
    doc = tmp_path / "docs" / tf.DOC_NAME
    doc.parent.mkdir()
    doc.write_text("no markers here\n")
    assert _exit_code(tmp_path) == 2
    assert error_line(capsys.readouterr().err).startswith(f"error: {doc}: needs exactly one")
    assert doc.read_text() == "no markers here\n"


def test_write_bytes_if_changed(tmp_path: Path) -> None:
    p = tmp_path / "a" / "b.png"
    assert tf.write_bytes_if_changed(p, b"x")
    mtime = p.stat().st_mtime_ns
    assert not tf.write_bytes_if_changed(p, b"x") and p.stat().st_mtime_ns == mtime
    assert tf.write_bytes_if_changed(p, b"y") and p.read_bytes() == b"y"


def test_work_folder_with_other_folds_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pseudoedgenet.data.prepared import prepare_dataset
    from pseudoedgenet.data.sample import Sample

    inst, _ = _three_nuclei()
    image = np.full((20, 30, 3), 200, np.uint8)
    samples = [Sample(f"im{i}", image, inst, None, "p", tmp_path) for i in range(4)]
    work = tmp_path / "work"
    (tmp_path / "tnbc").mkdir()  # a --data that holds tnbc/
    prepare_dataset(samples, work / "tnbc", source={"reader": "folder"}, k=3)
    args = ["--data", str(tmp_path), "--work", str(work), "--out", str(tmp_path / "docs")]
    with pytest.raises(SystemExit) as exc:
        tf.main([*args, "--results", str(REPO / "results")])
    assert exc.value.code == 2
    line = error_line(capsys.readouterr().err)
    prepared = work / "tnbc"
    assert line.startswith(
        f"error: {prepared / 'folds.json'}: reader folder, k=3, seed 0, by image"
    )
    (prepared / "dataset.json").unlink()
    with pytest.raises(SystemExit) as exc:
        tf.main([*args, "--results", str(REPO / "results")])
    assert exc.value.code == 2
    assert error_line(capsys.readouterr().err) == (
        f"error: {prepared}: exists but is not a prepared dataset: delete it or give another --work"
    )
    assert not (tmp_path / "docs").exists()


@pytest.mark.realdata
@pytest.mark.slow
def test_module_on_tnbc(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The module on the real TNBC copy, twice (the second run reuses the prepared folder):
    fold-1 names, the block, the figure, the committed page's block, and no change on the
    second run."""
    if not (shared_data / "tnbc").is_dir():
        pytest.skip("TNBC not in the shared data")
    out, work = tmp_path / "docs", tmp_path / "work"
    args = ["--data", str(shared_data), "--out", str(out), "--work", str(work)]
    tf.main([*args, "--results", str(REPO / "results")])
    assert "wrote" in capsys.readouterr().out
    from pseudoedgenet.data.prepared import PreparedDataset

    assert PreparedDataset(work / "tnbc").split(tf.TEST_FOLD).test == FOLD1_TEST
    doc = (out / tf.DOC_NAME).read_text()
    block = doc.split(tf.DOC_BEGIN)[1].split(tf.DOC_END)[0]
    assert "Generated by `" + tf.COMMAND + "`" in block
    names = ", ".join(f"{n} (patient {n.split('_')[0]})" for n in FOLD1_TEST)
    assert f"1. Fold 1 tests on 5 images: {names}." in block
    for n in FOLD1_TEST:
        assert f"| {n} | {n.split('_')[0]} | 1 (test) |" in block
    assert block.count("(validation) |") == 5 + 1  # five fold-2 rows and the fold-2 mean
    assert (out / tf.FIGURE_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # fold-1 runs of another protocol are stated with their test IoU
    groups = tf.tnbc_records(load_results(REPO / "results"))
    for (p, m), g in groups.items():
        if p != tf.PROTOCOL and tf.TEST_FOLD in g:
            test = g[tf.TEST_FOLD].record.test
            assert test is not None
            finding = next(ln for ln in block.splitlines() if f"`{p}`, fold-1 runs" in ln)
            assert f"`{m}` {test.iou:.4f} (pooled" in finding
    # each committed per-image file (fold-1 checkpoints scored again) gives a finding and
    # a column of the per-image table
    for f in sorted((REPO / "results" / tf.PER_IMAGE).glob("*.json")):
        raw = json.loads(f.read_text())
        epoch = raw["checkpoints"][0]["epoch"]
        head = f"`{raw['protocol']}` `{raw['method']}` best.ckpt, epoch {epoch}"
        assert f"Image by image, {head}" in block and f"| {head} |" in block
    # the committed page's block is what the committed images and records give
    committed = (REPO / "docs" / tf.DOC_NAME).read_text()
    assert committed.split(tf.DOC_BEGIN)[1].split(tf.DOC_END)[0] == block
    # a second run changes nothing
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    tf.main([*args, "--results", str(REPO / "results")])
    assert capsys.readouterr().out == "no file changed\n"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # the prepared folder is reused only for the TNBC it was prepared from
    other = tmp_path / "other"
    shutil.copytree(shared_data / "tnbc", other / "tnbc")
    with pytest.raises(SystemExit) as exc:
        tf.main(["--data", str(other), "--out", str(out), "--work", str(work)])
    assert exc.value.code == 2
    assert f"was prepared from {shared_data / 'tnbc'}, not {other / 'tnbc'}" in error_line(
        capsys.readouterr().err
    )
