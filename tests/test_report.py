"""The results report: tables, paired differences, plots, Figure 2 and the CLI, from synthetic
fold files, and the committed report reproduced from the committed results."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import error_line
from pseudoedgenet.config import Config, apply_overrides, config_differences
from pseudoedgenet.engine.train import config_sha256, read_log_curve
from pseudoedgenet.errors import DataError
from pseudoedgenet.experiments.records import (
    FigureEntry,
    file_sha256,
    fold_val_curve,
    load_results,
    mean_curve,
    paired_difference,
    read_figure_manifest,
    summarize,
    write_figure_manifest,
)
from pseudoedgenet.experiments.report import (
    PAPER_TABLE1,
    PAPER_TABLE2,
    SUMMARY_BEGIN,
    SUMMARY_END,
    build_report,
    format_signed,
)
from pseudoedgenet.record import ResultRecord, Scores, read_record, write_record

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


def write_fold(
    results: Path,
    dataset: str,
    method: str,
    fold: int,
    iou: float,
    protocol: str = "cpu",
    folder: str | None = None,
    overrides: Sequence[str] = (),
    **extra: Any,
) -> Path:
    """Writes ``results/<dataset>/<folder or method>/fold_<fold>.json`` like crossval does
    (a schema-2 :class:`ResultRecord`; ``overrides`` change its config, ``extra`` sets
    fields of its JSON form as given, valid or not)."""
    epochs, crops = (30, 160) if protocol == "cpu" else (100, 800)
    cfg = apply_overrides(
        Config(method=method),
        [f"train.epochs={epochs}", f"data.crops_per_epoch={crops}", *overrides],
    )
    record = ResultRecord(
        method=method,
        config=cfg.to_dict(),
        config_sha256=config_sha256(cfg),
        git_commit="0123456789abcdef0123456789abcdef01234567",
        device="cpu (2 threads, x86_64, AVX512)",
        precision="bf16",
        selected_by="val/iou",
        wall_s=600.0,
        fold=fold,
        dataset=dataset,
        protocol=protocol,
        val_iou=iou + 0.01,
        best_epoch=7,
        test=Scores(iou, iou + 0.1, iou + 0.2, iou - 0.1),
        test_images=5,
    )
    path = results / dataset / (folder or method) / f"fold_{fold}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record.to_dict(), **extra}))
    return path


def table_rows(md: str, heading: str) -> dict[str, list[str]]:
    """Rows of the first table after ``heading``: first cell -> the other cells."""
    lines = md.splitlines()
    start = lines.index(heading)
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            in_table = True
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
        elif in_table:
            break
    return rows


def paired_rows(md: str, protocol: str) -> dict[tuple[str, str], list[str]]:
    """``(dataset, comparison)`` -> the other cells of the paired table of a protocol."""
    rows = {}
    lines = md.splitlines()
    start = lines.index(f"### Paired comparisons — protocol `{protocol}`")
    for line in lines[start + 1 :]:
        if line.startswith("### ") or line.startswith("PEN(g+h) as a fraction"):
            break
        if line.startswith("| ") and not line.startswith("| dataset"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """TNBC: pen_att folds 0-2 (0.50, 0.52, 0.54), baseline fold 0 (0.45); no MoNuSeg."""
    root = tmp_path / "results"
    for fold, iou in enumerate([0.50, 0.52, 0.54]):
        write_fold(root, "tnbc", "pen_att", fold, iou)
    write_fold(root, "tnbc", "baseline", 0, 0.45)
    return root


# ------------------------------------------------------------------------- statistics


def test_summarize_uses_sample_std() -> None:
    s = summarize([0.5, 0.52, 0.57])
    assert s is not None and s.n == 3
    assert s.mean == pytest.approx(np.mean([0.5, 0.52, 0.57]))
    assert s.std == pytest.approx(np.std([0.5, 0.52, 0.57], ddof=1))
    one = summarize([0.4])
    assert one is not None and one.std is None and one.n == 1
    assert summarize([]) is None
    assert format_signed(-1e-9) == "+0.0000" and format_signed(-0.01) == "-0.0100"


def test_paired_difference_uses_shared_folds_only(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for fold, iou in {0: 0.60, 1: 0.62, 2: 0.64, 3: 0.70}.items():
        write_fold(root, "tnbc", "pen_att", fold, iou)
    for fold, iou in {1: 0.57, 2: 0.57, 4: 0.10}.items():
        write_fold(root, "tnbc", "baseline", fold, iou)
    recs = load_results(root)
    a = {r.fold: r for r in recs if r.method == "pen_att"}
    b = {r.fold: r for r in recs if r.method == "baseline"}
    pair = paired_difference(a, b)
    assert pair.folds == [1, 2]
    assert pair.diffs == pytest.approx([0.05, 0.07])
    assert pair.a_mean == pytest.approx(0.63) and pair.b_mean == pytest.approx(0.57)
    s = pair.summary
    assert s is not None and s.n == 2
    assert s.mean == pytest.approx(0.06) and s.std == pytest.approx(0.02 / np.sqrt(2))

    out = build_report(root, tmp_path / "README.md").markdown
    rows = paired_rows(out.read_text(), "cpu")
    mean_std, verdict, per_fold, paper = rows[("TNBC", "PEN(g+h) − baseline")]
    assert mean_std == "+0.0600 ± 0.0141 (n=2)"
    assert verdict == "yes"
    assert per_fold == "f1: +0.0500, f2: +0.0700"
    assert paper == "+0.0534"  # 0.6038 − 0.5504, the paper's Table 1
    assert rows[("MoNuSeg", "PEN(g+h) − baseline")][:3] == ["–", "–", "–"]
    assert rows[("TNBC", "PEN(g) − baseline")][0] == "–"

    # the large-g row is compared with the baseline and with PEN(g+h) on shared folds
    for fold, iou in {1: 0.60, 2: 0.59}.items():
        write_fold(root, "tnbc", "pen_large_g", fold, iou)
    rows = paired_rows(build_report(root, tmp_path / "README.md").markdown.read_text(), "cpu")
    assert rows[("TNBC", "PEN(large g) − baseline")] == [
        "+0.0250 ± 0.0071 (n=2)", "yes", "f1: +0.0300, f2: +0.0200", "+0.0283",
    ]  # fmt: skip
    assert rows[("TNBC", "PEN(g+h) − PEN(large g)")][:3] == [
        "+0.0350 ± 0.0212 (n=2)", "yes", "f1: +0.0200, f2: +0.0500",
    ]  # fmt: skip


# ------------------------------------------------------------------------- tables


def test_table_cells_show_mean_std_n_and_dashes(results: Path, tmp_path: Path) -> None:
    res = build_report(results, tmp_path / "out" / "README.md")
    md = res.markdown.read_text()
    assert res.n_records == 4 and res.images == []
    t1 = table_rows(md, "### Table 1 — protocol `cpu`")
    assert list(t1) == ["method", "---", *(label for label, _ in PAPER_TABLE1.values())]
    pen = t1["PseudoEdgeNet, small g and h"]
    # config, MoNuSeg ours, MoNuSeg paper, TNBC ours, TNBC paper
    assert pen == ["`pen_att`", "–", "0.6136 ± 0.04", "0.5200 ± 0.0200 (n=3)", "0.6038 ± 0.03"]
    assert t1["Baseline [Laradji et al.]"][3] == "0.4500 (n=1)"
    assert t1["DenseCRF [Tang et al.]"] == [
        "`densecrf`",
        "–",
        "0.5813 ± 0.03",
        "–",
        "0.5555 ± 0.04",
    ]
    # secondary metrics: Dice = IoU + 0.1, F1 = IoU + 0.2, AJI = IoU − 0.1 per fold
    second = table_rows(md, "Dice, object F1 (match at IoU ≥ 0.5) and AJI of the same models:")
    assert second["PseudoEdgeNet, small g and h"] == [
        "–",
        "–",
        "–",
        "0.6200 ± 0.0200 (n=3)",
        "0.7200 ± 0.0200 (n=3)",
        "0.4200 ± 0.0200 (n=3)",
    ]
    t2 = table_rows(md, "### Table 2 — protocol `cpu`")
    assert list(t2)[2:] == [label for label, _ in PAPER_TABLE2.values()]
    assert t2["Small g: CNN, 4 conv layers"][3] == "0.5200 ± 0.0200 (n=3)"
    assert t2["Small g: CNN, 2 conv layers"][3] == "–"
    # protocol section and the command that reproduces a cell
    protocols = table_rows(md, "## Protocols")
    assert protocols["`cpu`"][:6] == ["4", "30", "160", "256", "none", "bf16"]
    assert protocols["`cpu`"][7] == "`0123456789`"
    assert (
        "pseudoedgenet crossval --config <method> --data data/<dataset> "
        "--folds 0-9 --protocol cpu --dataset <dataset> --out results/<dataset>-cpu/<method>"
    ) in md
    assert "ddof = 1" in md
    coverage = table_rows(md, "## Folds present")
    assert coverage["`cpu`"] == ["TNBC", "`baseline`", "0", "7", "10.0 min", "1"]


def test_protocols_are_kept_separate(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for fold, iou in enumerate([0.50, 0.60]):
        write_fold(root, "tnbc", "pen_att", fold, iou, protocol="cpu")
    for fold, iou in enumerate([0.70, 0.72, 0.74]):
        write_fold(root, "tnbc", "pen_att", fold, iou, protocol="paper", folder="pen_att_paper")
    for fold, iou in enumerate([0.40, 0.40]):
        write_fold(root, "tnbc", "baseline", fold, iou, protocol="paper", folder="base_paper")
    md = build_report(root, tmp_path / "README.md").markdown.read_text()
    paper = table_rows(md, "### Table 1 — protocol `paper`")
    cpu = table_rows(md, "### Table 1 — protocol `cpu`")
    assert md.index("protocol `paper`") < md.index("protocol `cpu`")
    assert paper["PseudoEdgeNet, small g and h"][3] == "0.7200 ± 0.0200 (n=3)"
    assert cpu["PseudoEdgeNet, small g and h"][3] == "0.5500 ± 0.0707 (n=2)"
    assert paper["Baseline [Laradji et al.]"][3] == "0.4000 ± 0.0000 (n=2)"
    assert cpu["Baseline [Laradji et al.]"][3] == "–"
    # paired only within a protocol: the cpu baseline does not exist
    assert paired_rows(md, "cpu")[("TNBC", "PEN(g+h) − baseline")][0] == "–"
    assert paired_rows(md, "paper")[("TNBC", "PEN(g+h) − baseline")][0] == (
        "+0.3100 ± 0.0141 (n=2)"
    )
    protocols = table_rows(md, "## Protocols")
    assert protocols["`paper`"][:3] == ["5", "100", "800"]
    assert protocols["`cpu`"][:3] == ["2", "30", "160"]


def test_fully_supervised_ratio(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for fold in range(2):
        write_fold(root, "tnbc", "pen_att", fold, 0.60)
        write_fold(root, "tnbc", "fully_supervised", fold, 0.75)
    md = build_report(root, tmp_path / "README.md").markdown.read_text()
    assert "| TNBC | 0.80 (n=2) | 0.91 |" in md
    assert "| MoNuSeg | – | 0.94 |" in md


# ------------------------------------------------------------------------- errors


def test_clicks_vs_masks_selection_per_fold(tmp_path: Path) -> None:
    """Folds that tested best_points.ckpt get a row: epochs, both IoUs, the mean difference;
    folds without that test are left out, a protocol with none says so."""
    res = tmp_path / "results"

    def scores(iou: float) -> dict[str, float]:
        return {"iou": iou, "dice": 0.6, "f1": 0.3, "aji": 0.2}

    write_fold(
        res, "tnbc", "pen_att", 0, 0.50, best_epoch_points=7, test_point_selected=scores(0.50)
    )
    write_fold(
        res, "tnbc", "pen_att", 1, 0.52, best_epoch_points=9, test_point_selected=scores(0.47)
    )
    write_fold(res, "tnbc", "pen_att", 2, 0.54)  # written before best_points.ckpt
    write_fold(res, "tnbc", "baseline", 0, 0.45, protocol="cpu-long", folder="baseline-long")
    md = build_report(res, res / "README.md").markdown.read_text()
    rows = table_rows(md, "### Clicks vs masks — protocol `cpu`")
    assert rows["TNBC"] == [
        "`pen_att`",
        "-0.0250 ± 0.0354 (n=2)",
        "1 of 2",
        "f0: 7/7, 0.5000 → 0.5000, f1: 7/9, 0.5200 → 0.4700",
    ]
    section = md.split("### Clicks vs masks — protocol `cpu`")[1].split("\n## ")[0]
    assert section.count("| TNBC |") == 1  # baseline (cpu-long only) and fold 2 add no row
    assert (
        "Protocol `cpu-long`: none of its 1 fold files has a test of `best_points.ckpt` "
        "(`test_point_selected`) yet." in md
    )


def test_invalid_json_is_one_line_error_naming_the_file(results: Path, tmp_path: Path) -> None:
    bad = results / "tnbc" / "pen" / "fold_3.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"dataset": "tnbc", "method": ')
    with pytest.raises(DataError) as exc:
        build_report(results, tmp_path / "README.md")
    assert exc.value.path == bad
    assert str(bad) in str(exc.value) and "invalid JSON" in str(exc.value)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "README.md").exists()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"protocol": None}, "'protocol'"),
        ({"test": None}, "without test scores"),
        ({"test": {"dice": 0.5}}, "test: unknown field|test: missing the 'iou' field"),
        ({"fold": 5}, "file name says fold 1"),
        ({"schema_version": None}, "schema_version None"),
        ({"surprise": 1}, r"unknown result field\(s\) \['surprise'\]"),
        ({"precision": "bf16-mixed"}, "'precision' must be fp32, bf16 or fp16"),
        ({"config": {"method": "x"}}, "config is incomplete"),
    ],
)
def test_invalid_record_is_refused(tmp_path: Path, change: dict[str, Any], problem: str) -> None:
    root = tmp_path / "results"
    path = write_fold(root, "tnbc", "pen_att", 1, 0.5)
    record = {**json.loads(path.read_text()), **change}
    path.write_text(json.dumps({k: v for k, v in record.items() if v is not None}))
    with pytest.raises(DataError, match=problem) as exc:
        load_results(root)
    assert exc.value.path == path


def test_duplicate_and_missing_results(tmp_path: Path) -> None:
    root = tmp_path / "results"
    with pytest.raises(DataError, match="results folder not found"):
        load_results(root)
    root.mkdir()
    with pytest.raises(DataError, match="no fold files"):
        load_results(root)
    write_fold(root, "tnbc", "pen_att", 0, 0.5)
    write_fold(root, "tnbc", "pen_att", 0, 0.6, folder="again")
    with pytest.raises(DataError, match="same dataset/method/protocol/fold"):
        load_results(root)


# ------------------------------------------------------------------------- curves


def write_metrics(run: Path, val: list[float], name: str = "metrics.csv") -> None:
    """A Lightning-style CSV log: per epoch one validation row and one training row."""
    lines = ["epoch,step,train/ce,train/edge,train/loss,val/dice,val/iou"]
    for epoch, iou in enumerate(val):
        step = 20 * (epoch + 1) - 1
        lines.append(f"{epoch},{step},,,,{iou + 0.1},{iou}")
        lines.append(f"{epoch},{step},0.5,0.01,0.51,,")
    (run / name).parent.mkdir(parents=True, exist_ok=True)
    (run / name).write_text("\n".join(lines) + "\n")


def test_read_log_curve_and_mean(tmp_path: Path) -> None:
    run = tmp_path / "fold_0"
    write_metrics(run, [0.1, 0.3, 0.2])
    assert read_log_curve(run) == {1: 0.1, 2: 0.3, 3: 0.2}
    # a run still going: no merged metrics.csv yet, the attempt logs are read in order
    going = tmp_path / "fold_1"
    write_metrics(going, [0.2, 0.25], "logs/attempt_0/metrics.csv")
    write_metrics(going, [0.2, 0.4], "logs/attempt_1/metrics.csv")
    assert read_log_curve(going) == {1: 0.2, 2: 0.4}
    assert read_log_curve(tmp_path / "nothing") == {}
    mean = mean_curve([read_log_curve(run), read_log_curve(going)])
    assert mean == {1: (pytest.approx(0.15), 2), 2: (pytest.approx(0.35), 2), 3: (0.2, 1)}


def test_val_curve_kept_in_fold_files_and_table2_plot(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for fold in range(2):
        write_fold(
            results, "tnbc", "pen_att", fold, 0.5, val_curve={"1": 0.1, "2": 0.3 + fold / 10}
        )
    write_fold(results, "tnbc", "pen_att_g2", 0, 0.5, val_curve={"2": 0.25, "1": 0.2})
    write_fold(results, "tnbc", "baseline", 0, 0.4)  # predates val_curve
    write_fold(results, "tnbc", "baseline", 1, 0.4)
    out = tmp_path / "report" / "README.md"
    res = build_report(results, out)
    t1, t2 = out.parent / "val_iou_tnbc_cpu.png", out.parent / "val_iou_tnbc_cpu_table2.png"
    assert res.images == [t1, t2] and t1.read_bytes()[:8] == PNG_MAGIC
    md = out.read_text()
    assert "![validation IoU per epoch, TNBC, protocol cpu](val_iou_tnbc_cpu.png)" in md
    assert (
        "![validation IoU per epoch, TNBC, protocol cpu, Table 2 variants]"
        "(val_iou_tnbc_cpu_table2.png)" in md
    )
    assert "*Left out (fold file without `val_curve`): `baseline` folds 0, 1.*" in md
    index = read_figure_manifest(out.parent)
    assert sorted(index) == ["val_iou_tnbc_cpu.png", "val_iou_tnbc_cpu_table2.png"]
    assert index["val_iou_tnbc_cpu_table2.png"].kind == "val_curves"
    assert index["val_iou_tnbc_cpu_table2.png"].png_sha256 == file_sha256(t2)
    recs = {r.method: r for r in load_results(results) if r.fold == 0}
    assert fold_val_curve(recs["pen_att_g2"]) == {1: 0.2, 2: 0.25}
    assert list(fold_val_curve(recs["pen_att_g2"]) or {}) == [1, 2]  # sorted by epoch
    assert fold_val_curve(recs["baseline"]) is None
    # a malformed curve is a one-line error naming the fold file
    write_fold(results, "tnbc", "pen_att_g6", 0, 0.5, val_curve=[0.1, 0.2])
    with pytest.raises(DataError, match=r"pen_att_g6/fold_0\.json.*val_curve"):
        build_report(results, out)


def test_plots_are_redrawn_only_when_their_data_change(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_fold(results, "tnbc", "pen_att", 0, 0.5, val_curve={"1": 0.1, "2": 0.3})
    out = results / "README.md"
    build_report(results, out)
    png, manifest = results / "val_iou_tnbc_cpu.png", results / "figures.json"
    drawn, index = png.read_bytes(), manifest.read_text()
    # the same drawing twice gives the same bytes: no software version or date in the PNG
    png.unlink()
    assert build_report(results, out).images == [png]
    assert png.read_bytes() == drawn and b"Software" not in drawn
    # unchanged data: the PNG and the manifest are not rewritten (whatever the plotting
    # library at hand would draw); the markdown is rewritten with the same text
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in results.glob("*.[jp]*")}
    res = build_report(results, out)
    assert res.images == [] and res.notes == []
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in results.glob("*.[jp]*")}
    assert after == before
    # another fold changes the mean curve: the plot is redrawn and its hash recorded
    write_fold(results, "tnbc", "pen_att", 1, 0.5, val_curve={"1": 0.3, "2": 0.5})
    assert build_report(results, out).images == [png]
    new = read_figure_manifest(results)["val_iou_tnbc_cpu.png"]
    old = json.loads(index)["figures"][png.name]
    assert new.png_sha256 == file_sha256(png) != old["png_sha256"]
    assert new.inputs_sha256 != old["inputs_sha256"]
    # a PNG that differs from its entry (edited, or drawn by other code) is redrawn
    png.write_bytes(b"not the plot")
    assert build_report(results, out).images == [png]
    assert file_sha256(png) == new.png_sha256
    # no fold keeps a curve any more: the report's own plot and its entry are removed
    for fold in (0, 1):
        write_fold(results, "tnbc", "pen_att", fold, 0.5)
    res = build_report(results, out)
    assert not png.exists() and read_figure_manifest(results) == {}
    assert res.notes == [
        "val_iou_tnbc_cpu.png removed: no fold file it plotted keeps a val_curve any more"
    ]
    assert "No validation curves found" in out.read_text()


def run_logs_entry(folder: Path, name: str, data: bytes = PNG_MAGIC + b"old") -> FigureEntry:
    """A committed plot drawn by an earlier report from run logs, with its manifest entry."""
    (folder / name).write_bytes(data)
    entry = FigureEntry(
        "run_logs",
        "validation IoU per epoch, TNBC",
        "*TNBC: validation IoU per epoch (from logs).*",
        hashlib.sha256(data).hexdigest(),
        commit="0123456789abcdef0123456789abcdef01234567",
    )
    write_figure_manifest(folder, {**read_figure_manifest(folder), name: entry})
    return entry


def test_plots_from_run_logs_are_shown_as_committed(results: Path, tmp_path: Path) -> None:
    run_logs_entry(results, "val_iou_tnbc.png")
    manifest = (results / "figures.json").read_bytes()
    out = results / "README.md"
    res = build_report(results, out)
    md = out.read_text()
    assert res.images == [] and res.notes == []
    assert "![validation IoU per epoch, TNBC](val_iou_tnbc.png)\n\n*TNBC: validation IoU" in md
    assert "*Drawn at commit `0123456789` by an earlier report from the run folders' logs" in md
    assert (results / "val_iou_tnbc.png").read_bytes() == PNG_MAGIC + b"old"
    assert (results / "figures.json").read_bytes() == manifest
    # a committed PNG that is not the one the manifest describes, or is missing: an error
    (results / "val_iou_tnbc.png").write_bytes(PNG_MAGIC + b"new")
    with pytest.raises(DataError, match=r"val_iou_tnbc\.png: differs from the file figures"):
        build_report(results, out)
    (results / "val_iou_tnbc.png").unlink()
    with pytest.raises(DataError, match=r"val_iou_tnbc\.png: missing"):
        build_report(results, out)
    # once a fold file keeps its curve, its protocol's plot is drawn from the fold files
    # beside the plot from the logs, which stays as committed
    run_logs_entry(results, "val_iou_tnbc.png")
    write_fold(results, "tnbc", "pen_att", 3, 0.5, val_curve={"1": 0.2})
    write_fold(results, "tnbc", "baseline", 0, 0.5, protocol="cpu-long", folder="b-long")
    res = build_report(results, out)
    assert res.images == [results / "val_iou_tnbc_cpu.png"] and res.notes == []
    index = read_figure_manifest(results)
    assert index["val_iou_tnbc.png"].kind == "run_logs"
    assert index["val_iou_tnbc_cpu.png"].kind == "val_curves"
    assert (results / "val_iou_tnbc.png").read_bytes() == PNG_MAGIC + b"old"
    md = out.read_text()
    assert md.index("(val_iou_tnbc.png)") < md.index("(val_iou_tnbc_cpu.png)")
    assert "(fold file without `val_curve`): `baseline` fold 0; `pen_att` folds 0, 1, 2." in md
    assert "val_iou_tnbc_cpu-long" not in md  # no curve at cpu-long: no plot


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "schema_version"),
        ('{"schema_version": 1, "figures": {"a.png": {"kind": "x"}}}', "kind must be one of"),
        (
            '{"schema_version": 1, "figures": {"a.png": {"kind": "run_logs", "alt": "a", '
            '"caption": "c", "png_sha256": "' + "0" * 64 + '"}}}',
            "needs a 'commit' field",
        ),
        ('{"schema_version": 1, "figures": {"../a.png": {}}}', "PNG file names"),
    ],
)
def test_invalid_figure_manifest_is_refused(results: Path, text: str, problem: str) -> None:
    (results / "figures.json").write_text(text)
    with pytest.raises(DataError, match=problem) as exc:
        build_report(results, results / "README.md")
    assert exc.value.path == results / "figures.json"
    assert not (results / "README.md").exists()


def test_config_differences_names_changed_and_missing_settings() -> None:
    old = {"model": {"edge": "none"}, "train": {"lr": 0.001, "seed": 0}}
    new = {"model": {"edge": "none", "edge_scale": 0.02}, "train": {"lr": 0.002, "seed": 0}}
    assert config_differences([old, old]) == {}
    assert config_differences([old, new, new]) == {
        "model.edge_scale": [None, 0.02, 0.02],
        "train.lr": [0.001, 0.002, 0.002],
    }
    # Config objects and their mappings compare alike
    a, b = Config(), apply_overrides(Config(), ["train.lr=0.05"])
    assert config_differences([a, b.to_dict()]) == {"train.lr": [0.001, 0.05]}


def test_cells_with_several_configs_list_the_differing_settings(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_fold(results, "tnbc", "baseline", 0, 0.5, overrides=["train.lr=0.002"])
    for fold in (1, 2):
        write_fold(results, "tnbc", "baseline", fold, 0.5)
    for fold in range(3):  # same config everywhere: no note
        write_fold(results, "tnbc", "pen", fold, 0.5)
    write_fold(results, "monuseg", "baseline", 0, 0.5, overrides=["data.crop=128", "train.seed=3"])
    write_fold(results, "monuseg", "baseline", 1, 0.5)
    out = tmp_path / "README.md"
    build_report(results, out)
    cells = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in out.read_text().splitlines()
        if line.startswith("| `cpu` |")
    ]
    cfg_col = {(c[1], c[2]): c[-1] for c in cells}
    assert cfg_col[("TNBC", "`pen`")] == "1"
    assert cfg_col[("MoNuSeg", "`baseline`")] == "2 (differ: note 1)"
    assert cfg_col[("TNBC", "`baseline`")] == "2 (differ: note 2)"
    md = out.read_text()
    assert (
        "- `cpu`, MoNuSeg, `baseline`: `data.crop` 128 (fold 0) / 256 (fold 1); "
        "`train.seed` 3 (fold 0) / 0 (fold 1)." in md
    )
    assert "- `cpu`, TNBC, `baseline`: `train.lr` 0.002 (fold 0) / 0.001 (fold 1, 2)." in md


# ------------------------------------------------------------------------- CLI


def test_cli_report(results: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "README.md"
    code, stdout, stderr = cli("report", results, "--out", out)
    assert code == 0, stderr
    assert f"wrote {out} (4 fold files, 0 images drawn)" in stdout
    assert "### Table 1 — protocol `cpu`" in out.read_text()
    # default output: RESULTS/README.md; the report never counts itself as a result
    code, _, stderr = cli("report", results)
    assert code == 0, stderr
    assert (results / "README.md").is_file()

    (results / "tnbc" / "pen_att" / "fold_1.json").write_text("{not json")
    code, _, stderr = cli("report", results, "--out", out)
    assert code == 2
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr
    assert lines[0].startswith(f"error: {results / 'tnbc' / 'pen_att' / 'fold_1.json'}: ")
    # the report reads committed files only: no options for run folders or checkpoints
    for gone in ("--runs", "--figures", "--data"):
        code, _, stderr = cli("report", results, gone, "x")
        assert code == 2 and "No such option" in stderr


def test_readme_summary_block_is_regenerated_in_place(tmp_path: Path, cli) -> None:
    root = tmp_path / "results"
    for fold, (pen, base) in enumerate([(0.60, 0.55), (0.62, 0.58), (0.58, 0.56)]):
        write_fold(root, "tnbc", "pen_att", fold, pen)
        write_fold(root, "tnbc", "baseline", fold, base)
    for fold, full in enumerate([0.70, 0.65]):  # two folds only: paired on folds 0 and 1
        write_fold(root, "tnbc", "fully_supervised", fold, full)
    write_fold(root, "monuseg", "pen_att", 0, 0.50, protocol="cpu-long", folder="pen_att-long")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{SUMMARY_BEGIN}\nstale 0.9999\n{SUMMARY_END}\nafter\n")
    code, _, stderr = cli("report", root, "--out", tmp_path / "report.md", "--readme", readme)
    assert code == 0, stderr
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n" + SUMMARY_BEGIN + "\n")
    assert text.endswith(SUMMARY_END + "\nafter\n")
    assert "stale" not in text
    assert "Protocol `cpu` (30 epochs × 160 crops of 256², pretrained: none" in text
    assert "device: cpu (2 threads, x86_64, AVX512), precision: bf16):" in text
    cpu = text.split("Protocol `cpu` (")[1]
    rows = table_rows("x\n" + cpu, "x")
    # TNBC pen_att: mean 0.60, std 0.02; baseline mean 0.5633; MoNuSeg has no cpu folds
    assert rows["PseudoEdgeNet, small g and h"] == [
        "`pen_att`",
        "–",
        "0.6136",
        "0.6000 ± 0.0200 (n=3)",
        "0.6038",
    ]
    assert rows["Baseline [Laradji et al.]"][3] == "0.5633 ± 0.0153 (n=3)"
    # paired differences 0.05, 0.04, 0.02: mean 0.0367, std 0.0153
    assert rows["PEN(g+h) − baseline, paired"] == [
        "",
        "–",
        "+0.0426",
        "+0.0367 ± 0.0153 (n=3)",
        "+0.0534",
    ]
    # fully supervised − PEN(g+h) on the shared folds 0, 1: 0.10, 0.03 -> mean 0.065,
    # std 0.0495; the paper's 0.6522 − 0.6136 and 0.6619 − 0.6038
    assert rows["Fully supervised − PEN(g+h), paired"] == [
        "",
        "–",
        "+0.0386",
        "+0.0650 ± 0.0495 (n=2)",
        "+0.0581",
    ]
    assert "DenseCRF" not in cpu.split(SUMMARY_END)[0]  # rows without folds are left out
    assert "Protocol `cpu-long`" in text  # the other protocol gets its own table
    # idempotent: a second run gives the same file
    cli("report", root, "--out", tmp_path / "report.md", "--readme", readme)
    assert readme.read_text() == text


@pytest.mark.parametrize(
    "body",
    ["no markers\n", f"{SUMMARY_END}\n{SUMMARY_BEGIN}\n", f"{SUMMARY_BEGIN}\n" * 2 + SUMMARY_END],
)
def test_readme_without_valid_markers_is_a_one_line_error(
    results: Path, tmp_path: Path, cli, body: str
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(body)
    code, _, stderr = cli("report", results, "--out", tmp_path / "r.md", "--readme", readme)
    assert code == 2 and "Traceback" not in stderr
    assert stderr.strip().startswith(f"error: {readme}: needs exactly one")
    assert readme.read_text() == body  # untouched
    assert not (tmp_path / "r.md").exists()


# ------------------------------------------------------------------------- figure 2


def save_fake_checkpoint(path: Path, overrides: list[str]) -> None:
    """An untrained module saved in the layout ``load_module`` reads (small encoders)."""
    import torch

    from pseudoedgenet.config import Config, apply_overrides
    from pseudoedgenet.engine.module import PseudoEdgeNetModule

    cfg = apply_overrides(
        Config(), ["model.encoder=resnet18", "train.channels_last=false", *overrides]
    )
    module = PseudoEdgeNetModule(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"hyper_parameters": {"config": cfg.to_dict()}, "state_dict": module.state_dict()}, path
    )


def test_figure2_command_draws_and_records_then_report_shows_it(
    results: Path, tmp_path: Path, make_folder_dataset, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pseudoedgenet.data.folder import read_folder
    from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset

    make_folder_dataset(tmp_path / "src", n=4)
    data = tmp_path / "data" / "tnbc"
    prepare_dataset(read_folder(tmp_path / "src"), data, source={"reader": "folder"}, k=4)
    pen = tmp_path / "runs" / "pen_att" / "best.ckpt"
    base = tmp_path / "runs" / "baseline" / "best.ckpt"
    save_fake_checkpoint(pen, [])
    save_fake_checkpoint(base, ["method=baseline", "model.edge=none", "model.attention=false"])
    png = results / "figure2_tnbc.png"
    # the commit is read before the PNG is written (redrawing a committed PNG changes the
    # tree): a stand-in tree is clean while the PNG is as "committed" (first: absent)
    committed: dict[str, bytes | None] = {"png": None}

    def fake_commit(path: object = None) -> str:
        now = png.read_bytes() if png.exists() else None
        return "0123456789" + ("" if now == committed["png"] else "-dirty")

    monkeypatch.setattr("pseudoedgenet.engine.runtime.git_commit", fake_commit)
    args = ["--checkpoint", pen, "--baseline", base, "--data", data, "--fold", "0"]
    code, stdout, stderr = cli("figure2", *args, "--title", "TNBC, protocol `cpu`", "--out", png)
    assert code == 0, stderr
    assert stdout.startswith(f"wrote {png} and its entry in {results / 'figures.json'}: *TNBC")
    assert png.read_bytes()[:8] == PNG_MAGIC
    entry = read_figure_manifest(results)["figure2_tnbc.png"]
    names = PreparedDataset(data).split(0).test[:3]
    assert entry.kind == "figure2" and entry.alt == "Figure 2, TNBC, protocol cpu"
    assert entry.caption.startswith(
        f"*TNBC, protocol `cpu`, test images of fold 0 ({', '.join(names)}): "
    )
    assert "(n/a" not in entry.caption
    assert entry.png_sha256 == file_sha256(png)
    assert [(c.role, c.path, c.sha256) for c in entry.checkpoints] == [
        ("pen", str(pen), hashlib.sha256(pen.read_bytes()).hexdigest()),
        ("baseline", str(base), hashlib.sha256(base.read_bytes()).hexdigest()),
    ]
    assert entry.command == (
        f"pseudoedgenet figure2 --checkpoint {pen} --baseline {base} --data {data} --fold 0 "
        f"--images 3 --title 'TNBC, protocol `cpu`' --out {png}"
    )
    assert entry.commit == "0123456789"
    # committed, then redrawn over itself: the commit of the tree before the PNG changed
    committed["png"] = png.read_bytes()
    png.write_bytes(PNG_MAGIC + b"an older panel")
    committed["png"] = png.read_bytes()
    code, _, stderr = cli("figure2", *args, "--title", "TNBC, protocol `cpu`", "--out", png)
    assert code == 0, stderr
    assert read_figure_manifest(results)["figure2_tnbc.png"].commit == "0123456789"
    # the report shows the committed PNG with caption, command and checkpoints, and needs
    # neither the checkpoints nor the data
    shutil.rmtree(tmp_path / "runs")
    shutil.rmtree(data)
    res = build_report(results, results / "README.md")
    md = (results / "README.md").read_text()
    assert res.images == [] and res.notes == []
    assert f"![Figure 2, TNBC, protocol cpu](figure2_tnbc.png)\n\n{entry.caption}\n" in md
    assert f"```bash\n{entry.command}\n```" in md
    assert f"pen `{pen}` (SHA-256 `{entry.checkpoints[0].sha256}`)" in md
    assert png.read_bytes()[:8] == PNG_MAGIC and file_sha256(png) == entry.png_sha256
    # a PNG redrawn without its manifest entry is refused
    png.write_bytes(PNG_MAGIC)
    with pytest.raises(DataError, match=r"figure2_tnbc\.png: differs"):
        build_report(results, results / "README.md")


def test_figure2_command_errors_are_one_line(tmp_path: Path, make_folder_dataset, cli) -> None:
    from pseudoedgenet.data.folder import read_folder
    from pseudoedgenet.data.prepared import prepare_dataset

    make_folder_dataset(tmp_path / "src", n=4)
    data = tmp_path / "data"
    prepare_dataset(read_folder(tmp_path / "src"), data, source={"reader": "folder"}, k=4)
    ckpt = tmp_path / "pen.ckpt"
    out = tmp_path / "fig" / "f.png"
    code, _, stderr = cli("figure2", "--checkpoint", ckpt, "--data", data, "--out", out)
    assert code == 2 and error_line(stderr) == f"error: {ckpt}: checkpoint not found"
    ckpt.write_bytes(b"x")
    code, _, stderr = cli(
        "figure2", "--checkpoint", ckpt, "--data", data, "--out", out, "--fold", "4"
    )
    assert code == 2 and "--fold 4: fold 4 out of range 0..3" in error_line(stderr)
    code, _, stderr = cli(
        "figure2", "--checkpoint", ckpt, "--data", data, "--out", tmp_path / "f.jpg"
    )
    assert code == 2 and "writes a PNG" in error_line(stderr)
    code, _, stderr = cli("figure2", "--checkpoint", ckpt, "--data", data, "--out", out)
    assert code == 2 and error_line(stderr).startswith(f"error: {ckpt}: not a readable checkpoint")
    assert not out.parent.exists()  # nothing written


def test_holdout_results_get_their_own_table(results: Path, tmp_path: Path) -> None:
    path = results / "monuseg-test" / "pen_att.json"
    path.parent.mkdir()
    fold_file = write_fold(results, "x", "pen_att", 0, 0.5)
    record = replace(
        read_record(fold_file),
        dataset="monuseg-test",
        fold=None,
        selected_by="last",
        best_epoch=None,
        val_iou=None,
        train_images=30,
        test_images=14,
        test_data="data/monuseg-test",
        test=Scores(0.61234, 0.75, 0.5, 0.4),
        test_pooled=Scores(0.62, 0.7, 0.5, 0.4),
        wall_s=1500.0,
    )
    shutil.rmtree(results / "x")
    write_record(path, record)
    (results / "monuseg-test" / "notes.json").write_text("{}")  # not a result: ignored
    out = tmp_path / "README.md"
    build_report(results, out)
    md = out.read_text()
    rows = table_rows(md, "## Test set (split-based view)")
    assert rows["monuseg-test"] == [
        "`pen_att`", "`cpu`", "0.6123", "0.6200", "0.7500", "0.5000", "0.4000", "30 / 14",
        "30", "160", "256", "none", "cpu (2 threads, x86_64, AVX512), bf16", "25 min",
        "`monuseg-test/pen_att.json`",
    ]  # fmt: skip
    assert "PEN(g+h) − baseline on" not in md  # no baseline on that test set yet
    base = replace(record, method="baseline", test=Scores(0.5, 0.6, 0.4, 0.3))
    write_record(results / "monuseg-test" / "baseline.json", base)
    build_report(results, out)
    assert (
        "PEN(g+h) − baseline on monuseg-test, protocol `cpu`: +0.1123 IoU (one run each, "
        "last epoch)." in out.read_text()
    )
    # the command names the folder and protocol of the records it regenerates
    long_dir = results / "monuseg-test-cpu-long"
    long_dir.mkdir()
    write_record(long_dir / "baseline.json", replace(base, protocol="cpu-long"))
    build_report(results, out)
    md = out.read_text()
    assert "--protocol cpu --dataset monuseg-test --out results/monuseg-test/<method>.json" in md
    assert (
        "--protocol cpu-long --dataset monuseg-test "
        "--out results/monuseg-test-cpu-long/<method>.json" in md
    )
    shutil.rmtree(long_dir)
    # fold tables are unchanged by it
    assert build_report(results, out).n_records == 4
    path.write_text('{"schema_version": 2, "test_data": "x", "method": "pen_att"}')
    with pytest.raises(DataError, match=r"pen_att\.json"):
        build_report(results, out)


def test_repeat_runs_are_shown_beside_their_first_run(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "README.md"
    build_report(results, out)
    assert "## Repeat runs" not in out.read_text()  # no repeats folder: no section
    repeats = results / "repeats"
    (repeats / "tnbc").mkdir(parents=True)
    build_report(results, out)
    assert "## Repeat runs" not in out.read_text()  # nor an empty one
    later = "fedcba9876543210fedcba9876543210fedcba98"
    write_fold(repeats, "tnbc", "pen_att", 0, 0.47, git_commit=later, best_epoch=12)
    write_fold(repeats, "tnbc", "baseline", 0, 0.48, git_commit=later)
    write_fold(repeats, "tnbc", "baseline", 2, 0.40, overrides=["train.seed=1"])  # no first run
    build_report(results, out)
    md = out.read_text()
    lines = md.splitlines()
    start = lines.index("## Repeat runs: the same fold trained again")
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in lines[start:]
        if line.startswith("| TNBC")
    ]
    dev = "cpu (2 threads, x86_64, AVX512), bf16"
    assert rows == [
        ["TNBC", "`baseline`", "`cpu`", "0", "0.4500 (7/30)", "0.4800 (7/30)", "+0.0300",
         "yes", "`0123456789`, `fedcba9876`", f"{dev}; {dev}",
         "`repeats/tnbc/baseline/fold_0.json`"],
        ["TNBC", "`baseline`", "`cpu`", "2", "–", "0.4000 (7/30)", "–", "–", "–, `0123456789`",
         f"–; {dev}", "`repeats/tnbc/baseline/fold_2.json`"],
        ["TNBC", "`pen_att`", "`cpu`", "0", "0.5000 (7/30)", "0.4700 (12/30)", "-0.0300",
         "yes", "`0123456789`, `fedcba9876`", f"{dev}; {dev}",
         "`repeats/tnbc/pen_att/fold_0.json`"],
    ]  # fmt: skip
    assert (
        "PEN(g+h) − baseline on TNBC fold 0, protocol `cpu`: +0.0500 with the first runs, "
        "-0.0100 with the repeats." in md
    )
    # the repeats are not fold files of the tables: Table 1 still counts the first runs
    assert build_report(results, out).n_records == 4
    # a repeat with another config says so
    write_fold(repeats, "tnbc", "baseline", 0, 0.48, overrides=["train.seed=1"])
    build_report(results, out)
    assert "| +0.0300 | no |" in out.read_text()


# ------------------------------------------------------------------------- the committed report


def test_report_on_a_fresh_clone_reproduces_the_committed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pseudoedgenet report results --out results/README.md --readme README.md`` on the
    committed ``results/`` and README leaves every file as committed (git diff empty)."""
    shutil.copytree(REPO / "results", tmp_path / "results")
    shutil.copy2(REPO / "README.md", tmp_path / "README.md")
    before = {
        p.relative_to(tmp_path).as_posix(): p.read_bytes()
        for p in sorted(tmp_path.rglob("*"))
        if p.is_file()
    }
    monkeypatch.chdir(tmp_path)
    res = build_report("results", "results/README.md", readme="README.md")
    assert res.images == [] and res.notes == []
    after = {
        p.relative_to(tmp_path).as_posix(): p.read_bytes()
        for p in sorted(tmp_path.rglob("*"))
        if p.is_file()
    }
    assert after.keys() == before.keys()
    changed = [name for name in before if after[name] != before[name]]
    assert changed == [], (
        "regenerate: pseudoedgenet report results --out results/README.md --readme README.md"
    )
