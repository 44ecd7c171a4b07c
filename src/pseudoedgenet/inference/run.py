"""The ``predict`` driver: images or slides in, probability map, masks, nuclei out.

For every input ``INPUT`` it writes a folder ``OUT/<stem>/``:

==================  ==========================================================================
``prob.tif``        foreground probability, uint8 0..255 (``round(255 p)``)
``mask.png``        binary mask ``p > threshold`` (before the size filters), uint8 0/255
                    (``mask.tif`` for slides)
``instances.tif``   uint32 instance ids, 0 = background (the nuclei of the GeoJSON/CSV)
``nuclei.geojson``  FeatureCollection of nucleus ``Polygon`` features (QuPath detections)
``nuclei.csv``      one row per nucleus: ``id`` (the GeoJSON feature's UUID), ``label`` (its
                    value in ``instances.tif``), ``centroid_x, centroid_y, centroid_x_um,
                    centroid_y_um, area_px, area_um2, perimeter_px, perimeter_um, mean_prob``
``overlay.png``     mask and outlines over the image, downsampled to at most 2048 px
``predict.json``    what was run: input, level, mpp, coordinate convention, tiles, precision,
                    counts (nuclei, objects removed by each filter), area limits, time
==================  ==========================================================================

**Rasters** are at the resolution of the level read. For slides (and images over
``large_pixels``) ``prob.tif``, ``mask.tif`` and ``instances.tif`` are pyramidal, tiled
(256 px), deflate-compressed OME-TIFFs: level 0 in the main IFD, reduced levels (each half
the previous, until one fits in a tile) in SubIFDs with ``NewSubfileType`` 1, the layout
QuPath/Bio-Formats, tifffile (napari) and tiffslide read as one pyramid. Reduced levels:
``instances`` by nearest (every second pixel, ids stay ids), ``mask`` by 2x2 maximum (small
nuclei stay visible), ``prob`` by 2x2 mean (rounded), level from level. Resolution tags
(``XResolution``/``YResolution`` in pixels per centimetre, ``ResolutionUnit`` CENTIMETER) and
the OME ``PhysicalSizeX/Y`` (µm) give each level's pixel size when the input has one.
Smaller images get plain (strip) TIFFs and ``mask.png``.

**Coordinates** of GeoJSON and CSV are level-0 pixels, ``(x, y)`` = (column, row), in the
convention chosen with ``--coords`` (:data:`pseudoedgenet.data.slide.COORDS`, recorded
as ``coords`` in ``predict.json``):

- ``qupath`` (default): QuPath's convention, integer coordinates at pixel *corners*: a
  pixel of level ``L`` at column ``c`` covers ``[c d, (c + 1) d)`` with ``d`` the level's
  downsample, so the outlines, centroids and areas are those QuPath itself measures on the
  imported objects.
- ``pixel-centre``: the package's point convention (integer coordinates at pixel centres,
  every value ``0.5`` less).

See :meth:`pseudoedgenet.data.slide.Slide.to_level0`. An image exported from QuPath under
the name QuPath gives a region (``<image> [d=2,x=1024,y=2048,w=1024,h=1024].png``: level-0
corner, size and downsample of the region in the source slide, :class:`SourceRegion`) gets
coordinates in the *source slide's* level-0 frame instead, so its GeoJSON imports onto the
slide it came from (``--no-region-from-name`` keeps the image's own frame). Outlines trace
pixel edges (:func:`pseudoedgenet.postprocess.object_polygon`), so a polygon covers exactly
the pixels of its nucleus in ``instances.tif``.

**Measurements** (CSV columns, and GeoJSON ``properties`` and ``properties.measurements``):
``centroid_x/y`` (level-0 px, chosen convention), ``area_px`` and ``perimeter_px`` (scaled to
level-0 px; perimeter of the pixel mask, :func:`skimage.measure.perimeter`), ``mean_prob``,
and in µm where the input has a pixel size: ``centroid_x_um``, ``centroid_y_um`` (the
centroid in the same convention times the level-0 pixel size), ``area_um2``,
``perimeter_um``. Without a pixel size the µm columns are present but empty in the CSV and
absent from the GeoJSON. Every feature also has a top-level ``id``, a UUID that is the same
on every rerun (:func:`feature_id`: uuid5 of the input file name, the level read and the
nucleus label), ``objectType: "detection"``, ``classification`` ``Nucleus`` and ``label``
(its id in ``instances.tif``).

**Size filters**: nuclei smaller than ``--min-area`` or larger than ``--max-area`` are
removed (with ``--watershed`` the limits apply to the split pieces), as are objects whose
bounding box exceeds ``max_size``; areas are in µm² when the input has a pixel size, else
in level-0 pixels (defaults :data:`DEFAULT_AREA_UM2`, :data:`DEFAULT_AREA_PX`). Each removed
object is counted under its reason in ``predict.json`` (``removed``) and in the line printed
per input.

Memory does not grow with the slide: the slide is read tile by tile, the probability map,
mask and labels are stitched into chunked zarr stores on disk (for slides and images larger
than ``large_pixels``), instances are labelled block by block (exact connected components
across block seams, :mod:`pseudoedgenet.postprocess`) and the outputs are streamed: TIFFs
tile by tile, GeoJSON and CSV feature by feature.

Every output folder is built under a temporary name in ``OUT`` and renamed into place when
complete: an interrupted or failed run (disk full included) leaves no partial
``OUT/<stem>``.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

from pseudoedgenet import __version__
from pseudoedgenet.data.io import atomic_dir, write_json, write_png
from pseudoedgenet.data.slide import (
    COORDS,
    MAX_SCAN_MPP,
    MIN_SCAN_MPP,
    MPP_TOLERANCE,
    SUPPORTED_SUFFIXES,
    Slide,
    image_stem,
    near_mpp,
    nearest_level,
    open_slide,
    tissue_mask,
)
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.hardware import peak_rss_mib, precision_name
from pseudoedgenet.inference.predict import (
    PRECISIONS,
    predict_tiles,
    predict_whole,
    prepare_predictor,
    resolve_device,
)
from pseudoedgenet.inference.tiling import Tile, make_tiles, tiles_with_tissue
from pseudoedgenet.models.trained import read_weights, segmenter_from
from pseudoedgenet.postprocess import (
    Array2D,
    Nucleus,
    PostprocessConfig,
    block_grid,
    foreground,
    iter_nuclei,
    label_components,
)
from pseudoedgenet.viz import overlay_mask

#: QuPath classification of the exported detections.
CLASSIFICATION = {"name": "Nucleus", "color": [230, 60, 60]}
CSV_COLUMNS = (
    "id",
    "label",
    "centroid_x",
    "centroid_y",
    "centroid_x_um",
    "centroid_y_um",
    "area_px",
    "area_um2",
    "perimeter_px",
    "perimeter_um",
    "mean_prob",
)
#: Default ``(min, max)`` nucleus area in µm², for inputs with a pixel size. 10 µm² (a disk
#: 3.6 µm across) is below the smallest nuclei (lymphocytes, about 6-7 µm across, 30-40 µm²)
#: and removes specks; 400 µm² (a disk 22.6 µm across) is above all but giant tumour nuclei,
#: and removes clumps of touching nuclei that were not split (see ``--watershed``).
DEFAULT_AREA_UM2 = (10.0, 400.0)
#: Default ``(min, max)`` nucleus area in level-0 pixels, for inputs without a pixel size.
#: Chosen to be safe at the usual scan resolutions: 40 px is 10 µm² at 20x (0.5 µm/px) and
#: 2.5 µm² at 40x (0.25 µm/px, MoNuSeg and TNBC), so only specks go; 6400 px is 400 µm² at
#: 40x (and 1600 µm² at 20x), so no single nucleus goes.
DEFAULT_AREA_PX = (40.0, 6400.0)
#: How each raster's reduced pyramid levels are made from the level above (2x per level).
PYRAMID_REDUCE = {"prob.tif": "mean", "mask.tif": "max", "instances.tif": "stride"}
#: TIFF tile side of the tiled (slide) rasters.
TIFF_TILE = 256
#: Namespace of the feature ids (:func:`feature_id`).
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "pseudoedgenet:nuclei")


@dataclass(frozen=True)
class PredictConfig:
    """Options of :func:`predict_files` (the ``predict`` command).

    Attributes:
        tile: tile side read per forward pass (multiple of 32).
        overlap: context margin per tile side; the write step is ``tile - 2 * overlap``.
        batch_size: tiles per forward pass.
        threshold: foreground where ``p > threshold`` (:func:`.postprocess.foreground`).
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32),
            ``fp32``, ``bf16`` or ``fp16``.
        level: pyramid level to read, or ``None``.
        mpp: target microns per pixel (nearest level), or ``None``. With neither, the
            level nearest the model's training pixel size where both are known (see
            :func:`open_input`), else level 0.
        input_mpp: level-0 microns per pixel of inputs that record none (PNG/JPEG, TIFFs
            without resolution tags), or ``None``; an input that records one keeps it, and
            one more than :data:`~pseudoedgenet.data.slide.MPP_TOLERANCE` away is refused
            (:func:`~pseudoedgenet.data.slide.declare_mpp`).
        any_resolution: predict at a pixel size more than
            :data:`~pseudoedgenet.data.slide.MPP_TOLERANCE` away from the model's training
            pixel size (refused otherwise).
        watershed: split touching nuclei (distance-transform watershed).
        min_distance: watershed seed separation, pixels of the level read.
        depth: watershed seed depth: how much narrower than both nuclei a neck must be to
            be cut, pixels of the level read.
        min_area: smallest nucleus kept: µm² when the input has a pixel size, else level-0
            pixels; ``None`` = :data:`DEFAULT_AREA_UM2` / :data:`DEFAULT_AREA_PX`; 0 keeps
            all.
        max_area: largest nucleus kept, same units; ``None`` = the default; 0 = no limit.
        max_size: largest nucleus bounding-box side kept, pixels of the level read.
        coords: convention of the GeoJSON/CSV coordinates, ``qupath`` (integers at pixel
            corners) or ``pixel-centre`` (the package's); see the module docstring.
        tissue_mask: skip background tiles (Otsu on a thumbnail); ``None`` = for slides only.
        whole_image: one forward pass over the whole image instead of tiles, exactly as
            validation/testing predict; ``None`` = for in-memory images of at most
            ``whole_max_pixels`` pixels. (f is an FPN with a receptive field of several
            hundred pixels and GroupNorm in its decoder, so tiles only approximate the
            whole-image prediction; see the README, "Slide-scale inference".)
        whole_max_pixels: size limit of the automatic whole-image pass.
        large_pixels: images with more pixels than this (and all slides) are stitched into
            on-disk stores and written as tiled TIFFs.
        overlay_max_side: longer side of ``overlay.png``.
        region_from_name: give the GeoJSON/CSV of an image whose file name is QuPath's for
            an exported region in the source slide's level-0 frame (:func:`source_region`).
        compile: ``torch.compile`` f (see
            :func:`pseudoedgenet.inference.predict.prepare_predictor`): a one-off
            compilation per input size, then ~1.4x faster on CPU; for slides.
        progress: show progress bars.
    """

    tile: int = 512
    overlap: int = 64
    batch_size: int = 4
    threshold: float = 0.5
    device: str = "auto"
    precision: str = "auto"
    level: int | None = None
    mpp: float | None = None
    input_mpp: float | None = None
    any_resolution: bool = False
    watershed: bool = False
    min_distance: int = 5
    depth: float = 2.0
    min_area: float | None = None
    max_area: float | None = None
    max_size: int = 1024
    coords: str = "qupath"
    tissue_mask: bool | None = None
    whole_image: bool | None = None
    whole_max_pixels: int = 1536 * 1536
    large_pixels: int = 4096 * 4096
    overlay_max_side: int = 2048
    region_from_name: bool = True
    compile: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        def check(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        check(
            self.tile >= 32 and self.tile % 32 == 0,
            f"--tile-size must be a multiple of 32, got {self.tile}",
        )
        check(self.overlap >= 0, f"--overlap must be >= 0, got {self.overlap}")
        check(
            self.tile - 2 * self.overlap >= 16,
            f"--overlap {self.overlap} leaves less than 16 px of a {self.tile} px tile to write",
        )
        check(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        check(0.0 < self.threshold < 1.0, f"--threshold must be in (0, 1), got {self.threshold}")
        check(self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}")
        check(self.level is None or self.mpp is None, "give either --level or --mpp, not both")
        check(self.level is None or self.level >= 0, f"--level must be >= 0, got {self.level}")
        check(self.mpp is None or self.mpp > 0, f"--mpp must be > 0, got {self.mpp}")
        if self.input_mpp is not None and not MIN_SCAN_MPP <= self.input_mpp <= MAX_SCAN_MPP:
            raise ConfigError(
                f"--input-mpp is the inputs' level-0 pixel size in µm per pixel, "
                f"{MIN_SCAN_MPP:g} to {MAX_SCAN_MPP:g} (a 40x scan is about 0.25, 20x about "
                f"0.5), got {self.input_mpp:g}"
            )
        check(self.min_distance >= 1 and self.max_size >= 1, "bad sizes")
        for name, v in (("--min-area", self.min_area), ("--max-area", self.max_area)):
            check(v is None or (v >= 0 and math.isfinite(v)), f"{name} must be >= 0, got {v}")
        if self.min_area is not None and self.max_area and self.max_area < self.min_area:
            raise ConfigError(f"--max-area {self.max_area:g} is below --min-area {self.min_area:g}")
        check(self.coords in COORDS, f"--coords must be one of {', '.join(COORDS)}")

    def postprocess(self, block: int, areas: AreaFilter) -> PostprocessConfig:
        """The :class:`PostprocessConfig` these options imply, with ``areas`` resolved for
        one input (:func:`area_filter`)."""
        return PostprocessConfig(
            watershed=self.watershed,
            min_distance=self.min_distance,
            depth=self.depth,
            min_area=areas.min_level_px,
            max_area=areas.max_level_px,
            max_size=self.max_size,
            block=block,
        )


@dataclass(frozen=True)
class AreaFilter:
    """The nucleus area limits of one input.

    Attributes:
        unit: ``"um2"`` (the input has a pixel size) or ``"px"`` (level-0 pixels).
        min: smallest area kept, in ``unit`` (0 = no lower limit).
        max: largest area kept, in ``unit``, or ``None`` for no limit.
        min_level_px: ``min`` in pixels of the level read (what pixel counts are compared
            with).
        max_level_px: ``max`` in pixels of the level read, or ``None``.
    """

    unit: str
    min: float
    max: float | None
    min_level_px: float
    max_level_px: float | None

    def text(self, value: float) -> str:
        """``value`` with its unit, e.g. ``"10 µm²"`` or ``"40 px"``."""
        return f"{value:g} {'µm²' if self.unit == 'um2' else 'px'}"


def area_filter(cfg: PredictConfig, slide: Slide, region: SourceRegion | None = None) -> AreaFilter:
    """Resolves ``--min-area``/``--max-area`` for one input.

    µm² when ``slide.mpp`` is known, else level-0 pixels (of the source slide when
    ``region`` maps the input into one, as the outputs' ``area_px``); unset limits take
    :data:`DEFAULT_AREA_UM2` / :data:`DEFAULT_AREA_PX`; a ``max_area`` of 0 means no limit.

    Raises:
        ConfigError: the resolved maximum is below the minimum (e.g. ``--min-area 500``
            with the default maximum).
    """
    if slide.mpp is not None:
        unit, defaults, px_per_unit = "um2", DEFAULT_AREA_UM2, 1.0 / (slide.mpp[0] * slide.mpp[1])
    else:
        sx, sy = output_scale(slide, region)
        unit, defaults, px_per_unit = "px", DEFAULT_AREA_PX, 1.0 / (sx * sy)
    lo = defaults[0] if cfg.min_area is None else float(cfg.min_area)
    hi: float | None = defaults[1] if cfg.max_area is None else float(cfg.max_area)
    if hi == 0:
        hi = None
    res = AreaFilter(unit, lo, hi, lo * px_per_unit, None if hi is None else hi * px_per_unit)
    if hi is not None and hi < lo:
        raise ConfigError(
            f"{slide.path.name}: the largest nucleus area ({res.text(hi)}, --max-area) is below "
            f"the smallest ({res.text(lo)}, --min-area); give both"
        )
    return res


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``.

    Raises:
        ConfigError: malformed or out of range.
    """
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ConfigError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard {text}: need 0 <= i < n")
    return i, n


def shard_inputs(inputs: Sequence[Path], shard: tuple[int, int]) -> list[Path]:
    """Every ``n``-th input starting at ``i`` (no shared state between shards)."""
    i, n = shard
    return list(inputs)[i::n]


def check_inputs(inputs: Sequence[Path], out: Path, force: bool) -> list[Path]:
    """Validates inputs before any work: they exist, have a supported format, unique stems,
    and their output folders do not exist (unless ``force``).

    Raises:
        DataError: the first problem found, one line.
    """
    seen: dict[str, Path] = {}
    paths = [Path(p) for p in inputs]
    for p in paths:
        if p.is_dir():
            raise DataError(
                p, f"is a folder: pass the images or slides in it (e.g. {p}/*.tif or {p}/*.svs)"
            )
        if not p.is_file():
            if any(c in p.name for c in "*?["):  # a pattern the shell left as it was
                raise DataError(p, "no file matches this pattern: check the folder and extension")
            raise DataError(p, "file not found")
        if p.suffix.lower() in (".geojson", ".json", ".csv"):
            raise DataError(
                p,
                "is an annotation file, not an image: give only the images or slides "
                "(e.g. slides/*.tif rather than slides/*)",
            )
        if p.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise DataError(
                p,
                f"unsupported format {p.suffix or '(no suffix)'!r}: expected one of "
                + ", ".join(SUPPORTED_SUFFIXES),
            )
        name = image_stem(p)
        if name in seen:
            raise DataError(p, f"same name as {seen[name]}: outputs would collide in {out}")
        seen[name] = p
        if (out / name).exists() and not force:
            raise DataError(out / name, "output folder exists (use --force to replace it)")
    return paths


# ------------------------------------------------------------------------------ stores


class _Stores:
    """Scratch arrays of one run: numpy in memory, or zarr chunked stores on disk."""

    def __init__(self, shape: tuple[int, int], chunk: int, scratch: Path | None) -> None:
        self.shape, self.chunk, self.scratch = shape, chunk, scratch

    def new(self, name: str, dtype: Any, shape: tuple[int, int] | None = None) -> Array2D:
        """A zeroed ``shape`` (default: the run's) array called ``name``."""
        shape = shape or self.shape
        if self.scratch is None:
            return np.zeros(shape, dtype)
        import zarr

        return zarr.open_array(
            store=str(self.scratch / f"{name}.zarr"),
            mode="w",
            shape=shape,
            chunks=(self.chunk, self.chunk),
            dtype=dtype,
            fill_value=0,
        )


def _tiff_tiles(
    store: Array2D, tile: int, fn: Callable[[np.ndarray], np.ndarray] | None, block: int = 4096
) -> Iterator[np.ndarray]:
    """Full ``tile x tile`` tiles of a 2-D store in TIFF order (edges zero-padded), read
    ``tile x block`` at a time so that memory does not grow with the width."""
    h, w = int(store.shape[0]), int(store.shape[1])
    cols = max(1, block // tile) * tile
    for y in range(0, h, tile):
        for x0 in range(0, w, cols):
            x1 = min(x0 + cols, w)
            strip = np.asarray(store[y : min(y + tile, h), x0:x1])
            if fn is not None:
                strip = fn(strip)
            padded = np.zeros((tile, math.ceil((x1 - x0) / tile) * tile), strip.dtype)
            padded[: strip.shape[0], : x1 - x0] = strip
            for x in range(0, padded.shape[1], tile):
                yield padded[:, x : x + tile]


def _reduce2(block: np.ndarray, how: str) -> np.ndarray:
    """Halves a 2-D block: ``stride`` keeps every second pixel (nearest: ids stay ids),
    ``max`` / ``mean`` (rounded to the dtype) reduce 2x2 blocks; an odd last row or column
    is paired with itself.

    Shape:
        ``(h, w)`` -> ``(ceil(h / 2), ceil(w / 2))``, same dtype.
    """
    if how == "stride":
        return block[::2, ::2]
    from skimage.measure import block_reduce

    h, w = block.shape
    padded = np.pad(block, ((0, h % 2), (0, w % 2)), mode="edge")
    if how == "max":
        return np.asarray(block_reduce(padded, (2, 2), np.max), block.dtype)
    if how == "mean":
        return np.rint(block_reduce(padded, (2, 2), np.mean)).astype(block.dtype)
    raise ValueError(f"unknown reduction {how!r}: expected stride, max or mean")


def build_pyramid(
    store: Array2D,
    dtype: Any,
    how: str,
    new: Callable[[str, Any, tuple[int, int]], Array2D],
    name: str,
    tile: int = TIFF_TILE,
    block: int = 2048,
) -> list[Array2D]:
    """The reduced levels of a 2-D store, each made from the one above by :func:`_reduce2`
    block by block (memory: one ``block x block`` block), until a level fits in one tile.

    Args:
        store: ``(H, W)`` level 0 (array or on-disk store).
        dtype: its dtype.
        how: ``stride``, ``max`` or ``mean``.
        new: ``(name, dtype, shape) -> zeroed array`` for each level (e.g. a zarr store).
        name: prefix of the level names.
        tile: stop once both sides are at most this.
        block: block side (even).

    Returns:
        Levels 1, 2, ...: level ``k`` is ``(ceil(H_{k-1} / 2), ceil(W_{k-1} / 2))``; empty
        when level 0 already fits in a tile.
    """
    levels: list[Array2D] = []
    src = store
    while max(int(src.shape[0]), int(src.shape[1])) > tile:
        h, w = int(src.shape[0]), int(src.shape[1])
        dst = new(f"{name}_{len(levels) + 1}", dtype, ((h + 1) // 2, (w + 1) // 2))
        for y0, y1, x0, x1 in block_grid((h, w), block):
            dst[y0 // 2 : (y1 + 1) // 2, x0 // 2 : (x1 + 1) // 2] = _reduce2(
                np.asarray(src[y0:y1, x0:x1]), how
            )
        levels.append(dst)
        src = dst
    return levels


def write_tiff(
    path: Path,
    store: Array2D,
    dtype: Any,
    tiled: bool,
    mpp: tuple[float, float] | None = None,
    fn: Callable[[np.ndarray], np.ndarray] | None = None,
    tile: int = TIFF_TILE,
    reduced: Sequence[Array2D] = (),
    uid: str | None = None,
) -> None:
    """Writes a 2-D array as a deflate-compressed TIFF, streamed tile by tile if ``tiled``.

    Tiled output is a pyramidal OME-TIFF: ``store`` in the main IFD, ``reduced`` in its
    SubIFDs (``NewSubfileType`` 1), each level with resolution tags (pixels per cm) for
    its own pixel size, and the level-0 pixel size as OME ``PhysicalSizeX/Y`` (µm). This
    is the layout QuPath (Bio-Formats), tifffile/napari and tiffslide read as one pyramid.

    Args:
        path: file to write.
        store: ``(H, W)`` array or on-disk store.
        dtype: pixel type written (after ``fn``).
        tiled: stream ``tile x tile`` tiles (bounded memory) instead of one strip image.
        mpp: microns per pixel ``(x, y)`` of ``store``, written as resolution tags (and
            OME metadata when tiled), or ``None``.
        fn: optional per-strip transform (e.g. ``mask -> 0/255``), applied to every level.
        tile: TIFF tile side.
        reduced: coarser levels (:func:`build_pyramid`), written only when ``tiled``.
        uid: the OME ``UUID`` (so that reruns write identical files), or ``None`` for a
            random one.
    """
    h, w = int(store.shape[0]), int(store.shape[1])
    kw: dict[str, Any] = {"compression": "zlib", "photometric": "minisblack"}

    def resolution(level: Array2D) -> dict[str, Any]:
        if mpp is None:
            return {}
        fx, fy = w / int(level.shape[1]), h / int(level.shape[0])
        return {
            "resolution": (1e4 / (mpp[0] * fx), 1e4 / (mpp[1] * fy)),
            "resolutionunit": "CENTIMETER",
        }

    if not tiled:
        arr = np.asarray(store[:, :])
        out = (fn(arr) if fn is not None else arr).astype(dtype)
        tifffile.imwrite(path, out, metadata=None, **resolution(store), **kw)
        return
    meta: dict[str, Any] = {"axes": "YX", "Name": image_stem(path)}
    if uid is not None:
        meta["UUID"] = uid
    if mpp is not None:
        meta.update(PhysicalSizeX=mpp[0], PhysicalSizeXUnit="µm")
        meta.update(PhysicalSizeY=mpp[1], PhysicalSizeYUnit="µm")
    levels = [store, *reduced]
    nbytes = sum(int(a.shape[0]) * int(a.shape[1]) for a in levels) * np.dtype(dtype).itemsize
    with tifffile.TiffWriter(path, bigtiff=nbytes > 2**31, ome=True) as tw:
        for i, level in enumerate(levels):
            tw.write(
                _tiff_tiles(level, tile, fn),
                shape=(int(level.shape[0]), int(level.shape[1])),
                dtype=dtype,
                tile=(tile, tile),
                subifds=len(reduced) if i == 0 else None,
                subfiletype=1 if i else 0,
                metadata=meta if i == 0 else None,
                **resolution(level),
                **kw,
            )


def _subsampled(store: Array2D, s: int) -> np.ndarray:
    """``store[::s, ::s]`` read block by block."""
    h, w = int(store.shape[0]), int(store.shape[1])
    out = None
    b = s * max(1, 2048 // s)
    for y0, y1, x0, x1 in block_grid((h, w), b):
        part = np.asarray(store[y0:y1, x0:x1])[::s, ::s]
        if out is None:
            out = np.zeros((-(-h // s), -(-w // s)), part.dtype)
        out[y0 // s : y0 // s + part.shape[0], x0 // s : x0 // s + part.shape[1]] = part
    assert out is not None
    return out


def render_overlay(slide: Slide, labels: Array2D, max_side: int = 2048) -> np.ndarray:
    """Instance mask (green) and outlines (yellow) over the image, at most ``max_side`` px.

    Returns:
        ``(h, w, 3)`` uint8, ``h = ceil(H / s)``, ``w = ceil(W / s)`` with the integer
        stride ``s = ceil(max(H, W) / max_side)`` over the level read.
    """
    from PIL import Image
    from skimage.segmentation import find_boundaries

    h, w = slide.shape
    s = max(1, math.ceil(max(h, w) / max_side))
    lab = _subsampled(labels, s)
    if s == 1:
        image = slide.read((0, h, 0, w))
    else:
        image = slide.thumbnail(max(lab.shape))
        if image.shape[:2] != lab.shape:
            size = (lab.shape[1], lab.shape[0])
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    out = overlay_mask(image, lab > 0, (0, 220, 60), 0.35)
    out[find_boundaries(lab, mode="inner")] = (255, 230, 0)
    return out


# ------------------------------------------------------------------------- vector outputs


def _round(a: np.ndarray) -> list[Any]:
    return np.round(a, 2).tolist()


#: QuPath's name for an exported region (``TileExporter``, *Export images*): ``<image>
#: [d=D,x=X,y=Y,w=W,h=H]`` with ``d`` left out at downsample 1 and ``,z=``/``,t=`` added off
#: the first plane; X, Y, W, H in the source's level-0 pixels.
_REGION_NAME = re.compile(
    r"^(?P<source>.*?) ?\[(?:d=(?P<d>[0-9]+(?:\.[0-9]+)?),)?x=(?P<x>-?[0-9]+),y=(?P<y>-?[0-9]+),"
    r"w=(?P<w>[0-9]+),h=(?P<h>[0-9]+)(?:,z=[0-9]+)?(?:,t=[0-9]+)?\]$"
)


@dataclass(frozen=True)
class SourceRegion:
    """Where an image exported from QuPath lies in the slide it came from.

    Read from the name QuPath gives an exported region, ``<image> [d=2,x=1024,y=2048,
    w=1024,h=1024].png`` (:func:`source_region`): the image's pixel ``(c, r)`` covers
    ``[x + c d, x + (c + 1) d) x [y + r d, y + (r + 1) d)`` of the source's level 0.

    Attributes:
        source: the source image's name as the file name gives it.
        x, y: the region's top-left corner, source level-0 pixels (QuPath's convention).
        w, h: the region's size, source level-0 pixels.
        d: source level-0 pixels per pixel of the exported image.
    """

    source: str
    x: int
    y: int
    w: int
    h: int
    d: float

    def text(self) -> str:
        """E.g. ``"coordinates in slide's level 0 (x=1024, y=2048, d=2, from the name)"``."""
        return (
            f"coordinates in {self.source}'s level 0 (x={self.x}, y={self.y}, d={self.d:g}, "
            "from the name)"
        )


def source_region(path: Path, level0_shape: tuple[int, int]) -> SourceRegion | None:
    """The :class:`SourceRegion` of an image exported from QuPath, from its file name.

    Args:
        path: the image; its stem is matched against QuPath's region name.
        level0_shape: ``(H, W)`` of the image's level 0, which must be the region's size at
            its downsample (``W ≈ w / d``, ``H ≈ h / d``, ±1 px for QuPath's rounding).

    Returns:
        The region, or ``None`` when the name is not QuPath's region name.

    Raises:
        DataError: a name that gives a region of another size than the image, or d = 0.
    """
    m = _REGION_NAME.match(image_stem(path))
    if m is None:
        return None
    d = float(m["d"]) if m["d"] else 1.0
    region = SourceRegion(m["source"], int(m["x"]), int(m["y"]), int(m["w"]), int(m["h"]), d)
    height, width = level0_shape
    if d <= 0 or abs(width - region.w / d) > 1 or abs(height - region.h / d) > 1:
        size = "d=0" if d <= 0 else f"{region.w / d:.0f}x{region.h / d:.0f} px"
        raise DataError(
            path,
            f"its name is QuPath's for a region of {region.w}x{region.h} px at downsample "
            f"{d:g} ({size}) but the image is {width}x{height} px: rename it, or pass "
            "--no-region-from-name to keep the image's own coordinates",
        )
    return region


def output_scale(slide: Slide, region: SourceRegion | None) -> tuple[float, float]:
    """``(sx, sy)``: output level-0 pixels (the source's with ``region``) per pixel read."""
    sx, sy = slide.downsample
    d = 1.0 if region is None else region.d
    return sx * d, sy * d


def output_coords(
    xy: np.ndarray, slide: Slide, coords: str, region: SourceRegion | None = None
) -> np.ndarray:
    """Maps ``(x, y)`` of the level read (package convention) to the output frame.

    Without ``region`` this is :meth:`Slide.to_level0`; with one, the source slide's level 0:
    in QuPath's convention pixel ``(c, r)`` of the level read is centred at
    ``(x0 + (c + 0.5) s_x, y0 + (r + 0.5) s_y)`` with ``s`` = :func:`output_scale` and
    ``(x0, y0)`` the region's corner; ``pixel-centre`` is ``0.5`` less.

    Shape:
        ``(..., 2)`` float, ``(x, y)`` = (column, row) -> same shape, float64.
    """
    if region is None:
        return slide.to_level0(xy, coords)
    if coords not in COORDS:
        raise ValueError(f"coords must be one of {', '.join(COORDS)}, got {coords!r}")
    sx, sy = output_scale(slide, region)
    xy = np.asarray(xy, dtype=np.float64)
    shift = 0.0 if coords == "qupath" else 0.5
    return np.stack(
        [region.x + (xy[..., 0] + 0.5) * sx - shift, region.y + (xy[..., 1] + 0.5) * sy - shift],
        axis=-1,
    )


def feature_id(source: str, level: int, label: int) -> str:
    """The GeoJSON ``id`` of a nucleus: a UUID (version 5) of the input file name, the
    level read and the nucleus label, so that reruns write identical files."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{source}|level {level}|{label}"))


def nucleus_measurements(
    n: Nucleus, slide: Slide, coords: str, region: SourceRegion | None = None
) -> dict[str, float | None]:
    """The measurements of one nucleus, keyed by the :data:`CSV_COLUMNS` after ``id``.

    Centroids are level-0 ``(x, y)`` in the ``coords`` convention
    (:func:`output_coords`: the source slide's level 0 with ``region``); pixel areas and
    perimeters are scaled to those level-0 pixels; the ``_um``/``_um2`` values are ``None``
    when the slide has no pixel size (centroids in µm: the centroid in the same convention
    times the level-0 pixel size).
    """
    sx, sy = output_scale(slide, region)
    cx, cy = (float(v) for v in output_coords(np.asarray(n.centroid), slide, coords, region))
    mpp = slide.mpp
    mx0, my0 = (None, None) if mpp is None else (mpp[0] / sx, mpp[1] / sy)
    return {
        "centroid_x": round(cx, 2),
        "centroid_y": round(cy, 2),
        "centroid_x_um": None if mx0 is None else round(cx * mx0, 3),
        "centroid_y_um": None if my0 is None else round(cy * my0, 3),
        "area_px": round(n.area * sx * sy, 2),
        "area_um2": None if mpp is None else round(n.area * mpp[0] * mpp[1], 3),
        "perimeter_px": round(n.perimeter * math.sqrt(sx * sy), 2),
        "perimeter_um": None if mpp is None else round(n.perimeter * math.sqrt(mpp[0] * mpp[1]), 3),
        "mean_prob": round(n.mean_prob, 4),
    }


def nucleus_feature(
    n: Nucleus, slide: Slide, coords: str = "qupath", region: SourceRegion | None = None
) -> dict[str, Any]:
    """A QuPath-importable GeoJSON ``Feature`` (detection) for one nucleus.

    The outline (pixel edges: a ``Polygon``, or a ``MultiPolygon`` for a nucleus whose
    pixels hold together only at corners, :func:`~pseudoedgenet.postprocess.object_polygons`)
    and the centroid are level-0 coordinates in the ``coords`` convention
    (:func:`output_coords`); measurements as
    :func:`nucleus_measurements` (µm values only when the slide has a pixel size), at the
    top of ``properties`` and again under QuPath's ``measurements``; ``id`` from
    :func:`feature_id`.
    """
    m = {k: v for k, v in nucleus_measurements(n, slide, coords, region).items() if v is not None}
    polygons = [[_round(output_coords(r, slide, coords, region)) for r in p] for p in n.polygons]
    geometry = (
        {"type": "Polygon", "coordinates": polygons[0]}
        if len(polygons) == 1
        else {"type": "MultiPolygon", "coordinates": polygons}
    )
    return {
        "type": "Feature",
        "id": feature_id(slide.path.name, slide.level, n.id),
        "geometry": geometry,
        "properties": {
            "objectType": "detection",
            "classification": CLASSIFICATION,
            "label": n.id,
            **m,
            "measurements": m,
        },
    }


def nucleus_row(
    n: Nucleus, slide: Slide, coords: str = "qupath", region: SourceRegion | None = None
) -> list[Any]:
    """One CSV row (:data:`CSV_COLUMNS`): the GeoJSON feature's ``id`` (a UUID), the
    instance ``label`` (its value in ``instances.tif``), the measurements; µm columns empty
    without a pixel size."""
    m = nucleus_measurements(n, slide, coords, region)
    uid = feature_id(slide.path.name, slide.level, n.id)
    return [uid, n.id, *("" if v is None else v for v in m.values())]


def write_nuclei(
    nuclei: Iterator[Nucleus],
    slide: Slide,
    geojson: Path,
    csv_path: Path,
    coords: str = "qupath",
    region: SourceRegion | None = None,
) -> int:
    """Streams nuclei into a GeoJSON FeatureCollection and a CSV; returns their number.

    Args:
        nuclei: the nuclei (coordinates of the level read, package convention).
        slide: the input (level, downsample, pixel size, file name for the ids).
        geojson: FeatureCollection file to write.
        csv_path: CSV file to write (header :data:`CSV_COLUMNS`).
        coords: ``qupath`` or ``pixel-centre`` output coordinates.
        region: the source slide the input was exported from (:func:`source_region`), whose
            level-0 frame the coordinates are then in, or ``None``.
    """
    count = 0
    with (
        open(geojson, "w", encoding="utf-8") as gj,
        open(csv_path, "w", encoding="utf-8", newline="") as cf,
    ):
        writer = csv.writer(cf)
        writer.writerow(CSV_COLUMNS)
        gj.write('{"type": "FeatureCollection", "features": [\n')
        for n in nuclei:
            feature = nucleus_feature(n, slide, coords, region)
            gj.write((",\n" if count else "") + json.dumps(feature))
            writer.writerow(nucleus_row(n, slide, coords, region))
            count += 1
        gj.write("\n]}\n")
    return count


# ------------------------------------------------------------------------------- driver


def _mask_255(mask: np.ndarray) -> np.ndarray:
    """0/1 mask -> 0/255 uint8."""
    return np.asarray(mask, np.uint8) * np.uint8(255)


def predict_slide(
    model: Callable[[torch.Tensor], torch.Tensor],
    slide: Slide,
    out_dir: Path,
    cfg: PredictConfig,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    resolution: ResolutionCheck | None = None,
    region: SourceRegion | None = None,
) -> dict[str, Any]:
    """Runs one opened slide into ``out_dir`` (which must exist and be empty).

    Args:
        model: ``(N, 3, T, T)`` RGB 0..255 -> ``(N, 1, T, T)`` logits, prepared for
            ``device`` (:func:`pseudoedgenet.inference.predict.prepare_predictor`).
        slide: the input, opened at the level to read.
        out_dir: folder for the outputs (see the module docstring).
        cfg: options.
        device: where the model runs.
        autocast_dtype: mixed precision dtype or ``None``.
        resolution: how the level read compares with the training pixel size
            (:func:`open_input`), recorded in ``predict.json``; ``None``: not checked.
        region: the source slide the input was exported from (:func:`source_region`): the
            GeoJSON/CSV are then in its level-0 frame; ``None``: the input's own.

    Returns:
        The run summary written to ``predict.json``.
    """
    t0 = time.perf_counter()
    h, w = slide.shape
    large = slide.pyramidal or h * w > cfg.large_pixels
    step = cfg.tile - 2 * cfg.overlap
    scratch = out_dir / "_scratch" if large else None
    if scratch is not None:
        scratch.mkdir()
    stores = _Stores((h, w), step, scratch)
    prob, mask = stores.new("prob", np.uint8), stores.new("mask", np.uint8)

    tiles = make_tiles((h, w), cfg.tile, cfg.overlap)
    whole = cfg.whole_image
    if whole is None:
        whole = not slide.pyramidal and h * w <= cfg.whole_max_pixels
    use_tissue = slide.pyramidal if cfg.tissue_mask is None else cfg.tissue_mask
    run: list[Tile] = tiles
    if use_tissue and not whole:
        run = tiles_with_tissue(tiles, tissue_mask(slide.thumbnail(1024)), (h, w))

    thr = cfg.threshold
    seen = {"pixels": 0, "foreground": 0}  # over the tiles run, for the coverage note

    def write(t: Tile, p: np.ndarray) -> None:
        y0, y1, x0, x1 = t.write
        fg = foreground(p, thr)
        prob[y0:y1, x0:x1] = np.rint(p * 255.0).astype(np.uint8)
        mask[y0:y1, x0:x1] = fg.astype(np.uint8)
        seen["pixels"] += fg.size
        seen["foreground"] += int(np.count_nonzero(fg))

    if whole:
        run = [Tile((0, h, 0, w), (0, h, 0, w))]
        p = predict_whole(model, slide.read((0, h, 0, w)), device, autocast_dtype)
        write(run[0], p)
        del p
    else:
        predict_tiles(
            model,
            slide.window,
            run,
            write,
            batch_size=cfg.batch_size,
            device=device,
            autocast_dtype=autocast_dtype,
            progress=cfg.progress,
            desc=image_stem(slide.path),
        )
    t_pred = time.perf_counter() - t0

    block = step * max(1, 2048 // step)
    areas = area_filter(cfg, slide, region)
    post = cfg.postprocess(block, areas)
    labels = stores.new("labels", np.uint32)
    comps = label_components(mask, labels, post)
    instances = stores.new("split", np.uint32) if post.watershed else labels
    pieces: Counter[str] = Counter()
    n_nuclei = write_nuclei(
        iter_nuclei(labels, prob, comps, post, instances if post.watershed else None, pieces),
        slide,
        out_dir / "nuclei.geojson",
        out_dir / "nuclei.csv",
        cfg.coords,
        region,
    )
    removed = {
        "smaller": comps.removed_small + pieces["small"],
        "larger": comps.removed_large + pieces["large"],
        "bounding_box": comps.removed_box,
    }

    rasters = [
        ("prob.tif", prob, np.uint8, None),
        ("mask.tif", mask, np.uint8, _mask_255),
        ("instances.tif", instances, np.uint32, None),
    ]
    raster_levels = 1
    for name, store, dtype, fn in rasters:
        if not large:
            if name == "mask.tif":
                write_png(out_dir / "mask.png", _mask_255(np.asarray(mask)))
            else:
                write_tiff(out_dir / name, store, dtype, False, slide.mpp)
            continue
        reduced = build_pyramid(store, dtype, PYRAMID_REDUCE[name], stores.new, name)
        uid = str(uuid.uuid5(_ID_NAMESPACE, f"{slide.path.name}|level {slide.level}|{name}"))
        write_tiff(out_dir / name, store, dtype, True, slide.mpp, fn, reduced=reduced, uid=uid)
        raster_levels = 1 + len(reduced)
    write_png(out_dir / "overlay.png", render_overlay(slide, instances, cfg.overlay_max_side))
    if scratch is not None:
        shutil.rmtree(scratch)

    summary: dict[str, Any] = {
        "input": str(slide.path),
        "level": slide.level,
        "level_count": slide.level_count,
        "shape": [h, w],
        "level0_shape": list(slide.level0_shape),
        "downsample": list(slide.downsample),
        "mpp": None if slide.mpp is None else list(slide.mpp),
        "resolution": None if resolution is None else asdict(resolution),
        "source_region": None if region is None else asdict(region),
        "whole_image": bool(whole),
        "tiles": 1 if whole else len(tiles),
        "tiles_run": len(run),
        "tissue_mask": bool(use_tissue),
        "coords": cfg.coords,
        "nuclei": n_nuclei,
        "foreground_fraction": round(seen["foreground"] / max(seen["pixels"], 1), 4),
        "objects_removed": sum(removed.values()),
        "removed": removed,
        "area_filter": asdict(areas),
        "max_size_level_px": cfg.max_size,
        "raster_levels": raster_levels,
        "pyramid_reduce": PYRAMID_REDUCE if large else None,
        "device": str(device),
        "precision": precision_name(autocast_dtype),
        "predict_s": round(t_pred, 2),
        "total_s": round(time.perf_counter() - t0, 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "megapixels_per_s": round(
            sum((t.write[1] - t.write[0]) * (t.write[3] - t.write[2]) for t in run)
            / 1e6
            / max(t_pred, 1e-9),
            3,
        ),
        "config": asdict(cfg),
        "version": __version__,
    }
    write_json(out_dir / "predict.json", summary)
    return summary


@dataclass(frozen=True)
class ResolutionCheck:
    """How the pixel size of one input compares with the model's training pixel size.

    Attributes:
        training_mpp: µm/px of the training images, or ``None`` when the model does not
            record it.
        input_mpp: µm/px (x) of the level read, or ``None`` when the input has no pixel size.
        status: ``as-trained`` (within :data:`~pseudoedgenet.data.slide.MPP_TOLERANCE`),
            ``any-resolution`` (farther, allowed by ``--any-resolution``) or
            ``not-checked`` (a pixel size is unknown on one side).
        ignored_mpp: the level-0 pixel size the input's tags give when it is no scan's
            (:attr:`~pseudoedgenet.data.slide.Slide.ignored_mpp`), else ``None``.
        declared_mpp: the level-0 pixel size declared by ``--input-mpp`` when the input
            records none, so ``input_mpp`` comes from it; else ``None``.
        agreeing_mpp: the ``--input-mpp`` given for an input that records its own level-0
            pixel size within :data:`~pseudoedgenet.data.slide.MPP_TOLERANCE` of it (the
            file's is used); else ``None``.
    """

    training_mpp: float | None
    input_mpp: float | None
    status: str
    ignored_mpp: float | None = None
    declared_mpp: float | None = None
    agreeing_mpp: float | None = None

    def text(self) -> str:
        """A few words for the per-input line: ``"0.252 µm/px as trained"``, ..."""
        declared = " (--input-mpp)" if self.declared_mpp is not None else ""
        if self.agreeing_mpp is not None:
            declared = f" (the file's; --input-mpp {self.agreeing_mpp:g} agrees)"
        have = f"{self.input_mpp:.3g} µm/px{declared}" if self.input_mpp is not None else ""
        if self.status == "as-trained":
            return f"{have} as trained"
        if self.status == "any-resolution":
            return f"{have}, trained at {self.training_mpp:.3g} (--any-resolution)"
        if self.input_mpp is None and self.training_mpp is None:
            return "pixel size unknown on both sides: not checked"
        if self.input_mpp is None:
            trained = f"{self.training_mpp:.3g} µm/px"
            what = "no pixel size in the input"
            if self.ignored_mpp is not None:
                what = f"the input's tags give {self.ignored_mpp:.4g} µm/px, no scan's (ignored)"
            return f"{what}: not checked against the trained {trained} (--input-mpp declares it)"
        trained = "the model records no training pixel size"
        return f"{have}, {trained}: not checked"


def open_input(
    path: Path, cfg: PredictConfig, training_mpp: float | None
) -> tuple[Slide, ResolutionCheck]:
    """Opens one input at the level to read, checked against the training pixel size.

    The level is ``cfg.level``, the one nearest ``cfg.mpp``, or, with neither and a pixel
    size known on both sides, the one nearest ``training_mpp`` (else level 0). Nothing is
    resampled: a network trained at 0.25 µm/px sees nuclei half as large at 0.5 µm/px,
    so a level whose pixel size differs from ``training_mpp`` by more than
    :data:`~pseudoedgenet.data.slide.MPP_TOLERANCE` is refused unless
    ``cfg.any_resolution``.

    Args:
        path: the input.
        cfg: options (``level``, ``mpp``, ``input_mpp``, ``any_resolution``).
        training_mpp: µm/px of the model's training images, or ``None`` when unknown.

    Returns:
        The open slide (close it) and the :class:`ResolutionCheck`.

    Raises:
        DataError: see :func:`~pseudoedgenet.data.slide.open_slide`; a level off the
            training pixel size without ``cfg.any_resolution`` (the message names the
            level to pass, or says no level is near).
    """
    slide = open_slide(path, cfg.level, cfg.mpp, declared_mpp=cfg.input_mpp)
    mpps = slide.level_mpp
    declared = slide.declared_mpp
    agreeing = cfg.input_mpp if declared is None else None  # else open_slide refused it
    known = {"ignored_mpp": slide.ignored_mpp, "declared_mpp": declared, "agreeing_mpp": agreeing}
    if training_mpp is None or mpps is None:
        have = None if mpps is None else mpps[slide.level]
        return slide, ResolutionCheck(training_mpp, have, "not-checked", **known)
    nearest = nearest_level(mpps, training_mpp)
    chosen = cfg.level is not None or cfg.mpp is not None
    if not chosen and nearest != slide.level:
        slide.close()
        slide = open_slide(path, nearest, declared_mpp=cfg.input_mpp)
    have = mpps[slide.level]
    if near_mpp(have, training_mpp):
        return slide, ResolutionCheck(training_mpp, have, "as-trained", **known)
    if cfg.any_resolution:
        return slide, ResolutionCheck(training_mpp, have, "any-resolution", **known)
    slide.close()
    if near_mpp(mpps[nearest], training_mpp) and cfg.mpp is not None:
        fix = f"pass --mpp {training_mpp:.3g} (level {nearest}, {mpps[nearest]:.3g} µm/px)"
    elif near_mpp(mpps[nearest], training_mpp):
        fix = f"pass --level {nearest} ({mpps[nearest]:.3g} µm/px)"
    elif declared is not None:  # the pixel size is the user's, of a one-level image
        fix = f"check --input-mpp {declared:g}, or export the image at {training_mpp:.3g} µm/px"
    elif len(mpps) == 1:
        fix = f"this image has no other level: export it at {training_mpp:.3g} µm/px"
    else:
        levels = ", ".join(f"{m:.3g}" for m in mpps)
        fix = f"no level of this file is within {MPP_TOLERANCE:.0%} of it (levels: {levels} µm/px)"
    given = " (--input-mpp)" if declared is not None else ""
    raise DataError(
        path,
        f"level {slide.level} is {have:.3g} µm/px{given} but the model was trained at "
        f"{training_mpp:.3g} µm/px (nothing is resampled): {fix}, or pass --any-resolution "
        "to predict at this level anyway",
    )


def _region(path: Path, slide: Slide, cfg: PredictConfig) -> SourceRegion | None:
    """:func:`source_region` of one input when ``cfg.region_from_name``; closes ``slide``
    on an error."""
    if not cfg.region_from_name:
        return None
    try:
        return source_region(path, slide.level0_shape)
    except DataError:
        slide.close()
        raise


def predict_files(
    checkpoint: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    cfg: PredictConfig | None = None,
    shard: tuple[int, int] = (0, 1),
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Predicts every input of this shard into ``OUT/<stem>/``.

    Inputs are validated first (existence, format, name clashes, existing outputs, readable
    header; then, with the checkpoint's training pixel size read, the level), so bad input
    fails before the model is built.

    Args:
        checkpoint: exported f file or training checkpoint.
        inputs: images or slides.
        out: output folder (created).
        cfg: options.
        shard: ``(i, n)``: process inputs ``i, i + n, i + 2n, ...``.
        force: replace existing output folders.
        log: where the one-line summary per input goes (or the one line saying that no
            input falls in this shard).

    Returns:
        One summary dict per processed input (empty for a shard without inputs).

    Raises:
        DataError: bad input (nothing is written for it).
        ConfigError: bad options.
    """
    cfg = cfg or PredictConfig()
    out = Path(out)
    mine = shard_inputs([Path(p) for p in inputs], shard)
    if not mine:  # more shards than inputs: say so, nothing to do (not an error)
        log(f"shard {shard[0]}/{shard[1]}: no input of {len(inputs)} falls in this shard")
        return []
    paths = check_inputs(mine, out, force)
    weights = read_weights(checkpoint)
    for p in paths:
        slide, _ = open_input(p, cfg, weights.training_mpp)
        with slide:
            area_filter(cfg, slide, _region(p, slide, cfg))
    device = resolve_device(cfg.device)
    model, dtype = prepare_predictor(
        segmenter_from(weights),
        device,
        cfg.precision,
        compile_batch=cfg.batch_size if cfg.compile else None,
    )
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for p in paths:
        # OUT/<stem>/ appears whole or not at all (replacing an earlier one: --force was
        # checked with the inputs)
        try:
            slide, check = open_input(p, cfg, weights.training_mpp)
            region = _region(p, slide, cfg)
            with slide, atomic_dir(out / image_stem(p), replace=True) as tmp:
                summary = predict_slide(model, slide, tmp, cfg, device, dtype, check, region)
        except OSError as exc:  # disk full, permissions: nothing half-written is left
            raise DataError(
                out / image_stem(p), f"cannot write outputs ({exc.strerror or exc})"
            ) from None
        summaries.append(summary)
        log(
            f"{p.name}: {summary['nuclei']} {'nucleus' if summary['nuclei'] == 1 else 'nuclei'}"
            f" ({removal_text(summary)}), level "
            f"{summary['level']} {summary['shape'][1]}x{summary['shape'][0]} "
            f"({check.text()}), "
            + ("" if region is None else f"{region.text()}, ")
            + f"{summary['tiles_run']}/{summary['tiles']} tiles, {summary['total_s']:.1f}s "
            f"-> {out / image_stem(p)}"
        )
        note = coverage_note(summary, cfg.threshold)
        if note:
            log(f"{p.name}: {note}")
    return summaries


#: above this share of the pixels read marked as nucleus, predict says f looks undertrained
#: (nuclei cover about 10–25 % of H&E tissue: 12.5 % on TNBC, 22 % on its densest fold)
COVERAGE_HIGH = 0.6


def coverage_note(summary: dict[str, Any], threshold: float) -> str | None:
    """A note when f's mask is implausible for nuclei, else ``None``: it covers more than
    :data:`COVERAGE_HIGH` of the pixels read (an undertrained f marks most tissue, which
    then merges into objects the size filters remove), or no pixel at all."""
    frac = float(summary["foreground_fraction"])
    if frac > COVERAGE_HIGH:
        return (
            f"note: f marks {100 * frac:.0f} % of the pixels read as nucleus (threshold "
            f"{threshold:g}), far more than nuclei cover: the model looks undertrained; "
            "train it longer, or raise --threshold"
        )
    if frac == 0:
        return (
            f"note: f marks no pixel as nucleus (threshold {threshold:g}): check the input's "
            "staining and pixel size against the training data, or lower --threshold"
        )
    return None


def removal_text(summary: dict[str, Any]) -> str:
    """``"removed: 56 smaller than 10 µm², 2 larger than 400 µm², 0 with a bounding box
    side over 1024 px"`` from a :func:`predict_slide` summary (inactive filters left out)."""
    removed, af = summary["removed"], AreaFilter(**summary["area_filter"])
    parts = []
    if af.min > 0:
        parts.append(f"{removed['smaller']} smaller than {af.text(af.min)}")
    if af.max is not None:
        parts.append(f"{removed['larger']} larger than {af.text(af.max)}")
    parts.append(
        f"{removed['bounding_box']} with a bounding box side over "
        f"{summary['max_size_level_px']} px of the level read"
    )
    return "removed: " + ", ".join(parts)
