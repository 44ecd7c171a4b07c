"""Inference: tiling geometry, sliding-window prediction, the predict driver.

Images and slides are read with :mod:`pseudoedgenet.data.slide` (``open_slide``).
"""

from pseudoedgenet.inference.predict import (
    fuse_conv_bn,
    predict_probability,
    predict_tiles,
    prepare_predictor,
    resolve_device,
)
from pseudoedgenet.inference.tiling import Tile, make_tiles, tiles_with_tissue

__all__ = [
    "Tile",
    "fuse_conv_bn",
    "make_tiles",
    "predict_probability",
    "predict_tiles",
    "prepare_predictor",
    "resolve_device",
    "tiles_with_tissue",
]
