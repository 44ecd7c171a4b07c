"""TNBC reader (Naylor et al., IEEE TMI 2019).

Layout: ``ROOT/Slide_XX/NN_k.png`` (512x512 RGBA or RGB) with binary masks
``ROOT/GT_XX/NN_k.png`` (values {0, 255}). Instances are the 8-connected components of
the mask. ``XX`` is the patient (slide) id, kept as the sample's group.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from skimage.measure import label as cc_label

from pseudoedgenet.data.io import read_image, read_label_image
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.errors import DataError


def read_tnbc(root: str | Path) -> Iterator[Sample]:
    """Yields the 50 TNBC images with instance masks.

    Args:
        root: the ``tnbc`` folder holding ``Slide_XX`` and ``GT_XX``.

    Yields:
        :class:`Sample` named ``NN_k`` with ``image`` (512, 512, 3) uint8 (alpha
        dropped), ``instances`` (512, 512) uint16 from 8-connected components,
        ``group`` = patient id ``NN``.

    Raises:
        DataError: no slides, a mask without image or an image without mask, size
            mismatch, a mask that is not single-channel.
    """
    root = Path(root)
    slides = sorted(p for p in root.glob("Slide_*") if p.is_dir())
    if not slides:
        raise DataError(root, "no Slide_XX folders found (is this the TNBC folder?)")
    for gt_dir in sorted(p for p in root.glob("GT_*") if p.is_dir()):
        for gt in sorted(gt_dir.glob("*.png")):
            if not (root / gt_dir.name.replace("GT_", "Slide_", 1) / gt.name).is_file():
                raise DataError(gt, "mask has no matching image")
    for slide in slides:
        patient = slide.name.split("_", 1)[1]
        for img_path in sorted(slide.glob("*.png")):
            gt_path = root / f"GT_{patient}" / img_path.name
            if not gt_path.is_file():
                raise DataError(img_path, f"no mask {gt_path}")
            image = read_image(img_path)
            mask = read_label_image(gt_path)
            if mask.shape != image.shape[:2]:
                raise DataError(
                    gt_path,
                    f"mask size {mask.shape[1]}x{mask.shape[0]} does not "
                    f"match image size {image.shape[1]}x{image.shape[0]}",
                )
            instances = cc_label(mask > 0, connectivity=2).astype(np.uint16)
            yield Sample(img_path.stem, image, instances, None, patient, img_path)
