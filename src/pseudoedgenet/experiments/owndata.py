"""The points-only user's path, measured: the numbers of ``docs/own-data.md``.

Three measurements, each a resumable step that writes ``RESULTS/<step>.json`` when it
finishes (a step whose file exists is skipped; its run folder under ``WORK`` resumes from
``last.ckpt`` if it was interrupted):

``walkthrough``
    The walkthrough at full scale: the 30 MoNuSeg training images on a pyramidal slide with
    QuPath-style regions and clicks (:mod:`pseudoedgenet.walkthrough`), ``prepare qupath``,
    ``train`` with the defaults (the paper's method; validation = held-out regions, scored
    by clicks alone), ``predict`` on the whole slide, scored against the masks on six
    MoNuSeg *test* images placed on the same slide without regions or clicks.
``finetune_init`` / ``finetune_scratch``
    TNBC fold 0 (test fold 0, validation fold 1), trained for the same short budget once
    starting from the walkthrough's f, g and h (``train --init``) and once from scratch.
``select_monuseg``
    MoNuSeg fold 0 with the same short budget, from scratch.
``select_tnbc``
    TNBC fold 1 (test fold 1, validation fold 2), 16 epochs of 160 crops, from scratch: long
    enough for f to leave its all-foreground phase (on TNBC after about 4 epochs of 160
    crops), so the two selections can pick different epochs; fold 1 because the weakly
    supervised methods' test IoU there is far below their validation IoU
    (docs/tnbc-fold1.md), and a run that records both validation curves and both
    selections' test scores tells whether the choice of epoch is part of it. (Planned at the
    ``cpu`` protocol's 30 epochs; with g and h joining at epoch 6 an epoch took 5.5 minutes
    on the two shared cores, so 16 is what one sitting holds.)

Every TNBC/MoNuSeg run validates with masks *and* with clicks, so each keeps ``best.ckpt``
(val IoU, the paper's selection) and ``best_points.ckpt`` (point F1, what a user without
masks can do); both are tested. :func:`render` turns the step files into the tables of
``docs/own-data.md`` and the two README lines (between ``own-data`` markers).

Run it as ``python -m pseudoedgenet.experiments.owndata run --data ../shared/data`` and
``python -m pseudoedgenet.experiments.owndata render`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pseudoedgenet.data.io import write_json, write_text
from pseudoedgenet.errors import DataError, PseudoEdgeNetError
from pseudoedgenet.record import SCHEMA_VERSION, ResultRecord, Scores, record_from_dict

#: Training budget of each step (the paper's method otherwise unchanged): what two shared
#: CPU cores can run in one sitting. At 10 epochs of 64 crops the walkthrough's f still
#: marked 91 % of a validation image as nucleus (one blob; measured on the first attempt's
#: epoch-6 checkpoint), so it and the MoNuSeg fold get 12. The two TNBC runs compare a start
#: from trained weights with a start from scratch on a budget where the difference shows.
BUDGETS = {
    "walkthrough": ["train.epochs=12", "data.crops_per_epoch=64"],
    "finetune_init": ["train.epochs=8", "data.crops_per_epoch=64"],
    "finetune_scratch": ["train.epochs=8", "data.crops_per_epoch=64"],
    "select_monuseg": ["train.epochs=12", "data.crops_per_epoch=64"],
    "select_tnbc": ["train.epochs=16", "data.crops_per_epoch=160"],
}
#: MoNuSeg test images placed on the walkthrough slide without regions or clicks.
HELDOUT = 6
#: Best validation point F1 below which a run's f still marks most tissue as one blob
#: (recall of the clicks near 0 because few predicted components exist): the render says
#: so beside its selection difference.
BLOB_POINT_F1 = 0.1
STEPS = ("walkthrough", "finetune_init", "finetune_scratch", "select_monuseg", "select_tnbc")
DOC_BEGIN = "<!-- own-data results begin (generated; do not edit) -->"
DOC_END = "<!-- own-data results end -->"
README_BEGIN = "<!-- own-data summary begin (generated; do not edit) -->"
README_END = "<!-- own-data summary end -->"
RUN_COMMAND = "python -m pseudoedgenet.experiments.owndata run --data ../shared/data"
RENDER_COMMAND = "python -m pseudoedgenet.experiments.owndata render"


def _cfg(overrides: Sequence[str]) -> Any:
    from pseudoedgenet.config import apply_overrides, default_config

    return apply_overrides(default_config(), list(overrides))


@dataclass(frozen=True)
class SlideResult:
    """What the walkthrough step measured on its slide.

    Attributes:
        pictures: the PNGs drawn into ``docs/img``.
        regions: training regions (= prepared images).
        clicks: clicks inside them.
        held_out: held-out MoNuSeg test image -> scores of ``predict``'s slide mask there.
        mean: mean of those scores (the paper's per-image mean).
        predict_s: seconds ``predict`` took on the whole slide.
        nuclei: nuclei ``predict`` wrote for the slide.
    """

    pictures: tuple[str, ...]
    regions: int
    clicks: int
    held_out: dict[str, Scores]
    mean: Scores
    predict_s: float
    nuclei: int


@dataclass(frozen=True)
class StepRecord:
    """One ``results/own-data/<step>.json``: the run's :class:`ResultRecord` and how the
    step ran it.

    Attributes:
        step: one of :data:`STEPS`.
        budget: ``section.key=value`` settings on top of the packaged default.
        command: the command that runs the step again.
        step_wall_s: seconds the whole step took (preparing, training, predicting).
        record: the training run's result record.
        slide: the walkthrough's slide measurements (walkthrough only).
        schema_version: :data:`pseudoedgenet.record.SCHEMA_VERSION`.
    """

    step: str
    budget: tuple[str, ...]
    command: str
    step_wall_s: float
    record: ResultRecord
    slide: SlideResult | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``schema_version`` first; ``slide`` only for the walkthrough)."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "step": self.step,
            "budget": list(self.budget),
            "command": self.command,
            "step_wall_s": self.step_wall_s,
            "record": self.record.to_dict(),
        }
        if self.slide is not None:
            sl = self.slide
            out["slide"] = {
                "pictures": list(sl.pictures),
                "regions": sl.regions,
                "clicks": sl.clicks,
                "held_out": {k: asdict(v) for k, v in sl.held_out.items()},
                "mean": asdict(sl.mean),
                "predict_s": sl.predict_s,
                "nuclei": sl.nuclei,
            }
        return out


def read_step(path: str | Path) -> StepRecord:
    """Reads and validates a step file (:meth:`StepRecord.to_dict`).

    Raises:
        DataError: naming ``path``: unreadable, another ``schema_version``, a missing or
            unknown field, or an invalid record.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read step file ({type(exc).__name__})") from None
    keys = {"schema_version", "step", "budget", "command", "step_wall_s", "record", "slide"}
    if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
        raise DataError(path, f"not a step file of schema_version {SCHEMA_VERSION}")
    if set(raw) - keys or not {"step", "budget", "command", "step_wall_s", "record"} <= set(raw):
        raise DataError(path, f"a step file has the fields {sorted(keys)}")
    try:
        slide = None
        if "slide" in raw:
            sl = raw["slide"]
            slide = SlideResult(
                tuple(str(x) for x in sl["pictures"]),
                int(sl["regions"]),
                int(sl["clicks"]),
                {str(k): Scores(**v) for k, v in sl["held_out"].items()},
                Scores(**sl["mean"]),
                float(sl["predict_s"]),
                int(sl["nuclei"]),
            )
        step = StepRecord(
            str(raw["step"]),
            tuple(str(x) for x in raw["budget"]),
            str(raw["command"]),
            float(raw["step_wall_s"]),
            record_from_dict(raw["record"], path),
            slide,
        )
    except DataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(path, f"invalid step file ({type(exc).__name__}: {exc})") from None
    if step.step not in STEPS:
        raise DataError(path, f"unknown step {step.step!r}")
    return step


def _step_walkthrough(
    data: Path, work: Path, budget: Sequence[str]
) -> tuple[ResultRecord, SlideResult]:
    from pseudoedgenet.data.monuseg import read_monuseg
    from pseudoedgenet.data.prepared import PreparedDataset
    from pseudoedgenet.data.qupath import prepare_qupath
    from pseudoedgenet.engine.train import default_val_images, train_fold
    from pseudoedgenet.inference.run import PredictConfig, predict_files
    from pseudoedgenet.walkthrough import build_example, score_prediction

    example = work / "example"
    if not (example / "slide.tif").is_file():
        monuseg = data / "monuseg"
        build_example(
            list(read_monuseg(monuseg, "train")),
            list(read_monuseg(monuseg, "test"))[:HELDOUT],
            example,
        )
    src = work / "qupath"
    src.mkdir(parents=True, exist_ok=True)
    for name in ("slide.tif", "slide.geojson"):
        if not (src / name).exists():
            (src / name).symlink_to((example / name).resolve())
    prepared = work / "prepared"
    if not (prepared / "dataset.json").is_file():
        prepare_qupath(src, prepared, level=0, force=prepared.exists())
    n = len(PreparedDataset(prepared))
    res = train_fold(
        _cfg(budget),
        prepared,
        None,
        work / "run",
        protocol="own-data",
        val=default_val_images(n),
        config_source="packaged default (pen_att, the paper's method)",
    )
    pred = work / "pred"
    t0 = time.perf_counter()
    predict_files(
        work / "run" / "best.ckpt",
        [src / "slide.tif"],
        pred,
        PredictConfig(level=0, progress=False),
        force=True,
        log=print,
    )
    predict_s = time.perf_counter() - t0
    score = score_prediction(example, pred / "slide" / "mask.tif")
    info = json.loads((pred / "slide" / "predict.json").read_text())
    meta = json.loads((prepared / "dataset.json").read_text())
    pictures = draw_pictures(example, prepared, work / "run", pred / "slide", Path("docs/img"))
    assert res is not None  # one process
    slide = SlideResult(
        tuple(pictures),
        int(meta["n_images"]),
        int(meta["n_points"]),
        {k: Scores(**v) for k, v in score["images"].items()},
        Scores(**score["mean"]),
        round(predict_s, 1),
        int(info["nuclei"]),
    )
    return res, slide


def _scaled(coords: Any, factor: float) -> Any:
    """GeoJSON coordinates (nested lists of ``[x, y]``) multiplied by ``factor``."""
    if coords and isinstance(coords[0], (int, float)):
        return [c * factor for c in coords]
    return [_scaled(c, factor) for c in coords]


def _crop(slide_path: Path, box: tuple[int, int, int, int]) -> np.ndarray:
    from pseudoedgenet.data.slide import open_slide

    with open_slide(slide_path, level=0) as slide:
        return slide.read(box)


def draw_pictures(
    example: Path, prepared: Path, run: Path, pred: Path, out: Path, side: int = 400
) -> list[str]:
    """The walkthrough's pictures, from its example, prepared data, run and prediction.

    Writes into ``out``: ``own-data-slide.png`` (slide thumbnail with the regions and
    clicks of ``slide.geojson``), ``own-data-show.png`` (``pseudoedgenet show`` of the first
    region: clicks green, Voronoi negatives yellow, outside the region darkened),
    ``own-data-val.png`` (validation point F1, recall and precision per epoch from the
    run's ``metrics.csv``), ``own-data-predict.png`` (f's mask at 0.5 tinted green and the
    ``nuclei.geojson`` outlines, which the area filters have thinned, in yellow over a
    ``side``-px crop of the first held-out image, at 2x). Returns the file names.
    """
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tifffile

    from pseudoedgenet.data.io import write_png
    from pseudoedgenet.data.prepared import PreparedDataset
    from pseudoedgenet.data.slide import open_slide
    from pseudoedgenet.viz import draw_geojson, draw_labels, overlay_mask

    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((example / "example.json").read_text())
    features = json.loads((example / "slide.geojson").read_text())["features"]
    with open_slide(example / "slide.tif", level=0) as slide:
        thumb = slide.thumbnail(640)
        scale = thumb.shape[1] / slide.level0_shape[1]
    # the thumbnail is the slide scaled by `scale`: scale the coordinates the same way
    small = [
        {
            **f,
            "geometry": {
                **f["geometry"],
                "coordinates": _scaled(f["geometry"]["coordinates"], scale),
            },
        }
        for f in features
    ]
    write_png(out / "own-data-slide.png", draw_geojson(thumb, small, point_radius=1))
    ds = PreparedDataset(prepared)
    name = ds.names[0]
    image = ds.image(name)
    roi = ds.roi(name, image.shape[:2])
    shown = image if roi is None else overlay_mask(image, ~roi, color=(0, 0, 0), alpha=0.5)
    write_png(
        out / "own-data-show.png",
        draw_labels(shown, ds.point_labels(name, image.shape[:2]))[:side, :side],
    )
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for key, label in (
        ("val/point_f1", "point F1 (selects best.ckpt)"),
        ("val/point_recall", "point recall"),
        ("val/point_precision", "instance precision"),
    ):
        pts = [(int(r["epoch"]) + 1, float(r[key])) for r in rows if r.get(key)]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1)
    ax.set_title("validation by clicks (held-out regions)")
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "own-data-val.png", metadata={"Software": None})
    plt.close(fig)
    held = next(t for t in meta["tiles"] if not t["annotated"])
    box = (held["y"], held["y"] + side, held["x"], held["x"] + side)
    nuclei = json.loads((pred / "nuclei.geojson").read_text())["features"]
    mask = tifffile.imread(pred / "mask.tif")[box[0] : box[1], box[2] : box[3]] > 0
    tinted = overlay_mask(_crop(example / "slide.tif", box), mask, (0, 220, 60), 0.3)
    write_png(
        out / "own-data-predict.png",
        draw_geojson(tinted, nuclei, (held["x"], held["y"]), 2.0),
    )
    return ["own-data-slide.png", "own-data-show.png", "own-data-val.png", "own-data-predict.png"]


def _prepared(kind: str, data: Path, work: Path) -> Path:
    from pseudoedgenet.data.monuseg import read_monuseg
    from pseudoedgenet.data.prepared import prepare_dataset
    from pseudoedgenet.data.tnbc import read_tnbc

    out = work / kind
    if not (out / "dataset.json").is_file():
        samples = read_tnbc(data / "tnbc") if kind == "tnbc" else read_monuseg(data / "monuseg")
        prepare_dataset(samples, out, source={"reader": kind, "path": str(data / kind)}, k=10)
    return out


def _step_fold(
    kind: str,
    data: Path,
    work: Path,
    name: str,
    init: Path | None,
    budget: Sequence[str],
    fold: int = 0,
) -> ResultRecord:
    from pseudoedgenet.engine.train import train_fold

    prepared = _prepared(kind, data, work)
    res = train_fold(
        _cfg(budget),
        prepared,
        fold,
        work / name,
        dataset=kind,
        protocol="own-data",
        init=init,
    )
    assert res is not None  # one process
    return res


def run_steps(
    data: str | Path,
    work: str | Path,
    results: str | Path,
    steps: Sequence[str] = STEPS,
    overrides: Sequence[str] = (),
    allow_dirty: bool = False,
) -> None:
    """Runs the steps not yet in ``results`` (module docstring), in order.

    Args:
        data: the folder holding ``monuseg/`` and ``tnbc/`` (e.g. ``../shared/data``).
        work: scratch folder for examples, prepared data and run folders.
        results: folder of the committed step files.
        steps: which steps (default: all; ``finetune_init`` needs ``walkthrough``).
        overrides: ``section.key=value`` settings applied after :data:`BUDGETS` (recorded
            in each step file as ``budget``).
        allow_dirty: run from a tree with uncommitted changes (its records say so by
            their ``git_commit``); results for the docs come from a clean commit.
    """
    from pseudoedgenet.engine.runtime import git_commit

    data, work, results = Path(data), Path(work), Path(results)
    for s in steps:
        if s not in STEPS:
            raise DataError(None, f"unknown step {s!r}; valid: {', '.join(STEPS)}")
    for s in steps:  # a bad override fails here, before any work
        _cfg([*BUDGETS[s], *overrides])
    commit = git_commit()
    if commit.endswith("-dirty") and not allow_dirty:
        raise DataError(None, f"the working tree is dirty ({commit}): commit before a result run")
    for s in steps:
        target = results / f"{s}.json"
        if target.is_file():
            print(f"{s}: done ({target})")
            continue
        print(f"{s}: running")
        budget = [*BUDGETS[s], *overrides]
        t0 = time.perf_counter()
        slide = None
        if s == "walkthrough":
            rec, slide = _step_walkthrough(data, work / s, budget)
        elif s == "finetune_init":
            init = work / "walkthrough" / "run" / "best.ckpt"
            if not init.is_file():
                raise DataError(init, "run the walkthrough step first (its f is the start)")
            rec = _step_fold("tnbc", data, work, s, init, budget)
        elif s == "finetune_scratch":
            rec = _step_fold("tnbc", data, work, s, None, budget)
        elif s == "select_monuseg":
            rec = _step_fold("monuseg", data, work, s, None, budget)
        else:  # select_tnbc
            rec = _step_fold("tnbc", data, work, s, None, budget, fold=1)
        step = StepRecord(
            s,
            tuple(budget),
            f"{RUN_COMMAND} --steps {s}",
            round(time.perf_counter() - t0, 1),
            rec,
            slide,
        )
        write_json(target, step.to_dict())
        print(f"{s}: wrote {target}")


def _iou(scores: Scores | None) -> float | None:
    return None if scores is None else scores.iou


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.4f}" if signed else f"{v:.4f}"


def render(results: str | Path) -> tuple[list[str], list[str]]:
    """The doc tables and the README lines from the step files in ``results``.

    Returns:
        ``(doc_lines, readme_lines)``, Markdown without the markers.

    Raises:
        DataError: no step file, or a step file without the fields it needs.
    """
    results = Path(results)
    steps = {
        s: read_step(results / f"{s}.json") for s in STEPS if (results / f"{s}.json").is_file()
    }
    if not steps:
        raise DataError(results, f"no step file; run `{RUN_COMMAND}` first")
    recs = {s: st.record for s, st in steps.items()}
    any_rec = next(iter(recs.values()))
    proto = (
        f"random crops of {any_rec.crop}², pretrained: {any_rec.pretrained}, "
        f"device: {any_rec.device}, precision: {any_rec.precision}"
    )

    def budget(r: ResultRecord) -> str:
        return f"{r.epochs} epochs × {r.crops_per_epoch} crops"

    def epoch(e: int | None) -> str:
        return "–" if e is None else str(e)

    doc = [
        f"Generated by `{RENDER_COMMAND}` from `results/own-data/*.json` (written by "
        f"`{RUN_COMMAND}`). Every run: the paper's method (`pen_att`), {proto}; each "
        "run's budget (epochs × crops per epoch) is given with it. Short budgets, far from "
        "the paper's 100 × 800 crops: the numbers compare choices made under the same "
        "budget, not the method's accuracy (for that, see the README's results).",
        "",
    ]
    readme: list[str] = []
    w = recs.get("walkthrough")
    sl = steps["walkthrough"].slide if w else None
    if w and sl:
        sc = sl.mean
        doc += [
            "**Walkthrough at full scale** (one slide, "
            f"{sl.regions} regions with {sl.clicks} clicks; validation by clicks only):",
            "",
            "| what | value |",
            "|---|---|",
            f"| budget | {budget(w)} |",
            f"| best epoch by validation point F1 | {epoch(w.best_epoch)} "
            f"(point F1 {_fmt(w.val_point_f1)}) |",
            f"| held-out MoNuSeg test images on the slide: IoU / Dice / object F1 / AJI "
            f"(n = {len(sl.held_out)}) | {sc.iou:.4f} / {sc.dice:.4f} / "
            f"{sc.f1:.4f} / {sc.aji:.4f} |",
            f"| training wall time (summed over resumed attempts; cores shared with other "
            f"jobs) | {w.wall_s / 60:.0f} min |",
            f"| `predict` on the whole slide (level 0) | {sl.predict_s:.0f} s |",
            "",
        ]
        readme.append(
            f"- The walkthrough's example (one slide, {sl.regions} regions with "
            f"{sl.clicks} clicks, no masks; {budget(w)}): IoU {sc.iou:.4f} on "
            f"the {len(sl.held_out)} held-out MoNuSeg test images of the slide, validated and "
            f"selected by clicks alone."
        )
    rows = []
    labels = {
        "finetune_scratch": "TNBC fold 0, from scratch",
        "finetune_init": "TNBC fold 0, `--init` walkthrough f, g, h",
        "select_monuseg": "MoNuSeg fold 0, from scratch",
        "select_tnbc": "TNBC fold 1, from scratch",
    }
    for s, label in labels.items():
        r = recs.get(s)
        if not r:
            continue
        a, b = _iou(r.test), _iou(r.test_point_selected)
        diff = None if a is None or b is None else b - a
        rows.append((s, r, a, b, diff))
        doc_row = (
            f"| {label} | {budget(r)} | {_fmt(a)} (epoch {epoch(r.best_epoch)}) | {_fmt(b)} "
            f"(epoch {epoch(r.best_epoch_points)}) | {_fmt(diff, True)} |"
        )
        doc.append(doc_row)
    if rows:
        header = [
            "**Selection by clicks vs. by masks, and fine-tuning** (test IoU of the best "
            "checkpoint chosen each way on the same run; fold i = test fold i, validation "
            "fold i + 1):",
            "",
            "| run | budget | test IoU, selected by val IoU (masks) | test IoU, selected "
            "by val point F1 (clicks) | clicks − masks |",
            "|---|---|---|---|---|",
        ]
        at = len(doc) - len(rows)
        doc[at:at] = header
        doc.append("")
        diffs = [d for *_, d in rows if d is not None]
        if diffs:
            mean = sum(diffs) / len(diffs)
            same = sum(1 for _, r, *_ in rows if r.best_epoch == r.best_epoch_points)
            per_run = "; ".join(
                f"{labels[s]}, {budget(r)}: {d:+.4f}" for s, r, _, _, d in rows if d is not None
            )
            caveat = (
                ", so these runs say little about the cost of selecting by clicks"
                if same == len(rows)
                else ""
            )
            blobs = [
                labels[s]
                for s, r, *_ in rows
                if r.val_point_f1 is not None and r.val_point_f1 < BLOB_POINT_F1
            ]
            if blobs:
                many = len(blobs) > 1
                caveat += (
                    f"; the run{'s' if many else ''} {' and '.join(blobs)} ended with f still "
                    f"covering most tissue (best validation point F1 below {BLOB_POINT_F1}), "
                    f"so {'their differences compare' if many else 'its difference compares'} "
                    "two poor checkpoints"
                )
            readme.append(
                f"- Choosing the epoch by clicks instead of masks changed test IoU by "
                f"{mean:+.4f} on average over {len(diffs)} runs ({per_run}); both chose the "
                f"same epoch in {same} of {len(rows)}{caveat}."
            )
    fi, fs = recs.get("finetune_init"), recs.get("finetune_scratch")
    if fi and fs:
        a, b = _iou(fs.test), _iou(fi.test)
        if a is not None and b is not None:
            line = (
                f"- Fine-tuning (`train --init`) from f trained on MoNuSeg clicks: TNBC fold-0 "
                f"test IoU {b:.4f}, against {a:.4f} from scratch with the same budget "
                f"({b - a:+.4f})."
            )
            readme.append(line)
            doc += [line[2:], ""]
    if readme:
        readme.append(
            f"- Protocol: {proto}. Generated by `{RENDER_COMMAND}`; details in "
            "[docs/own-data.md](docs/own-data.md)."
        )
    return doc, readme


def _replace(path: Path, begin: str, end: str, lines: Sequence[str]) -> None:
    from pseudoedgenet.experiments.report import replace_block

    text = path.read_text(encoding="utf-8")
    write_text(path, replace_block(text, lines, path, begin=begin, end=end))


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``run`` the steps, ``render`` the docs (module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m pseudoedgenet.experiments.owndata")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the steps not yet done")
    r.add_argument("--data", type=Path, required=True, help="folder with monuseg/ and tnbc/")
    r.add_argument("--work", type=Path, default=Path("runs/own-data"))
    r.add_argument("--results", type=Path, default=Path("results/own-data"))
    r.add_argument("--steps", nargs="*", default=list(STEPS), choices=STEPS)
    r.add_argument("--set", dest="overrides", action="append", default=[], help="section.key=value")
    r.add_argument("--allow-dirty", action="store_true", help="for trying it out only")
    pc = sub.add_parser("pictures", help="redraw the walkthrough's pictures from WORK")
    pc.add_argument("--work", type=Path, default=Path("runs/own-data"))
    pc.add_argument("--out", type=Path, default=Path("docs/img"))
    d = sub.add_parser("render", help="regenerate the blocks in docs/own-data.md and README.md")
    d.add_argument("--results", type=Path, default=Path("results/own-data"))
    d.add_argument("--doc", type=Path, default=Path("docs/own-data.md"))
    d.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args(argv)
    try:
        if args.cmd == "pictures":
            w = args.work / "walkthrough"
            names = draw_pictures(
                w / "example", w / "prepared", w / "run", w / "pred" / "slide", args.out
            )
            print(f"wrote {', '.join(str(args.out / n) for n in names)}")
        elif args.cmd == "run":
            run_steps(
                args.data, args.work, args.results, args.steps, args.overrides, args.allow_dirty
            )
        else:
            doc, readme = render(args.results)
            _replace(args.doc, DOC_BEGIN, DOC_END, doc)
            if readme:
                _replace(args.readme, README_BEGIN, README_END, readme)
            print(f"wrote {args.doc} and {args.readme}")
    except PseudoEdgeNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
