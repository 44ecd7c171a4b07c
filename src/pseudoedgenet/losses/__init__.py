"""Losses: a functional core (``functional``) and thin ``nn.Module`` wrappers.

Each loss states whether it takes logits or probabilities and how it treats ignored
pixels; see :mod:`pseudoedgenet.losses.functional`.
"""

from __future__ import annotations

import torch
from torch import nn

from pseudoedgenet.losses.functional import edge_l1, local_crf_loss, point_bce


class PointBCELoss(nn.Module):
    """Module form of :func:`point_bce` (takes logits; 255 = ignore)."""

    def __init__(
        self, pos_weight: float = 1.0, neg_weight: float = 0.1, normalization: str = "per_class"
    ) -> None:
        super().__init__()
        self.pos_weight, self.neg_weight, self.normalization = pos_weight, neg_weight, normalization

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return point_bce(logits, labels, self.pos_weight, self.neg_weight, self.normalization)  # type: ignore[arg-type]


class EdgeL1Loss(nn.Module):
    """Module form of :func:`edge_l1`, scaled by ``lam`` (λ = 1 in the paper)."""

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, sobel_f: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        return self.lam * edge_l1(sobel_f, edge)


__all__ = ["EdgeL1Loss", "PointBCELoss", "edge_l1", "local_crf_loss", "point_bce"]
