"""Reading images and whole-slide files region by region, at a chosen level.

One interface, :class:`Slide`, covers

- plain PNG/JPEG/TIFF images, decoded into memory with :func:`pseudoedgenet.data.io.read_image`
  (:class:`ArraySlide`);
- pyramidal or large TIFF-based slides (``.svs``, ``.ndpi``, ``.scn``, ``.bif``, generic
  tiled/pyramidal ``.tif``) through `tiffslide <https://github.com/Bayer-Group/tiffslide>`_
  (:class:`TiffSlideSlide`), which reads only the TIFF tiles a region touches;
- other vendor formats (``.mrxs``, ``.vms``, ...) through OpenSlide when ``openslide-python``
  is installed (:class:`OpenSlideSlide`; optional, the import is guarded).

A slide is read at one pyramid *level*; every box and shape here is in pixels of that level,
``(y0, y1, x0, x1)`` half-open, ``(H, W)``. Results are reported in *level-0* pixel
coordinates: with the package's point convention (``(x, y)`` = (column, row), a pixel centred
at integer coordinates), level pixel ``(x, y)`` has its centre at level-0
``((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5)``, where ``(sx, sy)`` is the level's
:attr:`Slide.downsample`; in QuPath's convention (integer coordinates at pixel corners, i.e.
package ``+ 0.5``) it covers ``[x * sx, (x + 1) * sx) x [y * sy, (y + 1) * sy)`` (see
:meth:`Slide.to_level0`).

Boxes that reach past the borders are read by reflection (:func:`read_window` on arrays,
:meth:`Slide.window` on slides), as the tiled predictor needs them.

Tissue is told from glass with :func:`tissue_mask`: Otsu's threshold on the luminance of a
low-resolution thumbnail (Otsu, 1979, "A threshold selection method from gray-level
histograms", IEEE Trans. SMC 9(1)); prediction skips background tiles with it
(:func:`pseudoedgenet.inference.tiling.tiles_with_tissue`).

This is the data layer's reader: ``prepare qupath`` and ``predict`` both open images with
:func:`open_slide`. :func:`write_synthetic_slide` writes a pyramidal test slide.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from pseudoedgenet.data.io import read_image
from pseudoedgenet.errors import DataError

PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
TIFFSLIDE_SUFFIXES = (".svs", ".ndpi", ".scn", ".bif", ".svslide")
OPENSLIDE_SUFFIXES = (".mrxs", ".vms", ".vmu")
SUPPORTED_SUFFIXES = PLAIN_SUFFIXES + TIFF_SUFFIXES + TIFFSLIDE_SUFFIXES + OPENSLIDE_SUFFIXES

#: Output coordinate conventions of :meth:`Slide.to_level0`: QuPath's (integer coordinates
#: at pixel corners) and the package's (integer coordinates at pixel centres).
COORDS = ("qupath", "pixel-centre")

#: Level-0 pixel sizes above this many µm/px are not a scan for nuclei (a 1.25x objective
#: gives ~8): resolution tags left at a screen or print default (72 dpi = 353 µm/px;
#: libvips' 1 px/mm = 1000 µm/px), or a magnification typed as a pixel size (``--mpp 40``).
#: A file claiming one is read as having no pixel size (:attr:`Slide.ignored_mpp`).
MAX_SCAN_MPP = 10.0
#: Level-0 pixel sizes below this many µm/px are no light microscope's either.
MIN_SCAN_MPP = 0.01

#: A TIFF with more pixels than this (or with a pyramid) is read region by region.
LARGE_PIXELS = 8192 * 8192

Box = tuple[int, int, int, int]


def image_stem(path: str | Path) -> str:
    """An image's name without its format suffix: ``img`` for ``img.png``, and for OME-TIFFs
    ``img`` for ``img.ome.tif`` too (``.ome`` is part of the format, as QuPath names its
    exports), so its GeoJSON is ``img.geojson`` and its outputs ``img/``."""
    path = Path(path)
    stem = path.stem
    if path.suffix.lower() in TIFF_SUFFIXES and stem.lower().endswith(".ome"):
        stem = stem[: -len(".ome")]
    return stem


def read_window(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Reads ``image[y0:y1, x0:x1]``, reflecting at the image borders where the box exceeds it.

    Works for boxes larger than the image (the reflection repeats, ``numpy.pad`` mode
    ``symmetric``). Shapes: ``(H, W, ...)`` -> ``(y1 - y0, x1 - x0, ...)``.
    """
    y0, y1, x0, x1 = box
    h, w = image.shape[:2]
    cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    crop = image[cy0:cy1, cx0:cx1]
    pad = [(cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1)] + [(0, 0)] * (image.ndim - 2)
    if any(p for pair in pad for p in pair):
        crop = np.pad(crop, pad, mode="symmetric")
    return crop


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Slide(ABC):
    """An image read region by region at one pyramid level.

    Attributes:
        path: the file.
        level: the pyramid level read (0 = full resolution).
        level_count: number of levels in the file.
        shape: ``(H, W)`` of the level read.
        level0_shape: ``(H0, W0)`` of level 0.
        mpp: microns per pixel ``(x, y)`` at the level read, or ``None`` when unknown.
        level_mpp: microns per pixel (x) of every level, level 0 first, or ``None`` when
            unknown.
        ignored_mpp: a level-0 pixel size the file's tags give but no scan has (outside
            :data:`MIN_SCAN_MPP`..:data:`MAX_SCAN_MPP`), read as unknown; ``None``
            otherwise.
        declared_mpp: the level-0 pixel size the user declared (``--input-mpp``) when the
            file records none, so ``mpp`` comes from it; ``None`` otherwise.
        pyramidal: ``True`` for slides read region by region (outputs are then streamed to
            disk), ``False`` for an image held in memory.
    """

    path: Path
    level: int
    level_count: int
    shape: tuple[int, int]
    level0_shape: tuple[int, int]
    mpp: tuple[float, float] | None
    level_mpp: list[float] | None
    pyramidal: bool
    ignored_mpp: float | None = None
    declared_mpp: float | None = None

    @property
    def downsample(self) -> tuple[float, float]:
        """``(sx, sy)``: level-0 pixels per pixel of the level read, in x and y."""
        return (self.level0_shape[1] / self.shape[1], self.level0_shape[0] / self.shape[0])

    def to_level0(self, xy: np.ndarray, coords: str = "pixel-centre") -> np.ndarray:
        """Maps ``(x, y)`` coordinates of the level read to level-0 coordinates.

        The input is in the package's convention at the level read (pixel centres at
        integers). ``coords`` chooses the output convention:

        - ``"pixel-centre"`` (the package's): level-0 pixel centres at integers; level
          pixel ``(x, y)`` is centred at ``((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5)``.
        - ``"qupath"`` (QuPath's): integers at pixel *corners*, so every value is the
          pixel-centre one ``+ 0.5``; level pixel ``(x, y)`` covers
          ``[x * sx, (x + 1) * sx) x [y * sy, (y + 1) * sy)`` and is centred at
          ``((x + 0.5) * sx, (y + 0.5) * sy)``.

        Shape:
            ``(..., 2)`` float, ``(x, y)`` = (column, row) -> same shape, float64.
        """
        if coords not in COORDS:
            raise ValueError(f"coords must be one of {', '.join(COORDS)}, got {coords!r}")
        sx, sy = self.downsample
        xy = np.asarray(xy, dtype=np.float64)
        shift = 0.0 if coords == "qupath" else 0.5
        return np.stack([(xy[..., 0] + 0.5) * sx - shift, (xy[..., 1] + 0.5) * sy - shift], axis=-1)

    @abstractmethod
    def read(self, box: Box) -> np.ndarray:
        """Reads a box that lies inside the level.

        Args:
            box: ``(y0, y1, x0, x1)`` with ``0 <= y0 < y1 <= H`` and ``0 <= x0 < x1 <= W``.

        Returns:
            ``(y1 - y0, x1 - x0, 3)`` uint8 RGB.

        Raises:
            DataError: the file cannot be decoded there (truncated or corrupt).
        """

    def window(self, box: Box) -> np.ndarray:
        """Reads any box, reflecting at the level's borders like :func:`read_window`.

        Shape:
            ``(y1 - y0, x1 - x0, 3)`` uint8 RGB; equal to ``read_window(whole_level, box)``.
        """
        y0, y1, x0, x1 = box
        h, w = self.shape
        cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
        crop = self.read((cy0, cy1, cx0, cx1))
        return read_window(crop, (y0 - cy0, y1 - cy0, x0 - cx0, x1 - cx0))

    @abstractmethod
    def _best_level(self, downsample: float) -> tuple[int, tuple[int, int]]:
        """The coarsest level at most ``downsample`` times smaller than level 0, its (H, W)."""

    @abstractmethod
    def _read_level(self, level: int, box: Box) -> np.ndarray:
        """Reads a box of another level (``(h, w, 3)`` uint8)."""

    def thumbnail(self, max_side: int = 1024) -> np.ndarray:
        """The whole slide, downsampled so that its longer side is at most ``max_side``.

        Reads the coarsest pyramid level that is still finer than needed, strip by strip,
        so memory stays bounded for single-level slides too.

        Returns:
            ``(h, w, 3)`` uint8 RGB covering the full level-0 extent,
            ``h = max(1, round(H0 / f))``, ``w = max(1, round(W0 / f))`` with
            ``f = max(H0, W0) / max_side`` (no upsampling: ``f >= 1``).
        """
        h0, w0 = self.level0_shape
        f = max(1.0, max(h0, w0) / max_side)
        size = (max(1, round(w0 / f)), max(1, round(h0 / f)))
        level, (lh, lw) = self._best_level(f)
        stride = max(1, int(f / max(h0 / lh, w0 / lw)))
        strip = max(stride, (2048 // stride) * stride)
        parts = [
            self._read_level(level, (y, min(y + strip, lh), 0, lw))[::stride, ::stride]
            for y in range(0, lh, strip)
        ]
        small = np.concatenate(parts, axis=0)
        if (small.shape[1], small.shape[0]) != size:
            small = np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BILINEAR))
        return small

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases the file handle (no-op for in-memory images)."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArraySlide(Slide):
    """An image held in memory (one level).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        path: where it came from (for messages and output names).
        mpp: microns per pixel ``(x, y)``, if known.
    """

    def __init__(
        self,
        image: np.ndarray,
        path: str | Path = "<array>",
        mpp: tuple[float, float] | None = None,
    ) -> None:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
        self.image = image
        self.path = Path(path)
        self.level = 0
        self.level_count = 1
        self.shape = (int(image.shape[0]), int(image.shape[1]))
        self.level0_shape = self.shape
        self.mpp = mpp
        self.level_mpp = None if mpp is None else [mpp[0]]
        self.pyramidal = False

    def read(self, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        return self.image[y0:y1, x0:x1]

    def window(self, box: Box) -> np.ndarray:
        return read_window(self.image, box)

    def _best_level(self, downsample: float) -> tuple[int, tuple[int, int]]:
        return 0, self.shape

    def _read_level(self, level: int, box: Box) -> np.ndarray:
        return self.read(box)


def _as_rgb(arr: np.ndarray, path: Path) -> np.ndarray:
    """(h, w, c) slide pixels -> (h, w, 3) uint8, refusing non-8-bit data."""
    if arr.dtype != np.uint8:
        raise DataError(path, f"unsupported pixel type {arr.dtype}: expected 8-bit RGB")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


class _LevelSlide(Slide):
    """Shared level bookkeeping of the file-backed readers."""

    level_dims: list[tuple[int, int]]  # (H, W) per level

    def _init_levels(
        self,
        path: Path,
        level_dims: list[tuple[int, int]],
        mpp0: tuple[float, float] | None,
        level: int | None,
        mpp: float | None,
    ) -> None:
        self.path = path
        self.level_dims = level_dims
        self.level_count = len(level_dims)
        self.level0_shape = level_dims[0]
        self.level = select_level(path, level_dims, mpp0, level, mpp)
        self.shape = level_dims[self.level]
        self.pyramidal = True
        self.mpp = None
        self.level_mpp = None if mpp0 is None else level_mpps(level_dims, mpp0)
        if mpp0 is not None:
            sx, sy = self.downsample
            self.mpp = (mpp0[0] * sx, mpp0[1] * sy)

    def _init_from_handle(
        self,
        path: Path,
        prefix: str,
        level: int | None,
        mpp: float | None,
        declared: float | None,
    ) -> None:
        """Reads level sizes and ``<prefix>.mpp-x/y`` from the open ``self._slide`` handle
        (tiffslide and OpenSlide share this API), applies a declared level-0 pixel size
        (:func:`declare_mpp`) and picks the level; closes the handle on an error."""
        slide = self._slide  # type: ignore[attr-defined]
        props = slide.properties
        dims = [(int(h), int(w)) for w, h in slide.level_dimensions]
        mpp0, self.ignored_mpp = tiff_mpp(path, props, prefix)
        try:
            mpp0, self.declared_mpp = declare_mpp(path, mpp0, declared)
            if mpp0 is None and self.ignored_mpp is not None and mpp is not None:
                raise DataError(path, _ignored_text(self.ignored_mpp))
            self._init_levels(path, dims, mpp0, level, mpp)
        except DataError:
            slide.close()
            raise
        self._downsamples = slide.level_downsamples

    def _best_level(self, downsample: float) -> tuple[int, tuple[int, int]]:
        h0, w0 = self.level0_shape
        best = 0
        for i, (h, w) in enumerate(self.level_dims):
            if max(h0 / h, w0 / w) <= downsample * 1.0001:
                best = i
        return best, self.level_dims[best]

    def read(self, box: Box) -> np.ndarray:
        return self._read_level(self.level, box)


class TiffSlideSlide(_LevelSlide):
    """A TIFF-based slide read with tiffslide (only the TIFF tiles a region touches).

    Args:
        path: ``.svs``, ``.ndpi``, ``.scn``, ``.bif`` or (pyramidal) ``.tif`` file.
        level: pyramid level to read, or ``None``.
        mpp: target microns per pixel (picks the nearest level), or ``None``. With neither,
            level 0.
        declared_mpp: level-0 microns per pixel for a file that records none
            (:func:`declare_mpp`), or ``None``.

    Raises:
        DataError: unreadable file, a level that does not exist, ``mpp`` without metadata,
            a ``declared_mpp`` the file's own contradicts.
    """

    def __init__(
        self,
        path: str | Path,
        level: int | None = None,
        mpp: float | None = None,
        declared_mpp: float | None = None,
    ):
        import tiffslide

        path = Path(path)
        try:
            self._slide = tiffslide.TiffSlide(path)
            self._init_from_handle(path, "tiffslide", level, mpp, declared_mpp)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(path, f"cannot open slide ({_first_line(exc)})") from None

    def _location(self, level: int, x: int, y: int) -> tuple[int, int]:
        """A level-0 location that tiffslide maps back to ``(x, y)`` of ``level`` exactly."""
        ds = self._downsamples[level]
        out = []
        for v in (x, y):
            b = round(v * ds)
            while int(b / ds) < v:
                b += 1
            while int(b / ds) > v:
                b -= 1
            out.append(b)
        return out[0], out[1]

    def _read_level(self, level: int, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        try:
            arr = self._slide.read_region(
                self._location(level, x0, y0), level, (x1 - x0, y1 - y0), as_array=True
            )
        except Exception as exc:
            raise DataError(
                self.path, f"cannot decode level {level} at x={x0}, y={y0} ({_first_line(exc)})"
            ) from None
        return _as_rgb(np.asarray(arr), self.path)

    def close(self) -> None:
        self._slide.close()


class OpenSlideSlide(_LevelSlide):
    """A slide read with OpenSlide (optional: ``pip install openslide-python openslide-bin``).

    Arguments and errors as :class:`TiffSlideSlide`.
    """

    def __init__(
        self,
        path: str | Path,
        level: int | None = None,
        mpp: float | None = None,
        declared_mpp: float | None = None,
    ):
        path = Path(path)
        try:
            import openslide
        except ImportError:
            raise DataError(
                path,
                "this format needs OpenSlide: pip install openslide-python openslide-bin",
            ) from None
        try:
            self._slide = openslide.OpenSlide(str(path))
        except Exception as exc:
            raise DataError(path, f"cannot open slide ({_first_line(exc)})") from None
        self._init_from_handle(path, "openslide", level, mpp, declared_mpp)

    def _read_level(self, level: int, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        ds = self._downsamples[level]
        try:
            region = self._slide.read_region(
                (round(x0 * ds), round(y0 * ds)), level, (x1 - x0, y1 - y0)
            )
        except Exception as exc:
            raise DataError(
                self.path, f"cannot decode level {level} at x={x0}, y={y0} ({_first_line(exc)})"
            ) from None
        return _as_rgb(np.asarray(region.convert("RGB")), self.path)

    def close(self) -> None:
        self._slide.close()


#: How far (relative) the level read may be from a requested ``--mpp``: scanners' pixel
#: sizes differ slightly from the nominal 0.25/0.5 µm (MoNuSeg: 0.252), but a level twice
#: as coarse as asked for is a different magnification, never silently substituted.
MPP_TOLERANCE = 0.2


#: Micrometres per unit of the OME ``PhysicalSizeXUnit`` values a light microscope's pixel
#: size is written in (OME's default unit is µm).
OME_UNITS_UM = {
    "\u00b5m": 1.0,  # micro sign, as OME writes it
    "\u03bcm": 1.0,  # Greek mu
    "um": 1.0,
    "nm": 1e-3,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}


def ome_mpp(path: Path) -> tuple[float, float] | None:
    """Level-0 pixel size ``(x, y)`` in µm from an OME-TIFF's OME-XML (``PhysicalSizeX/Y``
    and their units on the first image's ``Pixels``), as QuPath and Bio-Formats write it
    (tiffslide reads only resolution tags). ``None`` for a TIFF without OME-XML, without a
    ``PhysicalSizeX``, or with a unit not in :data:`OME_UNITS_UM`."""
    import xml.etree.ElementTree as ET

    try:
        with tifffile.TiffFile(path) as tf:
            xml = tf.ome_metadata if tf.is_ome else None
        if not xml:
            return None
        root = ET.fromstring(xml)
    except Exception:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    size: list[float] = []
    for axis in ("X", "Y"):
        value = pixels.get(f"PhysicalSize{axis}")
        unit = OME_UNITS_UM.get(pixels.get(f"PhysicalSize{axis}Unit", "\u00b5m"))
        if value is None or unit is None:
            break
        try:
            size.append(float(value) * unit)
        except ValueError:
            return None
    if not size or not math.isfinite(size[0]) or size[0] <= 0:
        return None
    return size[0], size[1] if len(size) == 2 and size[1] > 0 else size[0]


def tiff_mpp(
    path: Path, props: Any, prefix: str
) -> tuple[tuple[float, float] | None, float | None]:
    """:func:`scan_mpp` of a slide's properties; for a TIFF whose resolution tags give no
    scan's pixel size, the OME-XML's (:func:`ome_mpp`) when it gives one in range."""
    mpp0, ignored = scan_mpp(props, prefix)
    if mpp0 is None and path.suffix.lower() in TIFF_SUFFIXES:
        ome = ome_mpp(path)
        if ome is not None:
            if MIN_SCAN_MPP <= ome[0] <= MAX_SCAN_MPP:
                return ome, None
            return None, ignored if ignored is not None else ome[0]
    return mpp0, ignored


def scan_mpp(props: Any, prefix: str) -> tuple[tuple[float, float] | None, float | None]:
    """Level-0 pixel size from a tiffslide/OpenSlide ``properties`` mapping.

    Returns:
        ``(mpp0, ignored)``: ``mpp0`` = ``(x, y)`` µm/px, or ``None`` when the file gives
        none or one outside :data:`MIN_SCAN_MPP`..:data:`MAX_SCAN_MPP` (then ``ignored`` is
        that value).
    """
    mx, my = props.get(f"{prefix}.mpp-x"), props.get(f"{prefix}.mpp-y")
    if not mx:
        return None, None
    mpp0 = (float(mx), float(my or mx))
    if not MIN_SCAN_MPP <= mpp0[0] <= MAX_SCAN_MPP:
        return None, mpp0[0]
    return mpp0, None


def _ignored_text(ignored: float) -> str:
    return (
        f"its resolution tags give {ignored:.4g} µm/px, a screen or print default rather than "
        "a scan's pixel size: choose a level instead of --mpp, or declare the pixel size "
        "with --input-mpp"
    )


def declare_mpp(
    path: Path, mpp0: tuple[float, float] | None, declared: float | None
) -> tuple[tuple[float, float] | None, float | None]:
    """Applies a level-0 pixel size the user declared (``--input-mpp``) to one file.

    PNG/JPEG images, TIFFs without resolution tags and files whose tags are no scan's
    (:func:`scan_mpp`) record no pixel size; a declared one stands in for it. A file that
    records one keeps its own; a declaration that contradicts it (more than
    :data:`MPP_TOLERANCE` apart) is refused rather than either value being quietly used.

    Args:
        path: the file (for the error message).
        mpp0: the level-0 ``(x, y)`` µm/px the file records, or ``None``.
        declared: the declared µm/px, or ``None``.

    Returns:
        ``(mpp0, applied)``: the level-0 pixel size to use, and ``declared`` when it was
        applied (the file records none), else ``None``.

    Raises:
        DataError: the file records a pixel size more than :data:`MPP_TOLERANCE` away from
            ``declared``.
    """
    if declared is None:
        return mpp0, None
    if mpp0 is None:
        return (declared, declared), declared
    if near_mpp(mpp0[0], declared):
        return mpp0, None
    raise DataError(
        path,
        f"the file records {mpp0[0]:.4g} µm/px at level 0 but --input-mpp says {declared:g}: "
        "drop --input-mpp (it is for inputs that record no pixel size) or check the file",
    )


def _small_tiff_mpp(path: Path) -> tuple[tuple[float, float] | None, float | None]:
    """:func:`tiff_mpp` of a TIFF read into memory (its resolution tags as tiffslide reads
    them, else its OME-XML's; ``(None, None)`` when it cannot)."""
    import tiffslide

    try:
        with tiffslide.TiffSlide(path) as ts:
            props = dict(ts.properties)
    except Exception:
        props = {}
    return tiff_mpp(path, props, "tiffslide")


def level_mpps(level_dims: Sequence[tuple[int, int]], mpp0: tuple[float, float]) -> list[float]:
    """Microns per pixel (x) of every level: level 0's times its downsample in x.

    Args:
        level_dims: ``(H, W)`` of every level, level 0 first.
        mpp0: microns per pixel ``(x, y)`` of level 0.
    """
    w0 = level_dims[0][1]
    return [mpp0[0] * w0 / w for _, w in level_dims]


def nearest_level(mpps: Sequence[float], mpp: float) -> int:
    """The level whose pixel size is nearest ``mpp`` in log scale (the first on a tie)."""
    return int(np.argmin([abs(math.log(m / mpp)) for m in mpps]))


def near_mpp(have: float, want: float) -> bool:
    """Whether a pixel size ``have`` is within :data:`MPP_TOLERANCE` of ``want`` (relative)."""
    return abs(have / want - 1.0) <= MPP_TOLERANCE


def select_level(
    path: Path,
    level_dims: Sequence[tuple[int, int]],
    mpp0: tuple[float, float] | None,
    level: int | None,
    mpp: float | None,
) -> int:
    """Chooses the pyramid level to read.

    Args:
        path: the slide (for messages).
        level_dims: ``(H, W)`` of every level, level 0 first.
        mpp0: microns per pixel ``(x, y)`` of level 0, or ``None`` when the file lacks it.
        level: an explicit level, or ``None``.
        mpp: a target resolution in microns per pixel, or ``None``: the level whose
            resolution is nearest in log scale (no resampling), which must lie within
            :data:`MPP_TOLERANCE` of it.

    Returns:
        The level index (0 when neither ``level`` nor ``mpp`` is given).

    Raises:
        DataError: both given, a level that does not exist, ``mpp`` without metadata, or
            no level within :data:`MPP_TOLERANCE` of ``mpp`` (the message lists the levels).
    """
    n = len(level_dims)
    if level is not None and mpp is not None:
        raise DataError(
            path, "--level and --mpp both given: give one of them (a level index or µm/px)"
        )
    if level is not None:
        if not 0 <= level < n:
            levels = "level 0" if n == 1 else f"levels 0..{n - 1}"
            raise DataError(path, f"level {level} does not exist (the file has {levels})")
        return level
    if mpp is not None:
        if not (mpp > 0 and math.isfinite(mpp)):
            raise DataError(path, f"target mpp must be a positive number, got {mpp}")
        if mpp0 is None:
            raise DataError(
                path,
                "no microns-per-pixel metadata: choose a level instead of --mpp, or declare "
                "the pixel size with --input-mpp",
            )
        mpps = level_mpps(level_dims, mpp0)
        best = nearest_level(mpps, mpp)
        if not near_mpp(mpps[best], mpp):
            have = ", ".join(f"level {i}: {m:.3g}" for i, m in enumerate(mpps))
            raise DataError(
                path,
                f"no level near {mpp:g} µm/px (the file has {have} µm/px; nothing is "
                "resampled): pass one of these as --mpp, or --level",
            )
        return best
    return 0


def _tiff_info(path: Path) -> tuple[int, int, bool]:
    """(levels, pixels of level 0, tiled) of a TIFF file, without decoding pixels."""
    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            page = series.levels[0].keyframe
            shape = page.shape
            return len(series.levels), int(shape[0]) * int(shape[1]), bool(page.is_tiled)
    except Exception as exc:
        raise DataError(
            path, f"cannot decode image (truncated or not a TIFF: {_first_line(exc)})"
        ) from None


def open_slide(
    path: str | Path,
    level: int | None = None,
    mpp: float | None = None,
    backend: str = "auto",
    declared_mpp: float | None = None,
) -> Slide:
    """Opens an image or a whole-slide file for reading at one level.

    Plain PNG/JPEG and small single-level TIFF images are decoded into memory
    (:class:`ArraySlide`); pyramidal TIFFs, TIFFs larger than :data:`LARGE_PIXELS` and
    vendor slide formats are read region by region (:class:`TiffSlideSlide`, or
    :class:`OpenSlideSlide` for formats tiffslide does not read or ``backend="openslide"``).

    Args:
        path: the file.
        level: pyramid level, or ``None``.
        mpp: target microns per pixel (nearest level), or ``None``.
        backend: ``auto``, ``tiffslide`` or ``openslide`` for slide formats.
        declared_mpp: level-0 microns per pixel of a file that records none (PNG/JPEG,
            TIFFs without resolution tags), or ``None``; see :func:`declare_mpp`.

    Returns:
        A :class:`Slide`; close it (or use it as a context manager) when done.

    Raises:
        DataError: missing, unreadable or truncated file, unsupported format, a level that
            does not exist, a target mpp the file has no metadata for, a ``declared_mpp``
            the file's own pixel size contradicts.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            path,
            f"unsupported format {suffix or '(no suffix)'!r}: expected one of "
            + ", ".join(SUPPORTED_SUFFIXES),
        )
    if backend not in ("auto", "tiffslide", "openslide"):
        raise ValueError(f"backend must be auto, tiffslide or openslide, got {backend!r}")
    if suffix in OPENSLIDE_SUFFIXES or backend == "openslide":
        return OpenSlideSlide(path, level, mpp, declared_mpp)
    if suffix in TIFFSLIDE_SUFFIXES:
        return TiffSlideSlide(path, level, mpp, declared_mpp)
    if suffix in TIFF_SUFFIXES:
        levels, pixels, _ = _tiff_info(path)
        if levels > 1 or pixels > LARGE_PIXELS or mpp is not None or backend == "tiffslide":
            return TiffSlideSlide(path, level, mpp, declared_mpp)
    mpp0, ignored = _small_tiff_mpp(path) if suffix in TIFF_SUFFIXES else (None, None)
    mpp0, declared = declare_mpp(path, mpp0, declared_mpp)
    image = read_image(path)
    select_level(path, [image.shape[:2]], mpp0, level, mpp)
    slide = ArraySlide(image, path, mpp0)
    slide.ignored_mpp = ignored
    slide.declared_mpp = declared
    return slide


def tissue_mask(
    thumbnail: np.ndarray, min_background: float = 200.0, dilate: int = 2
) -> np.ndarray:
    """Tissue vs. bright background on a low-resolution thumbnail.

    Otsu's threshold on the luminance separates dark tissue from bright glass. When the
    bright class is not bright (mean luminance below ``min_background``), there is no glass
    in view (e.g. a crop that is all tissue) and everything counts as tissue. The mask is
    dilated by ``dilate`` pixels so that tissue borders are never skipped.

    Args:
        thumbnail: ``(h, w, 3)`` uint8 RGB.
        min_background: least mean luminance (0..255) of the background class.
        dilate: dilation radius in thumbnail pixels.

    Returns:
        ``(h, w)`` bool, ``True`` = tissue.
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    gray = thumbnail[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if float(gray.max()) - float(gray.min()) < 1.0:
        return np.full(gray.shape, float(gray.mean()) < min_background)
    t = threshold_otsu(gray)
    bright = gray > t
    if not bright.any() or float(gray[bright].mean()) < min_background:
        return np.ones(gray.shape, bool)
    mask = ~bright
    if dilate > 0:
        yy, xx = np.mgrid[-dilate : dilate + 1, -dilate : dilate + 1]
        mask = ndimage.binary_dilation(mask, structure=yy**2 + xx**2 <= dilate**2)
    return np.asarray(mask, dtype=bool)


# ------------------------------------------------------------------ synthetic test slides


def _synthetic_tile(
    y0: int, x0: int, h: int, w: int, scale: float, size: int, seed: int
) -> np.ndarray:
    """Pixels ``[y0:y0+h, x0:x0+w]`` of a level with ``scale`` level-0 pixels per pixel."""
    rng = np.random.default_rng(seed)
    blobs = rng.uniform(0.15, 0.85, (4, 2)) * size
    radii = rng.uniform(0.06, 0.12, 4) * size
    img = np.empty((h, w, 3), np.uint8)
    img[...] = (242, 240, 244)  # glass
    ty0, ty1, tx0, tx1 = y0 * scale, (y0 + h) * scale, x0 * scale, (x0 + w) * scale
    near = (
        (blobs[:, 0] + radii > ty0)
        & (blobs[:, 0] - radii < ty1)
        & (blobs[:, 1] + radii > tx0)
        & (blobs[:, 1] - radii < tx1)
    )
    if not near.any():
        return img
    ys = (np.arange(y0, y0 + h, dtype=np.float64) + 0.5) * scale
    xs = (np.arange(x0, x0 + w, dtype=np.float64) + 0.5) * scale
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    tissue = np.zeros((h, w), bool)
    for (by, bx), r in zip(blobs, radii, strict=True):
        tissue |= (yy - by) ** 2 + (xx - bx) ** 2 < r**2
    img[tissue] = (226, 160, 200)  # eosin-pink stroma
    # nuclei: one dark disk of radius ~8 per 40 px cell, centre jittered by a hash of the cell
    cell = 40.0
    cy, cx = np.floor(yy / cell), np.floor(xx / cell)
    hsh = np.sin(cy * 12.9898 + cx * 78.233 + seed) * 43758.5453
    jy = (hsh - np.floor(hsh)) * 16 - 8
    hsh2 = np.sin(cy * 39.3468 + cx * 11.135 + seed) * 24634.6345
    jx = (hsh2 - np.floor(hsh2)) * 16 - 8
    d2 = (yy - (cy + 0.5) * cell - jy) ** 2 + (xx - (cx + 0.5) * cell - jx) ** 2
    img[tissue & (d2 < 8.0**2)] = (90, 40, 140)  # haematoxylin
    return img


def write_synthetic_slide(
    path: str | Path,
    size: int = 20000,
    levels: int = 4,
    tile: int = 256,
    mpp: float = 0.25,
    seed: int = 0,
    compression: str = "jpeg",
) -> Path:
    """Writes a synthetic pyramidal TIFF: white glass, a few pink tissue blobs, dark nuclei.

    The pixels are a function of level-0 coordinates, generated tile by tile, so writing a
    20,000 x 20,000 slide needs memory for one tile only. Level ``i`` is downsampled by
    ``2**i`` (stored as SubIFDs, as tifffile and tiffslide read them); the resolution tags
    give ``mpp`` microns per pixel at level 0. For tests and benchmarks.

    Args:
        path: ``.tif`` file to write.
        size: level-0 width and height.
        levels: number of pyramid levels.
        tile: TIFF tile side.
        mpp: microns per level-0 pixel.
        seed: blob placement and nucleus jitter.
        compression: TIFF compression (``jpeg``, ``zlib``, ``none``...).

    Returns:
        ``path``.
    """
    path = Path(path)

    def tiles_of(lvl: int) -> Iterator[np.ndarray]:
        s = 2**lvl
        n = math.ceil(size / s)
        for y in range(0, n, tile):
            for x in range(0, n, tile):
                yield _synthetic_tile(y, x, tile, tile, float(s), size, seed)

    comp: Any = None if compression == "none" else compression
    res = 1e4 / mpp
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        for lvl in range(levels):
            n = math.ceil(size / 2**lvl)
            tw.write(
                tiles_of(lvl),
                shape=(n, n, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                photometric="rgb",
                compression=comp,
                resolution=(res / 2**lvl, res / 2**lvl),
                resolutionunit="CENTIMETER",
                subifds=levels - 1 if lvl == 0 else None,
                subfiletype=1 if lvl else 0,
                metadata=None,
            )
    return path
