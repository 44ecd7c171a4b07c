"""Inference: tiling geometry, sliding-window prediction."""

from pseudoedgenet.inference.predict import predict_probability
from pseudoedgenet.inference.tiling import Tile, make_tiles, read_window

__all__ = ["Tile", "make_tiles", "predict_probability", "read_window"]
