"""Scores of a binary mask against point annotations: validation without instance masks.

A user who clicked one point per nucleus has no masks to compute IoU with, but the clicks
still say where nuclei are. These scores compare the *instances* of f's binary mask (its
connected components) with the clicks:

* **point recall**: the share of points whose pixel lies inside a predicted component,
  counting **at most one point per component**. A component holding k points recalls one
  of them; the other k − 1 are merged into it, an instance error. (Counting every point
  inside any component would give an all-foreground mask, one component holding every
  point, a perfect score, and model selection would pick a collapsed f.)
* **instance precision**: the share of counted components that contain at least one
  point. With a region of interest (``roi``: the pixels where the user clicked every
  nucleus) a component is counted when at least one of its pixels lies in the roi;
  components entirely outside it are not counted (nobody said whether they are nuclei).
  Without a roi (``None``) every component is counted.
* **F1**: the harmonic mean of the two.

Every point counts for recall, inside the roi or not (a click is a nucleus wherever it is).

Conventions (as :func:`pseudoedgenet.metrics.object_f1`): with no points and no counted
components, recall = precision = F1 = 1.0 (nothing to find and nothing predicted);
otherwise any ``0 / 0`` is 0.0 (points but no components: recall 0, precision 0; counted
components but no points: recall 0, precision 0).

Components are 8-connected (``connectivity=2``, the default of
:class:`~pseudoedgenet.metrics.SegmentationMetric`, so the instances scored here are the
ones object F1 and AJI score at test time).

Point convention: ``(x, y)`` float pixel coordinates, x = column, y = row, pixel centres
at integer coordinates; the pixel a point labels is ``(round(y), round(x))``
(``numpy.rint``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pseudoedgenet.metrics.segmentation import instances_from_binary

__all__ = ["PointMetric", "PointScores", "point_scores"]


@dataclass(frozen=True)
class PointScores:
    """Counts of one image (or of several, summed with ``+``) and the scores they give.

    Attributes:
        points: number of points.
        points_matched: points matched to a component, at most one per component (= the
            number of components, counted or not, that contain at least one point).
        components: counted predicted components (those touching the roi).
        components_hit: counted components containing at least one point.
    """

    points: int = 0
    points_matched: int = 0
    components: int = 0
    components_hit: int = 0

    def __add__(self, other: PointScores) -> PointScores:
        return PointScores(
            self.points + other.points,
            self.points_matched + other.points_matched,
            self.components + other.components,
            self.components_hit + other.components_hit,
        )

    @property
    def _empty(self) -> bool:
        return self.points == 0 and self.components == 0

    @property
    def recall(self) -> float:
        """``points_matched / points`` (1.0 when nothing at all, else 0.0 for 0 / 0)."""
        if self._empty:
            return 1.0
        return self.points_matched / self.points if self.points else 0.0

    @property
    def precision(self) -> float:
        """``components_hit / components`` (1.0 when nothing at all, else 0.0 for 0 / 0)."""
        if self._empty:
            return 1.0
        return self.components_hit / self.components if self.components else 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of recall and precision (0.0 when both are 0)."""
        r, p = self.recall, self.precision
        return 2 * r * p / (r + p) if r + p > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        """``{"f1", "recall", "precision"}`` as floats."""
        return {"f1": self.f1, "recall": self.recall, "precision": self.precision}


def point_scores(
    mask: npt.ArrayLike,
    points: npt.ArrayLike,
    roi: npt.ArrayLike | None = None,
    connectivity: int = 2,
) -> PointScores:
    """Point recall, instance precision and F1 of a binary mask against clicked points.

    See the module docstring for the definitions and the empty-case conventions.

    Args:
        mask: f's binary mask (already thresholded); nonzero = foreground.
        points: ``(N, 2)`` ``(x, y)`` pixel coordinates (x = column, y = row); the pixel
            of a point is ``(round(y), round(x))``.
        roi: pixels where every nucleus was clicked, or ``None`` for the whole image.
        connectivity: 1 (4-neighbourhood) or 2 (8-neighbourhood, the default).

    Returns:
        A :class:`PointScores`.

    Raises:
        ValueError: a mask that is not 2-D bool/integer, points not of shape ``(N, 2)``
            or with a pixel outside the image, a roi of another shape.

    Shape:
        - mask: ``(H, W)``, bool or integer.
        - points: ``(N, 2)``, float; ``N`` may be 0.
        - roi: ``(H, W)``, bool (nonzero = inside) or ``None``.
    """
    labels = instances_from_binary(mask, connectivity)
    h, w = labels.shape
    pts = np.asarray(points, dtype=np.float64)
    if pts.size == 0:
        pts = pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}")
    rows, cols = np.rint(pts[:, 1]).astype(np.int64), np.rint(pts[:, 0]).astype(np.int64)
    outside = (rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"point {i} (x={pts[i, 0]}, y={pts[i, 1]}) lies outside the {h}x{w} mask")
    n_comp = int(labels.max()) if labels.size else 0
    hit = np.zeros(n_comp + 1, dtype=bool)
    hit[labels[rows, cols]] = True
    hit[0] = False  # background
    if roi is None:
        counted = np.ones(n_comp + 1, dtype=bool)
    else:
        r = np.asarray(roi) != 0
        if r.shape != labels.shape:
            raise ValueError(f"roi has shape {r.shape} but the mask has shape {labels.shape}")
        counted = np.zeros(n_comp + 1, dtype=bool)
        counted[labels[r]] = True
    counted[0] = False
    return PointScores(
        points=len(pts),
        points_matched=int(hit.sum()),
        components=int(counted.sum()),
        components_hit=int((hit & counted).sum()),
    )


class PointMetric:
    """Accumulates :func:`point_scores` over a set of images, pooling the counts.

    Recall and precision come from counts summed over all images (``Σ matched / Σ points``,
    ``Σ hit / Σ components``), not from a mean of per-image ratios: an image with two
    points then weighs less than one with two hundred, and an image without components
    does not turn into a 0/0.

    Args:
        connectivity: 1 (4-neighbourhood) or 2 (8-neighbourhood, the default).
    """

    def __init__(self, connectivity: int = 2) -> None:
        if connectivity not in (1, 2):
            raise ValueError(f"connectivity must be 1 or 2, got {connectivity}")
        self.connectivity = connectivity
        self._total = PointScores()
        self._n = 0

    def reset(self) -> None:
        """Forget every image seen so far."""
        self._total = PointScores()
        self._n = 0

    def __len__(self) -> int:
        """Number of images accumulated."""
        return self._n

    def update(
        self, mask: npt.ArrayLike, points: npt.ArrayLike, roi: npt.ArrayLike | None = None
    ) -> PointScores:
        """Adds one image (arguments as :func:`point_scores`); returns its own scores."""
        scores = point_scores(mask, points, roi, self.connectivity)
        self._total = self._total + scores
        self._n += 1
        return scores

    @property
    def total(self) -> PointScores:
        """The summed counts so far."""
        return self._total

    def compute(self) -> dict[str, float]:
        """``{"f1", "recall", "precision"}`` from the pooled counts.

        Raises:
            RuntimeError: if no image was added.
        """
        if not self._n:
            raise RuntimeError("PointMetric.compute called before any update")
        return self._total.as_dict()
