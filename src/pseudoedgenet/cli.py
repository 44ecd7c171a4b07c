"""Command-line interface: thin Typer subcommands that each call one library function."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from pseudoedgenet.errors import PseudoEdgeNetError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain Click help: option names never cut at 80 columns
    help="PseudoEdgeNet: nuclei segmentation from point annotations (Yoo et al., MICCAI 2019).",
)


def _print_version(value: bool) -> None:
    if value:
        from pseudoedgenet import __version__

        typer.echo(f"pseudoedgenet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    pass


class Source(str, Enum):
    monuseg = "monuseg"
    tnbc = "tnbc"
    folder = "folder"
    qupath = "qupath"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


@app.command(short_help="Reads MoNuSeg, TNBC, a folder or QuPath exports into a prepared dataset.")
def prepare(
    source: Annotated[
        Source,
        typer.Argument(
            metavar="SOURCE",
            help="dataset reader; qupath: images/slides with <stem>.geojson (QuPath points, "
            "and regions around the areas where every nucleus was clicked) beside each",
            case_sensitive=False,
        ),
    ],
    src: Annotated[Path, typer.Option(help="dataset folder (e.g. ../shared/data/tnbc)")],
    out: Annotated[Path, typer.Option(help="prepared dataset folder to create")],
    split: Annotated[str, typer.Option(help="MoNuSeg split: train or test")] = "train",
    annotations: Annotated[str, typer.Option(help="MoNuSeg: auto, masks or xml")] = "auto",
    k: Annotated[
        int | None,
        typer.Option(
            help="number of cross-validation folds, 3 up to the number of images (groups) "
            "[default: 10, or one per image (group) when there are fewer]"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="fold seed")] = 0,
    split_by: Annotated[
        str,
        typer.Option(
            help="fold by 'image' or by 'group' (patient for TNBC, organ for MoNuSeg, "
            "source slide for QuPath)"
        ),
    ] = "image",
    force: Annotated[bool, typer.Option(help="replace an existing output folder")] = False,
    level: Annotated[
        int | None, typer.Option(help="QuPath: pyramid level to read (0 = full)")
    ] = None,
    mpp: Annotated[
        float | None,
        typer.Option(
            help="QuPath: read the level nearest this many microns per pixel; folder, tnbc: "
            "the images' pixel size, recorded so predict reads slides at it"
        ),
    ] = None,
    input_mpp: Annotated[
        float | None,
        typer.Option(
            help="QuPath: level-0 microns per pixel of images that record none (PNG/JPEG, "
            "TIFFs without resolution tags; an image QuPath exported at downsample d: the "
            "slide's µm/px × d); a file recording another is refused"
        ),
    ] = None,
    region_class: Annotated[
        str | None, typer.Option(help="QuPath: use only regions of this class [default: all]")
    ] = None,
    point_class: Annotated[
        str | None, typer.Option(help="QuPath: use only points of this class [default: all]")
    ] = None,
) -> None:
    """Reads a dataset and writes images, instance masks (when any), points, regions of
    interest (QuPath) and folds."""
    from pseudoedgenet.data.folder import read_folder
    from pseudoedgenet.data.monuseg import list_monuseg, read_monuseg
    from pseudoedgenet.data.prepared import (
        PreparedDataset,
        check_fold_count,
        check_output_dir,
        prepare_dataset,
    )
    from pseudoedgenet.data.qupath import prepare_qupath
    from pseudoedgenet.data.slide import MAX_SCAN_MPP, MIN_SCAN_MPP
    from pseudoedgenet.data.tnbc import read_tnbc
    from pseudoedgenet.errors import ConfigError

    check_output_dir(out, force)
    check_fold_count(k)
    if split_by not in ("image", "group"):
        raise typer.BadParameter("--split-by must be 'image' or 'group'")
    if input_mpp is not None and source is not Source.qupath:
        raise ConfigError(
            "--input-mpp: for `prepare qupath`; folder and tnbc declare the images' pixel "
            "size with --mpp, monuseg reads it from its XML"
        )
    if input_mpp is not None and not MIN_SCAN_MPP <= input_mpp <= MAX_SCAN_MPP:
        raise ConfigError(
            f"--input-mpp is the images' level-0 pixel size in µm per pixel, {MIN_SCAN_MPP:g} "
            f"to {MAX_SCAN_MPP:g} (a 40x scan is about 0.25, 20x about 0.5), got {input_mpp:g}"
        )
    if source is Source.qupath:
        meta = prepare_qupath(
            src,
            out,
            level=level,
            mpp=mpp,
            input_mpp=input_mpp,
            region_class=region_class,
            point_class=point_class,
            k=k,
            seed=seed,
            split_by=split_by,
            force=force,
        )
        q = meta["qupath"]
        typer.echo(
            f"{out}: {_plural(meta['n_images'], 'image')}, {_plural(meta['n_points'], 'point')} "
            f"(points outside every region: {q['points_outside_regions']}, "
            f"duplicates dropped: {q['duplicates_dropped']}){_folds_note(out, k)}; "
            + PreparedDataset(out).resolution().text()
        )
        for line in _qupath_read_lines(meta["images"].values()):
            typer.echo(line)
        return
    if mpp is not None and source is Source.monuseg:
        raise ConfigError(
            "--mpp: MoNuSeg's pixel size is read from its XML (MicronsPerPixel); --mpp is for "
            "`prepare qupath`, `folder` and `tnbc`"
        )
    if mpp is not None and not MIN_SCAN_MPP <= mpp <= MAX_SCAN_MPP:
        raise ConfigError(
            f"--mpp is the images' pixel size in µm per pixel, {MIN_SCAN_MPP:g} to "
            f"{MAX_SCAN_MPP:g} (a 40x scan is about 0.25, 20x about 0.5), got {mpp:g}"
        )
    given = [
        name
        for name, value in (
            ("--level", level),
            ("--region-class", region_class),
            ("--point-class", point_class),
        )
        if value is not None
    ]
    if given:
        raise ConfigError(f"{', '.join(given)}: for `prepare qupath` only")
    total = None
    if source is Source.monuseg:
        if annotations not in ("auto", "masks", "xml"):
            raise typer.BadParameter("--annotations must be auto, masks or xml")
        total = len(list_monuseg(src, split))
        samples = read_monuseg(src, split, annotations)  # type: ignore[arg-type]
    elif source is Source.tnbc:
        total = len(list(src.glob("Slide_*/*.png")))
        samples = read_tnbc(src)
    else:
        samples = read_folder(src)
    if mpp is not None:  # declared by the user: every image was scanned at this pixel size
        samples = (replace(s, info={**(s.info or {}), "mpp": [mpp, mpp]}) for s in samples)
    meta = prepare_dataset(
        samples,
        out,
        k=k,
        seed=seed,
        split_by=split_by,
        force=force,
        total=total,
        source={
            "reader": source.value,
            "path": str(src),
            "split": split,
            "annotations": annotations,
        },
    )
    dup = meta.get("duplicates_dropped", 0)
    dropped = f" (duplicates dropped: {dup}: points on an already clicked pixel)" if dup else ""
    resolution = PreparedDataset(out).resolution()
    res = resolution.text() if resolution.spread else "pixel size unknown (--mpp records it)"
    typer.echo(
        f"{out}: {_plural(meta['n_images'], 'image')}, {_plural(meta['n_points'], 'point')}"
        f"{dropped}{_folds_note(out, k)}; {res}"
    )


def _qupath_read_lines(infos: Iterable[dict[str, Any]]) -> list[str]:
    """One line per slide of a QuPath prepare: the level and resolution read, and, for a
    slide without regions, that it was used whole (so its unclicked nuclei are background)."""
    slides: dict[str, list[dict[str, Any]]] = {}
    for info in infos:
        slides.setdefault(Path(info["source"]).name, []).append(info)
    lines = []
    for name, its in sorted(slides.items()):
        first = its[0]
        mpp = first["mpp"]
        declared = " declared by --input-mpp" if first.get("mpp_declared") else ""
        res = f" ({mpp[0]:g} µm/px{declared})" if mpp else " (no µm/px in the file)"
        if first["region"] is None:
            what = (
                "no region drawn: the whole image is one training image, so every nucleus "
                "in it must be clicked (unclicked ones count as background)"
            )
        else:
            what = _plural(len(its), "region")
        lines.append(f"  {name}: level {first['level']}{res}; {what}")
    return lines


def _folds_note(out: Path, k: int | None) -> str:
    """``""``, or what a default ``--k`` became when there were fewer than 10 images
    (groups), for the summary line of ``prepare``."""
    import json

    from pseudoedgenet.data.prepared import DEFAULT_FOLDS

    folds = json.loads((out / "folds.json").read_text())
    if k is not None or folds["k"] == DEFAULT_FOLDS:
        return ""
    unit = "group" if folds["by"] == "group" else "image"
    note = f"; {folds['k']} fold(s), one per {unit} (fewer than {DEFAULT_FOLDS} {unit}s)"
    if folds["k"] < 3:
        note += ": too few for --fold, which needs 3"
    return note


@app.command(
    short_help="Writes the Voronoi label maps (point, boundary, ignored) of a prepared dataset."
)
def labels(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="prepared dataset folder")],
    force: Annotated[bool, typer.Option(help="replace existing labels/")] = False,
) -> None:
    """Writes Voronoi label maps (1 = point, 0 = boundary, 255 = ignore, also outside an
    image's region of interest) to DATA/labels/."""
    from pseudoedgenet.data.prepared import PreparedDataset, write_labels

    out = write_labels(PreparedDataset(data), force=force)
    typer.echo(f"wrote {out}")


@app.command(short_help="Draws one image's points and Voronoi boundaries.")
def show(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="prepared dataset folder")],
    name: Annotated[str, typer.Argument(metavar="NAME", help="image name (file stem)")],
    out: Annotated[Path, typer.Option(help="PNG file to write")],
) -> None:
    """Draws the points (green) and Voronoi boundaries (yellow) over an image; outside its
    region of interest (if any) the image is darkened and nothing is drawn."""
    from pseudoedgenet.data.io import write_png
    from pseudoedgenet.data.prepared import PreparedDataset
    from pseudoedgenet.errors import DataError
    from pseudoedgenet.viz import draw_labels, overlay_mask

    ds = PreparedDataset(data)
    if name not in ds.names:
        shown = ", ".join(ds.names[:8]) + (", ..." if len(ds.names) > 8 else "")
        raise DataError(
            data / "images" / f"{name}.png", f"no such image in the prepared dataset ({shown})"
        )
    image = ds.image(name)
    roi = ds.roi(name, image.shape[:2])
    if roi is not None:
        image = overlay_mask(image, ~roi, color=(0, 0, 0), alpha=0.5)
    write_png(out, draw_labels(image, ds.point_labels(name, image.shape[:2])))
    typer.echo(f"wrote {out}")


def _config(
    config: str | None,
    protocol: str | None,
    epochs: int | None,
    max_steps: int | None,
    crop: int | None,
    overrides: list[str] | None,
):
    """The run config (:func:`pseudoedgenet.config.resolve_config`): the base (the paper's
    method), then ``config`` (a packaged method's name or a YAML overlay), the protocol, the
    shortcut options and the ``--set`` overrides."""
    from pseudoedgenet.config import resolve_config

    return resolve_config(
        config,
        protocol,
        epochs=epochs,
        max_steps=max_steps,
        crop=crop,
        overrides=list(overrides or []),
    )


@contextmanager
def _interruptible() -> Iterator[None]:
    """A run stopped by SIGTERM ends with one line on stderr and exit code 143 (128 +
    SIGTERM, as a shell reports a job killed by it), so a scheduler counts it as failed."""
    from pseudoedgenet.engine.train import TrainingInterrupted

    try:
        yield
    except TrainingInterrupted as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(SIGTERM_EXIT) from None


#: ``--config``: a packaged method (a row of the paper's tables) or a user's YAML overlay.
CONFIG_HELP = (
    "a method of the paper's tables (baseline, densecrf, fully_supervised, pen, pen_att, "
    "pen_att_g2/g6/g8, pen_att_fpn18/34, pen_large_g) or a YAML file of the keys to change "
    "(on top of the base, the paper's method pen_att; a run's config.yaml loads as it is)"
)
ConfigOpt = Annotated[str, typer.Option(help=CONFIG_HELP)]
DataOpt = Annotated[Path, typer.Option(help="prepared dataset folder")]
ProtocolOpt = Annotated[
    str | None, typer.Option(help="named protocol overlay: paper, cpu, cpu-long, smoke, demo")
]
EpochsOpt = Annotated[int | None, typer.Option(help="override train.epochs")]
StepsOpt = Annotated[int | None, typer.Option(help="override train.max_steps")]
CropOpt = Annotated[int | None, typer.Option(help="override data.crop")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="section.key=value override; repeat --set for each (--set a.b=1 --set c.d=2)"
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        help="also show Lightning's log lines, warnings and progress bars (hidden by default)",
    ),
]

#: Exit code of a run stopped by SIGTERM (128 + 15).
SIGTERM_EXIT = 143


@app.command(
    short_help="Trains f (with g, h) on a prepared dataset; says first what it validates and "
    "selects with (val IoU with masks, point F1 with clicks only)."
)
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option(help="run folder (resumed if it holds last.ckpt)")],
    config: Annotated[
        str | None,
        typer.Option(help=CONFIG_HELP + "; default: the base, pen_att (PseudoEdgeNet with g, h)"),
    ] = None,
    fold: Annotated[
        int | None,
        typer.Option(
            help="test fold of the prepared folds (validation = fold+1, train = the rest); "
            "omit to hold out --val validation images and have no test set"
        ),
    ] = None,
    val: Annotated[
        int | None,
        typer.Option(
            help="without --fold: validation images held out (drawn with train.seed); "
            "default one in ten, at least one: max(1, n // 10); 0 = train on every image "
            "and keep the last checkpoint"
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="start f (and g, h where they match) from a best.ckpt/last.ckpt or an "
            "exported f file; a new run only (not with an --out to resume)"
        ),
    ] = None,
    protocol: ProtocolOpt = None,
    epochs: EpochsOpt = None,
    max_steps: StepsOpt = None,
    crop: CropOpt = None,
    overrides: SetOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Trains f (with g, h as configured) and keeps the best checkpoint: by val IoU when the
    validation images have masks (and best_points.ckpt by point F1), by point F1 (f's
    instances against the clicks) when they have points only. Prints what it validates,
    selects and tests with before it starts, then one line per epoch. An --out that holds
    a run resumes it (same config; --epochs/--max-steps may change); SIGTERM saves nothing
    new, keeps last.ckpt of the last whole epoch and exits with 143."""
    import json

    from pseudoedgenet.data.prepared import PreparedDataset
    from pseudoedgenet.errors import ConfigError

    # the options and the dataset are checked before the engine (torch, Lightning) loads,
    # so a mistake is reported in a second, not after the imports
    cfg = _config(config, protocol, epochs, max_steps, crop, overrides)
    if fold is not None and val is not None:
        raise ConfigError(
            "--val applies without --fold only (with --fold the rotation sets the validation "
            "images: fold + 1)"
        )
    n_images = len(PreparedDataset(data).names)

    from pseudoedgenet.engine.train import default_val_images, train_fold

    if fold is None and val is None:
        val = default_val_images(n_images)
    source = str(config) if config is not None else "packaged default (pen_att, the paper's method)"
    if protocol:
        source += f" + protocol {protocol}"
    shortcuts = {"--epochs": epochs, "--max-steps": max_steps, "--crop": crop}
    source += "".join(f" + {k} {v}" for k, v in shortcuts.items() if v is not None)
    if overrides:
        source += "".join(f" + --set {o}" for o in overrides)
    with _interruptible():
        res = train_fold(
            cfg,
            data,
            fold,
            out,
            protocol=protocol or "config",
            val=val or 0,
            init=init,
            config_source=source,
            log=typer.echo,
            verbose=verbose,
        )
    if res is None:  # a DDP process of rank > 0: rank 0 reports
        return
    summary = res.to_dict()
    line = {"method": res.method, "fold": res.fold, "selected_by": res.selected_by}
    for k in ("val_iou", "val_point_f1", "test", "test_points", "wall_s"):
        if k in summary:
            line[k] = summary[k]
    typer.echo(json.dumps(line))


@app.command(
    short_help="k-fold cross-validation (test fold i, validation i+1), one record per fold."
)
def crossval(
    config: ConfigOpt,
    data: DataOpt,
    out: Annotated[
        Path | None,
        typer.Option(
            help="results folder (default results/<dataset>/<method> for the cpu-long protocol, "
            "results/<dataset>-<protocol>/<method> for the others)"
        ),
    ] = None,
    folds: Annotated[str, typer.Option(help="folds to run: 0-9, 0,2,5 or 3")] = "0-9",
    runs: Annotated[
        Path | None,
        typer.Option(help="checkpoint folder (default runs/crossval/ + the same subfolder)"),
    ] = None,
    protocol: Annotated[
        str, typer.Option(help="protocol overlay: paper, cpu, cpu-long, smoke or demo")
    ] = "paper",
    dataset: Annotated[
        str | None, typer.Option(help="dataset name for the records (default: the reader)")
    ] = None,
    overrides: SetOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """k-fold cross-validation (test i, validation i+1); writes OUT/fold_<i>.json per fold."""
    from pseudoedgenet.data.prepared import PreparedDataset
    from pseudoedgenet.experiments.crossval import crossval as run_crossval
    from pseudoedgenet.experiments.crossval import parse_folds, results_subdir

    cfg = _config(config, protocol, None, None, None, overrides)
    ds = PreparedDataset(data)
    name = dataset or str(ds.meta.get("source", {}).get("reader", data.name))
    sub = results_subdir(name, protocol, cfg.method)
    out = out if out is not None else Path("results") / sub
    run_dir = runs if runs is not None else Path("runs/crossval") / sub
    fold_list = parse_folds(folds, len(ds.folds))
    with _interruptible():
        run_crossval(
            cfg,
            data,
            fold_list,
            out,
            run_dir,
            protocol,
            name,
            verbose=verbose,
        )


@app.command(short_help="Scores a checkpoint's f: test IoU, Dice, object F1 and AJI.")
def evaluate(
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="best.ckpt / last.ckpt of a training run")
    ],
    data: DataOpt,
    fold: Annotated[
        int | None,
        typer.Option(help="test fold of the rotation; omit to score every image of DATA"),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the scores to this JSON file")
    ] = None,
    accelerator: Annotated[str, typer.Option(help="auto, cpu or gpu")] = "auto",
) -> None:
    """Prints test IoU, Dice, object F1 and AJI of a checkpoint's f (threshold 0.5), in all
    and per image."""
    import json

    from pseudoedgenet.data.io import write_json
    from pseudoedgenet.data.prepared import check_output_file
    from pseudoedgenet.engine.evaluate import evaluate_checkpoint
    from pseudoedgenet.engine.train import check_accelerator

    check_accelerator(accelerator, "--accelerator")
    if json_out is not None:
        check_output_file(json_out, "--json")
    res = evaluate_checkpoint(checkpoint, data, fold, accelerator)
    if json_out is not None:
        write_json(json_out, res)
    t = res["test"]
    typer.echo(
        f"{_plural(res['test_images'], 'image')}: IoU {t['iou']:.4f}  Dice {t['dice']:.4f}  "
        f"F1 {t['f1']:.4f}  AJI {t['aji']:.4f}  (mean per image; pooled IoU "
        f"{res['test_pooled']['iou']:.4f})"
    )
    for row in res["test_per_image"]:
        typer.echo(
            f"  {row['image']}: IoU {row['iou']:.4f}  AJI {row['aji']:.4f}  nuclei found "
            f"{row['tp_nuclei']} of {row['tp_nuclei'] + row['fn_nuclei']} "
            f"(+{row['fp_nuclei']} predictions matching none)  px: {row['true_px']} true, "
            f"{row['fp_px']} false positive, {row['fn_px']} missed"
        )
    typer.echo(json.dumps({"test": t}))


@app.command(short_help="Trains on every training image and tests the last epoch on a test set.")
def holdout(
    config: ConfigOpt,
    train_data: Annotated[Path, typer.Option(help="prepared training folder (all images)")],
    test_data: Annotated[Path, typer.Option(help="prepared test folder, e.g. data/monuseg-test")],
    out: Annotated[Path, typer.Option(help="result file, e.g. results/monuseg-test/pen_att.json")],
    runs: Annotated[
        Path | None, typer.Option(help="checkpoint folder (default runs/holdout/<out stem>)")
    ] = None,
    protocol: Annotated[
        str, typer.Option(help="protocol overlay: paper, cpu, cpu-long, smoke or demo")
    ] = "paper",
    dataset: Annotated[str | None, typer.Option(help="dataset name for the record")] = None,
    overrides: SetOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Trains on every training image and tests the last checkpoint on a separate test set."""
    from pseudoedgenet.experiments.holdout import holdout as run_holdout

    cfg = _config(config, protocol, None, None, None, overrides)
    run_dir = runs if runs is not None else Path("runs/holdout") / out.parent.name / out.stem
    with _interruptible():
        run_holdout(cfg, train_data, test_data, out, run_dir, protocol, dataset, verbose=verbose)


@app.command(
    short_help="Builds the results report (Tables 1 and 2, paired differences, plots) from "
    "the committed result files only."
)
def report(
    results: Annotated[
        Path,
        typer.Argument(metavar="RESULTS", help="results folder: <dataset>/<method>/fold_<i>.json"),
    ],
    out: Annotated[
        Path | None, typer.Option(help="markdown to write (default RESULTS/README.md)")
    ] = None,
    readme: Annotated[
        Path | None,
        typer.Option(help="also regenerate the summary block between the markers in this file"),
    ] = None,
) -> None:
    """Builds Tables 1 and 2 (mean ± std over folds, paper beside), the validation plots and
    the Figure-2 section from the committed files under RESULTS only (fold and split result
    records, figures.json and its PNGs); a rerun on an unchanged tree changes no file."""
    from pseudoedgenet.experiments.report import build_report

    res = build_report(results, out or results / "README.md", readme=readme)
    for note in res.notes:
        typer.echo(note)
    typer.echo(f"wrote {res.markdown} ({res.n_records} fold files, {len(res.images)} images drawn)")


@app.command(short_help="Draws a Figure-2 panel (input, h, g, g⊗h, f, baseline, truth).")
def figure2(
    checkpoint: Annotated[
        Path, typer.Option(help="best.ckpt of PEN(g+h): attention h, edges g, f")
    ],
    data: DataOpt,
    out: Annotated[Path, typer.Option(help="PNG to write, e.g. results/figure2_tnbc.png")],
    baseline: Annotated[
        Path | None, typer.Option(help="best.ckpt of the baseline (column f; default n/a)")
    ] = None,
    fold: Annotated[int, typer.Option(help="test fold whose first images are drawn")] = 0,
    images: Annotated[int, typer.Option(help="number of images (rows)")] = 3,
    title: Annotated[
        str | None,
        typer.Option(
            help="start of the caption, e.g. 'TNBC, protocol cpu' (default: data folder name)"
        ),
    ] = None,
) -> None:
    """Draws a Figure-2 panel (input, h, g, g⊗h, f, baseline, truth) from checkpoints and
    records it in figures.json beside the PNG (caption, this command, checkpoint SHA-256s,
    commit), from where `pseudoedgenet report` shows it."""
    from pseudoedgenet.experiments.figures import draw_figure2

    entry = draw_figure2(checkpoint, baseline, data, out, fold, images, title)
    typer.echo(f"wrote {out} and its entry in {out.parent / 'figures.json'}: {entry.caption}")


class ExportFormat(str, Enum):
    checkpoint = "checkpoint"
    torchscript = "torchscript"
    onnx = "onnx"


@app.command(short_help="Exports f alone (checkpoint, TorchScript or ONNX) for prediction.")
def export(
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="best.ckpt / last.ckpt of a run")
    ],
    out: Annotated[Path, typer.Option(help="file to write (f alone)")],
    format: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            help="checkpoint (this package's f file), torchscript (torch.jit) or onnx "
            "(needs pip install 'pseudoedgenet\\[onnx]'); default: named by --out's ending "
            "(.onnx, .ts; anything else, e.g. .pt, is the f file)",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
) -> None:
    """Exports the segmentation network f alone (g and h are training-only)."""
    from pseudoedgenet.export import export_model
    from pseudoedgenet.models.trained import read_weights

    written = export_model(checkpoint, out, None if format is None else format.value, force)
    mpp = read_weights(checkpoint).training_mpp  # the file written carries the same
    res = "no training pixel size recorded" if mpp is None else f"trained at {mpp:.4g} µm/px"
    typer.echo(f"wrote {written} ({res})")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Coords(str, Enum):
    qupath = "qupath"
    pixel_centre = "pixel-centre"


@app.command(short_help="Segments nuclei in images or slides: masks, QuPath GeoJSON, CSV.")
def predict(
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="exported f file or best.ckpt of a run")
    ],
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="INPUTS", help="images (PNG/JPEG/TIFF) or slides (.svs, pyramidal .tif, ...)"
        ),
    ],
    out: Annotated[Path, typer.Option(help="output folder: one OUT/<stem>/ per input")],
    device: Annotated[Device, typer.Option(help="where f runs")] = Device.auto,
    precision: Annotated[
        Precision,
        typer.Option(help="auto: bf16 on CPUs with native bf16, fp16 on CUDA, else fp32"),
    ] = Precision.auto,
    batch_size: Annotated[int, typer.Option(help="tiles per forward pass")] = 4,
    tile_size: Annotated[int, typer.Option(help="tile side in pixels (multiple of 32)")] = 512,
    overlap: Annotated[
        int, typer.Option(help="context margin per tile side (tiles step by tile - 2*overlap)")
    ] = 64,
    threshold: Annotated[float, typer.Option(help="foreground where p > threshold")] = 0.5,
    level: Annotated[int | None, typer.Option(help="pyramid level to read (0 = full)")] = None,
    mpp: Annotated[
        float | None,
        typer.Option(
            help="read the level nearest this many microns per pixel (default: the level "
            "nearest the model's training pixel size when both are known, else level 0)"
        ),
    ] = None,
    input_mpp: Annotated[
        float | None,
        typer.Option(
            help="level-0 microns per pixel of inputs that record none (PNG/JPEG, TIFFs "
            "without resolution tags; an image QuPath exported at downsample d: the slide's "
            "µm/px × d): areas in µm² and the check against the training pixel size then use "
            "it; an input recording another is refused"
        ),
    ] = None,
    any_resolution: Annotated[
        bool,
        typer.Option(
            help="predict at a level more than 20% off the model's training pixel size "
            "(refused otherwise: nothing is resampled)"
        ),
    ] = False,
    watershed: Annotated[
        bool, typer.Option(help="split touching nuclei by a distance-transform watershed")
    ] = False,
    min_area: Annotated[
        float | None,
        typer.Option(
            help="remove nuclei smaller than this: µm² when the input has a pixel size, else "
            "level-0 px (default 10 µm² / 40 px; 0 keeps all)"
        ),
    ] = None,
    max_area: Annotated[
        float | None,
        typer.Option(
            help="remove nuclei larger than this (with --watershed: pieces), same units "
            "(default 400 µm² / 6400 px; 0 = no limit)"
        ),
    ] = None,
    coords: Annotated[
        Coords,
        typer.Option(
            help="GeoJSON/CSV coordinates (level-0 px): qupath = integers at pixel corners, "
            "as QuPath; pixel-centre = integers at pixel centres (qupath - 0.5)"
        ),
    ] = Coords.qupath,
    region_from_name: Annotated[
        bool,
        typer.Option(
            help="an image named as QuPath names an exported region ('<slide> \\[d=2,x=..,y=..,"
            "w=..,h=..].png') gets GeoJSON/CSV coordinates in that slide's level 0, so they "
            "import onto it; --no-region-from-name keeps the image's own"
        ),
    ] = True,
    tissue_mask: Annotated[
        bool | None,
        typer.Option(
            "--tissue-mask/--no-tissue-mask",
            help="skip background tiles (Otsu on a thumbnail); default: for slides only",
        ),
    ] = None,
    whole_image: Annotated[
        bool | None,
        typer.Option(
            "--whole-image/--tiled",
            help="one forward pass per image (as testing does) or tiles; default: whole "
            "for images up to 1536x1536, tiles beyond and for slides",
        ),
    ] = None,
    shard: Annotated[
        str, typer.Option(help="i/n: process every n-th input starting at i (0-based)")
    ] = "0/1",
    force: Annotated[bool, typer.Option(help="replace existing OUT/<stem> folders")] = False,
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile f: ~25 s once per input size, then ~1.4x faster on CPU",
        ),
    ] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Segments nuclei in images or whole slides: probability map, masks, instances,
    QuPath GeoJSON, CSV measurements and an overlay per input."""
    from pseudoedgenet.inference.run import PredictConfig, parse_shard, predict_files

    cfg = PredictConfig(
        tile=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        threshold=threshold,
        device=device.value,
        precision=precision.value,
        level=level,
        mpp=mpp,
        input_mpp=input_mpp,
        any_resolution=any_resolution,
        watershed=watershed,
        min_area=min_area,
        max_area=max_area,
        coords=coords.value,
        tissue_mask=tissue_mask,
        whole_image=whole_image,
        region_from_name=region_from_name,
        compile=compile_model,
        progress=progress,
    )
    predict_files(checkpoint, inputs, out, cfg, parse_shard(shard), force, log=typer.echo)


def main() -> None:
    """Console-script entry point: bad input ends with one line on stderr and exit code 2,
    a mistyped option or value too (Click's usage errors, as ``error: <message>`` naming
    the command's ``--help``); ``--help`` and a command without arguments print help."""
    # Click's exception classes, as this Typer has them (newer Typers vendor Click)
    click_errors: dict[str, Any] = {c.__name__: c for c in typer.BadParameter.__mro__}
    click_exception = click_errors["ClickException"]
    usage_error = click_errors["UsageError"]
    try:
        code = app(standalone_mode=False, prog_name="pseudoedgenet")
    except PseudoEdgeNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click_exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `pseudoedgenet`, `... prepare`
            exc.show()
        else:
            ctx = exc.ctx if isinstance(exc, usage_error) else None
            hint = f": see {ctx.command_path} --help" if ctx is not None else ""
            message = " ".join(exc.format_message().split()).rstrip(".")
            message = message.replace("Value error, ", "")  # a validator's prefix, not ours
            print(f"error: {message}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:  # Ctrl-C outside a command's own handling
        print("Aborted.", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
