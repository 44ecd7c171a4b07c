"""Evaluation metrics: pixel IoU / Dice, object F1, the aggregated Jaccard index, and
point recall / instance precision against clicked points (validation without masks)."""

from pseudoedgenet.metrics.points import PointMetric, PointScores, point_scores
from pseudoedgenet.metrics.segmentation import (
    MatchResult,
    SegmentationMetric,
    SegmentationScores,
    aggregated_jaccard_index,
    evaluate_binary,
    instances_from_binary,
    object_f1,
    pixel_dice,
    pixel_iou,
)

__all__ = [
    "MatchResult",
    "PointMetric",
    "PointScores",
    "SegmentationMetric",
    "SegmentationScores",
    "aggregated_jaccard_index",
    "evaluate_binary",
    "instances_from_binary",
    "object_f1",
    "pixel_dice",
    "pixel_iou",
    "point_scores",
]
