"""Test a trained checkpoint on a prepared dataset: a fold's test images, or all of them.

The same code path as the test at the end of training (:func:`train_fold`): whole images,
reflect-padded to a multiple of 32 (:func:`pseudoedgenet.models.trained.run_padded`), f
alone at the run's precision, threshold 0.5 (the run's ``train.threshold``), scores of
:class:`pseudoedgenet.metrics.SegmentationMetric`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L

from pseudoedgenet.data.datamodule import PointDataModule
from pseudoedgenet.data.io import file_sha256
from pseudoedgenet.data.prepared import PreparedDataset
from pseudoedgenet.engine.runtime import device_description, resolve_precision
from pseudoedgenet.engine.train import check_accelerator, lightning_output, load_module
from pseudoedgenet.errors import ConfigError, DataError


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    fold: int | None = None,
    accelerator: str = "auto",
) -> dict[str, Any]:
    """Scores a training checkpoint's f on ground-truth instance masks.

    Args:
        checkpoint: ``best.ckpt`` or ``last.ckpt`` of a run (loaded with
            ``weights_only=True``).
        data: prepared dataset folder (``pseudoedgenet prepare``) with instance masks.
        fold: test fold of the paper's rotation, or ``None`` for every image of the
            folder (e.g. the MoNuSeg 2018 test split, prepared on its own).
        accelerator: ``auto``, ``cpu`` or ``gpu``.

    Returns:
        ``{"test": {"iou", "dice", "f1", "aji"}`` (mean over images), ``"test_pooled"``
        (from summed counts), ``"test_images"``, ``"test_per_image"`` (one row per test
        image, in the split's order: ``"image"`` and the columns of
        :meth:`~pseudoedgenet.metrics.SegmentationMetric.per_image`: the four scores,
        false-positive / false-negative pixels, nuclei found / missed), ``"fold"``,
        ``"data"``, ``"checkpoint"``, ``"checkpoint_sha256"``, ``"precision"``,
        ``"device"``, ``"wall_s"``}.

    Raises:
        DataError: the folder has no instance masks, a test image has none, or the
            checkpoint is not ours.
        ConfigError: ``fold`` out of range (or a dataset of fewer than 3 folds), an
            accelerator this machine lacks.
    """
    t0 = time.perf_counter()
    check_accelerator(accelerator, "--accelerator")
    ds = PreparedDataset(Path(data))
    if not ds.has_instances:
        raise DataError(ds.root, "has no instance masks to evaluate against")
    if fold is not None and len(ds.folds) < 3:
        raise ConfigError(
            f"--fold needs a dataset prepared with at least 3 folds, {ds.root} has "
            f"{len(ds.folds)}: omit --fold to score every image"
        )
    if fold is not None and not 0 <= fold < len(ds.folds):
        raise ConfigError(f"fold {fold} out of range 0..{len(ds.folds) - 1} for {ds.root}")
    module = load_module(checkpoint)
    cfg = module.cfg
    dm = PointDataModule(ds, fold, cfg.data, cfg.train.seed)
    if fold is None:
        dm.test_names = list(ds.names)
    test = dm.test_set
    missing = [n for n, it in zip(test.names, test.items, strict=True) if it.instances is None]
    if missing:
        where = "" if fold is None else f" of fold {fold}"
        raise DataError(
            ds.root,
            f"{len(missing)} test image(s){where} have no instance mask ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}): evaluate needs a mask on every test "
            "image; give a fold (or a folder) whose images all have masks",
        )
    precision = resolve_precision(cfg.train.precision, accelerator)
    with lightning_output(verbose=False):
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=precision,  # type: ignore[arg-type]
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,
        )
        trainer.test(module, datamodule=dm, verbose=False)
    rows = module.test_metric.per_image()  # every test image, in the split's order
    return {
        "test": module.test_metric.compute("mean"),
        "test_pooled": module.test_metric.compute("pooled"),
        "test_images": len(dm.test_names),
        "test_per_image": [
            {"image": name, **row} for name, row in zip(dm.test_names, rows, strict=True)
        ],
        "fold": fold,
        "data": str(data),
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": file_sha256(checkpoint),
        "precision": precision,
        "device": device_description(accelerator),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
