"""The fixed Sobel operator ``s`` of Eq. (1)-(2)."""

from __future__ import annotations

import kornia
import torch
from torch import nn


def sobel(prob: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """Applies the 3x3 Sobel operator in x and y.

    Uses ``kornia.filters.spatial_gradient`` (mode ``sobel``) with replicate padding, so
    the output has the input's size and a constant image gives exactly zero everywhere,
    borders included. The x kernel is ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` (positive
    where values increase to the right), the y kernel its transpose (positive where values
    increase downwards); with ``normalized`` both are divided by 8.

    Args:
        prob: ``(N, 1, H, W)`` probability map (the sigmoid of f's logits), any float dtype.
        normalized: divide the kernels by the sum of their absolute values (8).

    Returns:
        ``(N, 2, H, W)``: channel 0 = x (column) derivative, channel 1 = y (row)
        derivative, the same order as the edge network g's output.

    Shape:
        prob: (N, 1, H, W) -> (N, 2, H, W).
    """
    if prob.ndim != 4 or prob.shape[1] != 1:
        raise ValueError(f"sobel expects (N, 1, H, W), got {tuple(prob.shape)}")
    grad = kornia.filters.spatial_gradient(prob, mode="sobel", order=1, normalized=normalized)
    return grad[:, 0]  # (N, 1, 2, H, W) -> (N, 2, H, W)


class Sobel(nn.Module):
    """Module form of :func:`sobel` (no parameters)."""

    def __init__(self, normalized: bool = False) -> None:
        super().__init__()
        self.normalized = normalized

    def forward(self, prob: torch.Tensor) -> torch.Tensor:
        return sobel(prob, self.normalized)
