"""Why the weakly supervised methods fail on TNBC fold 1 at the ``cpu`` protocol: the data.

At the ``cpu`` protocol every point-supervised method scores 0.37–0.41 test IoU on TNBC
fold 1 (test fold 1, validation fold 2) while full supervision reaches 0.64 on the same
fold, and the same runs reach ~0.57 on their validation images. No checkpoint of those
runs was kept, so this module answers what the *data* and the *committed records* can:

- which images fold 1 tests on (TNBC prepared with ``k=10`` exactly as
  ``pseudoedgenet prepare tnbc`` and :mod:`pseudoedgenet.experiments.owndata` do, so the
  fold assignment is the one the runs used; checked against the records' image counts),
- per image, from the instance masks and the training labels (points = centres of mass of
  the masks, :func:`~pseudoedgenet.labels.points_from_instances`, as ``prepare`` writes
  them; Voronoi labels of those points, :func:`~pseudoedgenet.labels.voronoi_labels`, as
  the training crops get them): nuclei, density, areas, foreground share, how much of the
  nucleus area the labels mark, how many negatives fall inside true nuclei, touching and
  elongated nuclei, and simple colour statistics (:func:`nucleus_stats`,
  :func:`colour_stats`),
- which runs scored the fold-1 and fold-2 images, as test or as validation images, and
  how the per-image mean compares with the pooled IoU (:func:`record_tables`),

and writes a figure (``OUT/img/tnbc-fold1.png``) and the generated block of
``OUT/tnbc-fold1.md``. Everything is deterministic: a second run changes no file (the PNG is
written only when its bytes change; it holds no metadata).

Run it as ``python -m pseudoedgenet.experiments.tnbc_fold1 --data ../shared/data --out docs``
(``--work``, default ``runs/tnbc-fold1``: where TNBC is prepared once and reused).

The ``cpu-long`` fold-1 runs keep their checkpoints: ``--score RUN`` (repeatable) scores a
finished run's ``best.ckpt``, ``best_points.ckpt`` and ``last.ckpt`` image by image first,
after checking the first two against the committed fold record
(:mod:`pseudoedgenet.experiments.per_image`), into ``results/tnbc-fold1/``, and draws
``best.ckpt``'s error maps into ``OUT/img/``; the page then shows which images carry the
loss, whether by false-positive or by missed pixels, and what the epoch choice changes.
Those committed files are read on every later run, so a fresh clone regenerates the page
without the checkpoints.
Point convention: ``(x, y)`` pixels, ``x`` = column, ``y`` = row (see :mod:`pseudoedgenet.data`).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from pseudoedgenet.data.io import atomic_path, write_text
from pseudoedgenet.data.prepared import PreparedDataset
from pseudoedgenet.errors import DataError, PseudoEdgeNetError
from pseudoedgenet.experiments.per_image import (
    PerImageScores,
    ScoredCheckpoint,
    read_json_object,
    read_per_image,
    read_per_image_file,
    score_run,
)
from pseudoedgenet.experiments.records import FoldRecord, load_results
from pseudoedgenet.experiments.report import distinct_values
from pseudoedgenet.labels import NEGATIVE, POSITIVE
from pseudoedgenet.postprocess import foreground

#: The fold this analysis is about (test fold; its validation fold is ``TEST_FOLD + 1``).
TEST_FOLD = 1
#: Folds of the TNBC cross-validation (``prepare --k 10``, the paper's rotation).
K = 10
#: The protocol whose fold-1 failure is analysed; ``cpu-long`` records are shown beside it.
PROTOCOL = "cpu"
#: A pixel is "white" (empty: fat, lumen, background) when every channel is at least this.
WHITE = 200
#: An image is "sparse" when its nuclei cover less than this share of it.
SPARSE = 0.03
#: Density unit: nuclei per ``DENSITY_AREA`` pixels (100 × 100).
DENSITY_AREA = 100 * 100

DOC_BEGIN = "<!-- tnbc-fold1 begin (generated; do not edit) -->"
DOC_END = "<!-- tnbc-fold1 end -->"
COMMAND = "python -m pseudoedgenet.experiments.tnbc_fold1 --data ../shared/data --out docs"
DOC_NAME = "tnbc-fold1.md"
#: Default scratch folder (git-ignored): TNBC prepared once, reused by later runs.
WORK = "runs/tnbc-fold1"
FIGURE_NAME = "img/tnbc-fold1.png"
#: Folder of ``--results`` holding the fold-1 runs' checkpoints scored image by image.
PER_IMAGE = "tnbc-fold1"
#: how far a bf16 error map's IoU may sit from the bf16 score of the same image
BF16_DRAW_TOLERANCE = 1e-3
#: Row order of the tables: the paper's Table-1 order, then any other method by name.
METHOD_ORDER = ("baseline", "densecrf", "pen_large_g", "pen", "pen_att", "fully_supervised")


@dataclass(frozen=True)
class NucleusStats:
    """What the instance mask and the training labels of one image look like.

    Attributes:
        n_nuclei: instances (distinct non-zero ids).
        density: nuclei per 100 × 100 pixels.
        mean_area, median_area: nucleus area in pixels (``nan`` without nuclei).
        nucleus_pixels: pixels inside a nucleus.
        foreground: ``nucleus_pixels`` / image pixels.
        positive_share: share of nucleus pixels labelled positive (1).
        negatives_in_nuclei: share of the negative (0) pixels that lie inside a true
            nucleus: the label noise of the Voronoi negatives (``nan`` without negatives).
        nuclei_cut: share of nuclei holding at least one negative pixel.
        touching: share of nuclei 8-adjacent to a pixel of another nucleus.
        elongation: mean ratio of a nucleus's principal axes (major / minor, from the
            second moments of its pixels taken as unit squares: an ``a × b`` rectangle
            gives ``b / a``, a square or a disk 1).
    """

    n_nuclei: int
    density: float
    mean_area: float
    median_area: float
    nucleus_pixels: int
    foreground: float
    positive_share: float
    negatives_in_nuclei: float
    nuclei_cut: float
    touching: float
    elongation: float


def _share(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else float("nan")


def _elongations(instances: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Principal-axis ratio per id, from pixel-centre moments plus 1/12 (unit squares)."""
    grid = np.indices(instances.shape, dtype=np.float64)
    rows, cols = grid[0], grid[1]

    def total(values: np.ndarray) -> np.ndarray:
        return np.asarray(ndimage.sum_labels(values, instances, ids), dtype=np.float64)

    n = total(np.ones(instances.shape))
    mr, mc = total(rows) / n, total(cols) / n
    vr = total(rows * rows) / n - mr**2 + 1 / 12
    vc = total(cols * cols) / n - mc**2 + 1 / 12
    cov = total(rows * cols) / n - mr * mc
    half_sum, root = (vr + vc) / 2, np.sqrt(((vr - vc) / 2) ** 2 + cov**2)
    return np.asarray(np.sqrt((half_sum + root) / (half_sum - root)))


def nucleus_stats(instances: np.ndarray, labels: np.ndarray) -> NucleusStats:
    """Statistics of one image's nuclei and of its point-supervision labels.

    Args:
        instances: ``(H, W)`` integer instance ids, 0 = background (ids need not be
            consecutive).
        labels: ``(H, W)`` uint8 label map of the same image: 1 = positive (point),
            0 = negative (Voronoi boundary), 255 = ignore.

    Returns:
        :class:`NucleusStats`; shares are fractions in ``[0, 1]``.

    Raises:
        ValueError: the two maps differ in shape.

    Shape:
        instances: (H, W) int; labels: (H, W) uint8 in {0, 1, 255}.
    """
    instances = np.asarray(instances).astype(np.int64)
    labels = np.asarray(labels)
    if instances.shape != labels.shape or instances.ndim != 2:
        raise ValueError(f"instances {instances.shape} and labels {labels.shape} must be (H, W)")
    ids = np.unique(instances)
    ids = ids[ids != 0]
    fg = instances > 0
    neg = labels == NEGATIVE
    n = int(ids.size)
    areas = np.asarray(ndimage.sum_labels(fg, instances, ids), dtype=np.float64)
    # a nucleus pixel touches another nucleus when its 3 × 3 neighbourhood holds another id
    big = int(instances.max()) + 1
    hi = ndimage.maximum_filter(instances, size=3, mode="constant", cval=0)
    lo = ndimage.minimum_filter(np.where(fg, instances, big), size=3, mode="constant", cval=big)
    touching = np.unique(instances[fg & ((hi != instances) | (lo != instances))])
    cut = np.unique(instances[neg & fg])
    return NucleusStats(
        n_nuclei=n,
        density=n / (instances.size / DENSITY_AREA),
        mean_area=float(areas.mean()) if n else float("nan"),
        median_area=float(np.median(areas)) if n else float("nan"),
        nucleus_pixels=int(fg.sum()),
        foreground=float(fg.mean()),
        positive_share=_share(int(np.count_nonzero(fg & (labels == POSITIVE))), int(fg.sum())),
        negatives_in_nuclei=_share(int(np.count_nonzero(neg & fg)), int(neg.sum())),
        nuclei_cut=_share(cut.size, n),
        touching=_share(touching.size, n),
        elongation=float(_elongations(instances, ids).mean()) if n else float("nan"),
    )


@dataclass(frozen=True)
class ColourStats:
    """Simple colour statistics of one image.

    Attributes:
        mean_rgb: mean of each channel (0–255).
        white: share of pixels whose three channels are all ``>= WHITE`` (empty: fat,
            lumen, background).
        h_nuclei, h_outside: mean haematoxylin optical density
            (``skimage.color.rgb2hed``, channel 0) inside and outside the nuclei (``nan``
            where there is no such pixel).
    """

    mean_rgb: tuple[float, float, float]
    white: float
    h_nuclei: float
    h_outside: float


def colour_stats(image: np.ndarray, instances: np.ndarray) -> ColourStats:
    """Colour statistics of one image, inside and outside its nuclei.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        instances: ``(H, W)`` integer instance ids, 0 = background.

    Returns:
        :class:`ColourStats`.

    Shape:
        image: (H, W, 3) uint8; instances: (H, W) int.
    """
    from skimage.color import rgb2hed

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != np.shape(instances):
        raise ValueError(
            f"image {image.shape} must be (H, W, 3) of instances {np.shape(instances)}"
        )
    fg = np.asarray(instances) > 0
    h = rgb2hed(image)[..., 0]
    r, g, b = (float(v) for v in image.reshape(-1, 3).mean(0))
    return ColourStats(
        mean_rgb=(r, g, b),
        white=float((image.min(axis=2) >= WHITE).mean()),
        h_nuclei=float(h[fg].mean()) if fg.any() else float("nan"),
        h_outside=float(h[~fg].mean()) if (~fg).any() else float("nan"),
    )


@dataclass(frozen=True)
class ImageStats:
    """One TNBC image: name, patient, fold and its statistics."""

    name: str
    patient: str
    fold: int
    nuclei: NucleusStats
    colour: ColourStats


def prepare_tnbc(data: str | Path, work: str | Path) -> PreparedDataset:
    """Prepares TNBC as the runs did (``read_tnbc``, ``prepare_dataset(..., k=10)``).

    Args:
        data: the folder holding ``tnbc/`` (e.g. ``../shared/data``).
        work: a scratch folder without ``tnbc/``; the prepared dataset is written to
            ``work/tnbc``.

    Returns:
        The prepared dataset (its folds are those of ``pseudoedgenet prepare tnbc``).

    Raises:
        DataError: no TNBC folder or a reader error.
    """
    from pseudoedgenet.data.prepared import prepare_dataset
    from pseudoedgenet.data.tnbc import read_tnbc

    src = Path(data) / "tnbc"
    if not src.is_dir():
        raise DataError(src, "TNBC folder not found: give --data the folder that holds tnbc/")
    out = Path(work) / "tnbc"
    prepare_dataset(read_tnbc(src), out, source={"reader": "tnbc", "path": str(src)}, k=K)
    return PreparedDataset(out)


def dataset_stats(dataset: PreparedDataset) -> list[ImageStats]:
    """Statistics of every image of a prepared dataset, with the labels training used.

    The labels are :meth:`PreparedDataset.point_labels` (Voronoi labels of the prepared
    points, the full-image version of what :class:`~pseudoedgenet.data.datamodule.CropDataset`
    builds per crop).

    Returns:
        One :class:`ImageStats` per image, in fold order, names sorted within a fold.

    Raises:
        DataError: an image without instance mask.
    """
    groups = dataset.meta.get("groups", {})
    out = []
    for fold, names in enumerate(dataset.folds):
        for name in sorted(names):
            image = dataset.image(name)
            instances = dataset.instances(name)
            if instances is None:
                raise DataError(dataset.root / "instances", f"{name}: no instance mask")
            labels = dataset.point_labels(name, instances.shape)
            out.append(
                ImageStats(
                    name,
                    str(groups.get(name, "")),
                    fold,
                    nucleus_stats(instances, labels),
                    colour_stats(image, instances),
                )
            )
    return out


# --------------------------------------------------------------------------- records


def _order(methods: Sequence[str]) -> list[str]:
    known = [m for m in METHOD_ORDER if m in methods]
    return known + sorted(set(methods) - set(known))


def tnbc_records(records: Sequence[FoldRecord]) -> dict[tuple[str, str], dict[int, FoldRecord]]:
    """TNBC fold records by ``(protocol, method)`` then fold (test IoU present only)."""
    out: dict[tuple[str, str], dict[int, FoldRecord]] = {}
    for r in records:
        if r.dataset == "tnbc" and r.record.test is not None:
            out.setdefault((r.protocol, r.method), {})[r.fold] = r
    return out


def _weak(r: FoldRecord) -> bool:
    return str(r.record.config["loss"]["supervision"]) == "points"


def _f(v: float | None, signed: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def _test(r: FoldRecord | None) -> float | None:
    return None if r is None or r.record.test is None else r.record.test.iou


def _pooled(r: FoldRecord | None) -> float | None:
    return None if r is None or r.record.test_pooled is None else r.record.test_pooled.iou


def _gap(r: FoldRecord | None) -> float | None:
    t, p = _test(r), _pooled(r)
    return None if t is None or p is None else p - t


def _val_iou(r: FoldRecord | None) -> float | None:
    return None if r is None else r.record.val_iou


def _val(r: FoldRecord | None) -> str:
    if r is None or r.record.val_iou is None:
        return "—"
    epoch = f" (epoch {r.record.best_epoch}/{r.record.epochs})" if r.record.best_epoch else ""
    return f"{r.record.val_iou:.4f}{epoch}"


def protocol_table(groups: Mapping[tuple[str, str], Mapping[int, FoldRecord]]) -> list[str]:
    """How the runs read on the page were trained, one row per protocol and method (values
    read from their records; several values of one column are joined)."""

    lines = [
        "**How these runs were trained** (read from their records; the folds are the paper's "
        "rotation, test fold i, validation fold i+1):",
        "",
        "| protocol | method | folds | epochs × crops of crop² | pretrained | device | precision |",
        "|---|---|---|---|---|---|---|",
    ]
    protocols = sorted({p for p, _ in groups}, key=lambda p: (p != PROTOCOL, p))
    keys = [(p, m) for p in protocols for m in _order([m for q, m in groups if q == p])]
    for protocol, method in keys:
        rs = [groups[(protocol, method)][f] for f in sorted(groups[(protocol, method)])]
        schedule = " / ".join(
            sorted(
                {f"{r.record.epochs} × {r.record.crops_per_epoch} of {r.record.crop}²" for r in rs}
            )
        )
        lines.append(
            f"| `{protocol}` | `{method}` | {', '.join(str(r.fold) for r in rs)} | {schedule} "
            f"| {distinct_values(rs, 'pretrained')} | {distinct_values(rs, 'device')} "
            f"| {distinct_values(rs, 'precision')} |"
        )
    return lines


def record_tables(groups: Mapping[tuple[str, str], Mapping[int, FoldRecord]]) -> list[str]:
    """The two tables from the records: test IoU per fold, and the same images scored by
    different runs (Markdown lines)."""
    k = K
    val_fold, prev_fold = (TEST_FOLD + 1) % k, (TEST_FOLD - 1) % k
    other = (prev_fold, val_fold)
    cpu = [m for p, m in groups if p == PROTOCOL]
    lines = [
        f"**Test IoU per fold, protocol `{PROTOCOL}`** (mean over the 5 test images; pooled IoU "
        "from summed pixel counts in parentheses; *gap* = pooled − per-image mean):",
        "",
        f"| method | fold {prev_fold} | fold {TEST_FOLD} | fold {val_fold} | gap, fold {TEST_FOLD} "
        f"| gap, folds {prev_fold} and {val_fold} | full − method, pooled, folds "
        f"{prev_fold} / {TEST_FOLD} / {val_fold} | best epoch, fold {TEST_FOLD} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fulls = [
        g
        for (p, m), g in groups.items()
        if p == PROTOCOL and TEST_FOLD in g and not _weak(g[TEST_FOLD])
    ]
    for m in _order(cpu):
        g = groups[(PROTOCOL, m)]
        if TEST_FOLD not in g:
            continue
        full_minus = (
            " / ".join(
                _f(_full_minus(fulls[0].get(f), g.get(f)), signed=True)
                for f in (prev_fold, TEST_FOLD, val_fold)
            )
            if len(fulls) == 1 and _weak(g[TEST_FOLD])
            else "—"
        )
        cells = [
            f"{_f(_test(g.get(f)))} ({_f(_pooled(g.get(f)))})" if f in g else "—"
            for f in (prev_fold, TEST_FOLD, val_fold)
        ]
        gaps = [x for x in (_gap(g.get(f)) for f in other) if x is not None]
        gap_other = ", ".join(_f(x, signed=True) for x in gaps) or "—"
        r1 = g[TEST_FOLD].record
        lines.append(
            f"| `{m}` | {' | '.join(cells)} | {_f(_gap(g[TEST_FOLD]), signed=True)} "
            f"| {gap_other} | {full_minus} | {r1.best_epoch}/{r1.epochs} |"
        )
    lines += [
        "",
        f"**The same images scored by different runs.** Fold {TEST_FOLD}'s images are the test "
        f"images of the fold-{TEST_FOLD} runs and the validation images of the fold-{prev_fold} "
        f"runs (whose training folds are 7 of the 8 of the fold-{TEST_FOLD} runs); fold "
        f"{val_fold}'s images validate the fold-{TEST_FOLD} runs and test the fold-{val_fold} "
        "runs. A validation IoU is the best over the run's epochs (it chose the checkpoint), "
        "so it is what selection *on these very images* would give that run:",
        "",
        f"| protocol | method | fold-{TEST_FOLD} images: test, fold-{TEST_FOLD} run "
        f"| fold-{TEST_FOLD} images: val, fold-{prev_fold} run "
        f"| fold-{val_fold} images: val, fold-{TEST_FOLD} run "
        f"| fold-{val_fold} images: test, fold-{val_fold} run |",
        "|---|---|---|---|---|---|",
    ]
    for proto in (PROTOCOL, *sorted({p for p, _ in groups} - {PROTOCOL})):
        for m in _order([mm for p, mm in groups if p == proto]):
            g = groups[(proto, m)]
            if TEST_FOLD not in g and prev_fold not in g:
                continue
            lines.append(
                f"| `{proto}` | `{m}` | {_f(_test(g.get(TEST_FOLD)))} | {_val(g.get(prev_fold))} "
                f"| {_val(g.get(TEST_FOLD))} | {_f(_test(g.get(val_fold)))} |"
            )
    return lines


# --------------------------------------------------------------------------- tables


def _pct(v: float, digits: int = 1) -> str:
    return "—" if not np.isfinite(v) else f"{100 * v:.{digits}f}"


def _num(v: float, digits: int = 0) -> str:
    return "—" if not np.isfinite(v) else f"{v:.{digits}f}"


def _role(fold: int) -> str:
    if fold == TEST_FOLD:
        return "test"
    return "validation" if fold == (TEST_FOLD + 1) % K else "training"


def image_table(stats: Sequence[ImageStats], folds: Sequence[int]) -> list[str]:
    """Per-image table (Markdown lines) of the images of ``folds``."""
    lines = [
        "| image | patient | fold (role) | nuclei | per 100² px | mean / median area px "
        "| nucleus px % | white px % | positive % of nucleus px | negatives inside nuclei % "
        "| nuclei cut by a negative % | elongation | mean RGB | H OD nuclei / outside |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in stats:
        if s.fold not in folds:
            continue
        n, c = s.nuclei, s.colour
        rgb = ", ".join(f"{v:.0f}" for v in c.mean_rgb)
        lines.append(
            f"| {s.name} | {s.patient} | {s.fold} ({_role(s.fold)}) | {n.n_nuclei} "
            f"| {_num(n.density, 2)} | {_num(n.mean_area)} / {_num(n.median_area)} "
            f"| {_pct(n.foreground)} | {_pct(c.white)} | {_pct(n.positive_share, 2)} "
            f"| {_pct(n.negatives_in_nuclei)} | {_pct(n.nuclei_cut)} | {_num(n.elongation, 2)} "
            f"| {rgb} | {_num(c.h_nuclei, 3)} / {_num(c.h_outside, 3)} |"
        )
    return lines


def _mean(values: Sequence[float]) -> float:
    arr = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    return float(arr.mean()) if arr.size else float("nan")


def fold_table(stats: Sequence[ImageStats]) -> list[str]:
    """Fold means of the per-image statistics, every fold and all images (Markdown lines)."""
    lines = [
        "| fold (role) | images | nuclei / image | per 100² px | mean area px | nucleus px % "
        f"| white px % | images under {_pct(SPARSE, 0)} % nucleus px | negatives inside nuclei % "
        "| nuclei cut by a negative % | elongation | H OD nuclei / outside |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    folds = sorted({s.fold for s in stats})
    for label, part in [
        *((f"{f} ({_role(f)})", [s for s in stats if s.fold == f]) for f in folds),
        ("all", list(stats)),
    ]:

        def m(get: Callable[[ImageStats], float], part: list[ImageStats] = part) -> float:
            return _mean([get(s) for s in part])

        sparse = sum(s.nuclei.foreground < SPARSE for s in part)
        h_in, h_out = m(lambda s: s.colour.h_nuclei), m(lambda s: s.colour.h_outside)
        cells = [
            label,
            str(len(part)),
            _num(m(lambda s: s.nuclei.n_nuclei), 1),
            _num(m(lambda s: s.nuclei.density), 2),
            _num(m(lambda s: s.nuclei.mean_area)),
            _pct(m(lambda s: s.nuclei.foreground)),
            _pct(m(lambda s: s.colour.white)),
            str(sparse),
            _pct(m(lambda s: s.nuclei.negatives_in_nuclei)),
            _pct(m(lambda s: s.nuclei.nuclei_cut)),
            _num(m(lambda s: s.nuclei.elongation), 2),
            f"{_num(h_in, 3)} / {_num(h_out, 3)}",
        ]
        lines.append(f"| {' | '.join(cells)} |")
    return lines


def _rank(stats: Sequence[ImageStats], name: str, key: str) -> int:
    """1-based rank of ``name`` among all images by nucleus share (ascending) or white
    share (descending)."""
    if key == "foreground":
        order = sorted(stats, key=lambda s: (s.nuclei.foreground, s.name))
    else:
        order = sorted(stats, key=lambda s: (-s.colour.white, s.name))
    return [s.name for s in order].index(name) + 1


def _span(values: Sequence[float], signed: bool = False) -> str:
    """``lo–hi`` of the values (``from lo to hi`` when signed), or the one value."""
    lo, hi = min(values), max(values)
    if lo == hi:
        return _f(lo, signed)
    return f"from {_f(lo, signed)} to {_f(hi, signed)}" if signed else f"{lo:.4f}–{hi:.4f}"


def _values(
    gs: Mapping[str, Mapping[int, FoldRecord]],
    fold: int,
    fn: Callable[[FoldRecord | None], float | None],
) -> list[float]:
    got = [fn(g.get(fold)) for g in gs.values()]
    return [float(v) for v in got if v is not None]


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _full_minus(full: FoldRecord | None, weak: FoldRecord | None) -> float | None:
    a, b = _pooled(full), _pooled(weak)
    return None if a is None or b is None else a - b


def findings(
    stats: Sequence[ImageStats],
    groups: Mapping[tuple[str, str], Mapping[int, FoldRecord]],
    train_names: Sequence[str],
    scores: Sequence[PerImageScores] = (),
) -> list[str]:
    """The generated findings list (Markdown lines): numbers from the data, the records and
    the per-image files (:func:`per_image_findings`)."""
    by_fold = {f: [s for s in stats if s.fold == f] for f in sorted({s.fold for s in stats})}
    test = by_fold[TEST_FOLD]
    val_fold, prev_fold = (TEST_FOLD + 1) % K, (TEST_FOLD - 1) % K
    n_all = len(stats)
    out: list[str] = []

    def add(text: str) -> None:
        out.append(f"{len(out) + 1}. {text}")

    names = ", ".join(f"{s.name} (patient {s.patient})" for s in test)
    add(f"Fold {TEST_FOLD} tests on {len(test)} images: {names}.")
    sparse = [s for s in test if s.nuclei.foreground < SPARSE]
    if sparse:
        desc = "; ".join(
            f"{s.name}: {s.nuclei.n_nuclei} nuclei, {s.nuclei.nucleus_pixels} nucleus px "
            f"({_pct(s.nuclei.foreground)} % of the image, rank "
            f"{_rank(stats, s.name, 'foreground')} of {n_all} from the emptiest), "
            f"{_pct(s.colour.white)} % white px (rank {_rank(stats, s.name, 'white')} of "
            f"{n_all} from the whitest), elongation {s.nuclei.elongation:.2f}"
            for s in sparse
        )
        add(
            f"{len(sparse)} of them have nuclei on less than {_pct(SPARSE, 0)} % of the image "
            f"({desc}). The per-image mean gives each of them 1/{len(test)} of the fold's score, "
            "and an image's IoU falls to 0.5 as soon as its false-positive pixels equal its "
            "nucleus pixels (with every nucleus found)."
        )
    by_name = {s.name: s for s in stats}
    train_sparse = [n for n in sorted(train_names) if by_name[n].nuclei.foreground < SPARSE]
    patients = {s.patient for s in sparse}
    same_patient = [n for n in sorted(train_names) if by_name[n].patient in patients]
    add(
        f"The fold-{TEST_FOLD} runs trained on {len(train_sparse)} of {len(train_names)} images "
        f"under {_pct(SPARSE, 0)} % nucleus pixels ("
        + "; ".join(
            f"{n}: {_pct(by_name[n].nuclei.foreground)} %, {_pct(by_name[n].colour.white)} % white"
            for n in train_sparse
        )
        + ")"
        + (
            f"; on images of the same patient{'s' if len(patients) > 1 else ''} as the sparse "
            f"test images: {', '.join(same_patient)}."
            if same_patient
            else "."
        )
    )
    val_sparse = sum(s.nuclei.foreground < SPARSE for s in by_fold[val_fold])
    val_fg = _mean([s.nuclei.foreground for s in by_fold[val_fold]])
    densest = max(by_fold, key=lambda f: _mean([s.nuclei.foreground for s in by_fold[f]]))
    rank = f"the highest of the {len(by_fold)} folds" if densest == val_fold else "not the highest"
    add(
        f"The validation fold ({val_fold}) holds {val_sparse} image(s) under "
        f"{_pct(SPARSE, 0)} % nucleus pixels; its mean nucleus share, {_pct(val_fg)} %, is {rank}"
        f" (fold {TEST_FOLD}: {_pct(_mean([s.nuclei.foreground for s in test]))} %)."
    )
    neg = {f: _mean([s.nuclei.negatives_in_nuclei for s in by_fold[f]]) for f in by_fold}
    touching = sum(round(s.nuclei.touching * s.nuclei.n_nuclei) for s in stats)
    add(
        f"Label noise: Voronoi negatives inside true nuclei are {_pct(neg[TEST_FOLD])} % of the "
        f"negatives on fold {TEST_FOLD}'s images, {_pct(neg[val_fold])} % on fold {val_fold}'s, "
        f"{_pct(_mean([s.nuclei.negatives_in_nuclei for s in stats]))} % over all {n_all} images. "
        f"Nuclei touching another nucleus: {touching} of "
        f"{sum(s.nuclei.n_nuclei for s in stats)} (the reader's instances are the 8-connected "
        "components of TNBC's binary masks, so touching nuclei are one instance)."
    )
    cpu = {m: g for (p, m), g in groups.items() if p == PROTOCOL and TEST_FOLD in g}
    weak = {m: g for m, g in cpu.items() if _weak(g[TEST_FOLD])}
    full = {m: g for m, g in cpu.items() if not _weak(g[TEST_FOLD])}
    if weak:
        gap_w = _values(weak, TEST_FOLD, _gap)
        gap_o = _values(weak, prev_fold, _gap) + _values(weak, val_fold, _gap)
        gap_f = _values(full, TEST_FOLD, _gap)
        add(
            f"Per-image mean vs pooled IoU (records, `{PROTOCOL}`): on fold {TEST_FOLD} the "
            f"point-supervised methods' pooled IoU is {_span(gap_w, True)} above their "
            f"per-image mean; on folds {prev_fold} and {val_fold} the difference is "
            f"{_span(gap_o, True) if gap_o else '—'}"
            + (f"; fully supervised on fold {TEST_FOLD}: {_span(gap_f, True)}." if gap_f else ".")
        )
    if weak and len(full) == 1:
        fg = next(iter(full.values()))
        wider = [
            m
            for m, g in weak.items()
            if all(
                (d1 := _full_minus(fg.get(TEST_FOLD), g.get(TEST_FOLD))) is not None
                and (d := _full_minus(fg.get(f), g.get(f))) is not None
                and d1 > d
                for f in (prev_fold, val_fold)
            )
        ]
        n_dense = sum(s.nuclei.foreground >= SPARSE for s in test)
        add(
            f"Pooled IoU alone ({_pct(_dense_share(test), 0)} % of fold {TEST_FOLD}'s nucleus "
            f"pixels lie in its {n_dense} images with {_pct(SPARSE, 0)} % or more): the fully "
            f"supervised − point-supervised difference is larger on fold {TEST_FOLD} than on "
            f"both folds {prev_fold} and {val_fold} for {len(wider)} of {len(weak)} "
            "point-supervised methods (column *full − method, pooled* below)."
        )
        vw = _values(weak, prev_fold, _val_iou)
        vf = _values(full, prev_fold, _val_iou)
        tw = _values(weak, TEST_FOLD, _test)
        if vw and vf:
            add(
                f"Fold {TEST_FOLD}'s images as validation images of the fold-{prev_fold} runs "
                f"(`{PROTOCOL}`, best epoch): point-supervised {_span(vw)}, fully supervised "
                f"{_span(vf)}; as test images of the fold-{TEST_FOLD} runs: point-supervised "
                f"{_span(tw)}, fully supervised {_span(_values(full, TEST_FOLD, _test))}. "
                "Per method, fold-0 validation − fold-1 test: "
                + ", ".join(
                    f"`{m}` {_f(_diff(_val_iou(g.get(prev_fold)), _test(g.get(TEST_FOLD))), True)}"
                    for m, g in ((m, cpu[m]) for m in _order(list(cpu)))
                )
                + "."
            )
        v2 = _values(weak, TEST_FOLD, _val_iou)
        t2 = _values(weak, val_fold, _test)
        if v2 and t2:
            add(
                f"Fold {val_fold}'s images: validation IoU of the point-supervised "
                f"fold-{TEST_FOLD} runs {_span(v2)}, test IoU of the point-supervised "
                f"fold-{val_fold} runs {_span(t2)}."
            )
    for p in sorted({p for p, _ in groups} - {PROTOCOL}):
        rows = []
        for m in _order([mm for pp, mm in groups if pp == p]):
            r = groups[(p, m)].get(prev_fold)
            if r is None:
                continue
            base = groups.get((PROTOCOL, m), {}).get(prev_fold)
            at_base = f"; `{PROTOCOL}`: {_f(_val_iou(base))}" if _val_iou(base) is not None else ""
            epoch = f"epoch {r.record.best_epoch}/{r.record.epochs}"
            rows.append(f"`{m}` {_f(_val_iou(r))} ({epoch}{at_base})")
        if rows:
            done = TEST_FOLD in {f for (pp, _), g in groups.items() if pp == p for f in g}
            full_p = [
                g[prev_fold]
                for (pp, _), g in groups.items()
                if pp == p and prev_fold in g and not _weak(g[prev_fold])
            ]
            gaps = []
            if len(full_p) == 1 and len(full) == 1:
                full_c = next(iter(full.values())).get(prev_fold)
                for m in _order([mm for pp, mm in groups if pp == p]):
                    r = groups[(p, m)].get(prev_fold)
                    base = groups.get((PROTOCOL, m), {}).get(prev_fold)
                    if r is None or base is None or not _weak(r):
                        continue
                    now = _diff(_val_iou(full_p[0]), _val_iou(r))
                    before = _diff(_val_iou(full_c), _val_iou(base))
                    gaps.append(f"`{m}` {_f(before, True)} → {_f(now, True)}")
            add(
                f"Protocol `{p}`, fold-{prev_fold} runs: validation IoU on fold {TEST_FOLD}'s "
                f"images {', '.join(rows)}"
                + (
                    f"; fully supervised − method there, `{PROTOCOL}` → `{p}`: {', '.join(gaps)}"
                    if gaps
                    else ""
                )
                + ("." if done else f"; no fold-{TEST_FOLD} run at `{p}` yet.")
            )
        tested = []
        for m in _order([mm for pp, mm in groups if pp == p]):
            r = groups[(p, m)].get(TEST_FOLD)
            if r is None or _test(r) is None:
                continue
            base = groups.get((PROTOCOL, m), {}).get(TEST_FOLD)
            at_base = f"; `{PROTOCOL}`: {_f(_test(base))}" if _test(base) is not None else ""
            tested.append(
                f"`{m}` {_f(_test(r))} (pooled {_f(_pooled(r))}, epoch "
                f"{r.record.best_epoch}/{r.record.epochs}{at_base})"
            )
        if tested:
            add(
                f"Protocol `{p}`, fold-{TEST_FOLD} runs: test IoU on fold {TEST_FOLD}'s images "
                + ", ".join(tested)
                + "."
            )
    for text in per_image_findings(scores, stats):
        add(text)
    return out


def _dense_share(part: Sequence[ImageStats]) -> float:
    """Share of the nucleus pixels of ``part`` that lie in images over :data:`SPARSE`."""
    total = sum(s.nuclei.nucleus_pixels for s in part)
    dense = sum(s.nuclei.nucleus_pixels for s in part if s.nuclei.foreground >= SPARSE)
    return dense / total if total else float("nan")


# --------------------------------------------------------------------------- figure


def figure_images(stats: Sequence[ImageStats]) -> list[str]:
    """The figure's images: the emptiest and the densest test image of fold 1 (by nucleus
    share) and the median validation image of fold 2."""
    test = sorted(
        (s for s in stats if s.fold == TEST_FOLD), key=lambda s: (s.nuclei.foreground, s.name)
    )
    val = sorted(
        (s for s in stats if s.fold == (TEST_FOLD + 1) % K),
        key=lambda s: (s.nuclei.foreground, s.name),
    )
    return [test[0].name, test[-1].name, val[len(val) // 2].name]


def draw_figure(
    dataset: PreparedDataset, stats: Sequence[ImageStats], names: Sequence[str]
) -> bytes:
    """Draws one row per image: the image, the true instance outlines, the training labels.

    Labels panel: :func:`pseudoedgenet.viz.draw_labels` (negatives yellow, points green),
    negatives inside a true nucleus red; boundaries widened to 3 px so that they survive
    the downscaling.

    Returns:
        PNG bytes (no metadata, so they depend on the drawing only).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from pseudoedgenet.viz import draw_labels

    by_name = {s.name: s for s in stats}
    fig, axes = plt.subplots(len(names), 3, figsize=(12, 4.4 * len(names)), squeeze=False)
    for row, name in zip(axes, names, strict=True):
        s = by_name[name]
        image = dataset.image(name)
        instances = dataset.instances(name)
        assert instances is not None  # dataset_stats checked it
        labels = dataset.point_labels(name, instances.shape)
        outlined = image.copy()
        outlined[find_boundaries(instances, mode="thick")] = (0, 200, 60)
        neg = ndimage.binary_dilation(labels == NEGATIVE) & (labels != POSITIVE)
        wide = np.where(neg, NEGATIVE, labels).astype(np.uint8)
        drawn = draw_labels(image, wide, point_radius=3)
        drawn[neg & (instances > 0)] = (230, 30, 30)
        n = s.nuclei
        titles = (
            f"{name} (patient {s.patient}), fold {s.fold} {_role(s.fold)}\n{n.n_nuclei} nuclei, "
            f"{_pct(n.foreground)} % nucleus px, {_pct(s.colour.white)} % white px",
            "true instances (outlines)",
            "training labels\n(red: negative inside a true nucleus)",
        )
        for ax, pic, title in zip(row, (image, outlined, drawn), titles, strict=True):
            ax.imshow(pic, interpolation="antialiased")
            ax.set_title(title, fontsize=10)
            ax.set_axis_off()
    fig.tight_layout()
    return _png(fig)


def _png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes without metadata, in a 256-colour palette (median
    cut, no dithering: deterministic; a third of the RGB file's size); closes the figure."""
    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    buf.seek(0)
    small = io.BytesIO()
    with Image.open(buf) as img:
        img.convert("RGB").quantize(
            256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        ).save(small, format="PNG", optimize=True)
    return small.getvalue()


#: Colours of the error maps: predicted and true, predicted only, true only.
TP_RGB, FP_RGB, FN_RGB = (40, 200, 60), (235, 40, 40), (40, 110, 255)


def error_figure_name(protocol: str, method: str) -> str:
    """The error-map figure of a scored fold-1 run, relative to the docs folder."""
    return f"img/tnbc-fold1-{protocol}-{method}.png"


def draw_errors(
    dataset: PreparedDataset,
    checkpoint: str | Path,
    scored: ScoredCheckpoint,
    title: str,
    precision: str = "32",
) -> bytes:
    """Draws f's mask of each test image over the image: nucleus pixels it found green,
    false-positive pixels red, missed pixels blue (threshold 0.5, f alone, on CPU, at the
    ``precision`` the checkpoint was scored at: ``"32"`` fp32, ``"bf16..."`` under bf16
    autocast).

    Each panel's IoU is recomputed from the drawn mask and must equal the per-image score of
    ``scored`` (the same checkpoint evaluated by :func:`score_run`), so the picture shows
    what was scored: to 1e-6 in fp32; within :data:`BF16_DRAW_TOLERANCE` in bf16, where the
    memory layout alone moves a few pixels across the threshold (measured on TNBC 03_2:
    0.653108 vs 0.653094).

    Returns:
        PNG bytes (no metadata).

    Raises:
        DataError: the drawn mask's IoU differs from the scored one (another checkpoint).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import torch

    from pseudoedgenet.metrics import pixel_iou
    from pseudoedgenet.models.trained import load_segmenter
    from pseudoedgenet.viz import overlay_mask

    bf16 = precision.startswith("bf16")
    tolerance = BF16_DRAW_TOLERANCE if bf16 else 1e-6
    seg = load_segmenter(checkpoint).eval()
    rows = scored.images
    fig, axes = plt.subplots(1, len(rows), figsize=(3.3 * len(rows), 4.0), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        image = dataset.image(r.image)
        truth = dataset.instances(r.image)
        if truth is None:
            raise DataError(dataset.root, f"{r.image} has no instance mask")
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
            pred = foreground(torch.sigmoid(seg(x).float()), 0.5)[0, 0].numpy()
        true = truth > 0
        iou = pixel_iou(pred, true)
        if abs(iou - r.iou) > tolerance:
            raise DataError(
                Path(checkpoint),
                f"{r.image}: IoU {iou:.4f} drawn, {r.iou:.4f} scored: not the scored checkpoint",
            )
        pic = overlay_mask(image, pred & true, TP_RGB, 0.45)
        pic = overlay_mask(pic, pred & ~true, FP_RGB, 0.6)
        pic = overlay_mask(pic, ~pred & true, FN_RGB, 0.6)
        ax.imshow(pic, interpolation="antialiased")
        ax.set_title(
            f"{r.image}: IoU {r.iou:.3f}, AJI {r.aji:.3f}\n{r.fp_px} false-pos. px (red), "
            f"{r.fn_px} missed (blue)\n{r.tp_nuclei} of {r.tp_nuclei + r.fn_nuclei} nuclei matched",
            fontsize=9,
        )
        ax.set_axis_off()
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _png(fig)


def write_bytes_if_changed(path: str | Path, data: bytes) -> bool:
    """Writes ``data`` to ``path`` atomically unless the file already holds exactly it.

    Returns:
        Whether the file was written.
    """
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True


# --------------------------------------------------------------------------- document


def _scored_name(s: PerImageScores, c_file: str, epoch: int | None) -> str:
    at = f", epoch {epoch}" if epoch is not None else ""
    return f"`{s.protocol}` `{s.method}` {c_file}{at}"


def per_image_findings(scores: Sequence[PerImageScores], stats: Sequence[ImageStats]) -> list[str]:
    """Findings (without numbers) from the fold-1 checkpoints scored image by image: for
    each run's ``best.ckpt``, the images from worst to best, sparse vs dense images, how
    much of the error is false-positive pixels, and the image whose instances are worst
    relative to its pixels."""
    sparse = {s.name for s in stats if s.fold == TEST_FOLD and s.nuclei.foreground < SPARSE}
    out = []
    for s in scores:
        c = s.checkpoints[0]
        rows = sorted(c.images, key=lambda r: r.iou)
        listed = ", ".join(f"{r.image} {r.iou:.4f}" for r in rows)
        sp = [r.iou for r in c.images if r.image in sparse]
        dn = [r.iou for r in c.images if r.image not in sparse]
        groups = (
            f"; the {len(sp)} images under {_pct(SPARSE, 0)} % nucleus pixels average "
            f"{np.mean(sp):.4f}, the {len(dn)} others {np.mean(dn):.4f}"
            if sp and dn
            else ""
        )
        fp = sum(r.fp_px for r in c.images)
        fn = sum(r.fn_px for r in c.images)
        more_fp = sum(r.fp_px > r.fn_px for r in c.images)
        worst = max(c.images, key=lambda r: r.fp_px / max(r.true_px, 1))
        merged = max(c.images, key=lambda r: r.iou - r.aji)
        out.append(
            f"Image by image, {_scored_name(s, c.file, c.epoch)} (scored again from the "
            f"checkpoint: mean {c.test_iou:.4f}, the record's {c.record_test_iou:.4f}): IoU "
            f"{listed} (lowest first){groups}. False-positive pixels are "
            f"{_pct(fp / max(fp + fn, 1), 0)} % of the wrong pixels over the "
            f"{len(c.images)} images and outnumber the missed ones on {more_fp} of "
            f"{len(c.images)}; most on {worst.image}: {worst.fp_px} false-positive px for "
            f"{worst.true_px} nucleus px ({worst.fp_px / max(worst.true_px, 1):.1f}×). "
            f"Largest IoU − AJI: {merged.image} (IoU {merged.iou:.4f}, AJI {merged.aji:.4f}; "
            f"{merged.tp_nuclei} of {merged.tp_nuclei + merged.fn_nuclei} nuclei matched at "
            "IoU ≥ 0.5): there the instances score far below the pixels."
        )
        if len(s.checkpoints) > 1:
            ious = [x.test_iou for x in s.checkpoints]
            by = ", ".join(
                f"{x.file} (epoch {x.epoch}, {x.selected_by}) {x.test_iou:.4f}"
                for x in s.checkpoints
            )
            out.append(
                f"The epoch choice, `{s.protocol}` `{s.method}`: test IoU by checkpoint "
                f"{by}; the spread, {max(ious) - min(ious):.4f}, is what choosing another of "
                "these epochs changes."
            )
    return out


def per_image_table(scores: Sequence[PerImageScores], stats: Sequence[ImageStats]) -> list[str]:
    """One row per test image of fold 1, one column per scored checkpoint (Markdown)."""
    cols = [(s, c) for s in scores for c in s.checkpoints]
    by_name = {st.name: st for st in stats}
    names = [r.image for r in cols[0][1].images]
    lines = [
        f"**Fold {TEST_FOLD}'s test images, image by image**, scored again from the "
        f"checkpoints of the fold-{TEST_FOLD} runs (files in `results/{PER_IMAGE}/`, each with "
        "its command, the checkpoints' SHA-256 and the commit that trained them). Cell: IoU "
        "(false-positive px / missed px; nuclei matched at IoU ≥ 0.5 of the true nuclei):",
        "",
        "| image | nucleus px | "
        + " | ".join(_scored_name(s, c.file, c.epoch) for s, c in cols)
        + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for name in names:
        cells = []
        for _, c in cols:
            r = next((x for x in c.images if x.image == name), None)
            cells.append(
                "—"
                if r is None
                else f"{r.iou:.4f} ({r.fp_px} / {r.fn_px}; {r.tp_nuclei} of "
                f"{r.tp_nuclei + r.fn_nuclei})"
            )
        px = by_name[name].nuclei.nucleus_pixels if name in by_name else "—"
        lines.append(f"| {name} | {px} | {' | '.join(cells)} |")
    lines.append(
        "| mean (record) | | "
        + " | ".join(f"{c.test_iou:.4f} ({_f(c.record_test_iou)})" for _, c in cols)
        + " |"
    )
    return lines


def render(
    dataset: PreparedDataset,
    stats: Sequence[ImageStats],
    groups: Mapping[tuple[str, str], Mapping[int, FoldRecord]],
    figure_names: Sequence[str],
    results: str,
    scores: Sequence[PerImageScores] = (),
    error_figures: Sequence[str] = (),
) -> list[str]:
    """The generated block of ``tnbc-fold1.md`` (Markdown lines, without the markers);
    ``error_figures``: the committed error maps (:func:`draw_errors`), relative to docs."""
    split = dataset.split(TEST_FOLD)
    val_fold = split.val_fold
    per_image = ["", *per_image_table(scores, stats)] if scores else []
    for fig in error_figures:
        per_image += [
            "",
            f"![fold-{TEST_FOLD} test images: found, false-positive and missed pixels]({fig})",
            "",
            "*f's mask (threshold 0.5) of each test image over the image: green nucleus pixels "
            "found, red false-positive pixels, blue missed pixels; each panel's IoU is "
            "recomputed from the drawn mask and checked against the per-image file (to 1e-6 "
            "for a run scored in fp32; drawn under bf16, within "
            f"{BF16_DRAW_TOLERANCE:g}, for one scored in bf16).*",
        ]
    return [
        f"Generated by `{COMMAND}` from the TNBC images and masks (prepared with `k={K}`: the "
        f"folds of `pseudoedgenet prepare tnbc`) and the committed records `{results}/tnbc*/"
        f"<method>/fold_<i>.json` and `{results}/{PER_IMAGE}/*.json`; running it again changes "
        "no file.",
        "",
        "### Findings",
        "",
        *findings(stats, groups, split.train, scores),
        "",
        "### What the records say",
        "",
        *protocol_table(groups),
        "",
        *record_tables(groups),
        *per_image,
        "",
        "### The images",
        "",
        f"Per image, fold {TEST_FOLD} (test) and fold {val_fold} (validation). Labels are those "
        "training uses: a positive pixel at each nucleus's centre of mass and 1-pixel Voronoi "
        "boundaries as negatives (full-image version of the training crops' labels). *White*: all "
        f"three channels ≥ {WHITE}. *H OD*: haematoxylin optical density "
        "(`skimage.color.rgb2hed`). *Elongation*: major / minor principal axis.",
        "",
        *image_table(stats, (TEST_FOLD, val_fold)),
        "",
        f"Fold means (each image weighs the same) for all {K} folds; roles are those of the "
        f"fold-{TEST_FOLD} runs:",
        "",
        *fold_table(stats),
        "",
        f"![{', '.join(figure_names)}: image, true instance outlines, training labels]"
        f"({FIGURE_NAME})",
        "",
        f"*Rows: {figure_names[0]} and {figure_names[1]} (the emptiest and the densest test "
        f"image of fold {TEST_FOLD}), {figure_names[2]} (the median validation image of fold "
        f"{val_fold}). Labels: negatives (Voronoi boundaries) yellow, drawn 3 px wide; "
        "points green; negatives inside a true nucleus red.*",
    ]


_TEMPLATE = f"""# TNBC fold 1: why the point-supervised methods fail there

{DOC_BEGIN}
{DOC_END}

Regenerate with `{COMMAND}`.
"""


def check_split(
    dataset: PreparedDataset, groups: Mapping[tuple[str, str], Mapping[int, FoldRecord]]
) -> None:
    """Checks that the prepared fold sizes are those the fold-1 records report.

    Raises:
        DataError: no TNBC fold-1 record at the ``cpu`` protocol, or a record whose
            number of test (validation) images differs from the prepared split's.
    """
    split = dataset.split(TEST_FOLD)
    fold1 = [g[TEST_FOLD] for (p, _), g in groups.items() if p == PROTOCOL and TEST_FOLD in g]
    if not fold1:
        raise DataError(
            None, f"no TNBC fold-{TEST_FOLD} record at protocol `{PROTOCOL}` in --results"
        )
    for r in fold1:
        rec = r.record
        for what, got, want in (
            ("test", rec.test_images, len(split.test)),
            ("validation", rec.val_images, len(split.val)),
        ):
            if got is not None and got != want:
                raise DataError(
                    r.path,
                    f"{got} {what} images, but the prepared fold {TEST_FOLD} has {want}: the "
                    "records were made with another fold assignment",
                )


def check_prepared(dataset: PreparedDataset) -> None:
    """Checks that a prepared folder has the folds the runs used (TNBC, ``k=10``, seed 0,
    split by image: the defaults of ``pseudoedgenet prepare tnbc``).

    Raises:
        DataError: another dataset or another fold assignment.
    """
    folds = json.loads((dataset.root / "folds.json").read_text())
    got = (dataset.meta.get("source", {}).get("reader"), folds.get("k"), folds.get("seed"))
    if got != ("tnbc", K, 0) or folds.get("by") != "image":
        raise DataError(
            dataset.root / "folds.json",
            f"reader {got[0]}, k={got[1]}, seed {got[2]}, by {folds.get('by')}: the runs used "
            f"TNBC with k={K}, seed 0, by image (`pseudoedgenet prepare tnbc` defaults); "
            "delete the folder (it is prepared again) or give another --work",
        )


def check_fold1_run(run_dir: str | Path) -> None:
    """Checks that ``run_dir`` holds a finished TNBC fold-1 run (its ``result.json``).

    Raises:
        DataError: no readable ``result.json``, or a run of another dataset or fold.
    """
    result = Path(run_dir) / "result.json"
    raw = read_json_object(result, "cannot read: --score takes a finished crossval run folder")
    if (raw.get("dataset"), raw.get("fold")) != ("tnbc", TEST_FOLD):
        raise DataError(result, f"is not a TNBC fold-{TEST_FOLD} run: this page is about that fold")


def score_fold1_run(
    run_dir: str | Path,
    dataset: PreparedDataset,
    data: str | Path,
    results: str | Path,
    out: Path,
) -> Path:
    """Scores a TNBC fold-1 crossval run's checkpoints image by image
    (:func:`pseudoedgenet.experiments.per_image.score_run`) into ``results/tnbc-fold1/``
    and draws its ``best.ckpt``'s error maps into ``OUT/img/`` (:func:`draw_errors`).

    Raises:
        DataError: not a finished TNBC fold-1 run, or one that does not match its record.
    """
    check_fold1_run(run_dir)
    command = f"python -m pseudoedgenet.experiments.tnbc_fold1 --data {data} --score {run_dir}"
    path = score_run(run_dir, dataset.root, results, Path(results) / PER_IMAGE, command)
    scored = read_per_image_file(path)
    best = scored.checkpoints[0]
    title = (
        f"TNBC fold {TEST_FOLD} test images, protocol {scored.protocol}, {scored.method}, "
        f"{best.file} (epoch {best.epoch}, commit {scored.run_commit[:7]}): green found, "
        "red false positive, blue missed"
    )
    png = draw_errors(dataset, Path(run_dir) / best.file, best, title, scored.eval_precision)
    write_bytes_if_changed(out / error_figure_name(scored.protocol, scored.method), png)
    return path


def run(
    data: str | Path,
    out: str | Path,
    results: str | Path = "results",
    work: str | Path = WORK,
    score: Sequence[str | Path] = (),
) -> list[Path]:
    """Computes everything and writes ``OUT/tnbc-fold1.md`` (block) and the figure.

    Args:
        data: the folder holding ``tnbc/``.
        out: the docs folder (``tnbc-fold1.md`` is created there from a template when
            absent; its generated block is replaced otherwise).
        results: the committed results folder.
        work: scratch folder; TNBC is prepared into ``work/tnbc`` once and reused by later
            runs (after :func:`check_prepared`).
        score: finished TNBC fold-1 crossval run folders whose checkpoints are first scored
            image by image into ``results/tnbc-fold1/`` (:func:`score_fold1_run`).

    Returns:
        The files written (those whose content changed).

    Raises:
        DataError: missing data or records, broken markers, a fold assignment that does
            not match the records.
    """
    from pseudoedgenet.experiments.report import replace_block

    out = Path(out)
    groups = tnbc_records(load_results(results))
    doc = out / DOC_NAME
    text = doc.read_text(encoding="utf-8") if doc.is_file() else _TEMPLATE
    replace_block(text, [], doc, begin=DOC_BEGIN, end=DOC_END)  # markers checked before work
    for r in score:  # and the runs to score, before the data are read
        check_fold1_run(r)
    src = Path(data) / "tnbc"
    if not src.is_dir():
        raise DataError(src, "TNBC folder not found: give --data the folder that holds tnbc/")
    prepared = Path(work) / "tnbc"
    if (prepared / "dataset.json").is_file():
        dataset = PreparedDataset(prepared)
        check_prepared(dataset)
        kept = Path(str(dataset.meta.get("source", {}).get("path", "")))
        if kept.resolve() != src.resolve():
            raise DataError(
                prepared,
                f"was prepared from {kept}, not {src}: delete it (it is prepared again) or "
                "give another --work",
            )
    elif prepared.exists():
        raise DataError(
            prepared, "exists but is not a prepared dataset: delete it or give another --work"
        )
    else:
        dataset = prepare_tnbc(data, work)
    check_split(dataset, groups)
    written = [score_fold1_run(r, dataset, data, results, out) for r in score]
    scores = [
        s
        for s in read_per_image(Path(results) / PER_IMAGE)
        if s.dataset == "tnbc" and s.fold == TEST_FOLD
    ]
    stats = dataset_stats(dataset)
    names = figure_images(stats)
    png = draw_figure(dataset, stats, names)
    # each per-image file's error map is drawn beside it by --score and committed with it
    figures = [error_figure_name(s.protocol, s.method) for s in scores]
    block = render(dataset, stats, groups, names, Path(results).name, scores, figures)
    if write_bytes_if_changed(out / FIGURE_NAME, png):
        written.append(out / FIGURE_NAME)
    new = replace_block(text, block, doc, begin=DOC_BEGIN, end=DOC_END)
    if not doc.is_file() or doc.read_text(encoding="utf-8") != new:
        write_text(doc, new)
        written.append(doc)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command line (module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m pseudoedgenet.experiments.tnbc_fold1",
        description="Why the point-supervised methods fail on TNBC fold 1: data and records.",
    )
    parser.add_argument("--data", type=Path, required=True, help="folder holding tnbc/")
    parser.add_argument(
        "--work", type=Path, default=Path(WORK), help="scratch folder (TNBC prepared once)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs"), help="docs folder")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    parser.add_argument(
        "--score",
        type=Path,
        action="append",
        default=[],
        metavar="RUN",
        help="a finished TNBC fold-1 crossval run folder: score its checkpoints image by image "
        f"into RESULTS/{PER_IMAGE}/ first (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        written = run(args.data, args.out, args.results, args.work, args.score)
    except PseudoEdgeNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        print(f"error: --out {args.out}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {', '.join(map(str, written))}" if written else "no file changed")


if __name__ == "__main__":
    main()
