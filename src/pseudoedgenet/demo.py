"""``make demo``: points in, a trained segmenter and nuclei masks out, on the bundled crops.

Runs the whole product path on ``examples/monuseg_crops`` (8 MoNuSeg crops, 256 x 256,
with point CSVs and instance masks, see examples/ATTRIBUTION.md):

1. ``prepare`` the folder dataset (points, folds) and write the Voronoi label maps;
2. train PseudoEdgeNet (f = FPN-ResNet50, small g, attention h) on fold 0 from scratch on
   the CPU, with the ``demo`` protocol (``pseudoedgenet/configs/protocols/demo.yaml``: the
   paper's method, 16 short epochs of 32 crops of 128 x 128);
3. predict every crop with the best-validation f: masks, overlays, QuPath GeoJSON, CSV;
4. draw a Figure-2-style panel (input, attention, edges, segmentation, ground truth).

A schedule of about 12 CPU-minutes shows the pipeline working, not the paper's accuracy: see the
README for the reproduction commands.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from pseudoedgenet.config import resolve_config
from pseudoedgenet.data.folder import read_folder
from pseudoedgenet.data.io import read_label_image, write_png
from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset, write_labels
from pseudoedgenet.engine.train import load_module, train_fold
from pseudoedgenet.errors import PseudoEdgeNetError
from pseudoedgenet.experiments.figures import figure2_panel, network_maps
from pseudoedgenet.inference.run import PredictConfig, coverage_note, predict_files
from pseudoedgenet.labels import voronoi_labels
from pseudoedgenet.metrics import SegmentationMetric
from pseudoedgenet.record import ResultRecord
from pseudoedgenet.viz import draw_labels

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "monuseg_crops"


def run_demo(out: Path, examples: Path = EXAMPLES, epochs: int | None = None) -> ResultRecord:
    """Runs the demo into ``out`` (replaced if it exists) and returns the test result.

    ``epochs`` replaces the demo protocol's 8 (``--epochs``, >= 1).
    """
    cfg = resolve_config("pen_att", "demo", epochs=epochs)  # before anything is written
    t0 = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    data = out / "data"
    prepare_dataset(
        read_folder(examples), data, source={"reader": "folder", "path": str(examples)}, k=4, seed=0
    )
    ds = PreparedDataset(data)
    write_labels(ds)
    first = ds.names[0]
    write_png(
        out / "labels_example.png",
        draw_labels(
            ds.image(first), voronoi_labels(ds.points(first), ds.image(first).shape[:2]), 1
        ),
    )

    result = train_fold(cfg, data, 0, out / "run", dataset="monuseg_crops", protocol="demo")
    best = out / "run" / "best.ckpt"
    module = load_module(best)
    images = sorted((data / "images").glob("*.png"))
    predict_cfg = PredictConfig(progress=False)
    summaries = predict_files(best, images, out / "predictions", predict_cfg, log=lambda _: None)
    notes = [
        (Path(s["input"]).stem, note)
        for s in summaries
        if (note := coverage_note(s, predict_cfg.threshold)) is not None
    ]
    metric = SegmentationMetric()
    rows = []
    for name in ds.names:
        truth = ds.instances(name)
        mask = read_label_image(out / "predictions" / name / "mask.png") > 0
        if truth is not None:
            metric.update(mask, truth)
        if name in ds.split(0).test:
            image = ds.image(name)
            rows.append(
                {"name": name, "image": image, "maps": network_maps(module, image), "truth": truth}
            )
    figure2_panel(rows, out / "figure.png")
    scores = metric.compute("mean")
    assert result is not None and result.test is not None  # one process, masks
    print(f"\ndemo done in {time.perf_counter() - t0:.0f} s on {result.device}")
    print(f"  fold 0 test IoU {result.test.iou:.3f} (best val epoch {result.best_epoch})")
    print(
        f"  all crops: IoU {scores['iou']:.3f}  Dice {scores['dice']:.3f}  "
        f"F1 {scores['f1']:.3f}  AJI {scores['aji']:.3f}"
    )
    if notes:  # predict's own note, once, with how many crops it concerns
        name, note = notes[0]
        print(
            f"  {len(notes)} of {len(summaries)} crops: {note.removeprefix('note: ')} "
            f"(e.g. {name}); this schedule shows the pipeline, not a trained model"
        )
    print(
        f"  outputs: {out}/figure.png, {out}/labels_example.png, {out}/run/ (best.ckpt, "
        "best_points.ckpt, last.ckpt with the optimizer state to resume, config.yaml, "
        f"metrics.csv), {out}/predictions/<name>/ (mask.png, overlay.png, "
        "nuclei.geojson for QuPath, nuclei.csv)"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    try:
        run_demo(args.out, epochs=args.epochs)
    except PseudoEdgeNetError as exc:  # e.g. --epochs 0: one line, exit code 2
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
