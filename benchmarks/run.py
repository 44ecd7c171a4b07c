"""Speed benchmark: plain fp32 against the fast path, in one process, on the same inputs.

    python benchmarks/run.py [--quick] [--json OUT.json] [--device cpu|cuda]

Measures training images/s at 256 x 256 (batch 8) for ``baseline``, ``pen`` and
``pen_att`` (the training DataLoader's next batch, then forward + backward + Adam step of
f, g, h), inference megapixels/s of f on a
2048 x 2048 image (tiled, stitched), and the data pipeline alone (crop + augmentation +
Voronoi labels) in images/s. Each figure is reported next to its plain-fp32 reference
(fp32, contiguous NCHW, for-loop Adam) as a ratio, with the achieved GFLOP/s (FLOPs counted
by ``torch.utils.flop_counter``) and the peak RSS of the process so far.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pseudoedgenet.config import default_config, resolve_config
from pseudoedgenet.data.datamodule import CropDataset, PointDataModule
from pseudoedgenet.data.folder import read_folder
from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset
from pseudoedgenet.engine.module import PseudoEdgeNetModule
from pseudoedgenet.hardware import peak_rss_mib
from pseudoedgenet.inference.predict import predict_probability, prepare_predictor

ROOT = Path(__file__).resolve().parents[1]
#: The methods timed: packaged method overlays (``pseudoedgenet.config.resolve_config``).
METHODS = ("baseline", "pen", "pen_att")
#: ``--set`` overrides of every timed config: the timed steps run at epoch 0, where the
#: methods' edge warm-up would leave g and h out; every later epoch runs them.
TIMED = ["loss.edge_warmup_epochs=0"]


def bench_dataset() -> PreparedDataset:
    """The bundled example crops, prepared once under ``runs/bench_data``."""
    tmp = ROOT / "runs/bench_data"
    if not (tmp / "dataset.json").is_file():
        prepare_dataset(
            read_folder(ROOT / "examples" / "monuseg_crops"),
            tmp,
            source={"reader": "folder"},
            k=4,
            force=True,
        )
    return PreparedDataset(tmp)


def time_train(
    method: str, fast: bool, ds: PreparedDataset, steps: int, device: str
) -> tuple[float, float]:
    """Returns (images/s, GFLOP per step) of full training steps, data loading included.

    Batches come from the training DataLoader exactly as ``pseudoedgenet train`` builds it
    (random 256 x 256 crops, augmentation, Voronoi labels, ``data.num_workers`` worker
    processes sharing the same cores), one step per batch: forward, backward, optimizer.
    """
    torch.manual_seed(0)
    cfg = resolve_config(
        method,
        overrides=[
            *TIMED,
            f"train.channels_last={fast}",
            f"data.crops_per_epoch={default_config().data.batch_size * (steps + 2)}",
        ],
    )
    module = PseudoEdgeNetModule(cfg).to(device)
    if fast:
        module = module.to(memory_format=torch.channels_last)
    opt = (
        torch.optim.Adam(module.parameters(), lr=1e-3, fused=True)
        if fast
        else torch.optim.Adam(module.parameters(), lr=1e-3, foreach=False)
    )
    dtype = torch.bfloat16 if device == "cpu" else torch.float16
    scaler = torch.amp.GradScaler(device, enabled=fast and dtype == torch.float16)
    batches = iter(PointDataModule(ds, None, cfg.data).train_dataloader())

    def step() -> None:
        batch = {k: v.to(device) for k, v in next(batches).items()}
        with torch.autocast(device, dtype=dtype, enabled=fast):
            loss = module.compute_losses(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops() / 1e9
    step()  # warm-up (oneDNN primitive creation)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * cfg.data.batch_size / (time.perf_counter() - t0), flops


def time_infer(fast: bool, image: np.ndarray, device: str, repeats: int) -> tuple[float, float]:
    """Returns (megapixels/s, GFLOP per image) of tiled inference of f."""
    torch.manual_seed(0)
    cfg = resolve_config("baseline")
    module = PseudoEdgeNetModule(cfg).to(device).eval()
    # fast: bf16/fp16 autocast, channels-last, batch norms folded into the convolutions;
    # reference: plain fp32, NCHW, the model as trained.
    seg, dtype = prepare_predictor(
        module.segmenter(), device, "auto" if fast else "fp32", channels_last=fast, fuse=fast
    )
    predict_probability(
        seg,
        image[:512, :512],
        tile=512,
        margin=64,
        device=device,
        autocast_dtype=dtype,
        channels_last=fast,
    )  # warm-up
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        seg(torch.zeros(1, 3, 512, 512, device=device))
    per_tile = counter.get_total_flops() / 1e9
    n_tiles = int(np.ceil(image.shape[0] / 384) * np.ceil(image.shape[1] / 384))
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        predict_probability(
            seg,
            image,
            tile=512,
            margin=64,
            batch_size=4,
            device=device,
            autocast_dtype=dtype,
            channels_last=fast,
        )
    sync(device)
    mp = repeats * image.shape[0] * image.shape[1] / 1e6
    return mp / (time.perf_counter() - t0), per_tile * n_tiles


def time_data(ds: PreparedDataset, n: int) -> float:
    cfg = resolve_config(overrides=[f"data.crops_per_epoch={n}"])
    crops = CropDataset(ds, ds.names, cfg.data, seed=0)
    crops[0]
    t0 = time.perf_counter()
    for i in range(n):
        crops[i]
    return n / (time.perf_counter() - t0)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (about 2 minutes)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--only", nargs="*", default=None, help="subset of benchmark names")
    args = ap.parse_args()
    steps = 3 if args.quick else 12
    ds = bench_dataset()
    results: dict[str, Any] = {}

    def want(name: str) -> bool:
        return args.only is None or name in args.only

    for method in METHODS:
        name = f"train_{method}"
        if not want(name):
            continue
        ref, flops = time_train(method, False, ds, steps, args.device)
        fast, _ = time_train(method, True, ds, steps, args.device)
        results[name] = {
            "unit": "images/s (256x256, batch 8, data loading included)",
            "fp32": round(ref, 3),
            "fast": round(fast, 3),
            "ratio": round(fast / ref, 2),
            "gflops": round(fast * flops / 8, 1),
            "peak_rss_mb": round(peak_rss_mib()),
        }
        print(name, results[name], flush=True)
    if want("infer_f"):
        # a 2048 x 2048 mosaic of the real 256 x 256 example crops
        crops = [ds.image(n) for n in ds.names]
        image = np.concatenate(
            [
                np.concatenate([crops[(i + j) % len(crops)] for j in range(8)], axis=1)
                for i in range(8)
            ],
            axis=0,
        )
        reps = 1
        megapixels = image.shape[0] * image.shape[1] / 1e6
        ref, gf = time_infer(False, image, args.device, reps)
        fast, _ = time_infer(True, image, args.device, reps)
        results["infer_f"] = {
            "unit": "megapixels/s (2048x2048, tiles 512, margin 64)",
            "fp32": round(ref, 3),
            "fast": round(fast, 3),
            "ratio": round(fast / ref, 2),
            "gflops": round(fast * gf / megapixels, 1),
            "peak_rss_mb": round(peak_rss_mib()),
        }
        print("infer_f", results["infer_f"], flush=True)
    if want("data_pipeline"):
        rate = time_data(ds, 32 if args.quick else 96)
        results["data_pipeline"] = {
            "unit": "crops/s (256x256 + augmentation + labels, 1 process)",
            "fp32": round(rate, 2),
            "fast": round(rate, 2),
            "ratio": 1.0,
            "gflops": None,
            "peak_rss_mb": round(peak_rss_mib()),
        }
        print("data_pipeline", results["data_pipeline"], flush=True)
    results["_meta"] = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "quick": args.quick,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
