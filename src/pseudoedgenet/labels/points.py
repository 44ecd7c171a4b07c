"""Point annotations from instance masks (Section 4.1 of the paper).

Point convention: ``(x, y)`` pixel coordinates, ``x`` = column, ``y`` = row; the pixel
a point labels is ``(round(y), round(x))``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def points_from_instances(instances: np.ndarray) -> np.ndarray:
    """Computes one point per nucleus: the centre of mass of its instance mask.

    The centre of mass is rounded to the pixel it labels. For a non-convex nucleus whose
    rounded centroid falls outside the nucleus, the nucleus pixel nearest to the centroid
    is used instead (ties broken by raster order), so every point lies inside its nucleus.

    Args:
        instances: ``(H, W)`` integer instance ids, 0 = background. Ids need not be
            consecutive.

    Returns:
        ``(N, 2)`` float64 ``(x, y)`` of integer-valued pixel positions, one row per
        instance id in increasing id order; ``N`` = number of distinct non-zero ids.

    Shape:
        instances: (H, W) int; returns (N, 2) float64.
    """
    instances = np.asarray(instances)
    ids = np.unique(instances)
    ids = ids[ids != 0]
    if ids.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    com = np.asarray(ndimage.center_of_mass(np.ones(instances.shape), instances, ids))
    rows = np.clip(np.rint(com[:, 0]).astype(np.int64), 0, instances.shape[0] - 1)
    cols = np.clip(np.rint(com[:, 1]).astype(np.int64), 0, instances.shape[1] - 1)
    outside = np.flatnonzero(instances[rows, cols] != ids)
    if outside.size:
        objects = ndimage.find_objects(instances)
        for k in outside:  # rare: concave nuclei only
            sl = objects[int(ids[k]) - 1]
            rr, cc = np.nonzero(instances[sl] == ids[k])
            rr = rr + sl[0].start
            cc = cc + sl[1].start
            j = int(np.argmin((rr - com[k, 0]) ** 2 + (cc - com[k, 1]) ** 2))
            rows[k], cols[k] = rr[j], cc[j]
    return np.stack([cols, rows], axis=1).astype(np.float64)
