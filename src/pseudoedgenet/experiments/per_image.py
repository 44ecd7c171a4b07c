"""A finished cross-validation run's checkpoints scored image by image, tied to its record.

A fold record (``results/<dataset>/<method>/fold_<i>.json``) holds the test scores of the
fold as means over its images. Which images carry a poor mean, and whether by false
positives or by missed nuclei, needs the checkpoints, which are not committed. This module
scores them again, image by image, and writes a small committed file that names the
checkpoints by SHA-256 and the commit that trained them, after checking that the run is the
one the committed record describes (same config hash, commit and fold) and that its mean
over the images reproduces the record's test IoU.

File (``OUT/<protocol>_<method>_fold<i>.json``)::

    {"kind": "per_image_scores", "command": ..., "dataset", "method", "protocol", "fold",
     "record": "results/.../fold_<i>.json", "run_commit", "run_device", "run_precision",
     "eval_device", "eval_precision",
     "checkpoints": [{"file": "best.ckpt", "selected_by": "val IoU", "epoch": 43,
                      "sha256": ..., "record_test_iou": ..., "test": {...},
                      "images": [{"image": "04_3", "iou": ..., "fp_px": ..., ...}, ...]},
                     {"file": "best_points.ckpt", "selected_by": "val point F1", ...}]}

It holds neither ``schema_version`` nor ``test_data``, so the report does not take it for a
result record. Point convention: none here (masks only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pseudoedgenet.data.io import write_json
from pseudoedgenet.data.prepared import PreparedDataset
from pseudoedgenet.errors import DataError

KIND = "per_image_scores"
#: A recomputed mean may differ from the record's by this much (same code, same device
#: family; a run scored on other hardware differs by float rounding only).
TOLERANCE = 2e-3
#: The checkpoints of a run that are scored, with the record fields that hold their epoch
#: and their test IoU; ``last.ckpt`` (the final epoch, which no record scores) shows what
#: the epoch choice changes.
CHECKPOINTS = (
    ("best.ckpt", "val IoU", "best_epoch", "test"),
    ("best_points.ckpt", "val point F1", "best_epoch_points", "test_point_selected"),
    ("last.ckpt", "last epoch", None, None),
)


@dataclass(frozen=True)
class ImageRow:
    """One test image scored by one checkpoint (threshold 0.5, f alone).

    Attributes:
        image: the image name.
        iou: pixel IoU of the foreground.
        aji: aggregated Jaccard index.
        true_px: nucleus pixels of the truth.
        fp_px: predicted pixels outside every true nucleus.
        fn_px: true nucleus pixels not predicted.
        tp_nuclei: true nuclei matched (IoU ≥ 0.5) by a predicted instance.
        fn_nuclei: true nuclei matched by none.
        fp_nuclei: predicted instances matching no true nucleus.
    """

    image: str
    iou: float
    aji: float
    true_px: int
    fp_px: int
    fn_px: int
    tp_nuclei: int
    fn_nuclei: int
    fp_nuclei: int


@dataclass(frozen=True)
class ScoredCheckpoint:
    """One checkpoint of a run, scored image by image.

    Attributes:
        file: ``best.ckpt`` or ``best_points.ckpt``.
        selected_by: what chose its epoch (``val IoU`` or ``val point F1``).
        epoch: that epoch (1-based).
        test_iou: the recomputed mean test IoU over the images.
        record_test_iou: the committed record's test IoU for this checkpoint (``None`` for
            ``last.ckpt``, which the record does not score).
        images: one row per test image, in the split's order.
    """

    file: str
    selected_by: str
    epoch: int | None
    test_iou: float
    record_test_iou: float | None
    images: tuple[ImageRow, ...]


@dataclass(frozen=True)
class PerImageScores:
    """A per-image file read back (:func:`read_per_image`).

    Attributes:
        path: the file.
        dataset, method, protocol, fold: the run's.
        run_commit: the commit that trained it.
        checkpoints: the scored checkpoints (``best.ckpt`` first).
        eval_precision: the Lightning precision they were scored at (``"32"``,
            ``"bf16-mixed"``, ...; ``"32"`` for files written before it was recorded).
    """

    path: Path
    dataset: str
    method: str
    protocol: str
    fold: int
    run_commit: str
    checkpoints: tuple[ScoredCheckpoint, ...]
    eval_precision: str = "32"


def read_json_object(
    path: Path, missing: str = "not found: give a finished crossval run folder"
) -> dict[str, Any]:
    """A JSON object from a file (never unpickled); one-line :class:`DataError` naming the
    file when it is missing (``missing``), unreadable or not an object."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, missing) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise DataError(path, "is not a JSON object")
    return raw


def _check_same_run(run: dict[str, Any], committed: dict[str, Any], record: Path) -> None:
    for key in ("config_sha256", "git_commit", "fold", "best_epoch"):
        if run.get(key) != committed.get(key):
            raise DataError(
                record,
                f"{key} {committed.get(key)!r} differs from the run folder's result.json "
                f"({run.get(key)!r}): these checkpoints are not the run this record describes",
            )


def _last_epoch(result: dict[str, Any]) -> int | None:
    """The last validated epoch of a finished run (its ``last.ckpt``), from the record's
    ``val_curve`` (``{epoch: val IoU}``) or ``val_curve_points``."""
    curve = result.get("val_curve") or result.get("val_curve_points") or {}
    return max((int(k) for k in curve), default=None)


def score_run(
    run_dir: str | Path,
    data: str | Path,
    results: str | Path,
    out: str | Path,
    command: str,
    accelerator: str = "cpu",
) -> Path:
    """Scores a finished crossval run's ``best.ckpt``, ``best_points.ckpt`` and
    ``last.ckpt`` image by image on its fold's test images and writes
    ``OUT/<protocol>_<method>_fold<i>.json``; the first two must reproduce the record's test
    IoU.

    Args:
        run_dir: the run folder (``runs/crossval/<dataset>/<method>/fold_<i>``) holding the
            checkpoints, ``result.json`` and ``run.json`` (plain JSON; nothing unpickled
            but the checkpoints' tensors, ``weights_only=True``).
        data: the prepared dataset the run used, or one with the same split (checked:
            the test image names must be the run's).
        results: the committed results folder holding the run's fold record.
        out: folder of the per-image files.
        command: the command line written into the file.
        accelerator: ``cpu`` (default) or ``gpu``.

    Returns:
        The written file.

    Raises:
        DataError: no finished run there, no committed record of it, a record of another
            run, another split, or a recomputed test IoU that differs from the record's.
    """
    from pseudoedgenet.engine.evaluate import evaluate_checkpoint
    from pseudoedgenet.experiments.crossval import results_subdir

    run_dir = Path(run_dir)
    result = read_json_object(run_dir / "result.json")
    info = read_json_object(run_dir / "run.json")
    method, protocol = str(result.get("method")), str(result.get("protocol"))
    dataset, fold = str(result.get("dataset")), result.get("fold")
    if not isinstance(fold, int):
        raise DataError(run_dir / "result.json", "has no fold: give a crossval run folder")
    record = Path(results) / results_subdir(dataset, protocol, method) / f"fold_{fold}.json"
    if not record.is_file():
        raise DataError(record, "not found: commit the run's fold record first, then score it")
    _check_same_run(result, read_json_object(record), record)
    prepared = PreparedDataset(Path(data))
    want = list(info.get("split", {}).get("test", []))
    got = prepared.split(fold).test if len(prepared.folds) >= 3 else []
    if want != got:
        raise DataError(
            prepared.root,
            f"fold {fold} tests on {got}, the run on {want}: give the dataset the run used",
        )
    scored = []
    eval_device = eval_precision = None
    for file, selected_by, epoch_key, test_key in CHECKPOINTS:
        ckpt = run_dir / file
        if not ckpt.is_file():
            continue
        rec_iou = None if test_key is None else (result.get(test_key) or {}).get("iou")
        if test_key is not None and rec_iou is None:
            raise DataError(run_dir / "result.json", f"has no '{test_key}' scores for {file}")
        res = evaluate_checkpoint(ckpt, prepared.root, fold, accelerator)
        if rec_iou is not None and abs(res["test"]["iou"] - rec_iou) > TOLERANCE:
            raise DataError(
                ckpt,
                f"test IoU {res['test']['iou']:.4f} here, {rec_iou:.4f} in the record: not the "
                "checkpoint that record was made from (or another dataset)",
            )
        eval_device, eval_precision = res["device"], res["precision"]
        scored.append(
            {
                "file": file,
                "selected_by": selected_by,
                "epoch": result.get(epoch_key) if epoch_key else _last_epoch(result),
                "sha256": res["checkpoint_sha256"],
                "record_test_iou": rec_iou,
                "test": res["test"],
                "images": res["test_per_image"],
            }
        )
    if not scored:
        raise DataError(run_dir, "holds no best.ckpt: give a finished crossval run folder")
    doc = {
        "kind": KIND,
        "command": command,
        "dataset": dataset,
        "method": method,
        "protocol": protocol,
        "fold": fold,
        "record": record.as_posix(),
        "run_commit": result.get("git_commit"),
        "run_device": result.get("device"),
        "run_precision": result.get("precision"),
        "eval_device": eval_device,
        "eval_precision": eval_precision,
        "checkpoints": scored,
    }
    path = Path(out) / f"{protocol}_{method}_fold{fold}.json"
    write_json(path, doc)
    return path


def _row(raw: dict[str, Any]) -> ImageRow:
    return ImageRow(
        image=str(raw["image"]),
        iou=float(raw["iou"]),
        aji=float(raw["aji"]),
        true_px=int(raw["true_px"]),
        fp_px=int(raw["fp_px"]),
        fn_px=int(raw["fn_px"]),
        tp_nuclei=int(raw["tp_nuclei"]),
        fn_nuclei=int(raw["fn_nuclei"]),
        fp_nuclei=int(raw["fp_nuclei"]),
    )


def read_per_image_file(path: str | Path) -> PerImageScores:
    """Reads one per-image file (:func:`score_run`).

    Raises:
        DataError: not a per-image file, or a missing or bad field.
    """
    path = Path(path)
    raw = read_json_object(path)
    if raw.get("kind") != KIND:
        raise DataError(path, f"is not a per-image file (kind {raw.get('kind')!r})")
    try:
        checkpoints = tuple(
            ScoredCheckpoint(
                file=str(c["file"]),
                selected_by=str(c["selected_by"]),
                epoch=None if c.get("epoch") is None else int(c["epoch"]),
                test_iou=float(c["test"]["iou"]),
                record_test_iou=None
                if c.get("record_test_iou") is None
                else float(c["record_test_iou"]),
                images=tuple(_row(r) for r in c["images"]),
            )
            for c in raw["checkpoints"]
        )
        return PerImageScores(
            path=path,
            dataset=str(raw["dataset"]),
            method=str(raw["method"]),
            protocol=str(raw["protocol"]),
            fold=int(raw["fold"]),
            run_commit=str(raw["run_commit"]),
            checkpoints=checkpoints,
            eval_precision=str(raw.get("eval_precision") or "32"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(path, f"missing or bad field {exc}") from None


def read_per_image(folder: str | Path) -> list[PerImageScores]:
    """Reads every per-image file of a folder (sorted by name); none when it is absent.

    Raises:
        DataError: a file that is not a per-image file or lacks a field.
    """
    return [read_per_image_file(p) for p in sorted(Path(folder).glob("*.json"))]
