"""Losses, as pure functions (:mod:`pseudoedgenet.losses.functional`).

Each loss states whether it takes logits or probabilities and how it treats ignored
pixels. The LightningModule calls these functions directly (no ``nn.Module`` wrappers:
none had a user).
"""

from __future__ import annotations

from pseudoedgenet.losses.functional import edge_l1, local_crf_loss, point_bce

__all__ = ["edge_l1", "local_crf_loss", "point_bce"]
