"""Loss functions of PseudoEdgeNet (pure functions; modules wrap them in ``losses``).

Label maps follow the package convention: 1 = positive, 0 = negative, 255 = ignore.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Normalization = Literal["per_class", "pixel"]


def point_bce(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pos_weight: float = 1.0,
    neg_weight: float = 0.1,
    normalization: Normalization = "per_class",
) -> torch.Tensor:
    """Weighted binary cross-entropy over labelled pixels only (L_ce, Section 3.1/4.2).

    Takes logits (numerically stable ``binary_cross_entropy_with_logits``). Pixels
    labelled 255 contribute nothing, neither to the sum nor to the normaliser.

    ``normalization``:

    - ``per_class`` (default): ``pos_weight * mean_{positives} bce + neg_weight *
      mean_{negatives} bce``; each mean runs over the batch's pixels of that class and a
      class with no pixel contributes 0. Positives are a few percent of the labelled
      pixels, so this keeps the point term from being drowned by the Voronoi term.
    - ``pixel``: ``sum_i w_i bce_i / n_labelled`` (the weighted pixel average). With
      weights 1/1 and a label map without 255 this is plain mean BCE, which is what the
      fully supervised upper bound uses.

    Args:
        logits: ``(N, 1, H, W)`` raw scores of f.
        labels: ``(N, 1, H, W)`` or ``(N, H, W)`` integer, values in {0, 1, 255}.
        pos_weight: weight of positive (point) pixels, 1.0 in the paper.
        neg_weight: weight of negative (Voronoi) pixels, 0.1 in the paper.
        normalization: see above.

    Returns:
        Scalar tensor (float32); 0 when no pixel is labelled.

    Shape:
        logits (N, 1, H, W) float; labels (N, [1,] H, W) int in {0, 1, 255}.
    """
    if labels.ndim == logits.ndim - 1:
        labels = labels.unsqueeze(1)
    if labels.shape != logits.shape:
        raise ValueError(f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}")
    logits = logits.float()
    pos = labels == 1
    neg = labels == 0
    bce = F.binary_cross_entropy_with_logits(logits, pos.float(), reduction="none")
    if normalization == "per_class":
        loss = logits.new_zeros(())
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos > 0:
            loss = loss + pos_weight * bce[pos].sum() / n_pos
        if n_neg > 0:
            loss = loss + neg_weight * bce[neg].sum() / n_neg
        return loss
    if normalization == "pixel":
        weights = pos.float() * pos_weight + neg.float() * neg_weight
        n = (pos | neg).sum()
        return (bce * weights).sum() / n.clamp(min=1)
    raise ValueError(f"normalization must be 'per_class' or 'pixel', got {normalization!r}")


def edge_l1(sobel_f: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between s(f(I)) and the pseudo edge g(I) [⊗ h(I)].

    The second term of Eq. (1)-(2) before scaling by λ; averaged over all pixels, both
    channels and the batch. Gradients flow into both arguments (f, g and h are trained
    jointly).

    Shape:
        sobel_f (N, 2, H, W); edge (N, 2, H, W); returns a scalar.
    """
    if sobel_f.shape != edge.shape:
        raise ValueError(f"edge shapes differ: {tuple(sobel_f.shape)} vs {tuple(edge.shape)}")
    return (sobel_f.float() - edge.float()).abs().mean()


def local_crf_loss(
    prob: torch.Tensor,
    image: torch.Tensor,
    sigma_rgb: float = 15.0,
    sigma_xy: float = 5.0,
    radius: int = 5,
    downsample: int = 2,
) -> torch.Tensor:
    """DenseCRF regularised loss (Tang et al., ECCV 2018), local-window approximation.

    Tang et al. minimise ``sum_k S_k^T W (1 - S_k)`` for the soft segmentation ``S`` and
    a fully connected bilateral Gaussian affinity ``W``. A fully connected kernel needs a
    permutohedral lattice (a compiled extension); as in the Gated CRF loss (Obukhov et
    al. 2019) this implementation keeps the bilateral kernel exact but restricts it to a
    ``(2 radius + 1)^2`` window on an image down-sampled by ``downsample`` (so it spans
    ``±radius * downsample`` pixels at full resolution). For two classes (p, 1 - p)::

        W_ij = exp(-|xy_i - xy_j|^2 / (2 sigma_xy^2) - |rgb_i - rgb_j|^2 / (2 sigma_rgb^2))
        loss = sum_{i, j != i} W_ij [p_i (1 - p_j) + (1 - p_i) p_j] / (number of pixels)

    ``sigma_xy`` is in down-sampled pixels, ``sigma_rgb`` in 0..255 intensity units.
    Pure PyTorch: runs on CPU and CUDA.

    Args:
        prob: ``(N, 1, H, W)`` foreground probabilities (sigmoid of f).
        image: ``(N, 3, H, W)`` RGB in 0..255 (un-normalised).

    Returns:
        Scalar tensor.

    Shape:
        prob (N, 1, H, W) in [0, 1]; image (N, 3, H, W) in [0, 255].
    """
    if downsample > 1:
        prob = F.avg_pool2d(prob.float(), downsample)
        image = F.avg_pool2d(image.float(), downsample)
    prob, image = prob.float(), image.float()
    _, _, h, w = prob.shape
    r = radius
    p_pad = F.pad(prob, (r, r, r, r), mode="replicate")
    i_pad = F.pad(image, (r, r, r, r), mode="replicate")
    total = prob.new_zeros(())
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy == 0 and dx == 0:
                continue
            p_j = p_pad[:, :, r + dy : r + dy + h, r + dx : r + dx + w]
            i_j = i_pad[:, :, r + dy : r + dy + h, r + dx : r + dx + w]
            color = ((image - i_j) ** 2).sum(1, keepdim=True) / (2 * sigma_rgb**2)
            weight = torch.exp(-color - (dy * dy + dx * dx) / (2 * sigma_xy**2))
            total = total + (weight * (prob * (1 - p_j) + (1 - prob) * p_j)).sum()
    return total / prob.numel()
