"""Split-based evaluation: train on every training image, test on a separate test set.

The second view of the results that later papers use for MoNuSeg: train on all 30 images
of the 2018 training set and test on its 14 official test images, which are never used
for training or for model selection. With no validation images the checkpoint of the
last epoch is the one tested.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pseudoedgenet.config import Config
from pseudoedgenet.data.prepared import PreparedDataset
from pseudoedgenet.engine.evaluate import evaluate_checkpoint
from pseudoedgenet.engine.train import train_fold
from pseudoedgenet.errors import DataError
from pseudoedgenet.record import ResultRecord, Scores, read_record, write_record


def holdout(
    cfg: Config,
    train_data: str | Path,
    test_data: str | Path,
    out: str | Path,
    runs: str | Path,
    protocol: str,
    dataset_name: str | None = None,
    *,
    verbose: bool = False,
) -> ResultRecord | None:
    """Trains on all of ``train_data``, tests the last checkpoint on all of ``test_data``.

    Args:
        cfg: method config with the protocol already applied.
        train_data: prepared training folder (all images are used for training).
        test_data: prepared test folder with instance masks (every image is tested).
        out: result file (``.json``); if it exists nothing is run and it is read back.
        runs: run folder for the checkpoints (outside git; resumed if interrupted).
        protocol: protocol name recorded in the result.
        dataset_name: recorded as ``dataset`` (defaults to the training folder's reader
            plus ``-test``).
        verbose: show Lightning's own output (:func:`train_fold`).

    Returns:
        The result record: the training run's, with ``test`` / ``test_pooled`` (IoU,
        Dice, F1, AJI) and ``test_images`` of the test folder, ``test_data`` and
        ``selected_by: "last"``; ``None`` in a DDP process of rank > 0.
    """
    out = Path(out)
    if out.is_file():
        print(f"{out} exists, skipped")
        return read_record(out)
    test_ds = PreparedDataset(Path(test_data))
    if not test_ds.has_instances:
        raise DataError(test_ds.root, "has no instance masks to test against")
    train_ds = PreparedDataset(Path(train_data))
    overlap = set(train_ds.names) & set(test_ds.names)
    if overlap:
        raise DataError(
            test_ds.root,
            f"shares {len(overlap)} image(s) with {train_ds.root}, e.g. {min(overlap)}",
        )
    reader = str(train_ds.meta.get("source", {}).get("reader", Path(train_data).name))
    name = dataset_name or f"{reader}-test"
    trained = train_fold(
        cfg, train_data, None, runs, dataset=name, protocol=protocol, verbose=verbose
    )
    if trained is None:  # a DDP process of rank > 0: rank 0 tests and writes
        return None
    scores = evaluate_checkpoint(Path(runs) / "last.ckpt", test_data, None, cfg.train.accelerator)
    record = replace(
        trained,
        test_data=str(test_data),
        test=Scores(**scores["test"]),
        test_pooled=Scores(**scores["test_pooled"]),
        test_images=scores["test_images"],
        wall_s=round(trained.wall_s + scores["wall_s"], 1),
    )
    write_record(out, record)
    assert record.test is not None
    print(f"test IoU {record.test.iou:.4f} on {record.test_images} images -> {out}")
    return record
