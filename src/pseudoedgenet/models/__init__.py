"""Networks f (segmentation), g (edges), h (attention) and the Sobel operator s."""

from pseudoedgenet.models.networks import (
    MODELS,
    PseudoEdgeNet,
    SmallEdgeNet,
    build_model,
    fpn,
    zero_output_conv,
)
from pseudoedgenet.models.sobel import Sobel, sobel

__all__ = [
    "MODELS",
    "PseudoEdgeNet",
    "SmallEdgeNet",
    "Sobel",
    "build_model",
    "fpn",
    "sobel",
    "zero_output_conv",
]
