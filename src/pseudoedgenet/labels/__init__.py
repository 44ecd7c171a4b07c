"""Point annotations → training targets (numpy/scipy/scikit-image only)."""

from pseudoedgenet.labels.points import points_from_instances
from pseudoedgenet.labels.voronoi import IGNORE, NEGATIVE, POSITIVE, voronoi_cells, voronoi_labels

__all__ = [
    "IGNORE",
    "NEGATIVE",
    "POSITIVE",
    "points_from_instances",
    "voronoi_cells",
    "voronoi_labels",
]
