"""Evaluation metrics: pixel IoU / Dice, object F1 and the aggregated Jaccard index."""

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
    "SegmentationMetric",
    "SegmentationScores",
    "aggregated_jaccard_index",
    "evaluate_binary",
    "instances_from_binary",
    "object_f1",
    "pixel_dice",
    "pixel_iou",
]
