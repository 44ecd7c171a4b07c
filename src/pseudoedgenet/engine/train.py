"""Run driver: train one split, keep the best-validation checkpoint(s), test them.

A run folder holds ``config.yaml`` (the resolved config), ``run.json`` (fold, split, the
training images' pixel size, ``init``, package version, git commit, device),
``metrics.csv`` (per-epoch log), ``best.ckpt``, ``last.ckpt`` and, after testing,
``result.json``. Re-running into the same folder resumes from ``last.ckpt`` (a full
checkpoint), with the same config only (:func:`check_run_folder`);
``best.ckpt``/``best_points.ckpt`` hold the weights alone. SIGTERM
ends a run with :class:`TrainingInterrupted` (the CLI: one line, exit code 143).

Selection (what ``best.ckpt`` is):

* validation images with instance masks: the epoch of the highest ``val/iou`` (as the
  paper does), and ``best_points.ckpt`` the epoch of the highest ``val/point_f1``;
* validation images with points only: the epoch of the highest ``val/point_f1`` (f's
  connected components against the clicks, :mod:`pseudoedgenet.metrics.points`);
* no validation images: a copy of ``last.ckpt``.

Every run with validation images validates at its last step, also when ``train.max_steps``
ends it inside an epoch, so a best checkpoint always exists.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
import yaml
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from pseudoedgenet import __version__
from pseudoedgenet.config import Config, config_differences, load_config
from pseudoedgenet.data.datamodule import PointDataModule
from pseudoedgenet.data.io import atomic_path, write_json, write_text
from pseudoedgenet.data.prepared import PreparedDataset, Resolution
from pseudoedgenet.data.slide import near_mpp
from pseudoedgenet.engine.module import PseudoEdgeNetModule
from pseudoedgenet.engine.runtime import device_description, git_commit, resolve_precision
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.models.trained import describe_init, load_networks, read_weights
from pseudoedgenet.models.trained import export_segmenter as export_segmenter
from pseudoedgenet.models.trained import init_weights as init_networks
from pseudoedgenet.models.trained import load_segmenter as load_segmenter
from pseudoedgenet.record import (
    PointScores,
    ResultRecord,
    Scores,
    init_record,
    precision_name,
    write_record,
)

log = logging.getLogger(__name__)


class EpochLine(Callback):
    """Prints one line per epoch: loss terms, validation scores (when this epoch
    validated), learning rate, time."""

    #: (logged key, short name in the line).
    NAMES: ClassVar[tuple[tuple[str, str], ...]] = (
        ("train/loss", "loss"),
        ("train/ce", "ce"),
        ("train/edge", "edge"),
        ("train/crf", "crf"),
        ("train/edge_fit", "edge_fit"),
        ("train/attention", "h"),
        ("val/iou", "val_iou"),
        ("val/dice", "val_dice"),
        ("val/point_f1", "val_point_f1"),
        ("val/point_recall", "val_point_recall"),
        ("val/point_precision", "val_point_precision"),
    )

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.validated = False

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t0 = time.perf_counter()
        self.validated = False

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validated = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        parts += [
            f"{short} {float(m[key]):.4f}"
            for key, short in self.NAMES
            if key in m and (self.validated or not key.startswith("val/"))
        ]
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        parts.append(f"lr {lr:.2e}")
        parts.append(f"{time.perf_counter() - self.t0:.0f}s")
        trainer.print("  ".join(parts))


class ValidateAtEnd(Callback):
    """Makes the last training step of a run validate.

    Lightning validates at the end of an epoch (every ``train.val_every`` epochs); a run
    that ``train.max_steps`` stops inside an epoch, or whose last epoch is not a multiple
    of ``val_every``, would end without validating, and without a best checkpoint. In the
    last epoch this sets ``trainer.check_val_every_n_epoch = 1``, and at ``max_steps`` it
    also sets ``trainer.should_stop``, which makes Lightning validate at that step.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs:
            trainer.check_val_every_n_epoch = 1

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.check_val_every_n_epoch = 1
            trainer.should_stop = True


class TrainClock(Callback):
    """Wall time of a run summed over its resumed attempts, kept in the checkpoints.

    An attempt's clock starts when the callback is made (the start of
    :func:`train_fold`); ``state_dict`` saves the seconds so far into every checkpoint and
    ``load_state_dict`` (on resume from ``last.ckpt``) restores the seconds of the earlier
    attempts up to that checkpoint. Work an interrupted attempt did after its last
    checkpoint is redone, so it is not counted.
    """

    def __init__(self) -> None:
        self.before_s = 0.0
        self.t0 = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        """Seconds of the earlier attempts (from the checkpoint) plus this one so far."""
        return self.before_s + time.perf_counter() - self.t0

    def state_dict(self) -> dict[str, float]:
        return {"elapsed_s": self.elapsed_s}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.before_s = float(state_dict.get("elapsed_s", 0.0))


#: Config keys a resumed run may change: how long it trains (e.g. ``--epochs 60`` to
#: continue a finished 30-epoch run). Any other difference is refused (a new run).
RESUMABLE_CHANGES = ("train.epochs", "train.max_steps")

#: Keys of a full Lightning checkpoint that resuming needs and weights do not
#: (``best.ckpt``/``best_points.ckpt`` are written without them).
_RESUME_ONLY_KEYS = ("optimizer_states", "lr_schedulers", "callbacks")


class TrainingInterrupted(Exception):
    """A run stopped by SIGTERM (a job scheduler's time limit); rerun to resume.

    Attributes:
        last: the run's ``last.ckpt``.
        epoch: 1-based epoch that ``last.ckpt`` holds, or ``None`` when the run stopped
            before its first checkpoint.
    """

    def __init__(self, last: Path, epoch: int | None) -> None:
        self.last, self.epoch = last, epoch
        if epoch is None:
            text = (
                f"interrupted by SIGTERM in the first epoch, before any checkpoint ({last} "
                "not written); rerun the same command to start again"
            )
        else:
            text = (
                f"interrupted by SIGTERM; {last} saved at epoch {epoch}; rerun the same "
                "command to resume"
            )
        super().__init__(text)


def _process_rank() -> int:
    """This process's global rank (0 unless Lightning's DDP launcher started it)."""
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def check_accelerator(accelerator: str, option: str = "train.accelerator") -> None:
    """Refuses an accelerator this machine does not have, before any work.

    Args:
        accelerator: ``auto``, ``cpu``, ``gpu``, ``cuda`` or ``mps`` (Lightning's names).
        option: the option or config key to name in the message.

    Raises:
        ConfigError: an unknown name, or a GPU that PyTorch cannot see.
    """
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    available = {"auto": True, "cpu": True, "gpu": cuda or mps, "cuda": cuda, "mps": mps}
    if accelerator not in available:
        raise ConfigError(
            f"{option} {accelerator}: unknown accelerator; use one of {', '.join(available)}"
        )
    if not available[accelerator]:
        raise ConfigError(
            f"{option} {accelerator}: PyTorch sees no {accelerator.upper()} device on this "
            f"machine (torch {torch.__version__}, CUDA build {torch.version.cuda}); use cpu "
            "or auto"
        )


def _value_text(value: Any) -> str:
    """A config value as YAML writes it (``0.05``, ``true``, ``null``, ``pen_att``)."""
    if isinstance(value, str):
        return value
    return str(yaml.safe_dump(value, default_flow_style=True)).removesuffix("\n...\n").strip()


def check_run_folder(out: Path, cfg: Config) -> list[tuple[str, Any, Any]]:
    """Checks that ``out`` can take a run of ``cfg``, before anything is written.

    A folder that already holds a run (``config.yaml``) continues only with the same
    config, up to :data:`RESUMABLE_CHANGES`; its ``last.ckpt``, if any, must be a complete,
    resumable checkpoint.

    Returns:
        The allowed differences ``[(key, in the run, now), ...]`` (empty for a new run).

    Raises:
        DataError: naming the file: ``config.yaml`` unreadable or of another config (the
            keys listed), ``last.ckpt`` truncated, corrupt or weights-only.
    """
    saved_path, last = out / "config.yaml", out / "last.ckpt"
    changes: list[tuple[str, Any, Any]] = []
    if saved_path.is_file():
        try:
            saved = load_config(saved_path)
        except ConfigError as exc:
            raise DataError(
                saved_path, f"the run's config cannot be read ({exc}): use a new --out"
            ) from None
        changes = [(k, a, b) for k, (a, b) in config_differences([saved, cfg]).items()]
        refused = [c for c in changes if c[0] not in RESUMABLE_CHANGES]
        if refused:
            listed = "; ".join(
                f"{k}: {_value_text(a)} in the run, {_value_text(b)} now" for k, a, b in refused
            )
            raise DataError(
                out,
                f"holds a run of another config ({listed}): use a new --out for a new run, "
                f"or resume it with its own config ({saved_path})",
            )
    if last.is_file():
        try:
            ckpt = torch.load(last, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DataError(
                last,
                f"truncated or corrupt checkpoint ({type(exc).__name__}): delete it to train "
                "this run again from its start, or use a new --out",
            ) from None
        if not isinstance(ckpt, dict) or any(
            k not in ckpt for k in ("state_dict", "loops", *_RESUME_ONLY_KEYS)
        ):
            raise DataError(
                last,
                "not a resumable training checkpoint (no optimizer state or loop counters): "
                "delete it to train this run again from its start, or use a new --out",
            )
        del ckpt
    return changes


def _weights_only_copy(src: Path, dst: Path, precision_key: str) -> None:
    """Writes ``src`` (a full checkpoint) to ``dst`` without what only resuming needs."""
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    drop = {*_RESUME_ONLY_KEYS, precision_key}
    with atomic_path(dst) as tmp:
        torch.save({k: v for k, v in ckpt.items() if k not in drop}, tmp)


class _EpochBar(TQDMProgressBar):
    """One progress bar per training epoch on stderr (``epoch 3/30``), nothing else:
    no metrics after the bar (:class:`EpochLine` prints them), no validation or test bars."""

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(
            desc="train",
            position=self.process_position,
            disable=self.is_disabled,
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
            smoothing=0,
            unit="step",
        )

    def init_validation_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_sanity_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def init_test_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        bar = self.train_progress_bar
        bar.set_description(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}", False)
        total = self.total_train_batches
        bar.reset(total=None if total == float("inf") else int(total))
        bar.initial = 0

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        return {}

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        # clear the bar now, not at exit after the error line
        if self._train_progress_bar is not None:
            self._train_progress_bar.close()


@contextmanager
def lightning_output(verbose: bool) -> Iterator[None]:
    """Silences Lightning's log lines (device summary, tips, "fit stopped") and the
    warnings raised inside Lightning for the duration of a run, unless ``verbose``;
    restores the loggers' levels afterwards."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"lightning(\.|$)")
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _checkpoint_epoch(path: Path) -> int | None:
    """The 1-based epoch a checkpoint holds, or ``None`` without a readable file."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"]) + 1
    except Exception:
        return None


def config_sha256(cfg: Config) -> str:
    """Hash of the resolved config (YAML form), to tell runs of different configs apart."""
    return hashlib.sha256(cfg.to_yaml().encode()).hexdigest()


def load_module(path: str | Path, map_location: str = "cpu") -> PseudoEdgeNetModule:
    """Loads a training checkpoint (``best.ckpt``/``last.ckpt``) as the LightningModule.

    Reading, format versions and migrations are :func:`pseudoedgenet.models.trained.
    read_weights` (``torch.load(..., weights_only=True)``); the checkpoint carries the
    config, so nothing else is needed. Inference needs f alone:
    :func:`pseudoedgenet.models.trained.load_segmenter` (no Lightning).

    Raises:
        DataError: naming the file: unreadable, not a training checkpoint (an exported f
            file holds f only), or weights that do not fit its config.
    """
    weights = read_weights(path, map_location)
    if weights.kind != "checkpoint":
        raise DataError(
            path,
            "is an exported f file (f only): this needs a training checkpoint "
            "(best.ckpt/last.ckpt) with g and h",
        )
    module = PseudoEdgeNetModule(weights.config)
    load_networks(module.net, weights)
    return module.eval()


def init_weights(module: PseudoEdgeNetModule, path: str | Path) -> dict[str, Any]:
    """Starts a new run's module from trained weights: :func:`pseudoedgenet.models.trained.
    init_weights` on ``module.net`` with ``module``'s model config (same record)."""
    return init_networks(module.net, path, module.cfg.model)


def _fit(
    cfg: Config,
    module: PseudoEdgeNetModule,
    dm: PointDataModule,
    out: Path,
    monitors: dict[str, str],
    clock: TrainClock,
    verbose: bool = False,
) -> tuple[L.Trainer, dict[str, ModelCheckpoint]]:
    """Trains ``module``; ``monitors`` maps checkpoint names to the logged score each keeps
    the maximum of (``{}``: no validation, ``best.ckpt`` holds the weights of
    ``last.ckpt``). ``last.ckpt`` is a full checkpoint (optimizer, schedulers, loops,
    callbacks: what resuming needs); ``best.ckpt``/``best_points.ckpt`` hold the weights
    only (with the config, epoch and step), a third of the size with Adam.

    Returns the trainer and the checkpoint callbacks by name (``last`` is always there).
    """
    t = cfg.train
    precision = resolve_precision(t.precision, t.accelerator)
    if t.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if t.compile:
        module.net = torch.compile(module.net)  # type: ignore[assignment]
    has_val = bool(monitors)
    # last.ckpt has its own callback, written at the end of every training epoch (after
    # that epoch's validation): Lightning >= 2.5 rewrites a monitoring callback's
    # ``save_last`` file only when its score improved. The monitoring callbacks save when
    # a validation ends, so they always see that validation's scores.
    callbacks: dict[str, ModelCheckpoint] = {
        "last": ModelCheckpoint(
            dirpath=out,
            filename="last",
            monitor=None,
            save_top_k=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )
    }
    for name, key in monitors.items():
        callbacks[name] = ModelCheckpoint(
            dirpath=out,
            filename=name,
            monitor=key,
            mode="max",
            save_top_k=1,
            save_on_train_epoch_end=False,
            enable_version_counter=False,
            save_weights_only=True,
        )
    others: list[Callback] = [ValidateAtEnd()] if has_val else []
    trainer = _make_trainer(
        default_root_dir=out,
        max_epochs=t.epochs,
        max_steps=t.max_steps,
        precision=precision,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        callbacks=[
            *callbacks.values(),
            *others,
            EpochLine(),
            clock,
            *([] if verbose else [_EpochBar()]),
        ],
        logger=CSVLogger(save_dir=out, name="logs", version=f"attempt_{_attempts(out)}"),
        check_val_every_n_epoch=t.val_every,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        limit_val_batches=1.0 if has_val else 0,
        enable_model_summary=False,
    )
    last = out / "last.ckpt"
    try:
        trainer.fit(
            module,
            datamodule=dm,
            ckpt_path=last if last.is_file() else None,
            weights_only=True,
        )
    finally:
        if trainer.is_global_zero:
            _merge_logs(out)
    if not has_val and last.is_file() and trainer.is_global_zero:
        _weights_only_copy(last, out / "best.ckpt", type(trainer.precision_plugin).__qualname__)
    return trainer, callbacks


def _make_trainer(**kwargs: Any) -> L.Trainer:
    """``L.Trainer(**kwargs)``; Lightning's refusal of the hardware settings as one line."""
    try:
        return L.Trainer(**kwargs)
    except MisconfigurationException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"train.accelerator/devices/strategy ({kwargs.get('accelerator')}, "
            f"{kwargs.get('devices')}, {kwargs.get('strategy', 'auto')}): {first}"
        ) from None


def _attempts(out: Path) -> int:
    """Number of training attempts logged in a run folder (``logs/attempt_<n>``)."""
    return len(list((out / "logs").glob("attempt_*"))) if (out / "logs").is_dir() else 0


def _merge_logs(out: Path) -> None:
    """Joins the per-attempt CSV logs into ``out/metrics.csv`` (one row per logged step)."""
    import csv
    import io

    rows: list[dict[str, str]] = []
    header: list[str] = []
    for f in sorted(
        (out / "logs").glob("attempt_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])
    ):
        with f.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header += [h for h in reader.fieldnames or [] if h not in header]
            rows += list(reader)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "metrics.csv", buf.getvalue())


def default_val_images(n_images: int) -> int:
    """Validation images held out of a run without a fold: one in ten, at least one
    (``max(1, n // 10)``)."""
    return max(1, n_images // 10)


def read_log_curve(run_dir: str | Path, column: str = "val/iou") -> dict[int, float]:
    """One logged validation score per epoch of a run folder (``val/iou``, ``val/point_f1``).

    Reads ``metrics.csv`` (Lightning CSV log; rows with a value in ``column``), or, while a
    run is still going and that file is not yet merged, ``logs/attempt_*/metrics.csv``
    in attempt order. A later row of the same epoch (a resumed attempt) wins.

    Args:
        run_dir: a fold's run folder.

    Returns:
        ``{epoch: value}`` with 1-based epochs (as ``best_epoch`` in the fold files);
        empty when no log exists.

    Raises:
        DataError: a log without ``epoch`` and ``column`` columns or with a bad number.
    """
    run_dir = Path(run_dir)
    files = [run_dir / "metrics.csv"]
    if not files[0].is_file():
        files = sorted(
            (run_dir / "logs").glob("attempt_*/metrics.csv"),
            key=lambda p: int(p.parent.name.split("_")[-1]) if p.parent.name[8:].isdigit() else 0,
        )
    curve: dict[int, float] = {}
    for f in files:
        if not f.is_file():
            continue
        with f.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                continue
            if "epoch" not in reader.fieldnames or column not in reader.fieldnames:
                continue
            for line, row in enumerate(reader, start=2):
                value = row.get(column) or ""
                if not value.strip():
                    continue
                try:
                    curve[int(float(row["epoch"])) + 1] = float(value)
                except (TypeError, ValueError):
                    raise DataError(f, f"line {line}: bad epoch or {column} value") from None
    return dict(sorted(curve.items()))


def _check_split_args(ds: PreparedDataset, fold: int | None) -> None:
    """Rejects datasets too small to train on and impossible folds (no folder touched)."""
    n = len(ds.names)
    if n < 3:
        raise DataError(
            ds.root,
            f"{n} image(s); training needs at least 3 (images to train on and to validate "
            "with): annotate more images, or more regions (each region becomes an image)",
        )
    if fold is None:
        return
    k = len(ds.folds)
    if k < 3:
        raise ConfigError(
            f"--fold needs a dataset prepared with at least 3 folds, {ds.root} has {k}: "
            "prepare it again with --k 3 or more, or omit --fold"
        )
    if not 0 <= fold < k:
        raise ConfigError(f"--fold {fold} out of range 0..{k - 1} ({ds.root} has {k} folds)")


def _validation_text(dm: PointDataModule, selected_by: str) -> str:
    """What the run validates with and how ``best.ckpt`` is chosen, in words."""
    n_val = len(dm.val_names)
    if selected_by == "last":
        return "no validation: last.ckpt is the result (copied to best.ckpt)"
    if selected_by == "val/iou":
        return (
            f"validation: {_count(n_val, 'image')} with masks — best.ckpt by val IoU, "
            "best_points.ckpt by point F1"
        )
    masks = dm.val_set.n_with_masks
    note = f" ({masks} of {n_val} have masks; IoU needs all)" if masks else ""
    return (
        f"validation: {_count(n_val, 'image')}, points only{note} — best.ckpt by point F1 "
        "(recall/precision of f's instances against the clicks)"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _schedule_text(cfg: Config, done_epochs: int | None, testing: bool = True) -> str:
    """The training budget in words (and, for a finished run, that nothing is left and
    whether the test is run again: ``testing`` is whether the split has a test set)."""
    t, d = cfg.train, cfg.data
    text = f"schedule: {_count(t.epochs, 'epoch')} × {d.crops_per_epoch} crops of {d.crop}²"
    if t.max_steps > 0:
        text += f", stopping after {_count(t.max_steps, 'step')}"
    if done_epochs is not None and done_epochs >= t.epochs:
        again = "testing again" if testing else "no test set to run again"
        text += f" (all {t.epochs} trained already: nothing to train, {again})"
    elif done_epochs is not None:
        text += f" (resuming after epoch {done_epochs})"
    return text


def _plan_line(
    dm: PointDataModule,
    selected_by: str,
    config_source: str | None,
    init: dict[str, Any] | None,
    resumed: bool,
    schedule: str,
    resolution: Resolution,
) -> str:
    """The one line ``train`` prints before training: config, schedule, init, split and
    the training images' pixel size, selection."""
    parts = [f"config: {config_source}"] if config_source else []
    if schedule:
        parts.append(schedule)
    if init is not None:
        parts.append(("resumed run started with " if resumed else "") + describe_init(init))
    if dm.fold is not None:
        k = len(dm.data.folds)
        where = f"fold {dm.fold} of {k} (test fold {dm.fold}, validation fold {(dm.fold + 1) % k})"
    elif dm.val_names:
        where = f"{len(dm.val_names)} validation image(s) held out by seed {dm.seed}"
    else:
        where = "every image trained on"
    res = "pixel size unknown" if resolution.spread is None else resolution.text()
    parts.append(f"split: {where}; train: {len(dm.train_names)} images, {res}")
    parts.append(_validation_text(dm, selected_by))
    if dm.test_names:
        kind = "with masks" if dm.test_set.has_masks else "points only: point scores"
        parts.append(f"test: {len(dm.test_names)} images ({kind})")
    else:
        parts.append("no test set")
    return "; ".join(parts)


def _best_of(cb: ModelCheckpoint, out: Path) -> tuple[float | None, int, dict[str, Any]]:
    """(best score from the callback, 1-based epoch, state_dict) of a monitored checkpoint."""
    path = Path(cb.best_model_path) if cb.best_model_path else None
    if path is None or not path.is_file():
        raise DataError(out, f"no validated checkpoint for {cb.monitor} was written")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    score = cb.best_model_score
    return (float(score) if score is not None else None), int(ckpt["epoch"]) + 1, ckpt["state_dict"]


def train_fold(
    cfg: Config,
    data: str | Path,
    fold: int | None,
    out: str | Path,
    *,
    dataset: str | None = None,
    protocol: str | None = None,
    val: int = 0,
    init: str | Path | None = None,
    config_source: str | None = None,
    log: Callable[[str], None] = print,
    verbose: bool = False,
) -> ResultRecord | None:
    """Trains one split of a prepared dataset and tests its best-validation checkpoint.

    Validation and selection follow the validation images (see the module docstring):
    by val IoU (and ``best_points.ckpt`` by point F1) when they all have instance masks,
    by point F1 when they have points only, the last checkpoint without validation.
    Before training, one line saying so (and which config and initial weights are used)
    goes to ``log``. Every argument is checked before the run folder is created or
    changed: a run folder that holds a run continues it only with the same config (up to
    :data:`RESUMABLE_CHANGES`) and a complete ``last.ckpt``; the accelerator must exist.

    Output: the start line, one line per epoch (:class:`EpochLine`) and a progress bar
    per epoch on stderr; Lightning's own log lines and warnings only with ``verbose``.
    SIGTERM (a scheduler's time limit) stops the run at the next step and raises
    :class:`TrainingInterrupted`: ``last.ckpt`` (written at the end of every epoch) is left
    as it is, so the interrupted epoch is redone on resume.

    Args:
        cfg: the run configuration.
        data: prepared dataset folder (``pseudoedgenet prepare``), at least 3 images.
        fold: test fold of the paper's rotation (validation = fold + 1, train = the
            rest), or ``None``: no test set, ``val`` validation images.
        out: run folder (created; resumed from ``last.ckpt`` if present).
        dataset: dataset name for the result record.
        protocol: protocol name for the result record.
        val: with ``fold=None``, validation images held out (drawn with
            ``cfg.train.seed``, :class:`PointDataModule`); 0 = train on every image.
        init: training checkpoint or exported f file to start f (and g, h where they
            match) from (:func:`init_weights`); not with a run to resume.
        config_source: where ``cfg`` came from, for the start line.
        log: receives the start line.
        verbose: show Lightning's log lines, warnings and its own progress bar.

    Returns:
        The :class:`~pseudoedgenet.record.ResultRecord` also written to
        ``out/result.json``: ``selected_by`` (``val/iou``, ``val/point_f1`` or ``last``),
        ``best_epoch`` with ``val_iou`` and ``val_curve`` (IoU selection) or
        ``val_point_f1`` and ``val_curve_points`` (point selection),
        ``best_epoch_points``/``val_point_f1``/``val_curve_points`` and
        ``test_point_selected`` (test scores of ``best_points.ckpt``) beside an IoU
        selection, ``test``/``test_pooled`` (test images with masks), ``test_points``
        (point scores of best.ckpt on the test images), ``init``, ... ``None`` in a DDP
        process of rank > 0 (``train.devices`` > 1): rank 0 tests (on one device) and
        writes the record.

    Raises:
        DataError: fewer than 3 images, ``init`` unreadable or of another f, ``init``
            with a run folder that holds ``last.ckpt``, a run folder of another config
            or with a truncated ``last.ckpt`` (:func:`check_run_folder`).
        ConfigError: ``fold`` or ``val`` out of range, ``val`` with a fold, an
            accelerator this machine lacks.
        TrainingInterrupted: SIGTERM during training or testing.
    """
    clock = TrainClock()
    ds = PreparedDataset(Path(data))
    out = Path(out)
    _check_split_args(ds, fold)
    resumed = (out / "last.ckpt").is_file()
    if init is not None and resumed:
        raise DataError(
            out,
            "holds a run (last.ckpt): --init starts a new run, so use a new --out "
            "(or drop --init to resume this one)",
        )
    check_accelerator(cfg.train.accelerator)
    changes = check_run_folder(out, cfg)
    rank = _process_rank()
    dm = PointDataModule(ds, fold, cfg.data, cfg.train.seed, val)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    module = PseudoEdgeNetModule(cfg)
    resolution = ds.resolution(dm.train_names)
    if resumed:
        _check_same_resolution(out, data, resolution)
    module.training_mpp = resolution.mpp
    init_rec = init_weights(module, init) if init is not None else None
    if init_rec is None and resumed and (out / "run.json").is_file():
        init_rec = json.loads((out / "run.json").read_text()).get("init")
    if not dm.val_names:
        selected_by, monitors = "last", {}
    elif dm.val_set.has_masks:
        selected_by = "val/iou"
        monitors = {"best": "val/iou", "best_points": "val/point_f1"}
    else:
        selected_by, monitors = "val/point_f1", {"best": "val/point_f1"}
    done = _checkpoint_epoch(out / "last.ckpt") if resumed else None
    schedule = _schedule_text(cfg, done, testing=bool(dm.test_names))
    plan = _plan_line(dm, selected_by, config_source, init_rec, resumed, schedule, resolution)
    if changes:
        plan += "; resumed with " + ", ".join(
            f"{k} {_value_text(a)} -> {_value_text(b)}" for k, a, b in changes
        )
    if rank == 0:
        log(plan)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", cfg.to_yaml())
    precision = resolve_precision(cfg.train.precision, cfg.train.accelerator)
    run = {
        "fold": fold,
        "data": str(data),
        "split": {"train": dm.train_names, "val": dm.val_names, "test": dm.test_names},
        "training_resolution": asdict(resolution),
        "selected_by": selected_by,
        "init": init_rec,
        "pseudoedgenet_version": __version__,
        "git_commit": git_commit(),
        "device": device_description(cfg.train.accelerator),
        "precision": precision,
        "torch": torch.__version__,
    }
    if rank == 0:
        write_json(out / "run.json", run)
    last = out / "last.ckpt"
    with lightning_output(verbose):
        try:
            trainer, callbacks = _fit(cfg, module, dm, out, monitors, clock, verbose)
            if rank:
                return None
            return _test_and_record(
                cfg, module, dm, out, trainer, callbacks, clock, selected_by, run, dataset, protocol
            )
        except SIGTERMException:
            raise TrainingInterrupted(last, _checkpoint_epoch(last)) from None


def _check_same_resolution(out: Path, data: str | Path, resolution: Resolution) -> None:
    """Refuses to resume a run on training images of another pixel size than it started
    on (the checkpoint would record the new one for weights trained on both); runs whose
    ``run.json`` predates the record are not checked."""
    try:
        before = json.loads((out / "run.json").read_text()).get("training_resolution")
    except (OSError, ValueError):
        return
    if not isinstance(before, dict) or "mpp" not in before:
        return
    old, new = before["mpp"], resolution.mpp
    if old is None and new is None:
        return
    if old is not None and new is not None and near_mpp(new, old):
        return
    was = "no recorded pixel size" if old is None else f"{old:.4g} µm/px"
    now = "none" if new is None else f"{new:.4g} µm/px"
    raise DataError(
        out,
        f"holds a run trained on images of {was}, but the training images of --data {data} "
        f"have {now}: resume with the data it started from, or train into a new --out",
    )


def _test_and_record(
    cfg: Config,
    module: PseudoEdgeNetModule,
    dm: PointDataModule,
    out: Path,
    trainer: L.Trainer,
    callbacks: dict[str, ModelCheckpoint],
    clock: TrainClock,
    selected_by: str,
    run: dict[str, Any],
    dataset: str | None,
    protocol: str | None,
) -> ResultRecord:
    """Tests the selected checkpoint(s) of a trained run and writes ``result.json``
    (the record :func:`train_fold` returns)."""
    fold, init_rec, precision = run["fold"], run["init"], run["precision"]
    if trainer.world_size > 1:
        # DDP would test a share of the images per process: rank 0 tests them all alone
        trainer = _make_trainer(
            accelerator=cfg.train.accelerator,
            devices=1,
            precision=trainer.precision,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,
        )
    fields: dict[str, Any] = {}
    # The validation curves go into the record, so the report's per-epoch plot does not
    # depend on the (git-ignored) run folder.
    if selected_by == "val/iou":
        score, fields["best_epoch_points"], points_state = _best_of(callbacks["best_points"], out)
        fields["val_point_f1"] = score
        score, fields["best_epoch"], state = _best_of(callbacks["best"], out)
        fields["val_iou"] = score
        fields["val_curve"] = read_log_curve(out) or None
        fields["val_curve_points"] = read_log_curve(out, "val/point_f1") or None
    elif selected_by == "val/point_f1":
        score, fields["best_epoch"], state = _best_of(callbacks["best"], out)
        fields["val_point_f1"] = score
        fields["val_curve_points"] = read_log_curve(out, "val/point_f1") or None
    if dm.test_names:
        if selected_by != "last":
            module.load_state_dict(state)
        trainer.test(module, datamodule=dm, verbose=False)
        if len(module.test_metric):
            fields["test"] = Scores(**module.test_metric.compute("mean"))
            fields["test_pooled"] = Scores(**module.test_metric.compute("pooled"))
        fields["test_points"] = PointScores(**module.test_point_metric.compute())
        fields["test_images"] = len(dm.test_names)
        if selected_by == "val/iou" and dm.test_set.has_masks:
            module.load_state_dict(points_state)
            trainer.test(module, datamodule=dm, verbose=False)
            fields["test_point_selected"] = Scores(**module.test_metric.compute("mean"))
    record = ResultRecord(
        method=cfg.method,
        config=cfg.to_dict(),
        config_sha256=config_sha256(cfg),
        git_commit=run["git_commit"],
        device=run["device"],
        precision=precision_name(precision),
        selected_by=selected_by,
        wall_s=round(clock.elapsed_s, 1),
        fold=fold,
        dataset=dataset,
        protocol=protocol,
        validation=_validation_text(dm, selected_by),
        train_images=len(dm.train_names),
        val_images=len(dm.val_names),
        init=None if init_rec is None else init_record(init_rec),
        attempts=_attempts(out),
        **{k: _plain(v) for k, v in fields.items()},
    )
    write_record(out / "result.json", record)
    return record


def _plain(value: Any) -> Any:
    """Python numbers instead of numpy scalars (the record is JSON)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Scores | PointScores):
        return type(value)(**{k: float(v) for k, v in vars(value).items()})
    return value
