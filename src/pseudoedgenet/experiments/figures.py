"""Figures of the results: Figure-2-style panels (input, attention h, raw edges g, final edges
g⊗h, f, baseline, GT) and validation-IoU-per-epoch curves."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

from pseudoedgenet.data.io import atomic_path
from pseudoedgenet.engine.module import PseudoEdgeNetModule


def network_maps(module: PseudoEdgeNetModule, image: np.ndarray) -> dict[str, np.ndarray]:
    """Runs f, g, h on one image and returns the maps a person wants to see.

    Args:
        module: trained module (eval mode is set here).
        image: ``(H, W, 3)`` uint8; H and W are reflect-padded to a multiple of 32.

    Returns:
        ``prob`` (H, W) sigmoid of f; with g: ``raw_edge`` and ``edge`` (H, W), each the
        mean of the x and y channels as in the paper's Figure 2; with h: ``attention``.
    """
    h, w = image.shape[:2]
    padded = np.pad(image, ((0, (-h) % 32), (0, (-w) % 32), (0, 0)), mode="reflect")
    x = torch.from_numpy(padded).permute(2, 0, 1)[None].float()
    module.eval()
    with torch.inference_mode():
        out = module(x)
    maps = {"prob": torch.sigmoid(out["logits"].float())[0, 0, :h, :w].numpy()}
    for key in ("raw_edge", "edge"):
        if key in out:
            maps[key] = out[key].float()[0].mean(0)[:h, :w].numpy()
    if "attention" in out:
        maps["attention"] = out["attention"].float()[0, 0, :h, :w].numpy()
    return maps


def save_png(fig: Any, out: str | Path, dpi: int) -> Path:
    """Lays out ``fig``, writes it as a PNG (atomically: temp file, then rename), closes it.

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
        fig.savefig(tmp, dpi=dpi, format="png")
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
        panels.append((maps["prob"] > threshold, {"cmap": "gray"}))
        base = row.get("baseline_prob")
        panels.append((None if base is None else base > threshold, {"cmap": "gray"}))
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


def figure2_for_fold(
    data_dir: str | Path,
    pen_ckpt: str | Path,
    baseline_ckpt: str | Path | None,
    out: str | Path,
    fold: int = 0,
    n_images: int = 3,
) -> list[str]:
    """Draws a Figure-2-style panel for the first test images of one fold.

    Args:
        data_dir: prepared dataset folder.
        pen_ckpt: training checkpoint of PEN(g+h) (maps a–e).
        baseline_ckpt: training checkpoint of the baseline (its sigmoid(f), column f), or
            ``None`` for an "n/a" column.
        out: PNG path (written atomically).
        fold: test fold whose images are drawn.
        n_images: number of images (rows).

    Returns:
        The names of the images drawn.
    """
    from pseudoedgenet.data.prepared import PreparedDataset
    from pseudoedgenet.engine.train import load_module

    ds = PreparedDataset(Path(data_dir))
    names = ds.split(fold).test[:n_images]
    pen = load_module(pen_ckpt)
    base = load_module(baseline_ckpt) if baseline_ckpt is not None else None
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
    return list(names)
