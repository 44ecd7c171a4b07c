"""Inference benchmarks: throughput (fp32 vs fast path), tiling tolerance, slide memory.

    python benchmarks/infer.py throughput [--image IMG] [--checkpoint F] [--encoder resnet50]
    python benchmarks/infer.py tolerance  [--image IMG] [--checkpoint F] [--margins 32 64 128]
    python benchmarks/infer.py slide      [--size 20000] [--level 1] [--checkpoint F]
    python benchmarks/infer.py render     --image IMG --geojson NUCLEI.geojson --out FIG.png
                                          [--crop X Y W H]

``throughput`` runs tiled prediction of f (tile 512, overlap 64, batch 4) on the same real
image twice in one process: plain fp32 (contiguous NCHW, no autocast) and the fast path
(channels-last weights and inputs, bf16 autocast on CPUs with native bf16 / fp16 on CUDA,
batch norms folded into the convolutions), with ``--compile`` a third time through
``torch.compile`` (``predict --compile``; the compilation happens in the untimed warm-up),
and prints megapixels/s, the peak RSS of each (the kernel's high-water mark, reset between
the two via ``/proc/self/clear_refs``) and how far the fast path's probabilities are from
fp32's. Without ``--checkpoint``, f has random weights (the paper's FPN-ResNet50 by
default): speed does not depend on the weights.

``tolerance`` compares tiled prediction (tile 512, several margins) with one whole-image
pass of f, the image reflected by the margin on every side (the tiles' own border handling
and 32-px grid), and prints mean/99th-percentile |dp| and the fraction of pixels whose
thresholded value agrees.

``slide`` writes a synthetic pyramidal TIFF (``--size`` squared, mostly glass with tissue
blobs) and runs ``pseudoedgenet predict`` on it in a subprocess, printing the child's
peak RSS, its wall time and what predict.json reports.

``render`` draws the polygons of a ``nuclei.geojson`` (as QuPath would show them) over
the image, for the README.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pseudoedgenet import __version__
from pseudoedgenet.config import Config, apply_overrides
from pseudoedgenet.data.io import file_sha256, read_image
from pseudoedgenet.data.slide import read_window, write_synthetic_slide
from pseudoedgenet.engine.runtime import device_description, git_commit
from pseudoedgenet.hardware import peak_rss_mib
from pseudoedgenet.inference.predict import predict_probability, prepare_predictor
from pseudoedgenet.inference.tiling import make_tiles
from pseudoedgenet.models import build_model
from pseudoedgenet.models.trained import Segmenter, load_segmenter
from pseudoedgenet.postprocess import foreground

ROOT = Path(__file__).resolve().parents[1]


def default_image() -> Path:
    shared = sorted((ROOT.parent / "shared/data/monuseg/test/images").glob("*.tif"))
    return shared[0] if shared else sorted((ROOT / "examples/monuseg_crops/images").glob("*"))[0]


def model(checkpoint: str | None, encoder: str) -> torch.nn.Module:
    if checkpoint:
        return load_segmenter(checkpoint)
    torch.manual_seed(0)
    return Segmenter(build_model("segnet_fpn", encoder=encoder)).eval()


def reset_peak_rss() -> bool:
    """Resets the kernel's RSS high-water mark (Linux >= 4.0); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    image = read_image(args.image)
    h, w = image.shape[:2]
    mp = h * w / 1e6
    results: dict[str, Any] = {
        "image": str(args.image),
        "size": [h, w],
        "model": args.checkpoint or f"random FPN-{args.encoder}",
        "device": args.device,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "tile": args.tile,
        "overlap": args.overlap,
        "batch_size": args.batch_size,
        "version": __version__,
    }
    probs = {}
    paths = [("fp32", "fp32", False), ("fast", "auto", True)]
    if args.compile:
        paths.append(("compiled", "auto", True))
    for name, precision, channels_last in paths:
        # fp32: the model as trained, plain NCHW; fast: bf16 + channels-last + BN folded;
        # compiled: fast + torch.compile (compiled during the warm-up, not timed)
        t0 = time.perf_counter()
        net, dtype = prepare_predictor(
            model(args.checkpoint, args.encoder),
            args.device,
            precision,
            channels_last,
            fuse=channels_last,
            compile_batch=args.batch_size if name == "compiled" else None,
        )
        kw: dict[str, Any] = {
            "tile": args.tile,
            "margin": args.overlap,
            "batch_size": args.batch_size,
            "device": args.device,
            "autocast_dtype": dtype,
            "channels_last": channels_last,
        }
        predict_probability(net, image, **kw)  # warm-up (oneDNN kernels, compilation)
        warmup_s = time.perf_counter() - t0
        reset = reset_peak_rss()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            probs[name] = predict_probability(net, image, **kw)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        best = min(times)
        results[name] = {
            "precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype],
            "channels_last": channels_last,
            "seconds": round(best, 3),
            "megapixels_per_s": round(mp / best, 3),
            "setup_and_first_pass_s": round(warmup_s, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "peak_rss_reset": reset,
        }
        del net
    results["speedup"] = round(results["fp32"]["seconds"] / results["fast"]["seconds"], 2)
    d = np.abs(probs["fast"] - probs["fp32"])
    results["fast_vs_fp32"] = {
        "mean_abs_dp": float(d.mean()),
        "max_abs_dp": float(d.max()),
        "mask_agreement@0.5": float(np.mean((probs["fast"] >= 0.5) == (probs["fp32"] >= 0.5))),
    }
    if "compiled" in probs:
        results["compiled_speedup"] = round(
            results["fp32"]["seconds"] / results["compiled"]["seconds"], 2
        )
        results["compiled_vs_fast_max_abs_dp"] = float(
            np.abs(probs["compiled"] - probs["fast"]).max()
        )
    return results


def tolerance(args: argparse.Namespace) -> dict[str, Any]:
    image = read_image(args.image)
    h, w = image.shape[:2]
    net = model(args.checkpoint, args.encoder)
    out: dict[str, Any] = {
        "image": str(args.image),
        "model": args.checkpoint or "random",
        "tile": args.tile,
    }
    for m in args.margins:
        hp, wp = -(-(h + 2 * m) // 32) * 32, -(-(w + 2 * m) // 32) * 32
        x = torch.from_numpy(read_window(image, (-m, hp - m, -m, wp - m))).permute(2, 0, 1)
        with torch.inference_mode():
            whole = torch.sigmoid(net(x[None].float()))[0, 0, m : m + h, m : m + w].numpy()
        tiled = predict_probability(net, image, tile=args.tile, margin=m, batch_size=4)
        d = np.abs(tiled - whole)
        out[f"margin_{m}"] = {
            "tiles": len(make_tiles((h, w), args.tile, m)),
            "mean_abs_dp": round(float(d.mean()), 4),
            "p99_abs_dp": round(float(np.quantile(d, 0.99)), 4),
            "max_abs_dp": round(float(d.max()), 4),
            "mask_agreement@0.5": round(
                float(np.mean(foreground(tiled, 0.5) == foreground(whole, 0.5))), 4
            ),
            "foreground@0.5": round(float(np.mean(foreground(whole, 0.5))), 4),
        }
    return out


def slide(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = write_synthetic_slide(Path(tmp) / "synthetic.tif", size=args.size, levels=4)
        t_write = time.perf_counter() - t0
        ckpt = args.checkpoint
        if not ckpt:
            ckpt = str(Path(tmp) / "f.pt")
            torch.manual_seed(0)
            seg = Segmenter(build_model("segnet_fpn", encoder=args.encoder))
            with torch.no_grad():  # random f with ~25 % foreground: many objects to post-process
                seg[1].segmentation_head[0].bias += 3.0
            cfg = apply_overrides(Config(), [f"model.encoder={args.encoder}"])
            torch.save(
                {
                    "format": "pseudoedgenet-f",
                    "version": __version__,
                    "config": cfg.to_dict(),
                    "state_dict": seg.state_dict(),
                },
                ckpt,
            )
        exe = Path(sys.executable).with_name("pseudoedgenet")
        cmd = [str(exe), "predict", ckpt, str(path), "--out", f"{tmp}/out", "--level"]
        cmd += [str(args.level), "--device", args.device, "--no-progress"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr)
        meta = json.loads((Path(tmp) / "out/synthetic/predict.json").read_text())
    keys = ("level", "shape", "tiles", "tiles_run", "nuclei", "precision", "predict_s")
    return {
        "slide": f"{args.size} x {args.size} synthetic pyramidal TIFF (written in {t_write:.0f} s)",
        "model": args.checkpoint or f"random FPN-{args.encoder}",
        "child_peak_rss_mib": meta["peak_rss_mib"],
        "child_wall_s": round(wall, 1),
        **{k: meta[k] for k in keys},
    }


def render(args: argparse.Namespace) -> dict[str, Any]:
    from pseudoedgenet.data.io import write_png
    from pseudoedgenet.viz import draw_geojson

    array = read_image(args.image)
    x0, y0, w, h = args.crop or (0, 0, array.shape[1], array.shape[0])
    features = json.loads(Path(args.geojson).read_text())["features"]
    # QuPath-convention coordinates; drawn at 2x so one-pixel outlines stay visible
    pic = draw_geojson(array[y0 : y0 + h, x0 : x0 + w], features, origin=(x0, y0), scale=2)
    write_png(args.out, pic)
    return {"image": str(args.image), "polygons": len(features), "out": str(args.out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["throughput", "tolerance", "slide", "render"])
    ap.add_argument("--image", type=Path, default=None, help="default: a MoNuSeg test image")
    ap.add_argument("--checkpoint", default=None, help="f file or training checkpoint")
    ap.add_argument("--encoder", default=None, help="encoder of a random f")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--margins", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--level", type=int, default=1)
    ap.add_argument("--geojson", type=Path, default=None, help="render: nuclei.geojson")
    ap.add_argument("--out", type=Path, default=None, help="render: PNG to write")
    ap.add_argument("--crop", type=int, nargs=4, default=None, help="render: x y width height")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    ap.add_argument("--compile", action="store_true", help="throughput: add a compiled path")
    args = ap.parse_args()
    args.image = args.image or default_image()
    args.encoder = args.encoder or ("resnet18" if args.mode == "slide" else "resnet50")
    modes = {"throughput": throughput, "tolerance": tolerance, "slide": slide, "render": render}
    result = modes[args.mode](args)
    if args.mode != "render":  # where and with what it ran, beside the numbers
        result["command"] = "python benchmarks/infer.py " + " ".join(sys.argv[1:])
        result["device"] = device_description(args.device)
        result["git_commit"] = git_commit(ROOT)
        if args.checkpoint:
            result["checkpoint_sha256"] = file_sha256(args.checkpoint)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
