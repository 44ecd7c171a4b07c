"""Reader for users' own data: images paired by file stem with point files.

Layout::

    SRC/images/<name>.{png,tif,tiff,jpg,jpeg}
    SRC/points/<name>.{csv,geojson}      x,y header / QuPath GeoJSON points
    SRC/masks/<name>.png                 optional instance masks (0 = background)

Points are ``(x, y)`` pixels of the full image (x = column, y = row; the pixel a point
labels is ``(round(y), round(x))``). Points that label the same pixel as an earlier point
of their file (a nucleus clicked twice) are dropped and counted, as ``prepare qupath``
does: ``duplicates_dropped`` in each image's record. A point file or mask without an
image, or an image without a point file (and without a mask to derive points from), is an
error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pseudoedgenet.data.io import IMAGE_SUFFIXES, read_image, read_label_image, read_points
from pseudoedgenet.data.qupath import _drop_duplicates as drop_duplicates
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.errors import DataError

POINT_SUFFIXES = (".csv", ".geojson", ".json")


def _by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in suffixes:
            if p.stem in found:
                raise DataError(p, f"two files share the name {p.stem!r} ({found[p.stem].name})")
            found[p.stem] = p
    return found


def read_folder(root: str | Path) -> Iterator[Sample]:
    """Yields the images of a folder dataset with their points and optional masks.

    Args:
        root: folder with ``images/``, ``points/`` and optionally ``masks/``.

    Yields:
        :class:`Sample` with ``points`` ``(N, 2)`` float64 ``(x, y)`` (from the point
        file, the first point per pixel; or ``None`` if only a mask is given),
        ``instances`` (or ``None``) and ``info`` ``{"source", "points_file",
        "duplicates_dropped"}``.

    Raises:
        DataError: see the module docstring; also bad point files (NaN, outside, empty).
    """
    root = Path(root)
    images = _by_stem(root / "images", IMAGE_SUFFIXES)
    if not images:
        raise DataError(root / "images", "no images (.png/.tif/.jpg) found")
    points = _by_stem(root / "points", POINT_SUFFIXES)
    masks = _by_stem(root / "masks", (".png", ".tif", ".tiff"))
    for stem, path in {**points, **masks}.items():
        if stem not in images:
            raise DataError(path, "annotation has no matching image in images/")
    for stem, img_path in images.items():
        image = read_image(img_path)
        shape = image.shape[:2]
        instances = None
        if stem in masks:
            instances = read_label_image(masks[stem])
            if instances.shape != shape:
                raise DataError(
                    masks[stem],
                    f"mask size {instances.shape[1]}x"
                    f"{instances.shape[0]} does not match image size "
                    f"{shape[1]}x{shape[0]}",
                )
        pts = read_points(points[stem], shape) if stem in points else None
        if pts is None and instances is None:
            raise DataError(img_path, "no point file (points/<name>.csv|.geojson) and no mask")
        dropped = 0
        if pts is not None:
            keep = drop_duplicates(np.rint(pts).astype(np.int64))
            dropped, pts = len(pts) - len(keep), pts[keep]
        info = {
            "source": str(img_path),
            "points_file": str(points[stem]) if stem in points else None,
            "duplicates_dropped": dropped,
        }
        yield Sample(stem, image, instances, pts, "", img_path, info=info)
