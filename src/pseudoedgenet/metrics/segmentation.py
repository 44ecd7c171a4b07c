"""Segmentation metrics for nuclei: pixel IoU/Dice, object-level F1 and AJI.

All metrics work on 2-D numpy arrays and use only numpy, scipy and scikit-image.
Two kinds of inputs appear:

* *binary masks* (``bool`` or any integer dtype, nonzero = foreground), and
* *instance label images* (integer dtype, ``0`` = background, every other value one
  object; labels need not be contiguous and objects need not be connected).

Every object-level metric is built on one vectorised overlap (contingency) matrix computed
with :func:`numpy.bincount` over pairs of labels, never with a Python loop over pixels.

Conventions for empty inputs are documented on each function; in short "both empty" is a
perfect score (1.0) and "exactly one empty" is 0.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from skimage.measure import label as _sk_label

__all__ = [
    "MatchResult",
    "SegmentationMetric",
    "SegmentationScores",
    "aggregated_jaccard_index",
    "evaluate_binary",
    "instances_from_binary",
    "object_f1",
    "pixel_dice",
    "pixel_iou",
]

Reduction = Literal["mean", "pooled"]


# --------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------


def _check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"shape mismatch: {name_a} has shape {a.shape} but {name_b} has shape {b.shape}"
        )


def _as_binary(mask: npt.ArrayLike, name: str) -> np.ndarray:
    """Return ``mask != 0`` as a bool array after checking the dtype is bool or integer."""
    arr = np.asarray(mask)
    if not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(
            f"{name} must be a bool or integer binary mask, got dtype {arr.dtype} "
            "(threshold float masks before calling)"
        )
    return arr != 0


def _check_labels(labels: npt.ArrayLike, name: str) -> np.ndarray:
    """Check an instance label image: integer dtype, 2-D, non-negative."""
    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be an integer label image, got dtype {arr.dtype} "
            "(use instances_from_binary for binary masks)"
        )
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got {arr.ndim}-D array of shape {arr.shape}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} has negative labels (min {arr.min()}); labels must be >= 0")
    return arr


def _check_label_pair(
    pred_labels: npt.ArrayLike, true_labels: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    pred = _check_labels(pred_labels, "pred_labels")
    true = _check_labels(true_labels, "true_labels")
    _check_same_shape(pred, true, "pred_labels", "true_labels")
    return pred, true


def _ratio(num: float, den: float, empty: float) -> float:
    """``num / den``, or ``empty`` when ``den == 0``."""
    return float(num) / float(den) if den > 0 else float(empty)


# --------------------------------------------------------------------------------------
# pixel metrics
# --------------------------------------------------------------------------------------


def _pixel_counts(pred: np.ndarray, target: np.ndarray) -> tuple[int, int, int]:
    """Return ``(|P ∩ T|, |P ∪ T|, |P| + |T|)`` for two bool masks of equal shape."""
    inter = int(np.count_nonzero(pred & target))
    n_pred = int(np.count_nonzero(pred))
    n_true = int(np.count_nonzero(target))
    return inter, n_pred + n_true - inter, n_pred + n_true


def pixel_iou(pred: npt.ArrayLike, target: npt.ArrayLike) -> float:
    """Pixel-level intersection over union (Jaccard index) of two binary masks.

    ``IoU = |P ∩ T| / |P ∪ T|`` (Jaccard, 1912, "The distribution of the flora in the
    alpine zone", New Phytologist 11(2)). If both masks are empty the result is ``1.0``
    (nothing to find and nothing predicted is a perfect prediction); if exactly one is
    empty it is ``0.0``.

    Args:
        pred: predicted binary mask; nonzero pixels are foreground.
        target: ground-truth binary mask; nonzero pixels are foreground.

    Returns:
        The IoU as a Python float.

    Raises:
        ValueError: if the shapes differ or a dtype is neither bool nor integer.

    Shape:
        - pred: any shape ``S``, dtype bool or integer (any values; ``!= 0`` is foreground).
        - target: same shape ``S``, dtype bool or integer.
        - output: float in ``[0, 1]``.
    """
    p = _as_binary(pred, "pred")
    t = _as_binary(target, "target")
    _check_same_shape(p, t, "pred", "target")
    inter, union, _ = _pixel_counts(p, t)
    return _ratio(inter, union, empty=1.0)


def pixel_dice(pred: npt.ArrayLike, target: npt.ArrayLike) -> float:
    """Pixel-level Dice coefficient (F1 over pixels) of two binary masks.

    ``Dice = 2 |P ∩ T| / (|P| + |T|)`` (Dice, 1945, "Measures of the amount of ecologic
    association between species", Ecology 26(3)). If both masks are empty the result is
    ``1.0``; if exactly one is empty it is ``0.0``.

    Args:
        pred: predicted binary mask; nonzero pixels are foreground.
        target: ground-truth binary mask; nonzero pixels are foreground.

    Returns:
        The Dice coefficient as a Python float.

    Raises:
        ValueError: if the shapes differ or a dtype is neither bool nor integer.

    Shape:
        - pred: any shape ``S``, dtype bool or integer (any values; ``!= 0`` is foreground).
        - target: same shape ``S``, dtype bool or integer.
        - output: float in ``[0, 1]``.
    """
    p = _as_binary(pred, "pred")
    t = _as_binary(target, "target")
    _check_same_shape(p, t, "pred", "target")
    inter, _, total = _pixel_counts(p, t)
    return _ratio(2 * inter, total, empty=1.0)


# --------------------------------------------------------------------------------------
# overlap matrix
# --------------------------------------------------------------------------------------


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Map labels to ``0..n`` with background ``0`` kept at index 0.

    Returns the flat index array (int64) and ``n + 1`` (number of rows incl. background).
    """
    flat = labels.ravel()
    ids, inv = np.unique(flat, return_inverse=True)
    inv = inv.reshape(-1).astype(np.int64, copy=False)
    if ids.size == 0 or ids[0] != 0:  # no background pixel present: reserve index 0
        return inv + 1, int(ids.size) + 1
    return inv, int(ids.size)


@dataclass(frozen=True)
class _Overlap:
    """Overlap statistics of the foreground objects of two label images.

    Attributes:
        inter: ``inter[i, j] = |T_i ∩ P_j|``, shape ``(n_true, n_pred)``, int64.
        true_area: ``|T_i|``, shape ``(n_true,)``, int64.
        pred_area: ``|P_j|``, shape ``(n_pred,)``, int64.
    """

    inter: np.ndarray
    true_area: np.ndarray
    pred_area: np.ndarray

    @property
    def n_true(self) -> int:
        return int(self.true_area.size)

    @property
    def n_pred(self) -> int:
        return int(self.pred_area.size)

    def iou(self) -> np.ndarray:
        """IoU matrix, shape ``(n_true, n_pred)``, float64 in ``[0, 1]``."""
        union = self.true_area[:, None] + self.pred_area[None, :] - self.inter
        # every object has area >= 1, so union >= 1
        return self.inter / np.maximum(union, 1)


def _overlap(pred: np.ndarray, true: np.ndarray) -> _Overlap:
    """Contingency table of two validated label images by one ``np.bincount``."""
    t_idx, n_t = _compact(true)
    p_idx, n_p = _compact(pred)
    table = np.bincount(t_idx * n_p + p_idx, minlength=n_t * n_p).reshape(n_t, n_p)
    return _Overlap(
        inter=table[1:, 1:].astype(np.int64, copy=False),
        true_area=table[1:, :].sum(axis=1).astype(np.int64, copy=False),
        pred_area=table[:, 1:].sum(axis=0).astype(np.int64, copy=False),
    )


# --------------------------------------------------------------------------------------
# object F1
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchResult:
    """Result of one-to-one object matching.

    Attributes:
        tp: matched (true, predicted) pairs.
        fp: predicted objects left unmatched.
        fn: true objects left unmatched.
        precision: ``tp / n_pred``.
        recall: ``tp / n_true``.
        f1: ``2 tp / (2 tp + fp + fn)`` (= harmonic mean of precision and recall).
        n_true: number of ground-truth objects.
        n_pred: number of predicted objects.

    With no true and no predicted objects precision, recall and f1 are ``1.0``; any other
    ``0 / 0`` is ``0.0``.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    n_true: int
    n_pred: int


def _match_result(tp: int, fp: int, fn: int) -> MatchResult:
    n_true, n_pred = tp + fn, tp + fp
    if n_true == 0 and n_pred == 0:
        return MatchResult(tp, fp, fn, 1.0, 1.0, 1.0, n_true, n_pred)
    return MatchResult(
        tp=tp,
        fp=fp,
        fn=fn,
        precision=_ratio(tp, n_pred, empty=0.0),
        recall=_ratio(tp, n_true, empty=0.0),
        f1=_ratio(2 * tp, 2 * tp + fp + fn, empty=0.0),
        n_true=n_true,
        n_pred=n_pred,
    )


def _count_matches(iou: np.ndarray, iou_threshold: float) -> int:
    """Size of a maximum one-to-one matching among pairs with ``iou >= iou_threshold``."""
    valid = iou >= iou_threshold
    if not valid.any():
        return 0
    if iou_threshold > 0.5:
        # IoU > 0.5 with two disjoint objects is impossible, so every valid pair is unique
        return int(np.count_nonzero(valid))
    rows = np.flatnonzero(valid.any(axis=1))
    cols = np.flatnonzero(valid.any(axis=0))
    sub_valid = valid[np.ix_(rows, cols)]
    sub_iou = iou[np.ix_(rows, cols)]
    # Maximise the number of matches first, then the summed IoU: each match is worth
    # ``big + iou`` with ``big`` larger than any possible IoU sum.
    big = float(min(sub_valid.shape) + 1)
    weight = np.where(sub_valid, big + sub_iou, 0.0)
    r, c = linear_sum_assignment(weight, maximize=True)
    return int(np.count_nonzero(sub_valid[r, c]))


def object_f1(
    pred_labels: npt.ArrayLike, true_labels: npt.ArrayLike, iou_threshold: float = 0.5
) -> MatchResult:
    """Object-level precision, recall and F1 by one-to-one IoU matching.

    A predicted object matches a true object when ``IoU >= iou_threshold`` (note ``>=``: an
    IoU of exactly 0.5 matches at the default threshold). For thresholds above 0.5 the
    matching is unique (two disjoint objects cannot both overlap a third by more than half);
    for thresholds ``<= 0.5`` a maximum one-to-one matching is found with
    :func:`scipy.optimize.linear_sum_assignment` over the IoU matrix restricted to pairs
    ``>= iou_threshold`` (ties in the number of matches are broken by the larger IoU sum).
    This is the matching criterion used by e.g. the 2018 Data Science Bowl (Caicedo et al.,
    2019, Nature Methods 16) and StarDist (Schmidt et al., MICCAI 2018).

    Conventions: with no true and no predicted objects precision = recall = f1 = 1.0;
    otherwise any ``0 / 0`` is 0.0.

    Args:
        pred_labels: predicted instance label image (0 = background).
        true_labels: ground-truth instance label image (0 = background).
        iou_threshold: minimum IoU for a match, in ``(0, 1]``.

    Returns:
        A :class:`MatchResult`.

    Raises:
        ValueError: on non-integer, non-2-D, negative or differently shaped label images,
            or a threshold outside ``(0, 1]``.

    Shape:
        - pred_labels: ``(H, W)``, integer dtype, values ``>= 0``.
        - true_labels: ``(H, W)``, integer dtype, values ``>= 0``.
        - output: counts are ints ``>= 0``; precision, recall, f1 are floats in ``[0, 1]``.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    pred, true = _check_label_pair(pred_labels, true_labels)
    ov = _overlap(pred, true)
    tp = _count_matches(ov.iou(), iou_threshold) if ov.n_true and ov.n_pred else 0
    return _match_result(tp, ov.n_pred - tp, ov.n_true - tp)


# --------------------------------------------------------------------------------------
# AJI
# --------------------------------------------------------------------------------------


def _aji_counts(ov: _Overlap) -> tuple[int, int]:
    """Return AJI numerator ``C`` and denominator ``U`` for one image."""
    if ov.n_true == 0:
        return 0, int(ov.pred_area.sum())
    if ov.n_pred == 0:
        return 0, int(ov.true_area.sum())
    iou = ov.iou()
    best = np.argmax(iou, axis=1)  # first maximiser on ties
    rows = np.arange(ov.n_true)
    hit = iou[rows, best] > 0  # G_i overlapping no prediction adds |G_i| to U only
    inter = ov.inter[rows, best]
    union = ov.true_area + ov.pred_area[best] - inter
    c = int(inter[hit].sum())
    u = int(union[hit].sum()) + int(ov.true_area[~hit].sum())
    used = np.zeros(ov.n_pred, dtype=bool)
    used[best[hit]] = True
    u += int(ov.pred_area[~used].sum())
    return c, u


def aggregated_jaccard_index(pred_labels: npt.ArrayLike, true_labels: npt.ArrayLike) -> float:
    """Aggregated Jaccard Index (AJI) of an instance segmentation.

    Definition of Kumar et al., 2017, "A Dataset and a Technique for Generalized Nuclear
    Segmentation for Computational Pathology", IEEE TMI 36(7), Algorithm 1: for every
    ground-truth nucleus ``G_i`` pick the predicted nucleus ``S_j`` maximising
    ``IoU(G_i, S_j)`` (predicted nuclei may be picked more than once; on ties the smallest
    label wins) and add ``|G_i ∩ S_j|`` to ``C`` and ``|G_i ∪ S_j|`` to ``U``. A ``G_i``
    that overlaps no prediction adds ``|G_i|`` to ``U`` only. Finally the area of every
    predicted nucleus never picked is added to ``U``; ``AJI = C / U``.

    Conventions: both images without objects gives 1.0; exactly one without objects
    gives 0.0.

    Args:
        pred_labels: predicted instance label image (0 = background).
        true_labels: ground-truth instance label image (0 = background).

    Returns:
        The AJI as a Python float.

    Raises:
        ValueError: on non-integer, non-2-D, negative or differently shaped label images.

    Shape:
        - pred_labels: ``(H, W)``, integer dtype, values ``>= 0``.
        - true_labels: ``(H, W)``, integer dtype, values ``>= 0``.
        - output: float in ``[0, 1]``.
    """
    pred, true = _check_label_pair(pred_labels, true_labels)
    c, u = _aji_counts(_overlap(pred, true))
    return _ratio(c, u, empty=1.0)


# --------------------------------------------------------------------------------------
# binary predictions
# --------------------------------------------------------------------------------------


def instances_from_binary(mask: npt.ArrayLike, connectivity: int = 2) -> np.ndarray:
    """Split a binary mask into instances by connected components.

    Uses :func:`skimage.measure.label` (Fiorio & Gustedt, 1996, "Two linear time
    Union-Find strategies for image processing", Theor. Comput. Sci. 154(2)).

    Args:
        mask: binary mask; nonzero pixels are foreground.
        connectivity: 1 for the 4-neighbourhood, 2 for the 8-neighbourhood.

    Returns:
        Instance labels ``0..n`` (0 = background), consecutive.

    Raises:
        ValueError: if the mask is not 2-D, has a non bool/integer dtype, or
            ``connectivity`` is not 1 or 2.

    Shape:
        - mask: ``(H, W)``, dtype bool or integer.
        - output: ``(H, W)``, uint32, values in ``[0, n_objects]``.
    """
    m = _as_binary(mask, "mask")
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got {m.ndim}-D array of shape {m.shape}")
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 or 2, got {connectivity}")
    labels = _sk_label(m, background=0, connectivity=connectivity)
    return np.asarray(labels, dtype=np.uint32)


@dataclass(frozen=True)
class SegmentationScores:
    """Scores of one image (or of a pooled set of images).

    Attributes:
        iou: pixel IoU of the foreground, in ``[0, 1]``.
        dice: pixel Dice of the foreground, in ``[0, 1]``.
        f1: object F1 at the chosen IoU threshold, in ``[0, 1]``.
        aji: aggregated Jaccard index, in ``[0, 1]``.
    """

    iou: float
    dice: float
    f1: float
    aji: float


@dataclass(frozen=True)
class _ImageCounts:
    """Per-image sufficient statistics for both reductions."""

    scores: SegmentationScores
    inter: int
    union: int
    total: int
    n_true: int
    tp: int
    fp: int
    fn: int
    aji_c: int
    aji_u: int


def _image_counts(
    pred_mask: npt.ArrayLike,
    true_instances: npt.ArrayLike,
    iou_threshold: float,
    connectivity: int,
) -> _ImageCounts:
    pred_bin = _as_binary(pred_mask, "pred_mask")
    true = _check_labels(true_instances, "true_instances")
    _check_same_shape(pred_bin, true, "pred_mask", "true_instances")
    pred_inst = instances_from_binary(pred_bin, connectivity=connectivity)
    inter, union, total = _pixel_counts(pred_bin, true > 0)
    match = object_f1(pred_inst, true, iou_threshold=iou_threshold)
    c, u = _aji_counts(_overlap(pred_inst, true))
    scores = SegmentationScores(
        iou=_ratio(inter, union, empty=1.0),
        dice=_ratio(2 * inter, total, empty=1.0),
        f1=match.f1,
        aji=_ratio(c, u, empty=1.0),
    )
    n_true = int(np.count_nonzero(true))
    return _ImageCounts(scores, inter, union, total, n_true, match.tp, match.fp, match.fn, c, u)


def evaluate_binary(
    pred_mask: npt.ArrayLike,
    true_instances: npt.ArrayLike,
    iou_threshold: float = 0.5,
    connectivity: int = 2,
) -> SegmentationScores:
    """Score a binary prediction against ground-truth instances.

    The predicted instances are the connected components of ``pred_mask``
    (:func:`instances_from_binary`); the true foreground is ``true_instances > 0``. Pixel
    IoU / Dice compare the foregrounds, object F1 (:func:`object_f1`) and AJI
    (:func:`aggregated_jaccard_index`, Kumar et al., IEEE TMI 2017) compare the instances.

    Args:
        pred_mask: predicted binary mask; nonzero pixels are foreground.
        true_instances: ground-truth instance label image (0 = background).
        iou_threshold: IoU threshold of the object F1 matching.
        connectivity: connectivity used to split ``pred_mask`` (1 = 4-, 2 = 8-neighbourhood).

    Returns:
        A :class:`SegmentationScores`.

    Raises:
        ValueError: on shape mismatch, non-2-D inputs or wrong dtypes.

    Shape:
        - pred_mask: ``(H, W)``, dtype bool or integer.
        - true_instances: ``(H, W)``, integer dtype, values ``>= 0``.
        - output: four floats in ``[0, 1]``.
    """
    return _image_counts(pred_mask, true_instances, iou_threshold, connectivity).scores


class SegmentationMetric:
    """Accumulates segmentation scores over a set of images.

    Two reductions are offered by :meth:`compute`:

    * ``"mean"`` (default): average of the per-image scores of :func:`evaluate_binary`.
    * ``"pooled"``: pixel IoU / Dice from intersections, unions and areas summed over all
      images; F1 from summed tp / fp / fn; AJI from summed ``C`` and ``U`` (Kumar et al.,
      IEEE TMI 2017).

    Which reduction the PseudoEdgeNet paper (Yoo et al., MICCAI 2019) uses for its table is
    not stated, so it is unknown; ``"mean"`` is the default.

    Args:
        iou_threshold: IoU threshold of the object F1 matching.
        connectivity: connectivity used to split predicted masks into instances.
    """

    def __init__(self, iou_threshold: float = 0.5, connectivity: int = 2) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if connectivity not in (1, 2):
            raise ValueError(f"connectivity must be 1 or 2, got {connectivity}")
        self.iou_threshold = iou_threshold
        self.connectivity = connectivity
        self._items: list[_ImageCounts] = []

    def reset(self) -> None:
        """Forget every image seen so far."""
        self._items = []

    def __len__(self) -> int:
        """Number of images accumulated."""
        return len(self._items)

    def update(self, pred_mask: npt.ArrayLike, true_instances: npt.ArrayLike) -> SegmentationScores:
        """Add one image.

        Args:
            pred_mask: predicted binary mask; nonzero pixels are foreground.
            true_instances: ground-truth instance label image (0 = background).

        Returns:
            The scores of this image alone.

        Raises:
            ValueError: on shape mismatch, non-2-D inputs or wrong dtypes.

        Shape:
            - pred_mask: ``(H, W)``, dtype bool or integer; sizes may differ between calls.
            - true_instances: ``(H, W)``, integer dtype, values ``>= 0``.
        """
        item = _image_counts(pred_mask, true_instances, self.iou_threshold, self.connectivity)
        self._items.append(item)
        return item.scores

    def per_image(self) -> list[dict[str, float | int]]:
        """The images seen so far, one row each, in the order they were added.

        Each row holds the four scores of :func:`evaluate_binary` and what explains them:
        ``true_px`` / ``pred_px`` (foreground pixels of the truth / the prediction),
        ``fp_px`` (predicted, not true), ``fn_px`` (true, not predicted), and the object
        matching's ``tp_nuclei``, ``fp_nuclei`` (predicted instances matching no true
        one), ``fn_nuclei`` (true nuclei matched by none) at this metric's IoU threshold.

        Returns:
            A list of dicts, one per :meth:`update` call; empty before any.
        """
        rows: list[dict[str, float | int]] = []
        for it in self._items:
            pred_px = it.total - it.n_true
            rows.append(
                {
                    "iou": it.scores.iou,
                    "dice": it.scores.dice,
                    "f1": it.scores.f1,
                    "aji": it.scores.aji,
                    "true_px": it.n_true,
                    "pred_px": pred_px,
                    "fp_px": pred_px - it.inter,
                    "fn_px": it.n_true - it.inter,
                    "tp_nuclei": it.tp,
                    "fp_nuclei": it.fp,
                    "fn_nuclei": it.fn,
                }
            )
        return rows

    def compute(self, reduction: Reduction = "mean") -> dict[str, float]:
        """Reduce the accumulated images to one score per metric.

        Args:
            reduction: ``"mean"`` (average of per-image scores) or ``"pooled"`` (scores from
                counts summed over all images); see the class docstring.

        Returns:
            ``{"iou": ..., "dice": ..., "f1": ..., "aji": ...}``.

        Raises:
            ValueError: on an unknown reduction.
            RuntimeError: if no image was added.

        Shape:
            - output: dict of four floats in ``[0, 1]``.
        """
        if reduction not in ("mean", "pooled"):
            raise ValueError(f"reduction must be 'mean' or 'pooled', got {reduction!r}")
        if not self._items:
            raise RuntimeError("SegmentationMetric.compute called before any update")
        if reduction == "mean":
            n = len(self._items)
            return {
                "iou": sum(it.scores.iou for it in self._items) / n,
                "dice": sum(it.scores.dice for it in self._items) / n,
                "f1": sum(it.scores.f1 for it in self._items) / n,
                "aji": sum(it.scores.aji for it in self._items) / n,
            }
        inter = sum(it.inter for it in self._items)
        union = sum(it.union for it in self._items)
        total = sum(it.total for it in self._items)
        match = _match_result(
            sum(it.tp for it in self._items),
            sum(it.fp for it in self._items),
            sum(it.fn for it in self._items),
        )
        c = sum(it.aji_c for it in self._items)
        u = sum(it.aji_u for it in self._items)
        return {
            "iou": _ratio(inter, union, empty=1.0),
            "dice": _ratio(2 * inter, total, empty=1.0),
            "f1": match.f1,
            "aji": _ratio(c, u, empty=1.0),
        }
