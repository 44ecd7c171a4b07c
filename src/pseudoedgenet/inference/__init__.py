"""Inference: tiling geometry, sliding-window prediction, slide reading, the predict driver."""

from pseudoedgenet.inference.predict import (
    fuse_conv_bn,
    predict_probability,
    predict_tiles,
    prepare_predictor,
    resolve_device,
)
from pseudoedgenet.inference.slide import Slide, open_slide, tissue_mask
from pseudoedgenet.inference.tiling import Tile, make_tiles, read_window

__all__ = [
    "Slide",
    "Tile",
    "fuse_conv_bn",
    "make_tiles",
    "open_slide",
    "predict_probability",
    "predict_tiles",
    "prepare_predictor",
    "read_window",
    "resolve_device",
    "tissue_mask",
]
