"""PseudoEdgeNet: weakly supervised nuclei segmentation from point annotations.

Point convention used everywhere in this package: a point is ``(x, y)`` in pixel
coordinates of the full image, ``x`` = column, ``y`` = row, floats allowed; the labelled
pixel of a point is ``(round(y), round(x))``.
"""

__version__ = "0.1.0"
