"""Dataset readers, the prepared-dataset format, splits and augmentation.

Point convention: ``(x, y)`` pixel coordinates of the full image, ``x`` = column,
``y`` = row, floats allowed; see :mod:`pseudoedgenet.data.io`.
"""
