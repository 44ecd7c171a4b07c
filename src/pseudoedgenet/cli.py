"""Command-line interface: thin Typer subcommands that each call one library function."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from pseudoedgenet.errors import PseudoEdgeNetError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="PseudoEdgeNet: nuclei segmentation from point annotations (Yoo et al., MICCAI 2019).",
)


class Source(str, Enum):
    monuseg = "monuseg"
    tnbc = "tnbc"
    folder = "folder"


@app.command()
def prepare(
    source: Annotated[Source, typer.Argument(help="dataset reader")],
    src: Annotated[Path, typer.Option(help="dataset folder (e.g. ../shared/data/tnbc)")],
    out: Annotated[Path, typer.Option(help="prepared dataset folder to create")],
    split: Annotated[str, typer.Option(help="MoNuSeg split: train or test")] = "train",
    annotations: Annotated[str, typer.Option(help="MoNuSeg: auto, masks or xml")] = "auto",
    k: Annotated[int, typer.Option(help="number of cross-validation folds")] = 10,
    seed: Annotated[int, typer.Option(help="fold seed")] = 0,
    split_by: Annotated[str, typer.Option(help="fold by 'image' or by 'group' "
                                          "(patient for TNBC, organ for MoNuSeg)")] = "image",
    force: Annotated[bool, typer.Option(help="replace an existing output folder")] = False,
) -> None:
    """Reads a dataset and writes images, instance masks, points and folds."""
    from pseudoedgenet.data.folder import read_folder
    from pseudoedgenet.data.monuseg import list_monuseg, read_monuseg
    from pseudoedgenet.data.prepared import check_output_dir, prepare_dataset
    from pseudoedgenet.data.tnbc import read_tnbc

    check_output_dir(out, force)
    if split_by not in ("image", "group"):
        raise typer.BadParameter("--split-by must be 'image' or 'group'")
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
    meta = prepare_dataset(
        samples, out, k=k, seed=seed, split_by=split_by, force=force, total=total,
        source={"reader": source.value, "path": str(src), "split": split,
                "annotations": annotations},
    )
    typer.echo(f"{out}: {meta['n_images']} images, {meta['n_points']} points")


@app.command()
def labels(
    data: Annotated[Path, typer.Argument(help="prepared dataset folder")],
    force: Annotated[bool, typer.Option(help="replace existing labels/")] = False,
) -> None:
    """Writes Voronoi label maps (1 = point, 0 = boundary, 255 = ignore) to DATA/labels/."""
    from pseudoedgenet.data.prepared import PreparedDataset, write_labels

    out = write_labels(PreparedDataset(data), force=force)
    typer.echo(f"wrote {out}")


@app.command()
def show(
    data: Annotated[Path, typer.Argument(help="prepared dataset folder")],
    name: Annotated[str, typer.Argument(help="image name (file stem)")],
    out: Annotated[Path, typer.Option(help="PNG file to write")],
) -> None:
    """Draws the points (green) and Voronoi boundaries (yellow) over an image."""
    from pseudoedgenet.data.io import write_png
    from pseudoedgenet.data.prepared import PreparedDataset
    from pseudoedgenet.errors import DataError
    from pseudoedgenet.labels import voronoi_labels
    from pseudoedgenet.viz import draw_labels

    ds = PreparedDataset(data)
    if name not in ds.names:
        raise DataError(data / "images" / f"{name}.png", "no such image in the prepared dataset")
    image = ds.image(name)
    write_png(out, draw_labels(image, voronoi_labels(ds.points(name), image.shape[:2])))
    typer.echo(f"wrote {out}")


def main() -> None:
    """Console-script entry point: bad input ends with one line on stderr and exit code 2."""
    try:
        app()
    except PseudoEdgeNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
