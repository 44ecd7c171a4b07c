"""The LightningModule: one training step of Eq. (1)-(2), validation scores, logging.

No file I/O here; the run folder, checkpoints and result files belong to
:mod:`pseudoedgenet.engine.train`. The networks, f's normalisation and padding, and
reading/writing trained weights live below the engine, in
:mod:`pseudoedgenet.models.trained`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from pseudoedgenet.config import Config, config_from_dict
from pseudoedgenet.losses.functional import edge_l1, local_crf_loss, point_bce
from pseudoedgenet.metrics import PointMetric, SegmentationMetric
from pseudoedgenet.models import sobel
from pseudoedgenet.models.trained import (
    CHECKPOINT_VERSION_KEY,
    FORMAT_VERSION,
    TRAINING_MPP_KEY,
    Normalize,
    Segmenter,
    build_network,
    run_padded,
)
from pseudoedgenet.postprocess import foreground


class PseudoEdgeNetModule(L.LightningModule):
    """Joint training of f, g, h with L = L_ce + λ |s(f(I)) − g(I) ⊗ h(I)| (+ CRF term).

    Args:
        config: the run configuration (a :class:`Config` or its dict form, as stored in
            checkpoints' hyper-parameters).

    Batches come from :mod:`pseudoedgenet.data.datamodule`: training batches have
    ``image`` (N, 3, C, C) uint8, ``labels`` (N, C, C) uint8 and ``mask`` (N, C, C) uint8;
    validation/test batches one whole image with ``instances`` (1, H, W), ``has_mask``
    (1,) bool, ``points`` (1, N, 2) float64 ``(x, y)`` (x = column, y = row, the pixel
    of a point is ``(round(y), round(x))``) and ``roi`` (1, H, W) bool.

    Validation logs, per epoch, ``val/point_f1``, ``val/point_recall`` and
    ``val/point_precision`` (f's thresholded mask against the points, counts pooled over
    the images, see :mod:`pseudoedgenet.metrics.points`) and, when the images have
    instance masks, ``val/iou`` and ``val/dice`` (mean over images). Testing fills
    :attr:`test_point_metric` always and :attr:`test_metric` for images with masks.
    """

    def __init__(self, config: Config | dict[str, Any]) -> None:
        super().__init__()
        cfg = config if isinstance(config, Config) else config_from_dict(config)
        self.save_hyperparameters({"config": cfg.to_dict()})
        self.cfg = cfg
        #: µm/px of the training images (set by the trainer from the prepared dataset;
        #: kept out of the hyper-parameters so the config, and its hash, do not change)
        self.training_mpp: float | None = None
        self.normalize = Normalize()
        self.net = build_network(cfg)
        self.val_metric = SegmentationMetric()
        self.test_metric = SegmentationMetric()
        self.val_point_metric = PointMetric()
        self.test_point_metric = PointMetric()

    def segmenter(self) -> Segmenter:
        """f with its input normalisation (shares parameters with this module)."""
        return Segmenter(self.net.f)

    def forward(self, image: torch.Tensor, edges: bool = True) -> dict[str, torch.Tensor]:
        x = self.normalize(image)
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x, edges=edges)

    def compute_losses(
        self,
        batch: dict[str, torch.Tensor],
        diagnostics: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Forward pass and every loss term of one batch (keys ``loss``, ``ce``, ...).

        If ``diagnostics`` is a dict, PEN runs put two numbers in it (no gradient):
        ``edge_fit`` = 1 − |s(f) − g⊗h| / |s(f)|, the share of f's Sobel edges the pseudo
        edge explains (0 when g⊗h ≡ 0, 1 when it matches exactly), and ``attention``, the
        mean of h(I).

        During the first ``loss.edge_warmup_epochs`` epochs g and h are not run and the
        edge term is absent (f learns nuclei blobs from the points first); likewise the
        CRF term during the first ``loss.crf_warmup_epochs``.
        """
        lc = self.cfg.loss
        out = self(batch["image"], edges=self.current_epoch >= lc.edge_warmup_epochs)
        logits = out["logits"]
        if lc.supervision == "masks":
            ce = point_bce(logits, batch["mask"], 1.0, 1.0, "pixel")
        else:
            ce = point_bce(logits, batch["labels"], lc.pos_weight, lc.neg_weight, lc.normalization)  # type: ignore[arg-type]
        losses = {"ce": ce}
        total = ce
        prob = torch.sigmoid(logits.float())
        if "edge" in out:
            s = sobel(prob, lc.sobel_normalized)
            l1 = edge_l1(s, out["edge"])
            losses["edge"] = lc.edge_weight * l1
            total = total + losses["edge"]
            if diagnostics is not None:  # is the pseudo edge alive?
                with torch.no_grad():
                    diagnostics["edge_fit"] = 1.0 - l1.detach() / s.abs().mean().clamp_min(1e-12)
                    if "attention" in out:
                        diagnostics["attention"] = out["attention"].detach().float().mean()
        if lc.crf_weight > 0 and self.current_epoch >= lc.crf_warmup_epochs:
            crf = lc.crf_weight * local_crf_loss(
                prob,
                batch["image"].float(),
                lc.crf_sigma_rgb,
                lc.crf_sigma_xy,
                lc.crf_radius,
                lc.crf_downsample,
            )
            losses["crf"] = crf
            total = total + crf
        losses["loss"] = total
        return losses

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        diagnostics: dict[str, torch.Tensor] = {}
        losses = self.compute_losses(batch, diagnostics)
        n = batch["image"].shape[0]
        for k, v in {**losses, **diagnostics}.items():
            self.log(
                f"train/{k}",
                v.detach(),
                on_step=False,
                on_epoch=True,
                batch_size=n,
                prog_bar=k == "loss",
            )
        return losses["loss"]

    def _predict_mask(self, batch: dict[str, Any]) -> np.ndarray:
        """f alone on one whole image -> ``(H, W)`` bool mask (probability > threshold).

        The image (``(1, 3, H, W)``) is reflect-padded to multiples of 32 and f's output
        cropped back by :func:`~pseudoedgenet.models.trained.run_padded`, as at prediction.
        """
        x = self.normalize(batch["image"])
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        prob = torch.sigmoid(run_padded(self.net.f, x).float())[0, 0]
        return foreground(prob, self.cfg.train.threshold).cpu().numpy()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Stamps the checkpoint with the format version of
        :mod:`pseudoedgenet.models.trained` (which reads it, migrating older files) and
        the training images' pixel size (:attr:`training_mpp`, ``None`` when unknown)."""
        checkpoint[CHECKPOINT_VERSION_KEY] = FORMAT_VERSION
        checkpoint[TRAINING_MPP_KEY] = self.training_mpp

    def _score(
        self, batch: dict[str, Any], segmentation: SegmentationMetric, points: PointMetric
    ) -> None:
        """Adds one whole image to the point metric, and to the mask metric if it has one."""
        mask = self._predict_mask(batch)
        points.update(mask, batch["points"][0].cpu().numpy(), batch["roi"][0].cpu().numpy())
        if bool(batch["has_mask"][0]):
            segmentation.update(mask, batch["instances"][0].cpu().numpy())

    def on_validation_epoch_start(self) -> None:
        self.val_metric.reset()
        self.val_point_metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._score(batch, self.val_metric, self.val_point_metric)

    def on_validation_epoch_end(self) -> None:
        if len(self.val_point_metric):
            for key, value in self.val_point_metric.compute().items():
                self.log(f"val/point_{key}", value, prog_bar=key == "f1", sync_dist=True)
        if len(self.val_metric):
            scores = self.val_metric.compute("mean")
            self.log("val/iou", scores["iou"], prog_bar=True, sync_dist=True)
            self.log("val/dice", scores["dice"], sync_dist=True)

    def on_test_epoch_start(self) -> None:
        self.test_metric.reset()
        self.test_point_metric.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._score(batch, self.test_metric, self.test_point_metric)

    def configure_optimizers(self) -> Any:
        t = self.cfg.train
        try:  # fused Adam: one kernel per step on CPU and CUDA (torch >= 2.4)
            opt = torch.optim.Adam(self.parameters(), lr=t.lr, fused=True)
        except (RuntimeError, TypeError):
            opt = torch.optim.Adam(self.parameters(), lr=t.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=t.plateau_factor, patience=t.plateau_patience
        )
        return {
            "optimizer": opt,
            "lr_scheduler": {
                "scheduler": sched,
                "monitor": "train/loss",
                "interval": "epoch",
                "frequency": 1,
            },
        }
