"""The in-memory record every dataset reader yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One annotated image.

    Attributes:
        name: unique name inside its dataset (file stem, e.g. ``TCGA-21-5784-01Z-00-DX1``).
        image: ``(H, W, 3)`` uint8 RGB.
        instances: ``(H, W)`` uint16/uint32 instance ids, 0 = background; ``None`` when the
            source has points only.
        points: ``(N, 2)`` float64 ``(x, y)`` pixel coordinates (x = column, y = row) of
            the full image; ``None`` when they are to be derived from ``instances``.
        group: grouping key for patient-wise splits (TNBC patient/slide id, MoNuSeg
            organ); ``""`` when unknown.
        source: file the image was read from.
        roi: ``(H, W)`` bool, ``True`` where every nucleus was clicked (the annotated
            region); ``None`` when the whole image is annotated. Pixels outside it are
            ignored (label 255) in training.
        info: per-image record stored in ``dataset.json`` under ``images`` (e.g. where a
            QuPath region came from), or ``None``.
    """

    name: str
    image: np.ndarray
    instances: np.ndarray | None = None
    points: np.ndarray | None = None
    group: str = ""
    source: Path | None = field(default=None)
    roi: np.ndarray | None = None
    info: dict[str, Any] | None = None
