"""Figures of the results: Figure-2-style panels (input, attention h, raw edges g, final edges
g⊗h, f, baseline, GT) and validation-IoU-per-epoch curves.

:func:`draw_figure2` (``pseudoedgenet figure2``) draws a panel from checkpoints and records
in the figure manifest (:data:`~pseudoedgenet.experiments.records.FIGURE_MANIFEST`) how it
was drawn; the report only shows it. :func:`plot_val_curves` is drawn by the report from
the fold files, and :func:`val_curves_sha256` is the hash that decides whether it is
redrawn. PNGs carry no software version or date, so the same drawing on the same machine
gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np

from pseudoedgenet.data.io import atomic_path
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.experiments.records import (
    CheckpointRef,
    FigureEntry,
    file_sha256,
    read_figure_manifest,
    write_figure_manifest,
)
from pseudoedgenet.postprocess import foreground

if TYPE_CHECKING:
    from pseudoedgenet.engine.module import PseudoEdgeNetModule

#: Version of the look of :func:`plot_val_curves`, part of :func:`val_curves_sha256`:
#: bump it when the plot is drawn differently, so that the report redraws the plots.
VAL_PLOT_STYLE = 1


def network_maps(module: PseudoEdgeNetModule, image: np.ndarray) -> dict[str, np.ndarray]:
    """Runs f, g, h on one image and returns the maps a person wants to see.

    Args:
        module: trained module (eval mode is set here).
        image: ``(H, W, 3)`` uint8; the networks see it reflect-padded to multiples of
            32 and their maps are cropped back
            (:func:`pseudoedgenet.models.trained.run_padded`).

    Returns:
        ``prob`` (H, W) sigmoid of f; with g: ``raw_edge`` and ``edge`` (H, W), each the
        mean of the x and y channels as in the paper's Figure 2; with h: ``attention``.
    """
    import torch

    from pseudoedgenet.models.trained import run_padded

    x = torch.from_numpy(np.require(image, requirements=("C", "W"))).permute(2, 0, 1)[None]
    x = x.float()
    module.eval()
    with torch.inference_mode():
        out = run_padded(module, x)
    maps = {"prob": torch.sigmoid(out["logits"].float())[0, 0].numpy()}
    for key in ("raw_edge", "edge"):
        if key in out:
            maps[key] = out[key].float()[0].mean(0).numpy()
    if "attention" in out:
        maps["attention"] = out["attention"].float()[0, 0].numpy()
    return maps


def save_png(fig: Any, out: str | Path, dpi: int) -> Path:
    """Lays out ``fig``, writes it as a PNG (atomically: temp file, then rename), closes it.

    The PNG holds no metadata (no software version), so that it depends on the drawing only.

    Args:
        fig: a matplotlib figure.
        out: PNG path.
        dpi: resolution.

    Returns:
        ``out`` as a Path.
    """
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", metadata={"Software": None})
    plt.close(fig)
    return Path(out)


def figure2_panel(rows: list[dict[str, Any]], out: str | Path, threshold: float = 0.5) -> Path:
    """Draws one row per image: input, attention, raw edge, final edge, ours, baseline, GT.

    Args:
        rows: dicts with ``image`` (H, W, 3) uint8, ``maps`` from :func:`network_maps`,
            optional ``baseline_prob`` (H, W) and ``truth`` (H, W) instance ids.
        out: PNG path (written atomically).
        threshold: probability threshold of the segmentations.

    Edge maps are shown with grey = 0, white positive, black negative (as in the paper).
    """
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = [
        "(a) input",
        "(b) attention h",
        "(c) raw edge g",
        "(d) edge g⊗h",
        "(e) ours f",
        "(f) baseline",
        "(g) ground truth",
    ]
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(2.2 * len(cols), 2.3 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        maps = row["maps"]
        panels: list[tuple[np.ndarray | None, dict[str, Any]]] = [
            (row["image"], {}),
            (maps.get("attention"), {"cmap": "gray", "vmin": 0, "vmax": 1}),
        ]
        for key in ("raw_edge", "edge"):
            e = maps.get(key)
            lim = float(np.abs(e).max()) or 1.0 if e is not None else 1.0
            panels.append((e, {"cmap": "gray", "vmin": -lim, "vmax": lim}))
        panels.append((foreground(maps["prob"], threshold), {"cmap": "gray"}))
        base = row.get("baseline_prob")
        panels.append((None if base is None else foreground(base, threshold), {"cmap": "gray"}))
        truth = row.get("truth")
        panels.append((None if truth is None else truth > 0, {"cmap": "gray"}))
        for c, (img, kw) in enumerate(panels):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.imshow(img, interpolation="nearest", **kw)
            if r == 0:
                ax.set_title(cols[c], fontsize=9)
        if "name" in row:
            axes[r, 0].set_ylabel(row["name"], fontsize=8)
    return save_png(fig, out, dpi=80)


def val_curves_sha256(curves: Mapping[str, Mapping[int, tuple[float, int]]], title: str) -> str:
    """Hash of what :func:`plot_val_curves` draws: style version, title, labels, curves.

    Args:
        curves: label -> ``{epoch: (mean IoU, folds)}``, in legend order.
        title: plot title.

    Returns:
        SHA-256 (hex) of a canonical JSON text (floats written exactly).
    """
    data = {
        "style": VAL_PLOT_STYLE,
        "title": title,
        "curves": [
            [label, [[e, float(c[e][0]), int(c[e][1])] for e in sorted(c)]]
            for label, c in curves.items()
        ],
    }
    return hashlib.sha256(json.dumps(data, separators=(",", ":")).encode()).hexdigest()


def plot_val_curves(
    curves: Mapping[str, Mapping[int, tuple[float, int]]], title: str, out: str | Path
) -> Path:
    """Draws one line per method: mean validation IoU over folds against epoch.

    Args:
        curves: label -> ``{epoch: (mean IoU, folds)}`` (see :func:`mean_curve`).
        title: plot title.
        out: PNG path (written atomically).

    Returns:
        ``out`` as a Path.
    """
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    if len(curves) > 10:  # more lines than the default colour cycle
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
    for label, curve in curves.items():
        epochs = sorted(curve)
        n = sorted({curve[e][1] for e in epochs})
        folds = f"n={n[0]}" if len(n) == 1 else f"n={n[0]}–{n[-1]}"
        ax.plot(epochs, [curve[e][0] for e in epochs], marker=".", label=f"{label} ({folds})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation IoU (mean over folds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_png(fig, out, dpi=110)


def figure2_command(
    checkpoint: str | Path,
    baseline: str | Path | None,
    data_dir: str | Path,
    out: str | Path,
    fold: int,
    n_images: int,
    title: str,
) -> str:
    """The ``pseudoedgenet figure2`` command line that draws a panel (paths as given)."""
    args = ["pseudoedgenet", "figure2", "--checkpoint", str(checkpoint)]
    if baseline is not None:
        args += ["--baseline", str(baseline)]
    args += ["--data", str(data_dir), "--fold", str(fold), "--images", str(n_images)]
    args += ["--title", title, "--out", str(out)]
    return shlex.join(args)


def draw_figure2(
    checkpoint: str | Path,
    baseline: str | Path | None,
    data_dir: str | Path,
    out: str | Path,
    fold: int = 0,
    n_images: int = 3,
    title: str | None = None,
) -> FigureEntry:
    """Draws a Figure-2-style panel of a fold's first test images and records it.

    Writes the PNG (:func:`figure2_panel`) and its entry in the figure manifest beside it
    (``<out folder>/figures.json``: caption, the command line, the checkpoints with their
    SHA-256, the git commit), so that the report can show the committed PNG without the
    checkpoints.

    Args:
        checkpoint: training checkpoint (``best.ckpt``) of PEN(g+h): columns (b)–(e).
        baseline: training checkpoint of the baseline (its f thresholded, column (f)), or
            ``None`` for an "n/a" column.
        data_dir: prepared dataset folder; the ground truth column needs its masks.
        out: PNG path (written atomically), e.g. ``results/figure2_tnbc.png``.
        fold: test fold of the prepared folds whose images are drawn.
        n_images: number of images (rows), the first of the fold's test images by name.
        title: start of the caption (e.g. ``TNBC, protocol `cpu-long```); default: the
            data folder's name.

    Returns:
        The manifest entry written.

    Raises:
        ConfigError: ``out`` is not a ``.png``, ``n_images < 1``, a fold out of range, or
            ``out`` names a plot the report draws.
        DataError: a missing or unreadable checkpoint, data folder or manifest.
    """
    from pseudoedgenet.data.prepared import PreparedDataset
    from pseudoedgenet.engine.runtime import git_commit
    from pseudoedgenet.engine.train import load_module

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out}: figure2 writes a PNG (name it <something>.png)")
    if n_images < 1:
        raise ConfigError(f"--images {n_images}: draw at least one image")
    title = title if title is not None else Path(data_dir).name
    entries = read_figure_manifest(out.parent)
    old = entries.get(out.name)
    if old is not None and old.kind != "figure2":
        raise ConfigError(
            f"--out {out}: the report draws that file ({old.kind}); choose another name"
        )
    ds = PreparedDataset(Path(data_dir))
    try:
        names = ds.split(fold).test[:n_images]
    except ValueError as exc:
        raise ConfigError(f"--fold {fold}: {exc} in {data_dir}") from None
    if not names:
        raise DataError(data_dir, f"fold {fold} has no test images")
    refs = []
    for role, path in (("pen", checkpoint), ("baseline", baseline)):
        if path is None:
            continue
        if not Path(path).is_file():
            raise DataError(path, "checkpoint not found")
        refs.append(CheckpointRef(role, str(path), file_sha256(path)))
    # the commit of the tree as it is now: once the PNG is written, a committed figure
    # being redrawn is itself an uncommitted change
    commit = git_commit()
    pen = load_module(checkpoint)
    base = load_module(baseline) if baseline is not None else None
    rows = []
    for name in names:
        image = ds.image(name)
        rows.append(
            {
                "name": name,
                "image": image,
                "maps": network_maps(pen, image),
                "baseline_prob": None if base is None else network_maps(base, image)["prob"],
                "truth": ds.instances(name),
            }
        )
    figure2_panel(rows, out)
    no_truth = any(r["truth"] is None for r in rows)
    caption = (
        f"*{title}, test images of fold {fold} ({', '.join(names)}): (a) input, "
        "(b) attention h, (c) raw edge g, (d) final edge g⊗h (edges: mean of x and y, "
        "grey = 0), (e) PEN(g+h) f, (f) baseline f"
        + (" (n/a: no checkpoint)" if base is None else "")
        + ", (g) ground truth"
        + (" (n/a: no masks)" if no_truth else "")
        + "; segmentations at threshold 0.5.*"
    )
    entry = FigureEntry(
        "figure2",
        f"Figure 2, {title.replace('`', '')}",
        caption,
        file_sha256(out),
        commit=commit,
        command=figure2_command(checkpoint, baseline, data_dir, out, fold, n_images, title),
        checkpoints=tuple(refs),
    )
    write_figure_manifest(out.parent, {**entries, out.name: entry})
    return entry
