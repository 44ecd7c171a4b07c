"""The prepared-dataset folder: the one format training and evaluation read.

Layout written by :func:`prepare_dataset` (``pseudoedgenet prepare``)::

    OUT/images/<name>.png       RGB uint8
    OUT/instances/<name>.png    uint16 instance ids, 0 = background (when masks exist)
    OUT/points/<name>.csv       x,y header; (x, y) = (column, row) pixels of the image
    OUT/roi/<name>.png          uint8 255 = annotated region, 0 = outside (ignored in
                                training); only for images annotated in part (QuPath
                                regions), absent when the whole image is annotated
    OUT/labels/<name>.png       uint8 1 = point, 0 = Voronoi boundary, 255 = ignore
                                (written by ``pseudoedgenet labels``)
    OUT/folds.json              {"k", "seed", "by", "folds": [[names...], ...]}
    OUT/dataset.json            source, split, counts, groups, package version, and
                                ``images``: a record per image when the reader gives one
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pseudoedgenet import __version__
from pseudoedgenet.data.io import (
    atomic_dir,
    read_image,
    read_label_image,
    read_points_csv,
    write_json,
    write_png,
    write_points_csv,
)
from pseudoedgenet.data.sample import Sample
from pseudoedgenet.data.splits import FoldSplit, fold_split, make_folds
from pseudoedgenet.errors import DataError
from pseudoedgenet.labels import IGNORE, points_from_instances, voronoi_labels


def check_output_dir(out: str | Path, force: bool) -> Path:
    """Refuses an existing output folder unless ``force``; returns it as a Path."""
    out = Path(out)
    if out.exists() and not force:
        raise DataError(out, "output folder exists (use --force to replace it)")
    return out


def prepare_dataset(
    samples: Iterable[Sample],
    out: str | Path,
    *,
    source: dict[str, Any],
    k: int = 10,
    seed: int = 0,
    split_by: str = "image",
    force: bool = False,
    total: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes samples into the prepared-dataset layout, atomically.

    Points come from the sample when it has them, else from the instance masks
    (centre of mass, :func:`~pseudoedgenet.labels.points_from_instances`). A sample's
    ``roi`` is written to ``roi/<name>.png`` (255 inside, 0 outside), its ``info`` to
    ``dataset.json`` under ``images``.

    Args:
        samples: the images to write (consumed once).
        out: destination folder; built in a temporary sibling and renamed into place.
        source: description stored in ``dataset.json`` (reader name, path, split).
        k: number of folds (``folds.json``); reduced to the number of images/groups if
            there are fewer, with the reduction recorded.
        seed: fold seed.
        split_by: ``image`` or ``group`` (patient-wise for TNBC, organ for MoNuSeg).
        force: replace an existing ``out``.
        total: number of samples, for the progress bar.
        extra: further top-level ``dataset.json`` entries (e.g. a reader's counts); may
            not replace the standard ones.

    Returns:
        The ``dataset.json`` content.

    Raises:
        DataError: ``out`` exists without ``force``, or any reader error.
    """
    out = check_output_dir(out, force)
    with atomic_dir(out, replace=force) as tmp:
        names: list[str] = []
        groups: dict[str, str] = {}
        infos: dict[str, dict[str, Any]] = {}
        n_points = 0
        for s in tqdm(samples, total=total, desc="prepare", unit="img"):
            if s.name in groups:
                raise DataError(s.source, f"duplicate image name {s.name!r}")
            pts = s.points
            if pts is None:
                assert s.instances is not None
                pts = points_from_instances(s.instances)
            write_png(tmp / "images" / f"{s.name}.png", s.image)
            if s.instances is not None:
                write_png(tmp / "instances" / f"{s.name}.png", s.instances.astype(np.uint16))
            if s.roi is not None:
                if s.roi.shape != s.image.shape[:2]:
                    raise DataError(s.source, f"{s.name}: roi and image sizes differ")
                write_png(tmp / "roi" / f"{s.name}.png", np.where(s.roi, 255, 0).astype(np.uint8))
            if s.info is not None:
                infos[s.name] = s.info
            write_points_csv(tmp / "points" / f"{s.name}.csv", pts)
            names.append(s.name)
            groups[s.name] = s.group
            n_points += len(pts)
        if not names:
            raise DataError(source.get("path"), "no images found")
        by_group = split_by == "group"
        n_units = len(set(groups.values())) if by_group else len(names)
        k_used = max(2, min(k, n_units)) if n_units >= 2 else 1
        if k_used >= 2:
            folds = make_folds(
                names, k_used, seed, [groups[n] for n in names] if by_group else None
            )
        else:
            folds = [sorted(names)]
        write_json(tmp / "folds.json", {"k": k_used, "seed": seed, "by": split_by, "folds": folds})
        meta = {
            "source": source,
            "n_images": len(names),
            "n_points": n_points,
            "has_instances": (tmp / "instances").is_dir(),
            "has_roi": (tmp / "roi").is_dir(),
            "k_requested": k,
            "groups": groups,
            "pseudoedgenet_version": __version__,
            "point_convention": "(x, y) = (column, row) pixels of the full image",
        }
        if infos:
            meta["images"] = infos
        clash = sorted(set(meta) & set(extra or {}))
        if clash:
            raise ValueError(f"extra may not replace the dataset.json entries {clash}")
        meta.update(extra or {})
        write_json(tmp / "dataset.json", meta)
    return meta


@dataclass(frozen=True)
class PreparedDataset:
    """Read access to a prepared-dataset folder (see the module docstring).

    Args:
        root: the folder written by ``pseudoedgenet prepare``.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if not (self.root / "dataset.json").is_file():
            raise DataError(
                self.root,
                "not a prepared dataset (no dataset.json; run `pseudoedgenet prepare` first)",
            )

    @cached_property
    def meta(self) -> dict[str, Any]:
        return dict(json.loads((self.root / "dataset.json").read_text()))

    @cached_property
    def names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "images").glob("*.png"))

    @cached_property
    def folds(self) -> list[list[str]]:
        return [list(f) for f in json.loads((self.root / "folds.json").read_text())["folds"]]

    @property
    def has_instances(self) -> bool:
        return bool(self.meta.get("has_instances"))

    def split(self, test_fold: int) -> FoldSplit:
        """Train/val/test names for one fold of the paper's rotation."""
        return fold_split(self.folds, test_fold)

    def image(self, name: str) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB."""
        return read_image(self.root / "images" / f"{name}.png")

    def instances(self, name: str) -> np.ndarray | None:
        """``(H, W)`` uint16 instance ids or ``None`` without masks."""
        p = self.root / "instances" / f"{name}.png"
        return read_label_image(p) if p.is_file() else None

    def points(self, name: str) -> np.ndarray:
        """``(N, 2)`` float64 ``(x, y)`` pixel coordinates."""
        return read_points_csv(self.root / "points" / f"{name}.csv")

    def roi(self, name: str, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The annotated region of an image, or ``None`` when the whole image is annotated.

        Args:
            name: image name.
            shape: ``(H, W)`` the roi must have (the image's), or ``None`` to skip the check.

        Returns:
            ``(H, W)`` bool, ``True`` inside the region (``roi/<name>.png`` == 255).

        Raises:
            DataError: values other than 0/255, or a size other than ``shape``.
        """
        p = self.root / "roi" / f"{name}.png"
        if not p.is_file():
            return None
        arr = read_label_image(p)
        if not np.isin(arr, (0, 255)).all():
            raise DataError(p, "a roi must hold 0 (outside) and 255 (annotated region) only")
        if shape is not None and arr.shape != tuple(shape):
            raise DataError(
                p,
                f"roi size {arr.shape[1]}x{arr.shape[0]} does not match image size "
                f"{shape[1]}x{shape[0]}",
            )
        return arr == 255

    def point_labels(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        """The Voronoi label map of one image, ignored (255) outside its roi.

        Args:
            name: image name.
            shape: ``(H, W)`` of the image.

        Returns:
            ``(H, W)`` uint8: 1 = point, 0 = Voronoi boundary, 255 = ignore (also every
            pixel outside the roi, so no negative comes from unannotated tissue).
        """
        labels = voronoi_labels(self.points(name), shape)
        roi = self.roi(name, shape)
        if roi is not None:
            labels[~roi] = IGNORE
        return labels

    def sample(self, name: str) -> Sample:
        image = self.image(name)
        return Sample(
            name,
            image,
            self.instances(name),
            self.points(name),
            str(self.meta.get("groups", {}).get(name, "")),
            self.root / "images",
            self.roi(name, image.shape[:2]),
            self.meta.get("images", {}).get(name),
        )

    def __iter__(self) -> Iterator[Sample]:
        return (self.sample(n) for n in self.names)

    def __len__(self) -> int:
        return len(self.names)


def write_labels(dataset: PreparedDataset, force: bool = False) -> Path:
    """Writes ``labels/<name>.png`` (Voronoi label maps) for every image, atomically.

    Pixels outside an image's roi are 255 (ignore), see :meth:`PreparedDataset.point_labels`.

    Returns:
        The labels folder.
    """
    out = check_output_dir(dataset.root / "labels", force)
    with atomic_dir(out, replace=force) as tmp:
        for name in tqdm(dataset.names, desc="labels", unit="img"):
            shape = dataset.image(name).shape[:2]
            write_png(tmp / f"{name}.png", dataset.point_labels(name, shape))
    return out
