"""Reading and writing images, masks and point files.

Point convention (used across the whole package): a point is ``(x, y)`` in pixel
coordinates of the full image, ``x`` = column, ``y`` = row, floats allowed. The pixel a
point labels is ``(row, col) = (round(y), round(x))``. Point arrays are ``float64`` of
shape ``(N, 2)`` in ``(x, y)`` order.

All writers write to a temporary file next to the target and rename it into place
(:func:`atomic_path`), so an interrupted run never leaves a half-written file; folders of
outputs are built the same way (:func:`atomic_dir`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from pseudoedgenet.errors import DataError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")


def _read_array(path: Path) -> np.ndarray:
    """Decodes an image file into a numpy array without any conversion."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return np.asarray(tifffile.imread(path))
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I;16"):
                return np.asarray(im, dtype=np.uint16)
            if im.mode == "P":
                return np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
            if im.mode not in ("1", "L", "RGB", "RGBA", "I", "F"):
                return np.asarray(im.convert("RGB"))  # CMYK, YCbCr, LA, ...: to RGB
            return np.asarray(im)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            path, f"cannot decode image (truncated or not an image: {reason})"
        ) from None


def read_image(path: str | Path) -> np.ndarray:
    """Reads an RGB image.

    RGBA images are converted to RGB (alpha dropped, as in TNBC), grayscale images are
    replicated to three channels, 16-bit images are refused (their intensity scaling is
    ambiguous; convert them to 8-bit first).

    Args:
        path: PNG, TIFF or JPEG file.

    Returns:
        Array of shape ``(H, W, 3)``, dtype ``uint8``, values 0..255.

    Raises:
        DataError: unreadable/truncated file, 16-bit or otherwise unsupported pixel type.
    """
    path = Path(path)
    arr = _read_array(path)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype != np.uint8:
        raise DataError(
            path,
            f"unsupported pixel type {arr.dtype}: expected 8-bit RGB "
            "(convert 16-bit or float images to 8-bit first)",
        )
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[2] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar TIFF
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise DataError(path, f"unsupported image shape {arr.shape}: expected HxW, HxWx3 or HxWx4")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def read_label_image(path: str | Path) -> np.ndarray:
    """Reads a single-channel label or mask image (instance ids or binary mask).

    Args:
        path: PNG or TIFF file, one channel, 8 or 16 bit (or 32-bit TIFF).

    Returns:
        Array of shape ``(H, W)``, integer dtype, unchanged values.

    Raises:
        DataError: unreadable file or a multi-channel image.
    """
    path = Path(path)
    arr = _read_array(path)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = arr[:, :, :3]
        if np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(
            rgb[:, :, 0], rgb[:, :, 2]
        ):
            arr = rgb[:, :, 0]
    if arr.ndim != 2:
        raise DataError(path, f"expected a single-channel label image, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(path, f"expected integer labels, got {arr.dtype}")
    return arr


def _umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path in the target's folder; renames it to ``path`` on success.

    The one way this package writes a file: the temporary file (``.<stem>.<random><suffix>``,
    same suffix, so writers that look at it behave) gets the usual permissions of the
    process's umask (``0o666 & ~umask``, not ``mkstemp``'s private 0600) and replaces
    ``path`` in one rename. On an exception the temporary file is removed and ``path`` is
    left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yields an empty temporary folder beside ``path``; it becomes ``path`` on success.

    The one way this package writes a folder of outputs (a prepared dataset, its labels,
    a prediction, the walkthrough example): fill the yielded folder; when the block ends
    without an exception, the folder gets the usual permissions of the process's umask
    (``0o777 & ~umask``, not ``mkdtemp``'s private 0700) and is renamed to ``path``. An
    existing ``path`` is replaced only with ``replace``, and only once the new folder is
    whole: it is moved aside, the new one renamed in, then the old one deleted (were the
    second rename to fail, the old folder is put back). On an exception the temporary
    folder is deleted and ``path`` is left untouched.

    Args:
        path: the folder to create.
        replace: replace an existing ``path``.

    Raises:
        DataError: ``path`` exists (checked before and after the block) and not
            ``replace``.
    """
    path = Path(path)
    exists_error = DataError(path, "output folder exists (use --force to replace it)")
    if path.exists() and not replace:
        raise exists_error
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        if path.exists() and not replace:
            raise exists_error
        tmp.chmod(0o777 & ~_umask())
        if not path.exists():
            os.replace(tmp, path)
            return
        trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        try:
            os.replace(path, trash / path.name)
        except OSError:
            trash.rmdir()
            raise
        try:
            os.replace(tmp, path)
        except OSError:
            os.replace(trash / path.name, path)  # the old folder back
            trash.rmdir()
            raise
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Writes ``(H, W)`` uint8/uint16 or ``(H, W, 3|4)`` uint8 as PNG, atomically."""
    array = np.ascontiguousarray(array)
    if array.dtype == np.uint16 and array.ndim != 2:
        raise ValueError("uint16 PNG must be single-channel")
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png supports uint8 and uint16, got {array.dtype}")
    im = Image.fromarray(array)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")


def write_text(path: str | Path, text: str) -> None:
    """Writes a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    """Writes JSON (indented, sorted keys kept in insertion order) atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def validate_points(
    points: np.ndarray, shape: tuple[int, int] | None, source: str | Path
) -> np.ndarray:
    """Checks a point array and returns it as ``float64 (N, 2)``.

    Args:
        points: ``(N, 2)`` array of ``(x, y)`` pixel coordinates.
        shape: ``(H, W)`` of the image the points belong to, or ``None`` to skip the
            bounds check. A point is inside when its labelled pixel
            ``(round(y), round(x))`` lies in ``[0, H) x [0, W)``.
        source: file name used in error messages.

    Raises:
        DataError: wrong shape, NaN/inf coordinates, or points outside the image.
    """
    pts = (
        np.asarray(points, dtype=np.float64).reshape(-1, 2) if np.size(points) else np.zeros((0, 2))
    )
    if not np.all(np.isfinite(pts)):
        bad = int(np.argmax(~np.all(np.isfinite(pts), axis=1)))
        raise DataError(source, f"point {bad} has a NaN or infinite coordinate")
    if shape is not None and len(pts):
        h, w = shape
        cols, rows = np.rint(pts[:, 0]), np.rint(pts[:, 1])
        outside = (cols < 0) | (cols >= w) | (rows < 0) | (rows >= h)
        if outside.any():
            i = int(np.argmax(outside))
            raise DataError(
                source,
                f"point {i} at (x={pts[i, 0]:g}, y={pts[i, 1]:g}) lies outside the {w}x{h} image",
            )
    return pts


def read_points_csv(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Reads a point file with an ``x,y`` header (extra columns are ignored).

    Args:
        path: CSV file; one row a point, ``x`` = column, ``y`` = row in pixels.
        shape: ``(H, W)`` to check the points against, or ``None``.

    Returns:
        ``float64`` array of shape ``(N, 2)`` in ``(x, y)`` order.

    Raises:
        DataError: missing header columns, non-numeric values, NaN, points outside, or an
            empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(path, "not a UTF-8 text file (expected a CSV with an x,y header)") from None
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "x" not in fields or "y" not in fields:
            raise DataError(path, f"expected a header with columns x,y, got {reader.fieldnames}")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            norm = {k.strip().lower(): v for k, v in row.items() if k is not None}
            try:
                rows.append((float(norm["x"]), float(norm["y"])))
            except (TypeError, ValueError):
                raise DataError(
                    path,
                    f"line {lineno}: x,y must be numbers, got {norm.get('x')!r},{norm.get('y')!r}",
                ) from None
    if not rows:
        raise DataError(path, "no points in file (empty point file)")
    return validate_points(np.asarray(rows), shape, path)


def write_points_csv(path: str | Path, points: np.ndarray) -> None:
    """Writes points ``(N, 2)`` in ``(x, y)`` order as CSV with an ``x,y`` header."""
    lines = ["x,y"] + [f"{float(x)!r},{float(y)!r}" for x, y in np.asarray(points).reshape(-1, 2)]
    write_text(path, "\n".join(lines) + "\n")


def read_points(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Reads a CSV (``.csv``, package convention) or QuPath GeoJSON (``.geojson``/``.json``,
    QuPath's convention, converted: :func:`pseudoedgenet.data.qupath.read_qupath_points`)
    point file; returns ``(N, 2)`` float64 ``(x, y)`` in the package's convention."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_points_csv(path, shape)
    if path.suffix.lower() in (".geojson", ".json"):
        from pseudoedgenet.data.qupath import read_qupath_points

        return read_qupath_points(path, shape)
    raise DataError(path, "unsupported point file type: expected .csv or .geojson")
