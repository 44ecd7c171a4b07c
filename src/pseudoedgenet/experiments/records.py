"""Committed results read back: fold files, holdout files and the figure manifest.

:func:`pseudoedgenet.experiments.crossval.crossval` writes one
``RESULTS/<dataset>/<method>/fold_<i>.json`` per finished fold and ``pseudoedgenet holdout``
writes ``RESULTS/<folder>/<method>.json``, both :class:`~pseudoedgenet.record.ResultRecord`
(read with the strict schema reader, complete config included);
``RESULTS/figures.json`` says how each committed PNG was made. This module reads and
validates those files, groups the fold
records by ``(dataset, method, protocol)`` and computes the statistics the report shows
(mean and sample std over folds, paired differences on shared folds, mean validation
curves). It reads nothing outside the results folder (no run folders, no checkpoints), so
a report built from it is the same on every clone. It draws and formats nothing: that is
:mod:`pseudoedgenet.experiments.report` and :mod:`pseudoedgenet.experiments.figures`.

The validation curves in fold files come from the run folder's log, read by
:func:`pseudoedgenet.engine.train.read_log_curve` when the fold ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pseudoedgenet.data.io import file_sha256, write_json
from pseudoedgenet.errors import DataError
from pseudoedgenet.record import ResultRecord, read_record, record_from_dict

_SHA256 = re.compile(r"[0-9a-f]{64}")

#: File names of fold results; group 1 is the fold index.
FOLD_FILE = re.compile(r"fold_(\d+)\.json$")


@dataclass(frozen=True)
class FoldRecord:
    """One ``fold_<i>.json`` file.

    Attributes:
        path: the file.
        dataset: ``dataset`` field (e.g. ``tnbc``).
        method: ``method`` field (the config's method, a table row).
        protocol: ``protocol`` field (``paper``, ``cpu``, ...).
        fold: test fold index.
        record: the whole record.
    """

    path: Path
    dataset: str
    method: str
    protocol: str
    fold: int
    record: ResultRecord

    def metric(self, name: str) -> float | None:
        """The test metric ``name`` (``iou``, ``dice``, ``f1``, ``aji``; per-image mean),
        or ``None`` when the fold was not tested against masks."""
        test = self.record.test
        return None if test is None else float(getattr(test, name))


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (``ddof=1``; ``None`` when ``n < 2``) of values."""

    mean: float
    std: float | None
    n: int


@dataclass(frozen=True)
class Paired:
    """Per-fold differences ``a − b`` of test IoU on the folds both methods have.

    Attributes:
        folds: the shared folds, sorted.
        diffs: ``a − b`` per shared fold, same order.
        a_mean: mean IoU of ``a`` on the shared folds (``nan`` without any).
        b_mean: mean IoU of ``b`` on the shared folds (``nan`` without any).
    """

    folds: list[int]
    diffs: list[float]
    a_mean: float
    b_mean: float

    @property
    def summary(self) -> Summary | None:
        """Mean and sample std of the differences, ``None`` without shared folds."""
        return summarize(self.diffs)


Groups = dict[tuple[str, str, str], dict[int, FoldRecord]]


def read_fold_record(path: str | Path) -> FoldRecord:
    """Reads and validates one fold file.

    Args:
        path: a ``fold_<i>.json`` written by the cross-validation driver.

    Returns:
        The record.

    Raises:
        DataError: an unreadable or invalid record (:func:`pseudoedgenet.record.read_record`),
            one without ``dataset``, ``protocol``, ``fold`` or test scores, or a ``fold``
            that disagrees with the file name.
    """
    path = Path(path)
    record = read_record(path)
    if record.dataset is None or record.protocol is None or record.fold is None:
        raise DataError(path, "a fold file needs 'dataset', 'protocol' and 'fold'")
    if record.test is None:
        raise DataError(path, "fold file without test scores ('test')")
    m = FOLD_FILE.search(path.name)
    if m and int(m.group(1)) != record.fold:
        raise DataError(path, f"file name says fold {m.group(1)} but the record says {record.fold}")
    return FoldRecord(path, record.dataset, record.method, record.protocol, record.fold, record)


def load_results(results_dir: str | Path) -> list[FoldRecord]:
    """Reads every ``results_dir/<dataset>/<method>/fold_<i>.json``.

    Args:
        results_dir: the results folder.

    Returns:
        The records, sorted by file path.

    Raises:
        DataError: the folder is missing or holds no fold file, a fold file is invalid
            (see :func:`read_fold_record`), or two files claim the same
            ``(dataset, method, protocol, fold)``.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise DataError(root, "results folder not found")
    paths = sorted(p for p in root.glob("*/*/fold_*.json") if FOLD_FILE.search(p.name))
    if not paths:
        raise DataError(root, "no fold files (expected <dataset>/<method>/fold_<i>.json)")
    records = [read_fold_record(p) for p in paths]
    seen: dict[tuple[str, str, str, int], Path] = {}
    for r in records:
        key = (r.dataset, r.method, r.protocol, r.fold)
        if key in seen:
            raise DataError(
                r.path,
                f"same dataset/method/protocol/fold as {seen[key]}: {'/'.join(map(str, key))}",
            )
        seen[key] = r.path
    return records


def group_records(records: Iterable[FoldRecord]) -> Groups:
    """Groups records by ``(dataset, method, protocol)`` -> ``{fold: record}``."""
    groups: Groups = {}
    for r in records:
        groups.setdefault((r.dataset, r.method, r.protocol), {})[r.fold] = r
    return groups


def summarize(values: Sequence[float]) -> Summary | None:
    """Mean and sample std (``ddof=1``, only when ``n >= 2``); ``None`` for no values."""
    if len(values) == 0:
        return None
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size >= 2 else None
    return Summary(float(arr.mean()), std, int(arr.size))


def cell_summary(group: Mapping[int, FoldRecord] | None, metric: str = "iou") -> Summary | None:
    """Summary of one test metric over the folds of a group (records lacking it skipped)."""
    if not group:
        return None
    values = [v for r in group.values() if (v := r.metric(metric)) is not None]
    return summarize(values)


def paired_difference(
    a: Mapping[int, FoldRecord] | None, b: Mapping[int, FoldRecord] | None, metric: str = "iou"
) -> Paired:
    """Differences ``a − b`` of a test metric on the folds both groups have.

    Args:
        a: ``{fold: record}`` of one method (one dataset, one protocol).
        b: the same for the other method.
        metric: test metric name.

    Returns:
        The per-fold differences on the shared folds (none when nothing is shared).
    """
    a, b = a or {}, b or {}
    folds: list[int] = []
    av: list[float] = []
    bv: list[float] = []
    for f in sorted(set(a) & set(b)):
        x, y = a[f].metric(metric), b[f].metric(metric)
        if x is not None and y is not None:
            folds.append(f)
            av.append(x)
            bv.append(y)
    diffs = [x - y for x, y in zip(av, bv, strict=True)]
    nan = float("nan")
    return Paired(
        folds, diffs, float(np.mean(av)) if av else nan, float(np.mean(bv)) if bv else nan
    )


@dataclass(frozen=True)
class SelectionPair:
    """One fold tested twice: at the epoch chosen by validation masks and by validation clicks.

    Attributes:
        fold: test fold index.
        epoch_masks: 1-based epoch of ``best.ckpt`` (best validation IoU).
        epoch_clicks: 1-based epoch of ``best_points.ckpt`` (best validation point F1).
        iou_masks: test IoU (per-image mean) of ``best.ckpt``.
        iou_clicks: test IoU of ``best_points.ckpt``, what a user with only clicks gets.
    """

    fold: int
    epoch_masks: int
    epoch_clicks: int
    iou_masks: float
    iou_clicks: float

    @property
    def diff(self) -> float:
        """``iou_clicks − iou_masks``: the cost (negative) of choosing the epoch by clicks."""
        return self.iou_clicks - self.iou_masks


def selection_pairs(group: Mapping[int, FoldRecord] | None) -> list[SelectionPair]:
    """The folds of a group whose record tested both selections, sorted by fold.

    A fold counts when its run validated on masks (``selected_by == "val/iou"``) and its
    record carries ``test_point_selected`` and both best epochs; older records (written
    before ``best_points.ckpt`` existed) and points-only runs are left out.
    """
    pairs = []
    for fold, r in sorted((group or {}).items()):
        rec = r.record
        if (
            rec.selected_by == "val/iou"
            and rec.test is not None
            and rec.test_point_selected is not None
            and rec.best_epoch is not None
            and rec.best_epoch_points is not None
        ):
            pairs.append(
                SelectionPair(
                    fold,
                    rec.best_epoch,
                    rec.best_epoch_points,
                    float(rec.test.iou),
                    float(rec.test_point_selected.iou),
                )
            )
    return pairs


#: Folders under the results folder that hold other records than split results.
NOT_HOLDOUT = ("own-data", "tnbc-fold1")


def load_holdout(results_dir: str | Path) -> list[tuple[Path, ResultRecord]]:
    """Split-based results (``pseudoedgenet holdout``): ``<folder>/<method>.json`` records
    with a ``test_data`` field, sorted by path. Fold files, the own-data step files
    (:data:`NOT_HOLDOUT`) and JSON that is not a result record (the figure manifest is one
    level up) are not read, nor JSON objects with neither ``schema_version`` nor
    ``test_data`` (not result records).

    Raises:
        DataError: an invalid record, or a split record without test scores.
    """
    found = []
    for path in sorted(Path(results_dir).glob("*/*.json")):
        if FOLD_FILE.search(path.name) or path.parent.name in NOT_HOLDOUT:
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(path, f"cannot read result file ({type(exc).__name__})") from None
        if not isinstance(raw, dict) or not {"schema_version", "test_data"} & set(raw):
            continue  # not a result record (notes, a manifest of something else)
        record = record_from_dict(raw, path)
        if record.test_data is None:
            continue
        if record.test is None or record.protocol is None:
            raise DataError(path, "a split result needs 'protocol' and test scores ('test')")
        found.append((path, record))
    return found


def fold_val_curve(record: FoldRecord) -> dict[int, float] | None:
    """Validation IoU per epoch kept in a fold file (``val_curve``).

    Args:
        record: a fold record.

    Returns:
        ``{1-based epoch: val IoU}`` sorted by epoch, or ``None`` when the fold file has no
        ``val_curve`` (written before that field existed, or selected by point F1).
    """
    return record.record.val_curve


def mean_curve(curves: Sequence[Mapping[int, float]]) -> dict[int, tuple[float, int]]:
    """Mean over runs per epoch: ``{epoch: (mean, number of runs with that epoch)}``."""
    epochs = sorted({e for c in curves for e in c})
    out: dict[int, tuple[float, int]] = {}
    for e in epochs:
        values = [c[e] for c in curves if e in c]
        out[e] = (float(np.mean(values)), len(values))
    return out


#: The figure manifest, beside the report (``results/figures.json``): for every committed
#: PNG the report shows, how it was made. Written by ``pseudoedgenet figure2`` and by the
#: report (for the plots it draws from fold files); the report reads nothing else about a
#: figure.
FIGURE_MANIFEST = "figures.json"

#: ``schema_version`` of :data:`FIGURE_MANIFEST`.
FIGURE_MANIFEST_VERSION = 1

#: Kinds of figure and the fields each needs besides ``alt``, ``caption`` and
#: ``png_sha256``:
#:
#: - ``figure2``: drawn by ``pseudoedgenet figure2`` from checkpoints (``command``,
#:   ``checkpoints``, ``commit``); the report shows it as committed.
#: - ``val_curves``: drawn by the report from the fold files' ``val_curve``
#:   (``inputs_sha256``: hash of the plotted data; redrawn only when it changes).
#: - ``run_logs``: drawn by an earlier report from run-folder logs that were never
#:   committed (``commit``); shown as committed, never redrawn.
FIGURE_KINDS: dict[str, tuple[str, ...]] = {
    "figure2": ("command", "checkpoints", "commit"),
    "val_curves": ("inputs_sha256",),
    "run_logs": ("commit",),
}


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint a figure was drawn from.

    Attributes:
        role: ``pen`` (the model whose f, g and h are drawn) or ``baseline``.
        path: the path as given on the command line.
        sha256: SHA-256 of the file, or ``None`` when it was not recorded (figures drawn
            before ``pseudoedgenet figure2`` existed; see the entry's ``note``).
    """

    role: str
    path: str
    sha256: str | None


@dataclass(frozen=True)
class FigureEntry:
    """One PNG of the figure manifest (see :data:`FIGURE_KINDS`).

    Attributes:
        kind: ``figure2``, ``val_curves`` or ``run_logs``.
        alt: alt text of the image in markdown.
        caption: markdown paragraph shown under the image.
        png_sha256: SHA-256 of the PNG as written; the report refuses a PNG that differs.
        commit: git commit the figure was drawn at.
        command: the command line that draws it again (``figure2``).
        checkpoints: the checkpoints it was drawn from (``figure2``).
        inputs_sha256: hash of the plotted data (``val_curves``).
        note: anything else a reader needs to know about how it was made.
    """

    kind: str
    alt: str
    caption: str
    png_sha256: str
    commit: str | None = None
    command: str | None = None
    checkpoints: tuple[CheckpointRef, ...] = field(default=())
    inputs_sha256: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form: fields in declaration order, empty ones left out."""
        out: dict[str, Any] = {}
        for key in FigureEntry.__dataclass_fields__:
            value = getattr(self, key)
            if key == "checkpoints":
                value = [
                    {"role": c.role, "path": c.path, "sha256": c.sha256} for c in value
                ] or None
            if value is not None:
                out[key] = value
        return out


def _manifest_entry(path: Path, name: str, raw: Any) -> FigureEntry:
    where = f"figure {name!r}"
    if not isinstance(raw, dict):
        raise DataError(path, f"{where} is not a JSON object")
    unknown = sorted(set(raw) - set(FigureEntry.__dataclass_fields__))
    if unknown:
        raise DataError(path, f"{where} has unknown fields {unknown}")
    kind = raw.get("kind")
    if kind not in FIGURE_KINDS:
        raise DataError(path, f"{where}: kind must be one of {sorted(FIGURE_KINDS)}, got {kind!r}")
    for key in ("alt", "caption", "png_sha256", *FIGURE_KINDS[kind]):
        if key not in raw:
            raise DataError(path, f"{where} ({kind}) needs a {key!r} field")
    for key in ("alt", "caption", "png_sha256", "commit", "command", "inputs_sha256", "note"):
        if key in raw and not isinstance(raw[key], str):
            raise DataError(path, f"{where}: {key!r} must be a string")
    if not _SHA256.fullmatch(raw["png_sha256"]):
        raise DataError(path, f"{where}: png_sha256 is not a SHA-256 hex digest")
    checkpoints = []
    for c in raw.get("checkpoints", []):
        if (
            not isinstance(c, dict)
            or set(c) != {"role", "path", "sha256"}
            or not isinstance(c["role"], str)
            or not isinstance(c["path"], str)
            or not (c["sha256"] is None or isinstance(c["sha256"], str))
        ):
            raise DataError(
                path, f'{where}: checkpoints must be {{"role", "path", "sha256"}} objects'
            )
        checkpoints.append(CheckpointRef(c["role"], c["path"], c["sha256"]))
    if kind == "figure2" and not checkpoints:
        raise DataError(path, f"{where}: a figure2 entry lists at least one checkpoint")
    return FigureEntry(**{**raw, "checkpoints": tuple(checkpoints)})


def read_figure_manifest(folder: str | Path) -> dict[str, FigureEntry]:
    """Reads ``<folder>/figures.json`` (:data:`FIGURE_MANIFEST`).

    Args:
        folder: the folder of the report and its PNGs.

    Returns:
        ``{PNG file name: entry}`` in name order; empty when the file does not exist.

    Raises:
        DataError: invalid JSON, another ``schema_version``, or an invalid entry.
    """
    path = Path(folder) / FIGURE_MANIFEST
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(path, "not valid JSON") from None
    if not isinstance(raw, dict) or raw.get("schema_version") != FIGURE_MANIFEST_VERSION:
        raise DataError(
            path,
            f'expected {{"schema_version": {FIGURE_MANIFEST_VERSION}, "figures": {{...}}}}',
        )
    figures = raw.get("figures")
    if not isinstance(figures, dict) or set(raw) != {"schema_version", "figures"}:
        raise DataError(path, 'expected a "figures" mapping of PNG names to entries only')
    for name in figures:
        if "/" in name or "\\" in name or not name.endswith(".png"):
            raise DataError(path, f"{name!r}: entries are PNG file names beside the manifest")
    return {name: _manifest_entry(path, name, figures[name]) for name in sorted(figures)}


def write_figure_manifest(folder: str | Path, entries: Mapping[str, FigureEntry]) -> Path:
    """Writes ``<folder>/figures.json`` atomically, entries in name order.

    Args:
        folder: the folder of the report and its PNGs.
        entries: ``{PNG file name: entry}``.

    Returns:
        The manifest path.
    """
    path = Path(folder) / FIGURE_MANIFEST
    figures = {name: entries[name].to_dict() for name in sorted(entries)}
    write_json(path, {"schema_version": FIGURE_MANIFEST_VERSION, "figures": figures})
    return path


def check_figure_png(folder: str | Path, name: str, entry: FigureEntry) -> Path:
    """The PNG of a manifest entry, checked against its recorded SHA-256.

    Raises:
        DataError: the PNG is missing or is not the file the manifest describes.
    """
    png = Path(folder) / name
    if not png.is_file():
        raise DataError(
            png, f"missing; {FIGURE_MANIFEST} lists it ({entry.kind}): restore it or redraw it"
        )
    if file_sha256(png) != entry.png_sha256:
        raise DataError(
            png,
            f"differs from the file {FIGURE_MANIFEST} describes (redrawn without updating "
            "it?): restore it with git, or redraw it with the command recorded there",
        )
    return png
