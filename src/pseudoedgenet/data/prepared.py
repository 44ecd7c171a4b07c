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
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
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
from pseudoedgenet.data.slide import near_mpp
from pseudoedgenet.data.splits import FoldSplit, fold_split, make_folds
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.labels import IGNORE, points_from_instances, voronoi_labels


def check_output_dir(out: str | Path, force: bool) -> Path:
    """Refuses an existing output folder unless ``force``; returns it as a Path."""
    out = Path(out)
    if out.exists() and not force:
        raise DataError(out, "output folder exists (use --force to replace it)")
    return out


def check_output_file(path: str | Path, option: str) -> Path:
    """Refuses an output file that cannot be written, before the work that fills it.

    Args:
        path: the file to write later (it may exist: it will be replaced).
        option: the option that named it (``--json``, ``--out``), for the message.

    Returns:
        ``path`` as a Path.

    Raises:
        DataError: ``path`` is a folder, or its nearest existing folder is a file or not
            writable.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(path, f"{option} names a folder: give a file name inside it instead")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise DataError(path, f"{option}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(path, f"{option}: cannot write in {parent} (permission denied)")
    return path


#: Folds of a dataset prepared without ``k`` (the paper's 10), fewer with fewer images.
DEFAULT_FOLDS = 10


def check_fold_count(k: int | None, n_units: int | None = None, unit: str = "images") -> None:
    """Refuses a fold count the rotation cannot use, or more folds than images (groups).

    Args:
        k: the requested number of folds, or ``None`` (the default: always valid).
        n_units: images (or groups) to split, or ``None`` when not known yet.
        unit: ``images`` or ``groups``, for the message.

    Raises:
        ConfigError: ``k < 3`` (the rotation needs a test, a validation and a training
            fold) or ``k > n_units``; the message names ``--k`` and the largest ``k``.
    """
    if k is None:
        return
    if k < 3:
        raise ConfigError(
            f"--k {k}: the fold rotation needs at least 3 folds (a test, a validation and a "
            "training fold): use --k 3 or more, or omit --k for up to 10"
        )
    if n_units is not None and k > n_units:
        fix = f"use --k {n_units} at most" if n_units >= 3 else "annotate more to use folds"
        raise ConfigError(
            f"--k {k}: only {n_units} {unit} to split into folds: {fix} (or omit --k: up to "
            f"{DEFAULT_FOLDS} folds, one per {unit[:-1]} when there are fewer)"
        )


@contextmanager
def _disk_errors(out: Path) -> Iterator[None]:
    """An ``OSError`` inside the block (read-only folder, full disk) as one line naming
    ``out``; :func:`~pseudoedgenet.data.io.atomic_dir` has removed the partial folder."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise DataError(
            out,
            f"cannot write: {exc.strerror or exc}{where}; nothing was written: choose a "
            "writable --out on a disk with free space",
        ) from None


def prepare_dataset(
    samples: Iterable[Sample],
    out: str | Path,
    *,
    source: dict[str, Any],
    k: int | None = None,
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
        k: number of folds (``folds.json``), 3 (the rotation's test, validation and
            training folds) up to the number of images (groups with ``split_by="group"``);
            ``None``: :data:`DEFAULT_FOLDS`, or one fold per image (group) when there are
            fewer (fewer than 3: no usable rotation, ``--fold`` refuses such a dataset).
        seed: fold seed.
        split_by: ``image`` or ``group`` (patient-wise for TNBC, organ for MoNuSeg).
        force: replace an existing ``out``.
        total: number of samples, for the progress bar.
        extra: further top-level ``dataset.json`` entries (e.g. a reader's counts); may
            not replace the standard ones.

    Returns:
        The ``dataset.json`` content.

    Raises:
        DataError: ``out`` exists without ``force``, any reader error, or an ``OSError``
            while writing (read-only folder, full disk: nothing is left behind).
        ConfigError: ``k`` below 3 or above the number of images (groups).
    """
    out = check_output_dir(out, force)
    check_fold_count(k, total if split_by == "image" else None, "images")
    with _disk_errors(out), atomic_dir(out, replace=force) as tmp:
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
        check_fold_count(k, n_units, "groups" if by_group else "images")
        k_used = k if k is not None else min(DEFAULT_FOLDS, n_units)
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
            "duplicates_dropped": sum(
                int(info.get("duplicates_dropped", 0)) for info in infos.values()
            ),
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
class Resolution:
    """The pixel size a set of prepared images was read at (what a model trained on them
    expects of the slides it is run on).

    Attributes:
        mpp: microns per pixel: the median over the images that record one, or ``None``
            when none does or they differ by more than
            :data:`~pseudoedgenet.data.slide.MPP_TOLERANCE` from it (mixed resolutions).
        images: number of images considered.
        with_mpp: how many of them record a pixel size.
        spread: ``(smallest, largest)`` recorded pixel size, or ``None``.
    """

    mpp: float | None
    images: int
    with_mpp: int
    spread: tuple[float, float] | None

    def text(self) -> str:
        """``"0.252 µm/px (13 of 30 images record one)"``, or why there is none."""
        if self.mpp is not None:
            known = (
                ""
                if self.with_mpp == self.images
                else f" ({self.with_mpp} of {self.images} images record one)"
            )
            return f"{self.mpp:.4g} µm/px{known}"
        if self.spread is None:
            return "pixel size unknown (no image records one)"
        lo, hi = self.spread
        return f"pixel size mixed ({lo:.4g}-{hi:.4g} µm/px): none recorded, predict cannot check it"


def image_mpp(info: Mapping[str, Any] | None) -> float | None:
    """The pixel size (µm/px, the geometric mean of x and y) an image record gives, or
    ``None``: no record, no ``mpp`` entry, or not positive numbers."""
    value = (info or {}).get("mpp")
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value):
        return None
    return float(np.sqrt(value[0] * value[1]))


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

    def resolution(self, names: Iterable[str] | None = None) -> Resolution:
        """The pixel size the images ``names`` (default: all) were read at, from the
        ``mpp`` of their ``dataset.json`` records (``prepare qupath``: the level read;
        ``prepare monuseg``: the XML's ``MicronsPerPixel``)."""
        infos = self.meta.get("images") or {}
        names = list(self.names if names is None else names)
        known = [m for n in names if (m := image_mpp(infos.get(n))) is not None]
        if not known:
            return Resolution(None, len(names), 0, None)
        median = float(np.median(known))
        spread = (min(known), max(known))
        mixed = not all(near_mpp(m, median) for m in spread)
        return Resolution(None if mixed else median, len(names), len(known), spread)

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
    with _disk_errors(out), atomic_dir(out, replace=force) as tmp:
        for name in tqdm(dataset.names, desc="labels", unit="img"):
            shape = dataset.image(name).shape[:2]
            write_png(tmp / f"{name}.png", dataset.point_labels(name, shape))
    return out
