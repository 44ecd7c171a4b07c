"""The results report: tables, paired differences, plots and the CLI, from synthetic fold files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pseudoedgenet.errors import DataError
from pseudoedgenet.experiments.records import (
    ABSENT,
    config_differences,
    load_results,
    mean_curve,
    paired_difference,
    read_val_curve,
    record_val_curve,
    summarize,
)
from pseudoedgenet.experiments.report import (
    PAPER_TABLE1,
    PAPER_TABLE2,
    SUMMARY_BEGIN,
    SUMMARY_END,
    build_report,
    format_signed,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_fold(
    results: Path,
    dataset: str,
    method: str,
    fold: int,
    iou: float,
    protocol: str = "cpu",
    folder: str | None = None,
    **extra: Any,
) -> Path:
    """Writes ``results/<dataset>/<folder or method>/fold_<fold>.json`` like crossval does."""
    record = {
        "dataset": dataset,
        "protocol": protocol,
        "method": method,
        "fold": fold,
        "epochs": 30 if protocol == "cpu" else 100,
        "crop": 256,
        "crops_per_epoch": 160 if protocol == "cpu" else 800,
        "pretrained": "none",
        "precision": "bf16-mixed",
        "device": "cpu (2 threads, x86_64, AVX512)",
        "config_sha256": f"sha-{method}",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "val_iou": iou + 0.01,
        "best_epoch": 7,
        "test": {"iou": iou, "dice": iou + 0.1, "f1": iou + 0.2, "aji": iou - 0.1},
        "test_images": 5,
        "wall_s": 600.0,
        **extra,
    }
    path = results / dataset / (folder or method) / f"fold_{fold}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
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
    assert protocols["`cpu`"][:6] == ["4", "30", "160", "256", "none", "bf16-mixed"]
    assert protocols["`cpu`"][7] == "`0123456789`"
    assert (
        "pseudoedgenet crossval --config configs/<dataset>/<method>.yaml --data data/<dataset> "
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
        ({"test": {"dice": 0.5}}, "test.iou"),
        ({"fold": 5}, "file name says fold 1"),
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


def test_read_val_curve_and_mean(tmp_path: Path) -> None:
    run = tmp_path / "fold_0"
    write_metrics(run, [0.1, 0.3, 0.2])
    assert read_val_curve(run) == {1: 0.1, 2: 0.3, 3: 0.2}
    # a run still going: no merged metrics.csv yet, the attempt logs are read in order
    going = tmp_path / "fold_1"
    write_metrics(going, [0.2, 0.25], "logs/attempt_0/metrics.csv")
    write_metrics(going, [0.2, 0.4], "logs/attempt_1/metrics.csv")
    assert read_val_curve(going) == {1: 0.2, 2: 0.4}
    assert read_val_curve(tmp_path / "nothing") == {}
    mean = mean_curve([read_val_curve(run), read_val_curve(going)])
    assert mean == {1: (pytest.approx(0.15), 2), 2: (pytest.approx(0.35), 2), 3: (0.2, 1)}


def test_val_iou_plot_from_run_folders(results: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs" / "crossval"
    # run folders given as runs/crossval/<--out>/fold_<i>, --out results/tnbc/pen_att
    for fold in range(3):
        write_metrics(
            runs / "results" / "tnbc" / "pen_att" / f"fold_{fold}", [0.1, 0.2 + fold / 10]
        )
    write_metrics(runs / "results" / "tnbc" / "baseline" / "fold_0", [0.1, 0.15, 0.2])
    out = tmp_path / "report" / "README.md"
    res = build_report(results, out, runs_dir=runs)
    png = out.parent / "val_iou_tnbc.png"
    assert res.images == [png]
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert "![validation IoU per epoch, TNBC](val_iou_tnbc.png)" in out.read_text()
    assert not (out.parent / "val_iou_monuseg.png").exists()


def test_val_curve_kept_in_fold_files_and_table2_plot(tmp_path: Path) -> None:
    results = tmp_path / "results"
    # fold files that keep their curve need no run folder
    for fold in range(2):
        write_fold(
            results, "tnbc", "pen_att", fold, 0.5, val_curve={"1": 0.1, "2": 0.3 + fold / 10}
        )
    write_fold(results, "tnbc", "pen_att_g2", 0, 0.5, val_curve={"1": 0.2, "2": 0.25})
    out = tmp_path / "report" / "README.md"
    res = build_report(results, out)
    t1, t2 = out.parent / "val_iou_tnbc.png", out.parent / "val_iou_tnbc_table2.png"
    assert res.images == [t1, t2]
    md = out.read_text()
    assert "![validation IoU per epoch, TNBC](val_iou_tnbc.png)" in md
    assert "![validation IoU per epoch, TNBC, Table 2 variants](val_iou_tnbc_table2.png)" in md
    index = json.loads((out.parent / "figures.json").read_text())
    assert index["val_iou_tnbc_table2.png"]["alt"].endswith("Table 2 variants")
    assert record_val_curve(load_results(results)[0], results, None) == {1: 0.1, 2: 0.3}
    # a malformed curve is a one-line error naming the fold file
    write_fold(results, "tnbc", "pen_att_g6", 0, 0.5, val_curve=[0.1, 0.2])
    with pytest.raises(DataError, match=r"pen_att_g6/fold_0\.json.*val_curve"):
        build_report(results, out)


def test_figures_without_their_inputs_are_kept_with_caption(results: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_metrics(runs / "tnbc" / "pen_att" / "fold_0", [0.1, 0.2])
    out = tmp_path / "report" / "README.md"
    build_report(results, out, runs_dir=runs)
    png = out.parent / "val_iou_tnbc.png"
    drawn = png.read_bytes()
    # the run folders are gone (a fresh clone): the plot and its caption are kept, marked
    res = build_report(results, out)
    md = out.read_text()
    assert res.images == [] and png.read_bytes() == drawn
    assert "![validation IoU per epoch, TNBC](val_iou_tnbc.png)" in md
    assert "*TNBC: validation IoU per epoch (Table 1 methods).*" in md
    assert "*Kept from an earlier report run (commit `" in md
    assert any(n.startswith("val_iou_tnbc.png kept") for n in res.notes)
    # without the PNG there is nothing to keep
    png.unlink()
    build_report(results, out)
    assert "val_iou_tnbc.png" not in out.read_text()
    # an index that is not a mapping of PNG names to captions is refused
    (out.parent / "figures.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"figures\.json"):
        build_report(results, out)


def test_config_differences_names_changed_and_absent_settings() -> None:
    old = {"model": {"edge": "none"}, "train": {"lr": 0.001, "seed": 0}}
    new = {"model": {"edge": "none", "edge_scale": 0.02}, "train": {"lr": 0.002, "seed": 0}}
    assert config_differences([old, old]) == {}
    assert config_differences([old, new, new]) == {
        "model.edge_scale": [ABSENT, 0.02, 0.02],
        "train.lr": [0.001, 0.002, 0.002],
    }
    # a setting that is null in one config and missing in another still differs
    assert config_differences([{"a": {"b": None}}, {"a": {}}]) == {"a.b": [None, ABSENT]}


def test_cells_with_several_configs_list_the_differing_settings(tmp_path: Path) -> None:
    results = tmp_path / "results"
    runs = tmp_path / "runs"
    old_yaml = "method: baseline\ntrain:\n  lr: 0.001\n  epochs: 30\n"
    old_sha = hashlib.sha256(old_yaml.encode()).hexdigest()
    newer = {"method": "baseline", "train": {"lr": 0.001, "epochs": 30, "warmup": 0}}
    # fold 0 predates the `config` field: its config is found as a run folder's
    # config.yaml with the same SHA-256 (here another dataset's run of the same config)
    write_fold(results, "tnbc", "baseline", 0, 0.5, config_sha256=old_sha)
    (runs / "monuseg" / "baseline" / "fold_3").mkdir(parents=True)
    (runs / "monuseg" / "baseline" / "fold_3" / "config.yaml").write_text(old_yaml)
    # a config.yaml whose hash matches no fold is not taken for fold 0's
    (runs / "tnbc" / "baseline" / "fold_0").mkdir(parents=True)
    (runs / "tnbc" / "baseline" / "fold_0" / "config.yaml").write_text("method: rerun\n")
    for fold in (1, 2):
        write_fold(results, "tnbc", "baseline", fold, 0.5, config_sha256="b", config=newer)
    # same sha everywhere: no note
    for fold in range(3):
        write_fold(results, "tnbc", "pen", fold, 0.5, config_sha256="c", config=newer)
    # a fold whose config was kept nowhere
    write_fold(results, "monuseg", "baseline", 0, 0.5, config_sha256="gone")
    write_fold(results, "monuseg", "baseline", 1, 0.5, config_sha256="b", config=newer)
    out = tmp_path / "README.md"
    build_report(results, out, runs_dir=runs)
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
    assert "- `cpu`, MoNuSeg, `baseline`: config of fold 0 not kept" in md
    assert "- `cpu`, TNBC, `baseline`: `train.warmup` absent (fold 0) / 0 (fold 1, 2)." in md
    # the report copied fold 0's config, byte for byte, into the content-addressed store
    stored = results / "configs" / f"{old_sha}.yaml"
    assert stored.read_text() == old_yaml
    assert sorted(p.name for p in (results / "configs").iterdir()) == [stored.name]
    # so that it is still known without the run folders
    build_report(results, out)
    assert "- `cpu`, TNBC, `baseline`: `train.warmup` absent (fold 0) / 0 (fold 1, 2)." in (
        out.read_text()
    )
    # a store file edited after it was stored is refused, naming the file
    stored.write_text(old_yaml + "# edited\n")
    with pytest.raises(DataError, match=rf"{old_sha}\.yaml.*does not hash to its name"):
        build_report(results, out)
    # without store and run folders fold 0's config is unknown
    stored.unlink()
    build_report(results, out)
    assert "- `cpu`, TNBC, `baseline`: config of fold 0 not kept" in out.read_text()
    # other files under the runs folder are only hashed, never parsed
    bad = runs / "x" / "config.yaml"
    bad.parent.mkdir()
    bad.write_text("- [unclosed\n")
    build_report(results, out, runs_dir=runs)
    assert "`train.warmup` absent (fold 0) / 0 (fold 1, 2)." in out.read_text()


# ------------------------------------------------------------------------- CLI


def test_cli_report(results: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "README.md"
    code, stdout, stderr = cli("report", results, "--out", out)
    assert code == 0, stderr
    assert f"wrote {out} (4 fold files, 0 images)" in stdout
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


def test_readme_summary_block_is_regenerated_in_place(tmp_path: Path, cli) -> None:
    root = tmp_path / "results"
    for fold, (pen, base) in enumerate([(0.60, 0.55), (0.62, 0.58), (0.58, 0.56)]):
        write_fold(root, "tnbc", "pen_att", fold, pen)
        write_fold(root, "tnbc", "baseline", fold, base)
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


def test_cli_figures_skipped_with_a_note(results: Path, tmp_path: Path, cli) -> None:
    code, stdout, stderr = cli(
        "report", results, "--out", tmp_path / "README.md", "--figures", "--data", "tnbc=nowhere"
    )
    assert code == 0, stderr
    assert "figure 2 for tnbc skipped" in stdout
    assert "TNBC: skipped (" in (tmp_path / "README.md").read_text()
    code, _, stderr = cli("report", results, "--figures", "--data", "tnbc")
    assert code == 2 and "DATASET=FOLDER" in stderr


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


def test_figure2_panel_from_fold0_checkpoints(
    results: Path, tmp_path: Path, make_folder_dataset
) -> None:
    from pseudoedgenet.data.folder import read_folder
    from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset

    make_folder_dataset(tmp_path / "src", n=4)
    data = tmp_path / "data" / "tnbc"
    prepare_dataset(read_folder(tmp_path / "src"), data, source={"reader": "folder"}, k=4)
    runs = tmp_path / "runs"
    save_fake_checkpoint(runs / "results" / "tnbc" / "pen_att" / "fold_0" / "best.ckpt", [])
    save_fake_checkpoint(
        runs / "results" / "tnbc" / "baseline" / "fold_0" / "best.ckpt",
        ["method=baseline", "model.edge=none", "model.attention=false"],
    )
    out = tmp_path / "report" / "README.md"
    res = build_report(results, out, runs_dir=runs, data_dirs={"tnbc": data, "monuseg": data})
    png = out.parent / "figure2_tnbc.png"
    assert png in res.images and png.read_bytes()[:8] == PNG_MAGIC
    md = out.read_text()
    test_names = PreparedDataset(data).split(0).test
    assert "![Figure 2, TNBC](figure2_tnbc.png)" in md
    assert f"test images of fold 0 ({', '.join(test_names[:3])})" in md
    assert "(n/a: no checkpoint)" not in md
    assert res.notes == []  # MoNuSeg has no records, so no figure and no note


def test_holdout_results_get_their_own_table(results: Path, tmp_path: Path) -> None:
    path = results / "monuseg-test" / "pen_att.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "dataset": "monuseg-test",
                "method": "pen_att",
                "protocol": "cpu",
                "fold": None,
                "selection": "last",
                "epochs": 30,
                "train_images": 30,
                "test_images": 14,
                "test_data": "data/monuseg-test",
                "test": {"iou": 0.61234, "dice": 0.75, "f1": 0.5, "aji": 0.4},
                "test_pooled": {"iou": 0.62},
                "wall_s": 1500.0,
            }
        )
    )
    (results / "monuseg-test" / "notes.json").write_text("{}")  # not a result: ignored
    out = tmp_path / "README.md"
    build_report(results, out)
    md = out.read_text()
    rows = table_rows(md, "## Test set (split-based view)")
    assert rows["monuseg-test"] == [
        "`pen_att`", "`cpu`", "0.6123", "0.6200", "0.7500", "0.5000", "0.4000", "30 / 14",
        "30", "25 min", "`monuseg-test/pen_att.json`",
    ]  # fmt: skip
    assert "PEN(g+h) − baseline on" not in md  # no baseline on that test set yet
    base = json.loads(path.read_text()) | {"method": "baseline", "test": {"iou": 0.5}}
    (results / "monuseg-test" / "baseline.json").write_text(json.dumps(base))
    build_report(results, out)
    assert (
        "PEN(g+h) − baseline on monuseg-test, protocol `cpu`: +0.1123 IoU (one run each, "
        "last epoch)." in out.read_text()
    )
    # fold tables are unchanged by it
    assert build_report(results, out).n_records == 4
    path.write_text('{"test_data": "x", "method": "pen_att", "protocol": "cpu"}')
    with pytest.raises(DataError, match=r"pen_att\.json"):
        build_report(results, out)
