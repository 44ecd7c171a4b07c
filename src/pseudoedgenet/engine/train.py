"""Run driver: train one fold, keep the best-validation checkpoint, test it.

A run folder holds ``config.yaml`` (the resolved config), ``run.json`` (fold, package
version, git commit, device), ``metrics.csv`` (per-epoch log), ``best.ckpt``,
``last.ckpt`` and, after testing, ``result.json``. Re-running into the same folder
resumes from ``last.ckpt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from pseudoedgenet import __version__
from pseudoedgenet.config import Config
from pseudoedgenet.data.datamodule import PointDataModule
from pseudoedgenet.data.io import write_json, write_text
from pseudoedgenet.data.prepared import PreparedDataset
from pseudoedgenet.engine.module import PseudoEdgeNetModule, Segmenter
from pseudoedgenet.engine.runtime import device_description, git_commit, resolve_precision
from pseudoedgenet.errors import DataError

log = logging.getLogger(__name__)


class EpochLine(Callback):
    """Prints one line per epoch: loss terms, validation IoU, learning rate, time."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        m = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        names = {
            "train/loss": "loss",
            "train/ce": "ce",
            "train/edge": "edge",
            "train/crf": "crf",
            "train/edge_fit": "edge_fit",
            "train/attention": "h",
            "val/iou": "val_iou",
        }
        parts += [f"{short} {float(m[key]):.4f}" for key, short in names.items() if key in m]
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        parts.append(f"lr {lr:.2e}")
        parts.append(f"{time.perf_counter() - self.t0:.0f}s")
        trainer.print("  ".join(parts))


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


def config_sha256(cfg: Config) -> str:
    """Hash of the resolved config (YAML form), to tell runs of different configs apart."""
    return hashlib.sha256(cfg.to_yaml().encode()).hexdigest()


def load_module(path: str | Path, map_location: str = "cpu") -> PseudoEdgeNetModule:
    """Loads a training checkpoint (``best.ckpt``/``last.ckpt``) safely.

    Uses ``torch.load(..., weights_only=True)``: nothing in the file is unpickled as code.
    The checkpoint carries the config, so nothing else is needed.
    """
    return _module_from_checkpoint(Path(path), _safe_load(path, map_location))


def _safe_load(path: str | Path, map_location: str) -> Any:
    """``torch.load(weights_only=True)`` with one-line errors naming the file."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataError(path, "checkpoint not found") from None
    except Exception as exc:
        raise DataError(path, f"not a readable checkpoint ({type(exc).__name__})") from None


def _module_from_checkpoint(path: Path, ckpt: Any) -> PseudoEdgeNetModule:
    try:
        config = ckpt["hyper_parameters"]["config"]
        state = ckpt["state_dict"]
    except (KeyError, TypeError):
        raise DataError(path, "not a pseudoedgenet training checkpoint") from None
    module = PseudoEdgeNetModule(_legacy_model_keys(config))
    module.load_state_dict(state)
    return module.eval()


#: What checkpoints written before ``model.edge_init/edge_scale/attention_scale`` existed
#: were trained with (the defaults have changed since).
_LEGACY_MODEL = {"edge_init": "default", "edge_scale": 1.0, "attention_scale": 1.0}


def _legacy_model_keys(config: Any) -> Any:
    """Fills the model keys an older checkpoint's config lacks with the values it used."""
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or "edge_scale" in model:
        return config
    return {**config, "model": {**_LEGACY_MODEL, **model}}


def export_segmenter(checkpoint: str | Path, out: str | Path) -> Path:
    """Saves f alone (state dict + its constructor arguments) for inference.

    The file is a dict ``{"format": "pseudoedgenet-f", "version", "config", "state_dict"}``
    readable with ``torch.load(..., weights_only=True)``; see :func:`load_segmenter`.
    """
    module = load_module(checkpoint)
    payload = {
        "format": "pseudoedgenet-f",
        "version": __version__,
        "config": module.cfg.to_dict(),
        "state_dict": module.segmenter().state_dict(),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(out)
    return out


def load_segmenter(path: str | Path, map_location: str = "cpu") -> Segmenter:
    """Loads f (with input normalisation) from an exported file or a training checkpoint.

    Returns:
        :class:`Segmenter` in eval mode: ``(N, 3, H, W)`` RGB 0..255 -> logits.
    """
    path = Path(path)
    payload = _safe_load(path, map_location)
    if isinstance(payload, dict) and payload.get("format") == "pseudoedgenet-f":
        from pseudoedgenet.config import config_from_dict
        from pseudoedgenet.models import build_model

        cfg = config_from_dict(payload["config"])
        seg = Segmenter(build_model("segnet_fpn", encoder=cfg.model.encoder, pretrained="none"))
        seg.load_state_dict(payload["state_dict"])
        return seg.eval()
    return _module_from_checkpoint(path, payload).segmenter().eval()


def _fit(
    cfg: Config, dm: PointDataModule, out: Path, has_val: bool, clock: TrainClock
) -> tuple[L.Trainer, PseudoEdgeNetModule]:
    t = cfg.train
    precision = resolve_precision(t.precision, t.accelerator)
    module = PseudoEdgeNetModule(cfg)
    if t.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if t.compile:
        module.net = torch.compile(module.net)  # type: ignore[assignment]
    ckpt_cb = ModelCheckpoint(
        dirpath=out,
        filename="best",
        monitor="val/iou" if has_val else None,
        mode="max",
        save_last=True,
        save_top_k=1,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        default_root_dir=out,
        max_epochs=t.epochs,
        max_steps=t.max_steps,
        precision=precision,  # type: ignore[arg-type]
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        callbacks=[ckpt_cb, EpochLine(), clock],
        logger=CSVLogger(save_dir=out, name="logs", version=f"attempt_{_attempts(out)}"),
        check_val_every_n_epoch=t.val_every,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        limit_val_batches=1.0 if has_val else 0,
        enable_model_summary=False,
    )
    last = out / "last.ckpt"
    trainer.fit(
        module,
        datamodule=dm,
        ckpt_path=last if last.is_file() else None,
        weights_only=True,
    )
    if not has_val and last.is_file() and not (out / "best.ckpt").is_file():
        (out / "best.ckpt").write_bytes(last.read_bytes())
    _merge_logs(out)
    return trainer, module


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


def train_fold(
    cfg: Config,
    data: str | Path,
    fold: int | None,
    out: str | Path,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Trains one fold of a prepared dataset and tests its best-validation checkpoint.

    Args:
        cfg: the run configuration.
        data: prepared dataset folder (``pseudoedgenet prepare``).
        fold: test fold of the paper's rotation (validation = fold + 1, train = the
            rest), or ``None`` to train on every image (no validation, no test).
        out: run folder (created; resumed from ``last.ckpt`` if present).
        extra: more fields for the result record (e.g. ``dataset``, ``protocol``).

    Returns:
        The result record also written to ``out/result.json``.
    """
    clock = TrainClock()
    ds = PreparedDataset(Path(data))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.train.seed, workers=True, verbose=False)
    write_text(out / "config.yaml", cfg.to_yaml())
    precision = resolve_precision(cfg.train.precision, cfg.train.accelerator)
    run = {
        "fold": fold,
        "data": str(data),
        "pseudoedgenet_version": __version__,
        "git_commit": git_commit(),
        "device": device_description(cfg.train.accelerator),
        "precision": precision,
        "torch": torch.__version__,
    }
    write_json(out / "run.json", run)
    dm = PointDataModule(ds, fold, cfg.data, cfg.train.seed)
    has_val = bool(dm.val_names) and ds.has_instances
    trainer, module = _fit(cfg, dm, out, has_val, clock)
    result: dict[str, Any] = {
        **(extra or {}),
        "method": cfg.method,
        "fold": fold,
        "epochs": cfg.train.epochs,
        "crop": cfg.data.crop,
        "crops_per_epoch": cfg.data.crops_per_epoch,
        "pretrained": cfg.model.pretrained,
        "precision": precision,
        "device": run["device"],
        "config_sha256": config_sha256(cfg),
        "config": cfg.to_dict(),
        "git_commit": run["git_commit"],
    }
    best = out / "best.ckpt"
    if has_val:
        ckpt = torch.load(best, map_location="cpu", weights_only=True)
        module.load_state_dict(ckpt["state_dict"])
        cb = ckpt.get("callbacks", {})
        score = next(
            (v.get("best_model_score") for k, v in cb.items() if "ModelCheckpoint" in k), None
        )
        result["val_iou"] = float(score) if score is not None else None
        result["best_epoch"] = int(ckpt["epoch"]) + 1
        # The validation curve goes into the record, so the report's per-epoch plot does
        # not depend on the (git-ignored) run folder.
        from pseudoedgenet.experiments.records import read_val_curve

        curve = read_val_curve(out)
        if curve:
            result["val_curve"] = {str(e): v for e, v in curve.items()}
    if dm.test_names and ds.has_instances:
        trainer.test(module, datamodule=dm, verbose=False)
        result["test"] = module.test_metric.compute("mean")
        result["test_pooled"] = module.test_metric.compute("pooled")
        result["test_images"] = len(dm.test_names)
    result["wall_s"] = round(clock.elapsed_s, 1)
    result["attempts"] = _attempts(out)
    result = json.loads(
        json.dumps(result, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
    )
    write_json(out / "result.json", result)
    return result
