"""The ``predict`` driver: images or slides in, probability map, masks, nuclei out.

For every input ``INPUT`` it writes a folder ``OUT/<stem>/``:

==================  ==========================================================================
``prob.tif``        foreground probability, uint8 0..255 (``round(255 p)``), tiled for slides
``mask.png``        binary mask ``p >= threshold``, uint8 0/255 (``mask.tif``, tiled, for slides)
``instances.tif``   uint32 instance ids, 0 = background (tiled for slides)
``nuclei.geojson``  FeatureCollection of nucleus ``Polygon`` features (QuPath detections)
``nuclei.csv``      one row per nucleus: id, centroid, area, perimeter, mean probability
``overlay.png``     mask and outlines over the image, downsampled to at most 2048 px
``predict.json``    what was run: input, level, mpp, tiles, precision, counts, time
==================  ==========================================================================

Raster outputs are at the resolution of the level read; GeoJSON and CSV coordinates are in
level-0 pixels (``(x, y)`` = (column, row), pixel centres at integer coordinates, as
everywhere in the package; see :meth:`pseudoedgenet.inference.slide.Slide.to_level0`).

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
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

from pseudoedgenet import __version__
from pseudoedgenet.data.io import write_png
from pseudoedgenet.engine.runtime import peak_rss_mib
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.inference.predict import (
    PRECISIONS,
    predict_tiles,
    predict_whole,
    prepare_predictor,
    resolve_device,
)
from pseudoedgenet.inference.slide import (
    SUPPORTED_SUFFIXES,
    Slide,
    open_slide,
    tiles_with_tissue,
    tissue_mask,
)
from pseudoedgenet.inference.tiling import Tile, make_tiles
from pseudoedgenet.postprocess import (
    Array2D,
    Nucleus,
    PostprocessConfig,
    block_grid,
    connected_components,
    iter_nuclei,
)
from pseudoedgenet.viz import overlay_mask

#: QuPath classification of the exported detections.
CLASSIFICATION = {"name": "Nucleus", "color": [230, 60, 60]}
CSV_COLUMNS = (
    "id",
    "centroid_x",
    "centroid_y",
    "area_px",
    "area_um2",
    "perimeter_px",
    "mean_prob",
)


@dataclass(frozen=True)
class PredictConfig:
    """Options of :func:`predict_files` (the ``predict`` command).

    Attributes:
        tile: tile side read per forward pass (multiple of 32).
        overlap: context margin per tile side; the write step is ``tile - 2 * overlap``.
        batch_size: tiles per forward pass.
        threshold: foreground where ``p >= threshold``.
        device: ``auto``, ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 on CPUs with native bf16, fp16 on CUDA, else fp32),
            ``fp32``, ``bf16`` or ``fp16``.
        level: pyramid level to read, or ``None``.
        mpp: target microns per pixel (nearest level), or ``None``.
        watershed: split touching nuclei (distance-transform watershed).
        min_distance: watershed seed separation, pixels of the level read.
        depth: watershed seed depth: how much narrower than both nuclei a neck must be to
            be cut, pixels of the level read.
        min_area: smallest nucleus kept, pixels of the level read.
        max_size: largest nucleus bounding-box side kept, pixels of the level read.
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
    watershed: bool = False
    min_distance: int = 5
    depth: float = 2.0
    min_area: int = 0
    max_size: int = 1024
    tissue_mask: bool | None = None
    whole_image: bool | None = None
    whole_max_pixels: int = 1536 * 1536
    large_pixels: int = 4096 * 4096
    overlay_max_side: int = 2048
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
        check(self.min_distance >= 1 and self.min_area >= 0 and self.max_size >= 1, "bad sizes")

    def postprocess(self, block: int) -> PostprocessConfig:
        """The :class:`PostprocessConfig` these options imply."""
        return PostprocessConfig(
            watershed=self.watershed,
            min_distance=self.min_distance,
            depth=self.depth,
            min_area=self.min_area,
            max_size=self.max_size,
            block=block,
        )


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
        if not p.is_file():
            raise DataError(p, "file not found")
        if p.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise DataError(
                p,
                f"unsupported format {p.suffix or '(no suffix)'!r}: expected one of "
                + ", ".join(SUPPORTED_SUFFIXES),
            )
        if p.stem in seen:
            raise DataError(p, f"same name as {seen[p.stem]}: outputs would collide in {out}")
        seen[p.stem] = p
        if (out / p.stem).exists() and not force:
            raise DataError(out / p.stem, "output folder exists (use --force to replace it)")
    return paths


# ------------------------------------------------------------------------------ stores


class _Stores:
    """Scratch arrays of one run: numpy in memory, or zarr chunked stores on disk."""

    def __init__(self, shape: tuple[int, int], chunk: int, scratch: Path | None) -> None:
        self.shape, self.chunk, self.scratch = shape, chunk, scratch

    def new(self, name: str, dtype: Any) -> Array2D:
        if self.scratch is None:
            return np.zeros(self.shape, dtype)
        import zarr

        return zarr.open_array(
            store=str(self.scratch / f"{name}.zarr"),
            mode="w",
            shape=self.shape,
            chunks=(self.chunk, self.chunk),
            dtype=dtype,
            fill_value=0,
        )


def _tiff_tiles(
    store: Array2D, tile: int, fn: Callable[[np.ndarray], np.ndarray] | None
) -> Iterator[np.ndarray]:
    """Full ``tile x tile`` tiles of a 2-D store in TIFF order (edges zero-padded)."""
    h, w = int(store.shape[0]), int(store.shape[1])
    wp = math.ceil(w / tile) * tile
    for y in range(0, h, tile):
        strip = np.asarray(store[y : min(y + tile, h), :])
        if fn is not None:
            strip = fn(strip)
        padded = np.zeros((tile, wp), strip.dtype)
        padded[: strip.shape[0], :w] = strip
        for x in range(0, wp, tile):
            yield padded[:, x : x + tile]


def write_tiff(
    path: Path,
    store: Array2D,
    dtype: Any,
    tiled: bool,
    mpp: tuple[float, float] | None = None,
    fn: Callable[[np.ndarray], np.ndarray] | None = None,
    tile: int = 256,
) -> None:
    """Writes a 2-D array as a deflate-compressed TIFF, streamed tile by tile if ``tiled``.

    Args:
        path: file to write.
        store: ``(H, W)`` array or on-disk store.
        dtype: pixel type written (after ``fn``).
        tiled: stream ``tile x tile`` tiles (bounded memory) instead of one strip image.
        mpp: microns per pixel ``(x, y)``, written as resolution tags, or ``None``.
        fn: optional per-strip transform (e.g. ``mask -> 0/255``).
        tile: TIFF tile side.
    """
    kw: dict[str, Any] = {"compression": "zlib", "photometric": "minisblack", "metadata": None}
    if mpp is not None:
        kw["resolution"] = (1e4 / mpp[0], 1e4 / mpp[1])
        kw["resolutionunit"] = "CENTIMETER"
    h, w = int(store.shape[0]), int(store.shape[1])
    if tiled:
        tifffile.imwrite(
            path,
            _tiff_tiles(store, tile, fn),
            shape=(h, w),
            dtype=dtype,
            tile=(tile, tile),
            bigtiff=h * w * np.dtype(dtype).itemsize > 2**31,
            **kw,
        )
    else:
        arr = np.asarray(store[:, :])
        tifffile.imwrite(path, (fn(arr) if fn is not None else arr).astype(dtype), **kw)


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


def nucleus_feature(n: Nucleus, slide: Slide) -> dict[str, Any]:
    """A QuPath-importable GeoJSON ``Feature`` (detection) for one nucleus.

    Coordinates are level-0 pixels; ``area_px`` is in level-0 pixels, ``centroid_x``,
    ``centroid_y`` in level-0 coordinates; the same values also go into QuPath's
    ``measurements``.
    """
    sx, sy = slide.downsample
    cx, cy = slide.to_level0(np.asarray(n.centroid))
    rings = [_round(slide.to_level0(r)) for r in n.rings]
    m = {
        "area_px": round(n.area * sx * sy, 2),
        "centroid_x": round(float(cx), 2),
        "centroid_y": round(float(cy), 2),
        "perimeter_px": round(n.perimeter * math.sqrt(sx * sy), 2),
        "mean_prob": round(n.mean_prob, 4),
    }
    if slide.mpp is not None:
        m["area_um2"] = round(n.area * slide.mpp[0] * slide.mpp[1], 3)
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": rings},
        "properties": {
            "objectType": "detection",
            "classification": CLASSIFICATION,
            "label": n.id,
            **m,
            "measurements": m,
        },
    }


def nucleus_row(n: Nucleus, slide: Slide) -> list[Any]:
    """One CSV row (:data:`CSV_COLUMNS`), level-0 coordinates and sizes."""
    sx, sy = slide.downsample
    cx, cy = slide.to_level0(np.asarray(n.centroid))
    area_um2 = "" if slide.mpp is None else f"{n.area * slide.mpp[0] * slide.mpp[1]:.3f}"
    return [
        n.id,
        f"{cx:.2f}",
        f"{cy:.2f}",
        f"{n.area * sx * sy:.2f}",
        area_um2,
        f"{n.perimeter * math.sqrt(sx * sy):.2f}",
        f"{n.mean_prob:.4f}",
    ]


def write_nuclei(nuclei: Iterator[Nucleus], slide: Slide, geojson: Path, csv_path: Path) -> int:
    """Streams nuclei into a GeoJSON FeatureCollection and a CSV; returns their number."""
    count = 0
    with (
        open(geojson, "w", encoding="utf-8") as gj,
        open(csv_path, "w", encoding="utf-8", newline="") as cf,
    ):
        writer = csv.writer(cf)
        writer.writerow(CSV_COLUMNS)
        gj.write('{"type": "FeatureCollection", "features": [\n')
        for n in nuclei:
            if not n.rings:
                continue
            gj.write((",\n" if count else "") + json.dumps(nucleus_feature(n, slide)))
            writer.writerow(nucleus_row(n, slide))
            count += 1
        gj.write("\n]}\n")
    return count


# ------------------------------------------------------------------------------- driver


def predict_slide(
    model: Callable[[torch.Tensor], torch.Tensor],
    slide: Slide,
    out_dir: Path,
    cfg: PredictConfig,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
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

    def write(t: Tile, p: np.ndarray) -> None:
        y0, y1, x0, x1 = t.write
        prob[y0:y1, x0:x1] = np.rint(p * 255.0).astype(np.uint8)
        mask[y0:y1, x0:x1] = (p >= thr).astype(np.uint8)

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
            desc=slide.path.stem,
        )
    t_pred = time.perf_counter() - t0

    block = step * max(1, 2048 // step)
    post = cfg.postprocess(block)
    labels = stores.new("labels", np.uint32)
    comps = connected_components(
        mask, labels, post.connectivity, block, post.min_area, post.max_size
    )
    instances = stores.new("split", np.uint32) if post.watershed else labels
    n_nuclei = write_nuclei(
        iter_nuclei(labels, prob, comps, post, instances if post.watershed else None),
        slide,
        out_dir / "nuclei.geojson",
        out_dir / "nuclei.csv",
    )

    write_tiff(out_dir / "prob.tif", prob, np.uint8, large, slide.mpp)
    if large:
        write_tiff(
            out_dir / "mask.tif", mask, np.uint8, True, slide.mpp, lambda m: m * np.uint8(255)
        )
    else:
        write_png(out_dir / "mask.png", np.asarray(mask) * np.uint8(255))
    write_tiff(out_dir / "instances.tif", instances, np.uint32, large, slide.mpp)
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
        "whole_image": bool(whole),
        "tiles": 1 if whole else len(tiles),
        "tiles_run": len(run),
        "tissue_mask": bool(use_tissue),
        "nuclei": n_nuclei,
        "objects_removed": comps.removed,
        "device": str(device),
        "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast_dtype],
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
    (out_dir / "predict.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace_dir(tmp: Path, final: Path) -> None:
    """Renames ``tmp`` to ``final``, replacing an existing ``final`` only once ``tmp`` is whole.

    Temporary files and folders are private (0600/0700); the published ones get the
    usual permissions of the process's umask.
    """
    umask = _umask()
    for f in tmp.iterdir():
        f.chmod(0o666 & ~umask)
    tmp.chmod(0o777 & ~umask)
    if final.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, trash / final.name)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)


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
    header, level), so bad input fails before the model is loaded.

    Args:
        checkpoint: exported f file or training checkpoint.
        inputs: images or slides.
        out: output folder (created).
        cfg: options.
        shard: ``(i, n)``: process inputs ``i, i + n, i + 2n, ...``.
        force: replace existing output folders.
        log: where the one-line summary per input goes.

    Returns:
        One summary dict per processed input.

    Raises:
        DataError: bad input (nothing is written for it).
        ConfigError: bad options.
    """
    from pseudoedgenet.engine.train import load_segmenter

    cfg = cfg or PredictConfig()
    out = Path(out)
    paths = check_inputs(shard_inputs([Path(p) for p in inputs], shard), out, force)
    for p in paths:
        open_slide(p, cfg.level, cfg.mpp).close()
    device = resolve_device(cfg.device)
    model, dtype = prepare_predictor(
        load_segmenter(checkpoint),
        device,
        cfg.precision,
        compile_batch=cfg.batch_size if cfg.compile else None,
    )
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for p in paths:
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.stem}.tmp-", dir=out))
        try:
            with open_slide(p, cfg.level, cfg.mpp) as slide:
                summary = predict_slide(model, slide, tmp, cfg, device, dtype)
            _replace_dir(tmp, out / p.stem)
        except OSError as exc:  # disk full, permissions: nothing half-written is left
            raise DataError(out / p.stem, f"cannot write outputs ({exc.strerror or exc})") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        summaries.append(summary)
        log(
            f"{p.name}: {summary['nuclei']} nuclei, level {summary['level']} "
            f"{summary['shape'][1]}x{summary['shape'][0]}, {summary['tiles_run']}/"
            f"{summary['tiles']} tiles, {summary['total_s']:.1f}s -> {out / p.stem}"
        )
    return summaries
