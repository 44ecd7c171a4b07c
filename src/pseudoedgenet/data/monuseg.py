"""MoNuSeg reader (Kumar et al., IEEE TMI 2017; MoNuSeg 2018 challenge).

Layout (``../shared/data/monuseg`` as published)::

    ROOT/train/images/<ID>.tif           1000x1000 RGB TIFF
    ROOT/train/instance_masks/<ID>.png   16-bit instance ids (all 30 images)
    ROOT/train/annotations/<ID>.xml      Aperio XML polygons (13 of 30 in our copy)
    ROOT/test/images/<ID>.tif            14 images
    ROOT/test/annotations/<ID>.xml       14 XML files

XML vertices are 1-based, as MATLAB's ``poly2mask`` reads them: the vertex
``(X, Y)`` is the pixel ``(row, col) = (Y - 1, X - 1)``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from skimage.draw import polygon as draw_polygon

from pseudoedgenet.data.io import read_image, read_label_image
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.errors import DataError

AnnotationSource = Literal["auto", "masks", "xml"]

#: Organ of each MoNuSeg training image, keyed by the TCGA case id (``TCGA-XX-YYYY``).
ORGANS: dict[str, str] = {
    **dict.fromkeys(["18-5592", "21-5784", "21-5786", "38-6178", "49-4488", "50-5931"], "liver"),
    **dict.fromkeys(["A7-A13E", "A7-A13F", "AR-A1AK", "AR-A1AS", "E2-A14V", "E2-A1B5"], "breast"),
    **dict.fromkeys(["B0-5698", "B0-5710", "B0-5711", "HE-7128", "HE-7129", "HE-7130"], "kidney"),
    **dict.fromkeys(["CH-5767", "G9-6336", "G9-6348", "G9-6356", "G9-6362", "G9-6363"], "prostate"),
    **dict.fromkeys(["DK-A2I6", "G2-A2EK"], "bladder"),
    **dict.fromkeys(["AY-A8YK", "NH-A8F7"], "colon"),
    **dict.fromkeys(["KB-A93J", "RD-A8N9"], "stomach"),
}


def organ_of(name: str) -> str:
    """Organ of a MoNuSeg image name such as ``TCGA-21-5784-01Z-00-DX1`` ("" if unknown)."""
    parts = name.split("-")
    return ORGANS.get("-".join(parts[1:3]), "") if len(parts) >= 3 else ""


def read_xml_polygons(path: str | Path) -> list[np.ndarray]:
    """Reads the nucleus polygons of an Aperio ImageScope XML file.

    Args:
        path: XML file with ``<Region>`` elements holding ``<Vertex X=.. Y=..>``.

    Returns:
        One ``(K, 2)`` float64 array of ``(x, y)`` per region, converted to 0-based pixel
        coordinates (``x = X - 1``, ``y = Y - 1``).

    Raises:
        DataError: unparsable XML, non-numeric vertices, or no regions.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except ET.ParseError as exc:
        raise DataError(path, f"invalid XML ({exc})") from None
    polygons = []
    for region in root.iter("Region"):
        try:
            verts = [(float(v.attrib["X"]), float(v.attrib["Y"])) for v in region.iter("Vertex")]
        except (KeyError, ValueError):
            raise DataError(
                path, f"region {region.attrib.get('Id', '?')} has a vertex without numeric X/Y"
            ) from None
        if len(verts) >= 3:
            polygons.append(np.asarray(verts, dtype=np.float64) - 1.0)
    if not polygons:
        raise DataError(path, "no <Region> with at least 3 vertices")
    return polygons


def read_xml_mpp(path: str | Path) -> float | None:
    """The ``MicronsPerPixel`` attribute of an Aperio XML file's root, or ``None`` when the
    file is missing, unparsable or has no positive value there (only the root element is
    read, not the polygons)."""
    try:
        for _, elem in ET.iterparse(path, events=("start",)):
            value = float(elem.attrib.get("MicronsPerPixel", "nan"))
            return value if value > 0 else None
    except (OSError, ET.ParseError, ValueError):
        return None
    return None


def rasterize_polygons(polygons: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Draws polygons into an instance image; later polygons overwrite earlier ones.

    Args:
        polygons: ``(K, 2)`` ``(x, y)`` 0-based vertex arrays.
        shape: ``(H, W)``.

    Returns:
        ``(H, W)`` uint16 instance ids ``1..len(polygons)`` (ids of fully overwritten or
        empty polygons are absent), 0 = background. Pixels whose centre lies inside a
        polygon belong to it.
    """
    out = np.zeros(shape, dtype=np.uint16)
    for i, poly in enumerate(polygons, start=1):
        rr, cc = draw_polygon(poly[:, 1], poly[:, 0], shape=shape)
        out[rr, cc] = i
    return out


def _relabel_sequential(instances: np.ndarray) -> np.ndarray:
    ids, inverse = np.unique(instances, return_inverse=True)
    offset = 0 if ids[0] == 0 else 1
    return (inverse.reshape(instances.shape) + offset).astype(np.uint16)


def list_monuseg(root: str | Path, split: str = "train") -> list[Path]:
    """Image files of a MoNuSeg split, sorted by name."""
    folder = Path(root) / split / "images"
    if not folder.is_dir():
        raise DataError(folder, "MoNuSeg images folder not found (expected ROOT/<split>/images)")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff", ".png"))


def read_monuseg(
    root: str | Path, split: str = "train", annotations: AnnotationSource = "auto"
) -> Iterator[Sample]:
    """Yields the MoNuSeg images of a split with their instance masks.

    Args:
        root: the ``monuseg`` folder.
        split: ``train`` or ``test``.
        annotations: ``masks`` reads ``instance_masks/<ID>.png``; ``xml`` rasterises
            ``annotations/<ID>.xml`` (1-based vertices); ``auto`` uses masks where the
            folder exists, XML otherwise.

    Yields:
        :class:`Sample` with ``image`` (1000, 1000, 3) uint8, ``instances`` (1000, 1000)
        uint16 (ids relabelled 1..N), ``group`` = organ, ``info`` = ``{"mpp": [x, y]}``
        from the XML's ``MicronsPerPixel`` where ``annotations/<ID>.xml`` has one (12 of
        the 30 training images in our copy, all 14 test images), else ``{"mpp": None}``.

    Raises:
        DataError: a missing annotation, an annotation without image, size mismatch.
    """
    root = Path(root)
    images = list_monuseg(root, split)
    mask_dir, xml_dir = root / split / "instance_masks", root / split / "annotations"
    if annotations == "auto":
        annotations = "masks" if mask_dir.is_dir() else "xml"
    ann_dir, suffix = (mask_dir, ".png") if annotations == "masks" else (xml_dir, ".xml")
    if ann_dir.is_dir():
        stems = {p.stem for p in images}
        orphans = sorted(p for p in ann_dir.glob(f"*{suffix}") if p.stem not in stems)
        if orphans:
            raise DataError(
                orphans[0], f"annotation has no matching image in {root / split / 'images'}"
            )
    for img_path in images:
        image = read_image(img_path)
        ann = ann_dir / f"{img_path.stem}{suffix}"
        if not ann.is_file():
            raise DataError(ann, f"annotation for {img_path.name} not found")
        if annotations == "masks":
            instances = read_label_image(ann)
        else:
            instances = rasterize_polygons(read_xml_polygons(ann), image.shape[:2])
        if instances.shape != image.shape[:2]:
            raise DataError(
                ann,
                f"mask size {instances.shape[1]}x{instances.shape[0]} does not "
                f"match image size {image.shape[1]}x{image.shape[0]}",
            )
        mpp = read_xml_mpp(xml_dir / f"{img_path.stem}.xml")
        yield Sample(
            name=img_path.stem,
            image=image,
            instances=_relabel_sequential(instances),
            group=organ_of(img_path.stem),
            source=img_path,
            info={"mpp": None if mpp is None else [mpp, mpp]},
        )
