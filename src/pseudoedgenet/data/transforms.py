"""Joint augmentation of image, points and instance mask (Section 4.2).

Geometric transforms (flips, 90° rotations, rotation/scale/shear affine, elastic
deformation) move the image, the instance mask and the points together through
albumentations (points as keypoints); the photometric ones (colour jitter, Gaussian blur,
Gaussian noise) touch the image only. The Voronoi label map is computed *after*
augmentation from the transformed points, so every point inside the crop is exactly one
positive pixel and the boundaries are one pixel thick and in the right place for the
transformed geometry.

Point convention: ``(x, y)`` pixels, ``x`` = column, ``y`` = row.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np


def geometric_transform(augment: bool = True) -> A.Compose:
    """Flips, 90° rotations, affine (rotation, scale, shear) and elastic deformation.

    Keypoints use format ``xy``. Points that leave the window are kept (they still shape
    the Voronoi diagram near the border), except that the elastic deformation drops
    points outside the window (it has no displacement there). The affine transform fills
    the border by reflection and adds the reflected copies of the points, so reflected
    nuclei are labelled like real ones.
    """
    ops: list[A.BasicTransform] = [A.NoOp()]  # no augmentation: points pass through as they are
    if augment:
        ops = [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=1.0),
            A.Affine(
                rotate=(-45, 45),
                scale=(0.8, 1.2),
                shear=(-8, 8),
                p=0.7,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REFLECT_101,
            ),
            A.ElasticTransform(
                alpha=30,
                sigma=6,
                p=0.3,
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
            ),
        ]
    return A.Compose(
        ops,
        keypoint_params=A.KeypointParams(
            format="xy", remove_invisible=False, check_each_transform=False
        ),
    )


def photometric_transform(augment: bool = True) -> A.Compose:
    """Colour jitter, Gaussian blur and Gaussian noise (image only)."""
    ops: list[A.BasicTransform] = []
    if augment:
        ops = [
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, p=0.8),
            A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.1, 1.2), p=0.2),
            A.GaussNoise(std_range=(0.01, 0.05), p=0.3),
        ]
    return A.Compose(ops)


def augment_window(
    geometric: A.Compose,
    photometric: A.Compose,
    image: np.ndarray,
    instances: np.ndarray,
    points: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Applies the joint augmentation to one window.

    Args:
        geometric, photometric: from :func:`geometric_transform` and
            :func:`photometric_transform`.
        image: ``(H, W, 3)`` uint8.
        instances: ``(H, W)`` integer instance ids (zeros when unknown), or ``(H, W, K)``
            to move further integer masks (e.g. a roi) with them; every channel is
            transformed alike (nearest-neighbour).
        points: ``(N, 2)`` ``(x, y)`` in window pixels, inside the window.

    Returns:
        ``(image, instances, points)``: image and instances transformed with the same
        shapes (``instances`` as int32, channels kept), points ``(M, 2)`` transformed,
        where ``M`` may differ from ``N`` (reflected copies added, points pushed out by an
        elastic deformation dropped).
    """
    out = geometric(
        image=image, mask=instances.astype(np.int32), keypoints=points.astype(np.float32)
    )
    img = photometric(image=out["image"])["image"]
    kps = np.asarray(out["keypoints"], dtype=np.float64).reshape(-1, 2)
    return img, out["mask"], kps
