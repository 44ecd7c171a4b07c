"""The own-data walkthrough's example input: a pyramidal slide with QuPath-style clicks.

``docs/own-data.md`` walks a pathologist from QuPath clicks to nuclei back in QuPath. Its
example input is built here from public images that have instance masks (MoNuSeg, or the
bundled crops in ``examples/monuseg_crops``), so every step can also be *scored*:

* ``slide.tif``: the images laid out on a glass-coloured canvas in a grid, written as a
  pyramidal, tiled TIFF (levels downsampled by 2, lossless deflate) with the pixel size in
  its resolution tags, as a scanner export would be. Open it in QuPath.
* ``slide.geojson``: what *File ▸ Export objects as GeoJSON* writes after a user has drawn a
  region around each *annotated* image (``Polygon`` annotations of class ``Region*``: a
  rectangle, or for every third one an octagon) and clicked every nucleus inside it (one
  ``MultiPoint`` annotation per region). The clicks are the nuclei's centres of mass (the
  paper's protocol, Section 4.1) in QuPath's convention: level-0 pixels, integer
  coordinates at pixel corners, so a pixel centre is at ``+0.5``.
* ``truth/instances.tif``: the instance masks on the same canvas (uint32, 0 = background),
  never read by training; :func:`score_prediction` compares ``predict``'s mask with it on
  the *held-out* images, which have no region and no click.
* ``example.json``: the image boxes (level-0 ``x, y, w, h``), which are annotated, the
  pixel size, and the source files.

``python -m pseudoedgenet.walkthrough make --monuseg ../shared/data/monuseg --out wt``
builds the full-scale example (30 annotated MoNuSeg training images, 6 held-out test
images); ``--examples examples/monuseg_crops`` builds the smoke-scale one the tests use.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from skimage.draw import polygon as fill_polygon

from pseudoedgenet.data.io import atomic_dir, atomic_path, read_label_image, write_json
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.errors import DataError
from pseudoedgenet.labels import points_from_instances

GLASS = (242, 240, 244)
#: Namespace of the deterministic feature ids (uuid5 of the slide name and feature index).
_ID_NAMESPACE = uuid.UUID("6f1c2a52-5d0e-4f57-9a55-2f7a1d0c9e11")


@dataclass(frozen=True)
class ExampleTile:
    """One source image placed on the example slide (level-0 pixels)."""

    name: str
    x: int
    y: int
    w: int
    h: int
    annotated: bool
    source: str


def _region_ring(tile: ExampleTile, octagon: bool, inset: int) -> np.ndarray:
    """Closed ring ``(K, 2)`` of QuPath ``(x, y)`` corner coordinates around a tile."""
    x0, y0 = tile.x + inset, tile.y + inset
    x1, y1 = tile.x + tile.w - inset, tile.y + tile.h - inset
    if not octagon:
        ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    else:
        cx, cy = round(0.2 * (x1 - x0)), round(0.2 * (y1 - y0))
        ring = [
            (x0 + cx, y0),
            (x1 - cx, y0),
            (x1, y0 + cy),
            (x1, y1 - cy),
            (x1 - cx, y1),
            (x0 + cx, y1),
            (x0, y1 - cy),
            (x0, y0 + cy),
        ]
    return np.asarray([*ring, ring[0]], dtype=np.float64)


def _inside(ring: np.ndarray, shape: tuple[int, int], offset: tuple[int, int]) -> np.ndarray:
    """Pixels of an ``(H, W)`` box at level-0 ``offset`` whose centres lie in the ring."""
    # QuPath corner coordinates -> package pixel-centre coordinates of the box.
    rows = ring[:, 1] - offset[1] - 0.5
    cols = ring[:, 0] - offset[0] - 0.5
    mask = np.zeros(shape, dtype=bool)
    rr, cc = fill_polygon(rows, cols, shape)
    mask[rr, cc] = True
    return mask


def _feature(slide: str, index: int, geometry: dict[str, Any], cls: str | None) -> dict[str, Any]:
    props: dict[str, Any] = {"objectType": "annotation"}
    if cls is not None:
        props["classification"] = {"name": cls, "color": [255, 0, 0]}
    return {
        "type": "Feature",
        "id": str(uuid.uuid5(_ID_NAMESPACE, f"{slide}/{index}")),
        "geometry": geometry,
        "properties": props,
    }


def _pyramid(level0: np.ndarray, min_side: int) -> list[np.ndarray]:
    """Level 0 and its 2x mean-downsampled levels down to ``min_side`` pixels."""
    levels = [level0]
    while min(levels[-1].shape[:2]) // 2 >= min_side:
        a = levels[-1]
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean(axis=(1, 3))
        levels.append(np.rint(a).astype(np.uint8))
    return levels


def write_pyramidal_rgb(path: Path, image: np.ndarray, mpp: float, tile: int = 256) -> None:
    """Writes ``(H, W, 3)`` uint8 as a tiled pyramidal TIFF (SubIFDs), atomically.

    Levels are downsampled by 2 (2x2 mean) while the shorter side stays >= ``tile``; the
    resolution tags give ``mpp`` microns per level-0 pixel (pixels per centimetre).
    """
    levels = _pyramid(image, tile)
    res = 1e4 / mpp
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=False) as tw:
        for i, lvl in enumerate(levels):
            tw.write(
                lvl,
                tile=(tile, tile),
                photometric="rgb",
                compression="zlib",
                resolution=(res / 2**i, res / 2**i),
                resolutionunit="CENTIMETER",
                subifds=len(levels) - 1 if i == 0 else None,
                subfiletype=1 if i else 0,
                metadata=None,
            )


def build_example(
    annotated: Sequence[Sample],
    heldout: Sequence[Sample],
    out: str | Path,
    *,
    cols: int | None = None,
    mpp: float = 0.25,
    gap: int = 32,
    inset: int = 4,
) -> list[ExampleTile]:
    """Lays images out on a slide and writes the QuPath-style example (module docstring).

    Args:
        annotated: images that get a region and clicks; each needs ``instances``.
        heldout: images with no region and no click (scored after ``predict``).
        out: folder to create (must not exist).
        cols: images per row of the grid (default: ``ceil(sqrt(n))``).
        mpp: microns per level-0 pixel written into the TIFF.
        gap: glass between neighbouring images, in pixels.
        inset: distance of a region's edge from its image's edge, in pixels.

    Returns:
        The placed tiles, annotated ones first.

    Raises:
        DataError: ``out`` exists, or an image has no instance mask.
    """
    out = Path(out)
    if out.exists():
        raise DataError(out, "output folder exists (remove it or choose another --out)")
    samples = [*annotated, *heldout]
    for s in samples:
        if s.instances is None:
            raise DataError(s.source, "the walkthrough example needs images with instance masks")
    n = len(samples)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cell_h = max(s.image.shape[0] for s in samples) + gap
    cell_w = max(s.image.shape[1] for s in samples) + gap
    height, width = rows * cell_h + gap, cols * cell_w + gap
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[...] = GLASS
    truth = np.zeros((height, width), np.uint32)
    tiles: list[ExampleTile] = []
    features: list[dict[str, Any]] = []
    next_id = 1
    for i, s in enumerate(samples):
        h, w = s.image.shape[:2]
        y, x = gap + (i // cols) * cell_h, gap + (i % cols) * cell_w
        canvas[y : y + h, x : x + w] = s.image
        inst = np.asarray(s.instances).astype(np.uint32)
        ids = inst > 0
        truth[y : y + h, x : x + w][ids] = inst[ids] + next_id - 1
        next_id += int(inst.max())
        tile = ExampleTile(s.name, x, y, w, h, i < len(annotated), str(s.source or ""))
        tiles.append(tile)
        if not tile.annotated:
            continue
        k = len(features) // 2
        ring = _region_ring(tile, octagon=k % 3 == 2, inset=inset)
        features.append(
            _feature(
                "slide",
                len(features),
                {"type": "Polygon", "coordinates": [ring.tolist()]},
                "Region*",
            )
        )
        inside = _inside(ring, (h, w), (x, y))
        pts = points_from_instances(inst)
        keep = inside[pts[:, 1].astype(int), pts[:, 0].astype(int)]
        clicks = pts[keep] + np.array([x + 0.5, y + 0.5])
        features.append(
            _feature(
                "slide",
                len(features),
                {"type": "MultiPoint", "coordinates": clicks.tolist()},
                None,
            )
        )
    with atomic_dir(out) as tmp:
        write_pyramidal_rgb(tmp / "slide.tif", canvas, mpp)
        with atomic_path(tmp / "truth" / "instances.tif") as t:
            tifffile.imwrite(t, truth, tile=(256, 256), compression="zlib")
        write_json(tmp / "slide.geojson", {"type": "FeatureCollection", "features": features})
        write_json(
            tmp / "example.json",
            {
                "mpp": mpp,
                "size": [width, height],
                "coordinates": "level-0 pixels; QuPath convention (pixel corners at integers)",
                "tiles": [t.__dict__ for t in tiles],
            },
        )
    return tiles


def score_prediction(example: str | Path, mask: str | Path) -> dict[str, Any]:
    """Scores ``predict``'s level-0 mask on the example's held-out images.

    Args:
        example: folder written by :func:`build_example`.
        mask: ``mask.tif``/``mask.png`` of ``pseudoedgenet predict`` run on ``slide.tif`` at
            level 0 (foreground > 0), ``(H, W)`` of the whole slide.

    Returns:
        ``{"images": {name: {iou, dice, f1, aji}}, "mean": {...}, "n": N}`` over the
        held-out images (mean of per-image scores, as the paper's tables).
    """
    from pseudoedgenet.metrics import SegmentationMetric

    example = Path(example)
    if not (example / "example.json").is_file():
        raise DataError(
            example / "example.json",
            "not found: score a folder made by `python -m pseudoedgenet.walkthrough make`",
        )
    meta = json.loads((example / "example.json").read_text())
    truth = read_label_image(example / "truth" / "instances.tif")
    pred = read_label_image(Path(mask)) > 0
    if pred.shape != truth.shape:
        raise DataError(
            mask,
            f"mask is {pred.shape[1]}x{pred.shape[0]}, the slide {truth.shape[1]}x"
            f"{truth.shape[0]}: predict the slide at level 0 (--level 0)",
        )
    metric = SegmentationMetric()
    per: dict[str, dict[str, float]] = {}
    for t in meta["tiles"]:
        if t["annotated"]:
            continue
        box = (slice(t["y"], t["y"] + t["h"]), slice(t["x"], t["x"] + t["w"]))
        s = metric.update(pred[box], truth[box])
        per[t["name"]] = {k: round(float(getattr(s, k)), 4) for k in ("iou", "dice", "f1", "aji")}
    if not per:
        raise DataError(example / "example.json", "the example has no held-out image to score")
    mean = {k: round(v, 4) for k, v in metric.compute("mean").items()}
    return {"images": per, "mean": mean, "n": len(per)}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pseudoedgenet.walkthrough make|score``; see the module docstring."""
    from pseudoedgenet.data.folder import read_folder
    from pseudoedgenet.data.monuseg import read_monuseg
    from pseudoedgenet.errors import PseudoEdgeNetError

    parser = argparse.ArgumentParser(prog="python -m pseudoedgenet.walkthrough")
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="build slide.tif + slide.geojson")
    src = mk.add_mutually_exclusive_group(required=True)
    src.add_argument("--monuseg", type=Path, help="MoNuSeg folder (train/ and test/)")
    src.add_argument("--examples", type=Path, help="folder dataset with masks/ (bundled crops)")
    mk.add_argument("--out", type=Path, required=True)
    mk.add_argument("--heldout", type=int, default=6, help="MoNuSeg test images held out")
    mk.add_argument("--cols", type=int, default=None)
    sc = sub.add_parser("score", help="IoU of predict's mask on the held-out images")
    sc.add_argument("--example", type=Path, required=True)
    sc.add_argument("--mask", type=Path, required=True)
    sc.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "make":
            if args.monuseg is not None:
                ann = list(read_monuseg(args.monuseg, "train"))
                held = list(read_monuseg(args.monuseg, "test"))[: args.heldout]
            else:
                allx = list(read_folder(args.examples))
                ann, held = allx[: len(allx) - 2], allx[len(allx) - 2 :]
            tiles = build_example(ann, held, args.out, cols=args.cols)
            n_ann = sum(t.annotated for t in tiles)
            print(
                f"{args.out}: slide.tif, slide.geojson ({n_ann} regions, "
                f"{len(tiles) - n_ann} held-out images)"
            )
        else:
            res = score_prediction(args.example, args.mask)
            if args.json is not None:
                write_json(args.json, res)
            m = res["mean"]
            print(
                f"{res['n']} held-out images: IoU {m['iou']:.4f}  Dice {m['dice']:.4f}  "
                f"F1 {m['f1']:.4f}  AJI {m['aji']:.4f}"
            )
    except PseudoEdgeNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
