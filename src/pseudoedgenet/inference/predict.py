"""Sliding-window prediction of f on images of any size, stitched in one pass."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from pseudoedgenet.inference.tiling import make_tiles, read_window

Predictor = Callable[[torch.Tensor], torch.Tensor]


def predict_probability(
    predictor: Predictor,
    image: np.ndarray,
    tile: int = 512,
    margin: int = 64,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
    out: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Foreground probability of every pixel, by tiles (see :mod:`.tiling`).

    Args:
        predictor: any callable ``(N, 3, T, T)`` float RGB 0..255 -> ``(N, 1, T, T)``
            logits (e.g. :class:`pseudoedgenet.engine.module.Segmenter`).
        image: ``(H, W, 3)`` uint8 RGB.
        tile: tile side (multiple of 32); margin: context per side.
        batch_size: tiles per forward pass.
        device: where the predictor runs.
        autocast_dtype: ``torch.bfloat16`` (CPU) / ``torch.float16`` (CUDA) for mixed
            precision, ``None`` for fp32.
        out: optional preallocated ``(H, W)`` float array (e.g. a ``numpy.memmap``) to
            stitch into.
        progress: show a progress bar.

    Returns:
        ``(H, W)`` float32 probabilities in [0, 1] (``out`` if given).
    """
    h, w = image.shape[:2]
    tiles = make_tiles((h, w), tile, margin)
    result = out if out is not None else np.empty((h, w), dtype=np.float32)
    dev = torch.device(device)
    bar = tqdm(total=len(tiles), desc="tiles", unit="tile", disable=not progress)
    with torch.inference_mode():
        for i in range(0, len(tiles), batch_size):
            chunk = tiles[i : i + batch_size]
            batch = np.stack([read_window(image, t.read) for t in chunk])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(dev).float()
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                dev.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
            ):
                logits = predictor(x)
            prob = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
            for t, p in zip(chunk, prob, strict=True):
                wy0, wy1, wx0, wx1 = t.write
                result[wy0:wy1, wx0:wx1] = p[t.inner]
            bar.update(len(chunk))
    bar.close()
    return result
