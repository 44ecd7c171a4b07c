"""The results report: the paper's Tables 1 and 2 rebuilt from the fold files.

``build_report`` reads every ``RESULTS/<dataset>/<method>/fold_<i>.json`` written by
:func:`pseudoedgenet.experiments.crossval.crossval`, groups the records by
``(dataset, method, protocol)`` and writes one markdown file with

- the protocols present (schedule, device, precision, commits) and the command that
  reproduces a cell,
- Table 1 and Table 2: ``mean ± std (n=folds)`` of the test IoU beside the paper's value,
  one table per protocol (protocols are never mixed), plus Dice, object F1 and AJI,
- paired differences on the folds two methods share (PEN(g+h) − baseline, ...),
- the folds present per cell,
- validation-IoU-per-epoch plots per dataset (drawn from the fold files' ``val_curve``), and
- the Figure-2 panels that ``pseudoedgenet figure2`` drew from checkpoints, as committed.

The report reads only committed files under the results folder (fold and holdout files,
the figure manifest ``figures.json`` and its PNGs), never
run folders or checkpoints, so on a fresh clone it comes out identical (byte for byte,
PNGs included: a plot is redrawn only when the hash of its data changes). The paper's
values are the constants below, shown only beside ours. Reading and statistics live in
:mod:`pseudoedgenet.experiments.records`, drawing in :mod:`pseudoedgenet.experiments.figures`;
this module lays out the markdown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pseudoedgenet.config import config_differences
from pseudoedgenet.data.io import write_text
from pseudoedgenet.errors import DataError
from pseudoedgenet.experiments.records import (
    FIGURE_MANIFEST,
    FigureEntry,
    FoldRecord,
    Groups,
    Summary,
    cell_summary,
    check_figure_png,
    file_sha256,
    fold_val_curve,
    group_records,
    load_holdout,
    load_results,
    mean_curve,
    paired_difference,
    read_figure_manifest,
    selection_pairs,
    summarize,
    write_figure_manifest,
)

#: Paper: Yoo et al., "PseudoEdgeNet: Nuclei Segmentation only with Point Annotations",
#: MICCAI 2019, Table 1 (mean and std of 10-fold cross-validated test IoU; the std is
#: printed with two decimals in the paper). Reference values only, not our results.
#: Row key -> (label, {dataset: (mean, std)}), in the paper's row order.
PAPER_TABLE1: dict[str, tuple[str, dict[str, tuple[float, float]]]] = {
    "baseline": ("Baseline [Laradji et al.]", {"monuseg": (0.5710, 0.02), "tnbc": (0.5504, 0.04)}),
    "densecrf": ("DenseCRF [Tang et al.]", {"monuseg": (0.5813, 0.03), "tnbc": (0.5555, 0.04)}),
    "pen_large_g": ("PseudoEdgeNet, large g", {"monuseg": (0.5786, 0.04), "tnbc": (0.5787, 0.04)}),
    "pen": ("PseudoEdgeNet, small g", {"monuseg": (0.6059, 0.04), "tnbc": (0.5853, 0.03)}),
    "pen_att": (
        "PseudoEdgeNet, small g and h",
        {"monuseg": (0.6136, 0.04), "tnbc": (0.6038, 0.03)},
    ),
    "fully_supervised": (
        "Fully supervised (upper bound)",
        {"monuseg": (0.6522, 0.03), "tnbc": (0.6619, 0.04)},
    ),
}

#: Paper, Table 2 (size of the edge network g, all with attention h; 10-fold test IoU,
#: mean and std). Its "4 conv layers" row equals Table 1's small g and h (our ``pen_att``)
#: and its "FPN-ResNet50" row equals Table 1's large g (our ``pen_large_g``).
#: Reference values only, not our results.
PAPER_TABLE2: dict[str, tuple[str, dict[str, tuple[float, float]]]] = {
    "pen_att_g2": (
        "Small g: CNN, 2 conv layers",
        {"monuseg": (0.6117, 0.03), "tnbc": (0.5928, 0.04)},
    ),
    "pen_att": ("Small g: CNN, 4 conv layers", {"monuseg": (0.6136, 0.04), "tnbc": (0.6038, 0.03)}),
    "pen_att_g6": (
        "Small g: CNN, 6 conv layers",
        {"monuseg": (0.6105, 0.04), "tnbc": (0.5896, 0.03)},
    ),
    "pen_att_g8": (
        "Small g: CNN, 8 conv layers",
        {"monuseg": (0.6119, 0.02), "tnbc": (0.5934, 0.04)},
    ),
    "pen_att_fpn18": ("Large g: FPN-ResNet18", {"monuseg": (0.6005, 0.03), "tnbc": (0.5795, 0.04)}),
    "pen_att_fpn34": ("Large g: FPN-ResNet34", {"monuseg": (0.6069, 0.03), "tnbc": (0.5796, 0.03)}),
    "pen_large_g": ("Large g: FPN-ResNet50", {"monuseg": (0.5786, 0.04), "tnbc": (0.5787, 0.04)}),
}

#: Paired comparisons reported per dataset and protocol: (minuend, subtrahend, label).
PAIRED_COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("pen_att", "baseline", "PEN(g+h) − baseline"),
    ("pen", "baseline", "PEN(g) − baseline"),
    ("densecrf", "baseline", "DenseCRF − baseline"),
    ("pen_large_g", "baseline", "PEN(large g) − baseline"),
    ("pen_att", "pen_large_g", "PEN(g+h) − PEN(large g)"),
    ("fully_supervised", "pen_att", "fully supervised − PEN(g+h)"),
)

#: Display names and column order of the known datasets (others follow, sorted).
DATASET_NAMES: dict[str, str] = {"monuseg": "MoNuSeg", "tnbc": "TNBC"}

#: Protocol order in the report (others follow, sorted).
PROTOCOL_ORDER: tuple[str, ...] = ("paper", "cpu-long", "cpu")

#: Secondary metrics of the fold records' ``test`` block, with their column names.
SECONDARY_METRICS: tuple[tuple[str, str], ...] = (("dice", "Dice"), ("f1", "F1"), ("aji", "AJI"))

_MISSING = "–"


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes:
        markdown: the markdown file.
        n_records: number of fold files read.
        images: PNG files (re)drawn next to the markdown now (plots whose data changed).
        notes: what else changed or was left out, one line each.
    """

    markdown: Path
    n_records: int
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def format_signed(x: float) -> str:
    """``"+0.0300"`` / ``"-0.0100"``; a difference that rounds to zero is ``"+0.0000"``."""
    text = f"{x:+.4f}"
    return "+0.0000" if text == "-0.0000" else text


def format_summary(s: Summary | None, signed: bool = False) -> str:
    """``"0.5200 ± 0.0200 (n=3)"``, ``"0.5200 (n=1)"`` or ``"–"`` for no values."""
    if s is None:
        return _MISSING
    mean = format_signed(s.mean) if signed else f"{s.mean:.4f}"
    if s.std is None:
        return f"{mean} (n={s.n})"
    return f"{mean} ± {s.std:.4f} (n={s.n})"


def _ordered(values: Iterable[str], first: Sequence[str]) -> list[str]:
    values = set(values)
    return [v for v in first if v in values] + sorted(values - set(first))


def _method_order() -> list[str]:
    """Methods in the paper's order: Table 1's rows, then Table 2's others."""
    return list(PAPER_TABLE1) + [m for m in PAPER_TABLE2 if m not in PAPER_TABLE1]


def _dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


def _short_commit(commit: str) -> str:
    dirty = commit.endswith("-dirty")
    sha = commit.removesuffix("-dirty")
    short = sha[:10] if re.fullmatch(r"[0-9a-f]{40}", sha) else sha
    return short + ("-dirty" if dirty else "")


def distinct_values(records: Iterable[FoldRecord], key: str) -> str:
    """The distinct values of a record attribute (``epochs``, ``device``, ...), joined."""
    values = sorted({str(getattr(r.record, key)) for r in records})
    return ", ".join(values) if values else _MISSING


def reproduce_command(protocol: str, dataset: str = "<dataset>", method: str = "<method>") -> str:
    """The command that (re)runs the folds of one cell; done folds are skipped."""
    from pseudoedgenet.experiments.crossval import results_subdir

    out = f"results/{results_subdir(dataset, protocol, method).as_posix()}"
    return (
        f"pseudoedgenet crossval --config {method} --data data/{dataset} "
        f"--folds 0-9 --protocol {protocol} --dataset {dataset} --out {out}"
    )


def _protocol_section(records: list[FoldRecord], protocols: list[str]) -> list[str]:
    lines = [
        "## Protocols",
        "",
        "Each protocol is a fixed schedule applied on top of a method's config "
        "(an overlay in `src/pseudoedgenet/configs/protocols/`); results of different protocols "
        "are never pooled. The values below are read from the fold files.",
        "",
        "| protocol | fold files | epochs | crops/epoch | crop | pretrained | precision "
        "| device(s) | git commits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in protocols:
        rs = [r for r in records if r.protocol == p]
        commits = sorted({_short_commit(r.record.git_commit) for r in rs})
        lines.append(
            f"| `{p}` | {len(rs)} | {distinct_values(rs, 'epochs')} "
            f"| {distinct_values(rs, 'crops_per_epoch')} "
            f"| {distinct_values(rs, 'crop')} | {distinct_values(rs, 'pretrained')} "
            f"| {distinct_values(rs, 'precision')} | {distinct_values(rs, 'device')} "
            f"| {', '.join(f'`{c}`' for c in commits) or _MISSING} |"
        )
    lines += ["", "A cell is reproduced (missing folds run, finished folds skipped) by:", ""]
    for p in protocols:
        lines += ["```bash", reproduce_command(p), "```"]
    lines.append("")
    return lines


def _table(
    title: str,
    caption: str,
    paper: Mapping[str, tuple[str, Mapping[str, tuple[float, float]]]],
    groups: Groups,
    protocol: str,
    datasets: list[str],
) -> list[str]:
    head = "| method | config |" + "".join(
        f" {_dataset_name(d)} (ours) | {_dataset_name(d)} (paper) |" for d in datasets
    )
    lines = [f"### {title} — protocol `{protocol}`", "", caption, "", head]
    lines.append("|---|---|" + "---|---|" * len(datasets))
    for method, (label, values) in paper.items():
        row = f"| {label} | `{method}` |"
        for d in datasets:
            ours = format_summary(cell_summary(groups.get((d, method, protocol))))
            ref = values.get(d)
            row += f" {ours} | {f'{ref[0]:.4f} ± {ref[1]:.2f}' if ref else _MISSING} |"
        lines.append(row)
    lines += ["", "Dice, object F1 (match at IoU ≥ 0.5) and AJI of the same models:", ""]
    head = "| method |" + "".join(
        f" {_dataset_name(d)} {name} |" for d in datasets for _, name in SECONDARY_METRICS
    )
    lines += [head, "|---|" + "---|" * (len(datasets) * len(SECONDARY_METRICS))]
    for method, (label, _) in paper.items():
        row = f"| {label} |"
        for d in datasets:
            group = groups.get((d, method, protocol))
            for key, _ in SECONDARY_METRICS:
                row += f" {format_summary(cell_summary(group, key))} |"
        lines.append(row)
    lines.append("")
    return lines


def _other_methods(groups: Groups, protocol: str, datasets: list[str]) -> list[str]:
    known = set(PAPER_TABLE1) | set(PAPER_TABLE2)
    others = sorted({m for (_, m, p) in groups if p == protocol and m not in known})
    if not others:
        return []
    lines = [f"### Other methods — protocol `{protocol}`", ""]
    lines.append("| method |" + "".join(f" {_dataset_name(d)} IoU |" for d in datasets))
    lines.append("|---|" + "---|" * len(datasets))
    for m in others:
        cells = "".join(
            f" {format_summary(cell_summary(groups.get((d, m, protocol))))} |" for d in datasets
        )
        lines.append(f"| `{m}` |{cells}")
    lines.append("")
    return lines


def _paper_mean(method: str, dataset: str) -> float | None:
    ref = PAPER_TABLE1.get(method, PAPER_TABLE2.get(method, ("", {})))[1].get(dataset)
    return None if ref is None else ref[0]


def _paper_difference(a: str, b: str, dataset: str) -> str:
    """The paper's ``a − b`` of its 10-fold means, formatted, or ``–``."""
    pa, pb = _paper_mean(a, dataset), _paper_mean(b, dataset)
    return _MISSING if pa is None or pb is None else f"{pa - pb:+.4f}"


def _paired_section(groups: Groups, protocol: str, datasets: list[str]) -> list[str]:
    lines = [
        f"### Paired comparisons — protocol `{protocol}`",
        "",
        "Test-IoU differences on the folds both methods have (same protocol, same test "
        "images): mean ± sample std of the per-fold differences (n = shared folds). "
        "*Margin > spread* says whether the mean difference exceeds that std. The paper's "
        "difference is of its 10-fold means.",
        "",
        "| dataset | comparison | mean diff ± std (n) | margin > spread | per-fold differences "
        "| paper |",
        "|---|---|---|---|---|---|",
    ]
    ratio_lines: list[str] = []
    for d in datasets:
        for a, b, label in PAIRED_COMPARISONS:
            pair = paired_difference(groups.get((d, a, protocol)), groups.get((d, b, protocol)))
            s = pair.summary
            if s is None:
                verdict = per_fold = _MISSING
            else:
                verdict = _MISSING if s.std is None else ("yes" if s.mean > s.std else "no")
                per_fold = ", ".join(
                    f"f{f}: {format_signed(x)}" for f, x in zip(pair.folds, pair.diffs, strict=True)
                )
            paper = _paper_difference(a, b, d)
            lines.append(
                f"| {_dataset_name(d)} | {label} | {format_summary(s, signed=True)} "
                f"| {verdict} | {per_fold} | {paper} |"
            )
        pair = paired_difference(
            groups.get((d, "pen_att", protocol)), groups.get((d, "fully_supervised", protocol))
        )
        pa, pf = _paper_mean("pen_att", d), _paper_mean("fully_supervised", d)
        paper = _MISSING if pa is None or pf is None else f"{pa / pf:.2f}"
        ours = (
            f"{pair.a_mean / pair.b_mean:.2f} (n={len(pair.folds)})"
            if pair.folds and pair.b_mean > 0
            else _MISSING
        )
        ratio_lines.append(f"| {_dataset_name(d)} | {ours} | {paper} |")
    lines += [
        "",
        "PEN(g+h) as a fraction of fully supervised training (ratio of the mean test IoUs "
        "on the shared folds):",
        "",
        "| dataset | ours | paper |",
        "|---|---|---|",
        *ratio_lines,
        "",
    ]
    return lines


def _selection_section(groups: Groups, protocols: list[str], datasets: list[str]) -> list[str]:
    lines = [
        "## Choosing the epoch by clicks instead of masks",
        "",
        "A run that validates on masks also keeps `best_points.ckpt`, the epoch of best "
        "validation point F1 (f's instances against the validation clicks): the choice a user "
        "with only clicks would make. Both checkpoints are tested; *clicks − masks* is the "
        "test-IoU difference (negative: choosing by clicks costs IoU; 0 when both pick the "
        "same epoch). Per fold: epoch by masks / by clicks, test IoU by masks → by clicks.",
        "",
    ]
    for p in protocols:
        keys = [k for k in groups if k[2] == p]
        rows = []
        for d in datasets:
            for m in _ordered({k[1] for k in keys if k[0] == d}, _method_order()):
                pairs = selection_pairs(groups.get((d, m, p)))
                if not pairs:
                    continue
                same = sum(x.epoch_masks == x.epoch_clicks for x in pairs)
                per_fold = ", ".join(
                    f"f{x.fold}: {x.epoch_masks}/{x.epoch_clicks}, "
                    f"{x.iou_masks:.4f} → {x.iou_clicks:.4f}"
                    for x in pairs
                )
                s = summarize([x.diff for x in pairs])
                rows.append(
                    f"| {_dataset_name(d)} | `{m}` | {format_summary(s, signed=True)} "
                    f"| {same} of {len(pairs)} | {per_fold} |"
                )
        n_files = sum(len(g) for k, g in groups.items() if k[2] == p)
        if not rows:
            lines += [
                f"Protocol `{p}`: none of its {n_files} fold files has a test of "
                "`best_points.ckpt` (`test_point_selected`) yet.",
                "",
            ]
            continue
        lines += [
            f"### Clicks vs masks — protocol `{p}`",
            "",
            "| dataset | method | clicks − masks ± std (n) | same epoch | per fold |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    return lines


#: Markers of the generated block in a README (``build_report(..., readme=...)``).
SUMMARY_BEGIN = "<!-- pseudoedgenet report: summary begin (generated; do not edit) -->"
SUMMARY_END = "<!-- pseudoedgenet report: summary end -->"


#: The paired rows of the README summary: the paper's two claims (PEN(g+h) beats the point
#: baseline; it comes close to full supervision), as ``(a, b, label)`` for ``a − b``.
SUMMARY_PAIRS = (
    ("pen_att", "baseline", "PEN(g+h) − baseline"),
    ("fully_supervised", "pen_att", "Fully supervised − PEN(g+h)"),
)


def summary_block(groups: Groups, records: Sequence[FoldRecord], regen: str) -> list[str]:
    """A compact Table-1 summary for the project README, one table per protocol.

    Rows are the Table-1 methods with at least one fold file, columns the datasets (ours
    and the paper's mean), plus the paired differences of :data:`SUMMARY_PAIRS`.

    Args:
        groups: ``(dataset, method, protocol) -> {fold: record}``.
        records: every fold record (for each protocol's schedule).
        regen: the command that regenerates the block.

    Returns:
        Markdown lines, without the markers.
    """
    protocols = _ordered({r.protocol for r in records}, PROTOCOL_ORDER)
    datasets = _ordered({r.dataset for r in records} | set(DATASET_NAMES), list(DATASET_NAMES))
    lines = [
        f"Generated from the fold files by `{regen}`. Test IoU (per-image mean, threshold "
        "0.5) as mean ± sample std over the folds present (n = folds); the paper's values "
        "are 10-fold means. Full tables, Dice/F1/AJI, protocols and figures: "
        "[results/README.md](results/README.md).",
        "",
    ]
    for p in protocols:
        rs = [r for r in records if r.protocol == p]
        methods = [m for m in PAPER_TABLE1 if any((d, m, p) in groups for d in datasets)]
        if not methods:
            continue
        schedule = (
            f"{distinct_values(rs, 'epochs')} epochs × "
            f"{distinct_values(rs, 'crops_per_epoch')} crops "
            f"of {distinct_values(rs, 'crop')}²"
        )
        lines += [
            f"Protocol `{p}` ({schedule}, pretrained: {distinct_values(rs, 'pretrained')}, "
            f"device: {distinct_values(rs, 'device')}, "
            f"precision: {distinct_values(rs, 'precision')}):",
            "",
            "| method | config |" + "".join(f" {_dataset_name(d)} | paper |" for d in datasets),
            "|---|---|" + "---|---|" * len(datasets),
        ]
        for m in methods:
            row = f"| {PAPER_TABLE1[m][0]} | `{m}` |"
            for d in datasets:
                ref = _paper_mean(m, d)
                row += f" {format_summary(cell_summary(groups.get((d, m, p))))} |"
                row += f" {_MISSING if ref is None else f'{ref:.4f}'} |"
            lines.append(row)
        for a, b, label in SUMMARY_PAIRS:
            row = f"| {label}, paired | |"
            for d in datasets:
                pair = paired_difference(groups.get((d, a, p)), groups.get((d, b, p)))
                row += (
                    f" {format_summary(pair.summary, signed=True)} | {_paper_difference(a, b, d)} |"
                )
            lines.append(row)
        lines.append("")
    return lines


def replace_block(
    text: str,
    block: Sequence[str],
    source: str | Path,
    begin: str = SUMMARY_BEGIN,
    end: str = SUMMARY_END,
) -> str:
    """Replaces the lines between the ``begin`` and ``end`` marker lines in ``text``.

    Args:
        text: the file's text.
        block: the new lines between the markers.
        source: the file, named in errors.
        begin: begin marker (default :data:`SUMMARY_BEGIN`).
        end: end marker (default :data:`SUMMARY_END`).

    Raises:
        DataError: the markers are missing, repeated or out of order in ``source``.
    """
    n_begin, n_end = text.count(begin), text.count(end)
    if n_begin != 1 or n_end != 1 or text.index(begin) > text.index(end):
        raise DataError(source, f"needs exactly one '{begin}' line followed by one '{end}' line")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    body = "\n".join(block).strip("\n")
    return f"{head}{begin}\n{body}\n{end}{tail}"


def _holdout_section(results_dir: Path) -> list[str]:
    items = load_holdout(results_dir)
    if not items:
        return []
    lines = [
        "## Test set (split-based view)",
        "",
        "Trained on every image of the training set (no validation: the last epoch is "
        "tested), tested once on a separate test set never used for training or model "
        "selection (for MoNuSeg: the 14 images of the 2018 test set). Scores are means over "
        "the test images; pooled IoU from summed pixel counts.",
        "",
        "| dataset | method | protocol | IoU | pooled IoU | Dice | object F1 | AJI "
        "| train / test images | epochs | crops/epoch | crop | pretrained | device, precision "
        "| wall | file |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, r in items:
        assert r.test is not None  # load_holdout checks it
        t = r.test
        pooled = f"{r.test_pooled.iou:.4f}" if r.test_pooled is not None else _MISSING
        lines.append(
            f"| {r.dataset or _MISSING} | `{r.method}` | `{r.protocol}` "
            f"| {t.iou:.4f} | {pooled} | {t.dice:.4f} | {t.f1:.4f} | {t.aji:.4f} "
            f"| {_count(r.train_images)} / {_count(r.test_images)} "
            f"| {r.epochs} | {r.crops_per_epoch} | {r.crop} | {r.pretrained} "
            f"| {r.device}, {r.precision} | {r.wall_s / 60:.0f} min "
            f"| `{path.relative_to(results_dir).as_posix()}` |"
        )
    lines.append("")
    iou = {(r.dataset, r.protocol, r.method): r.test.iou for _, r in items if r.test is not None}
    for (d, p, m), value in iou.items():
        base = iou.get((d, p, "baseline"))
        if m == "pen_att" and base is not None:
            lines.append(
                f"PEN(g+h) − baseline on {d}, protocol `{p}`: "
                f"{format_signed(value - base)} IoU (one run each, last epoch)."
            )
    # one command per results folder, with the protocol and dataset its records name
    groups = sorted(
        {
            (path.parent.relative_to(results_dir).as_posix(), r.protocol, r.dataset)
            for path, r in items
        },
        key=lambda g: (g[0], g[1], g[2] or ""),  # load_holdout guarantees a protocol
    )
    lines += [
        "",
        "```bash",
        "pseudoedgenet prepare monuseg --src ../shared/data/monuseg --split test "
        "--out data/monuseg-test",
    ]
    for folder, protocol, dataset in groups:
        lines.append(
            "pseudoedgenet holdout --config <method> --train-data data/monuseg "
            f"--test-data data/monuseg-test --protocol {protocol} "
            f"--dataset {dataset or 'monuseg-test'} --out results/{folder}/<method>.json"
        )
    lines += ["```", ""]
    return lines


#: Subfolder of the results folder holding repeat runs,
#: ``repeats/<dataset>/<method>/fold_<i>.json``: fold files of a fold trained again after its
#: first record was committed (never a replacement of that record).
REPEATS_DIR = "repeats"


def _repeat_section(results_dir: Path, groups: Groups) -> list[str]:
    folder = results_dir / REPEATS_DIR
    if not any(folder.glob("*/*/fold_*.json")):
        return []  # no repeats (an empty folder included)
    repeats = group_records(load_results(folder))
    lines = [
        "## Repeat runs: the same fold trained again",
        "",
        "A fold trained a second time, beside its first run (the fold "
        "file of the tables above). *Same config* compares the two records' "
        "`config_sha256` (the seed is part of the config). Each run tests its "
        "best-validation-IoU checkpoint; the difference shows how far one fold's test IoU "
        "moves between two runs, to set beside the differences between methods.",
        "",
        "| dataset | method | protocol | fold | first run: IoU (epoch) | repeat: IoU (epoch) "
        "| repeat − first | same config | commits (first, repeat) | device, precision "
        "(first; repeat) | file |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    pairs: dict[tuple[str, str, int], dict[str, tuple[float, float]]] = {}
    for (d, m, p), by_fold in sorted(repeats.items()):
        for fold, rep in sorted(by_fold.items()):
            first = groups.get((d, m, p), {}).get(fold)
            r2 = rep.record
            assert r2.test is not None  # read_fold_record checks it
            second = f"{r2.test.iou:.4f} ({r2.best_epoch}/{r2.epochs})"
            if first is None or first.record.test is None:
                one = diff = same = c1 = dev1 = _MISSING
            else:
                r1 = first.record
                assert r1.test is not None
                one = f"{r1.test.iou:.4f} ({r1.best_epoch}/{r1.epochs})"
                diff = format_signed(r2.test.iou - r1.test.iou)
                same = "yes" if r1.config_sha256 == r2.config_sha256 else "no"
                c1 = f"`{_short_commit(r1.git_commit)}`"
                dev1 = f"{r1.device}, {r1.precision}"
                pairs.setdefault((d, p, fold), {})[m] = (r1.test.iou, r2.test.iou)
            lines.append(
                f"| {_dataset_name(d)} | `{m}` | `{p}` | {fold} | {one} | {second} | {diff} "
                f"| {same} | {c1}, `{_short_commit(r2.git_commit)}` "
                f"| {dev1}; {r2.device}, {r2.precision} "
                f"| `{rep.path.relative_to(results_dir).as_posix()}` |"
            )
    lines.append("")
    for (d, p, fold), by_method in sorted(pairs.items()):
        for a, b, label in PAIRED_COMPARISONS:
            if a in by_method and b in by_method:
                (a1, a2), (b1, b2) = by_method[a], by_method[b]
                lines += [
                    f"{label} on {_dataset_name(d)} fold {fold}, protocol `{p}`: "
                    f"{format_signed(a1 - b1)} with the first runs, "
                    f"{format_signed(a2 - b2)} with the repeats.",
                    "",
                ]
    lines += [
        "A repeat runs the fold's own command with its output elsewhere, so the committed "
        "record is not touched (e.g. `pseudoedgenet crossval --protocol cpu-long --config "
        "<method> --data data/tnbc --folds 0 --out runs/rerun/tnbc/<method> --runs "
        "runs/crossval/tnbc-rerun/<method>`, from `scripts/cpu_long_queue.sh`), and is "
        "committed as `results/repeats/<dataset>/<method>/fold_<i>.json` "
        "(`scripts/land_results.sh` copies it there).",
        "",
    ]
    return lines


def _count(n: int | None) -> str:
    return _MISSING if n is None else str(n)


def _config_note(group: Mapping[int, FoldRecord]) -> str:
    """Which settings differ between a cell's folds (their records' complete configs)."""
    folds = sorted(group)
    diffs = config_differences([group[f].record.config for f in folds])
    parts = []
    for key, values in diffs.items():
        by_value: dict[str, list[int]] = {}
        for f, v in zip(folds, values, strict=True):
            by_value.setdefault(str(v), []).append(f)
        shown = " / ".join(f"{v} (fold {', '.join(map(str, fs))})" for v, fs in by_value.items())
        parts.append(f"`{key}` {shown}")
    return "; ".join(parts)


def _coverage_section(groups: Groups, protocols: list[str]) -> list[str]:
    lines = [
        "## Folds present",
        "",
        "| protocol | dataset | method | folds | best epochs | mean wall time | configs |",
        "|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for p in protocols:
        keys = [k for k in groups if k[2] == p]
        for d in _ordered({k[0] for k in keys}, list(DATASET_NAMES)):
            for m in _ordered({k[1] for k in keys if k[0] == d}, _method_order()):
                g = groups[(d, m, p)]
                folds = sorted(g)
                epochs = [_count(g[f].record.best_epoch) for f in folds]
                wall = f"{np.mean([r.record.wall_s for r in g.values()]) / 60:.1f} min"
                shas = {r.record.config_sha256 for r in g.values()}
                n_cfg = f"{len(shas)}"
                if len(shas) > 1:
                    notes.append(f"- `{p}`, {_dataset_name(d)}, `{m}`: {_config_note(g)}.")
                    n_cfg += f" (differ: note {len(notes)})"
                lines.append(
                    f"| `{p}` | {_dataset_name(d)} | `{m}` | {', '.join(map(str, folds))} "
                    f"| {', '.join(epochs)} | {wall} | {n_cfg} |"
                )
    lines.append("")
    records = [r for g in groups.values() for r in g.values()]
    migrations = [mig for r in records if (mig := r.record.migration) is not None]
    if migrations:
        schemas = ", ".join(str(v) for v in sorted({x.from_schema for x in migrations}))
        scripts = ", ".join(f"`{v}`" for v in sorted({x.script for x in migrations}))
        lines += [
            f"{len(migrations)} of the {len(records)} fold files were written under result "
            f"schema {schemas} and migrated once by {scripts}; in "
            f"{sum(1 for x in migrations if x.completed)} of them the config lacked settings "
            "the run's code did not have yet, completed with today's default because they had "
            "no effect on that run (each file's `migration` field lists them and why).",
            "",
        ]
    if notes:
        lines += [
            "*Configs* counts the distinct configs (`config_sha256` of the complete config "
            "each fold file holds) of a cell's folds. Where a cell has more than one, the "
            "settings that differ, in note order:",
            "",
            *notes,
            "",
        ]
    return lines


class _Figures:
    """The figure manifest of one report run: entries kept, replaced, drawn and shown."""

    def __init__(self, out_dir: Path, result: ReportResult) -> None:
        self.out_dir = out_dir
        self.result = result
        self.original = read_figure_manifest(out_dir)
        self.entries = dict(self.original)
        self.shown: set[str] = set()
        self.stale: list[Path] = []

    def markdown(self, name: str) -> list[str]:
        """Image and caption of a manifest entry whose PNG was checked or drawn now."""
        self.shown.add(name)
        entry = self.entries[name]
        return [f"![{entry.alt}]({name})", "", entry.caption, ""]

    def write(self) -> None:
        """Writes the manifest when an entry changed and removes the PNGs of dropped ones."""
        if self.entries != self.original:
            write_figure_manifest(self.out_dir, self.entries)
        for png in self.stale:
            png.unlink(missing_ok=True)
        unshown = sorted(set(self.entries) - self.shown)
        for name in unshown:
            self.result.notes.append(
                f"{FIGURE_MANIFEST} lists {name} ({self.entries[name].kind}), which the report "
                "does not show"
            )


#: The validation plots per dataset: file suffix, what it shows, which methods it holds.
#: Table 1's plot also holds methods of neither table; the Table-2 plot is drawn once a
#: variant outside Table 1 has a curve.
_CURVE_PLOTS: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    ("", "Table 1 methods", lambda m: m in PAPER_TABLE1 or m not in PAPER_TABLE2),
    ("_table2", "Table 2 variants", lambda m: m in PAPER_TABLE2),
)


def _curves_section(groups: Groups, figures: _Figures) -> list[str]:
    from pseudoedgenet.experiments.figures import plot_val_curves, val_curves_sha256

    lines = [
        "## Validation IoU per epoch",
        "",
        "Mean validation IoU over the folds whose fold file keeps its validation curve "
        "(`val_curve`), one plot per dataset and protocol; an epoch's mean covers the folds "
        "that reached it, the legend gives the number of folds (a range when it varies by "
        "epoch); epochs are 1-based. Fold files written before `val_curve` existed are left "
        "out of a plot (listed under it). The plots an earlier report drew from the run "
        "folders' logs, which were never committed, are shown as committed and never redrawn. "
        f"The report redraws a plot only when the data it plots change (their hash is kept in "
        f"`{FIGURE_MANIFEST}`), so rerunning it leaves the PNGs as they are.",
        "",
    ]
    drawn: set[str] = set()
    n_images = 0
    for d in _ordered({k[0] for k in groups}, list(DATASET_NAMES)):
        for suffix, _, _ in _CURVE_PLOTS:
            name = f"val_iou_{d}{suffix}.png"
            entry = figures.entries.get(name)
            if entry is not None and entry.kind == "run_logs":
                check_figure_png(figures.out_dir, name, entry)
                lines += [
                    *figures.markdown(name),
                    f"*Drawn at commit `{_short_commit(str(entry.commit))}` by an earlier "
                    "report from the run folders' logs (`metrics.csv`), which were never "
                    "committed; shown as committed, not redrawn.*",
                    "",
                ]
                n_images += 1
        for p in _ordered({k[2] for k in groups if k[0] == d}, PROTOCOL_ORDER):
            # (method, mean curve or None, folds without a curve) per method
            cells: list[tuple[str, dict[int, tuple[float, int]] | None, list[int]]] = []
            for m in _ordered({k[1] for k in groups if k[0] == d and k[2] == p}, _method_order()):
                group = groups[(d, m, p)]
                per_fold = {f: fold_val_curve(group[f]) for f in sorted(group)}
                kept = [c for c in per_fold.values() if c]
                missing = [f for f, c in per_fold.items() if not c]
                cells.append((m, mean_curve(kept) if kept else None, missing))
            for suffix, what, holds in _CURVE_PLOTS:
                mine = [c for c in cells if holds(c[0])]
                curves = {m: mean for m, mean, _ in mine if mean is not None}
                if suffix and not any(m not in PAPER_TABLE1 for m in curves):
                    curves = {}
                if not curves:
                    continue
                name = f"val_iou_{d}_{p}{suffix}.png"
                png = figures.out_dir / name
                entry = figures.entries.get(name)
                if entry is not None and entry.kind != "val_curves":
                    raise DataError(
                        figures.out_dir / FIGURE_MANIFEST,
                        f"{name} is a {entry.kind} entry, but the report draws its validation "
                        "plot under that name: draw that figure into another file",
                    )
                title = f"{_dataset_name(d)}, protocol {p}: validation IoU per epoch ({what})"
                inputs = val_curves_sha256(curves, title)
                if not (
                    entry is not None
                    and entry.inputs_sha256 == inputs
                    and png.is_file()
                    and file_sha256(png) == entry.png_sha256
                ):
                    plot_val_curves(curves, title, png)
                    figures.result.images.append(png)
                alt = f"validation IoU per epoch, {_dataset_name(d)}, protocol {p}" + (
                    f", {what}" if suffix else ""
                )
                figures.entries[name] = FigureEntry(
                    "val_curves", alt, f"*{title}.*", file_sha256(png), inputs_sha256=inputs
                )
                drawn.add(name)
                lines += figures.markdown(name)
                left_out = [
                    f"`{m}` fold{'s' if len(missing) > 1 else ''} " + ", ".join(map(str, missing))
                    for m, _, missing in mine
                    if missing
                ]
                if left_out:
                    lines += [
                        f"*Left out (fold file without `val_curve`): {'; '.join(left_out)}.*",
                        "",
                    ]
                n_images += 1
    for name, entry in sorted(figures.entries.items()):
        if entry.kind == "val_curves" and name not in drawn:
            figures.result.notes.append(
                f"{name} removed: no fold file it plotted keeps a val_curve any more"
            )
            del figures.entries[name]
            figures.stale.append(figures.out_dir / name)
    if not n_images:
        lines += ["No validation curves found (no fold file keeps `val_curve`).", ""]
    return lines


def _figure_section(figures: _Figures) -> list[str]:
    lines = [
        "## Figure 2: qualitative examples",
        "",
        "Drawn from checkpoints (which are not committed) by `pseudoedgenet figure2`, which "
        f"writes the PNG and its entry in `{FIGURE_MANIFEST}` (caption, command, checkpoints "
        "with their SHA-256, commit); the report shows the committed PNG as it is.",
        "",
    ]
    names = [n for n, e in figures.entries.items() if e.kind == "figure2"]
    if not names:
        folder = figures.out_dir.as_posix()
        return [
            *lines,
            "None drawn yet. `pseudoedgenet figure2 --checkpoint "
            "runs/crossval/<dataset>/pen_att/fold_0/best.ckpt --baseline "
            "runs/crossval/<dataset>/baseline/fold_0/best.ckpt --data data/<dataset> "
            f"--fold 0 --out {folder}/figure2_<dataset>.png` draws one.",
            "",
        ]
    for name in names:
        entry = figures.entries[name]
        check_figure_png(figures.out_dir, name, entry)
        checkpoints = "; ".join(
            f"{c.role} `{c.path}` "
            + (f"(SHA-256 `{c.sha256}`)" if c.sha256 else "(SHA-256 not recorded)")
            for c in entry.checkpoints
        )
        lines += [
            *figures.markdown(name),
            f"Drawn at commit `{_short_commit(str(entry.commit))}` by:",
            "",
            "```bash",
            str(entry.command),
            "```",
            "",
            f"Checkpoints: {checkpoints}.",
            "",
        ]
        if entry.note:
            lines += [f"*{entry.note}*", ""]
    return lines


def build_report(
    results_dir: str | Path, out_md: str | Path, readme: str | Path | None = None
) -> ReportResult:
    """Writes the results report (markdown, plus the validation plots next to it).

    Reads only committed files under ``results_dir`` and the markdown's folder: fold and
    holdout files and the figure
    manifest ``figures.json`` with its PNGs (each checked against its recorded SHA-256).
    A validation plot is drawn from the fold files' ``val_curve`` and redrawn only when the
    hash of its data differs from the manifest's; the manifest is rewritten only when an
    entry changed. So a second run, or a run on a fresh clone, changes no file.

    Args:
        results_dir: folder with ``<dataset>/<method>/fold_<i>.json``.
        out_md: markdown file to write (atomically); its folder holds the PNGs and
            ``figures.json`` (normally ``results_dir`` itself).
        readme: a markdown file (e.g. the project README) whose block between
            :data:`SUMMARY_BEGIN` and :data:`SUMMARY_END` is replaced (atomically) by
            :func:`summary_block`; ``None`` leaves it alone.

    Returns:
        What was written.

    Raises:
        DataError: a missing results folder, no fold files, an invalid fold file or figure
            manifest, a PNG that is missing or differs from its manifest entry, or a
            ``readme`` without the summary markers.
    """
    results_dir, out_md = Path(results_dir), Path(out_md)
    records = load_results(results_dir)
    groups = group_records(records)
    protocols = _ordered({r.protocol for r in records}, PROTOCOL_ORDER)
    datasets = _ordered({r.dataset for r in records} | set(DATASET_NAMES), list(DATASET_NAMES))
    result = ReportResult(out_md, len(records))
    regen = f"pseudoedgenet report {results_dir} --out {out_md}" + (
        f" --readme {readme}" if readme is not None else ""
    )
    lines = [
        "<!-- Generated by `pseudoedgenet report`; do not edit: every number comes from the "
        "fold files. -->",
        "",
        "# Results: PseudoEdgeNet (Yoo et al., MICCAI 2019) reproduced",
        "",
        f"Generated from {len(records)} fold files under `{results_dir}` by `{regen}`.",
        "",
        "- Cells are **mean ± sample std (ddof = 1) over the folds present (n=folds)** of the "
        "test-fold IoU; with one fold, no std is shown; `–` = no fold yet.",
        "- Test IoU is the per-image mean of the pixel IoU at threshold 0.5 over the test "
        "fold's images (the record's `test.iou`); each fold tests the best-validation-IoU "
        "checkpoint (test fold i, validation fold i+1, training the other 8).",
        "- *paper* columns are the published values (10 folds, std printed with two "
        "decimals), shown for reference only.",
        "",
    ]
    lines += _protocol_section(records, protocols)
    lines += ["## Table 1: methods", ""]
    for p in protocols:
        if any(k[1] in PAPER_TABLE1 and k[2] == p for k in groups):
            lines += _table(
                "Table 1",
                "Test IoU, mean ± std over folds (n=folds), beside the paper's Table 1.",
                PAPER_TABLE1,
                groups,
                p,
                datasets,
            )
    lines += ["## Table 2: size of the edge network g (with attention h)", ""]
    for p in protocols:
        if any(k[1] in PAPER_TABLE2 and k[2] == p for k in groups):
            lines += _table(
                "Table 2",
                "Test IoU, mean ± std over folds (n=folds), beside the paper's Table 2; the "
                "4-layer row is `pen_att` and the FPN-ResNet50 row is `pen_large_g`, the same "
                "runs as in Table 1.",
                PAPER_TABLE2,
                groups,
                p,
                datasets,
            )
    for p in protocols:
        lines += _other_methods(groups, p, datasets)
    lines += ["## Paired comparisons", ""]
    for p in protocols:
        lines += _paired_section(groups, p, datasets)
    lines += _selection_section(groups, protocols, datasets)
    lines += _coverage_section(groups, protocols)
    lines += _holdout_section(results_dir)
    lines += _repeat_section(results_dir, groups)
    readme_path = None if readme is None else Path(readme)
    readme_text: str | None = None
    if readme_path is not None:
        try:
            text = readme_path.read_text(encoding="utf-8")
        except OSError as e:
            raise DataError(readme_path, f"cannot read ({e.strerror})") from None
        block = summary_block(
            groups, records, f"pseudoedgenet report {results_dir} --readme {readme_path}"
        )
        readme_text = replace_block(text, block, readme_path)
    figures = _Figures(out_md.parent, result)
    figure_lines = _figure_section(figures)  # checks the committed PNGs before drawing any
    lines += _curves_section(groups, figures)
    lines += figure_lines
    figures.write()
    if readme_path is not None and readme_text is not None:
        write_text(readme_path, readme_text)
    write_text(out_md, "\n".join(lines).rstrip() + "\n")
    return result
