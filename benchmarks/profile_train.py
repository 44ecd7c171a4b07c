"""Where a fast-path training step spends its time: ``torch.profiler`` over a few steps.

    python benchmarks/profile_train.py [--method pen_att] [--steps 3] [--out FILE.txt]
    python benchmarks/profile_train.py --time-compile [--steps 4]

One process, the fast path of ``benchmarks/run.py`` (bf16 autocast, channels-last, fused
Adam) on one batch of 8 real 256 x 256 crops (the model step alone, no DataLoader), after
two warm-up steps. Prints the operators with the most self CPU time and a summary by kind:
convolutions (forward and backward), batch/group normalisation, element-wise and other.
``--time-compile`` instead times ``--steps`` such steps eagerly and with the networks
compiled (``train.compile``), and prints images/s of both and the compilation time.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch
from run import METHODS, TIMED, bench_dataset  # benchmarks/run.py, beside this script
from torch.profiler import ProfilerActivity, profile

from pseudoedgenet.config import Config, resolve_config
from pseudoedgenet.data.datamodule import CropDataset
from pseudoedgenet.engine.module import PseudoEdgeNetModule

#: operator-name patterns per kind, first match wins
KINDS = (
    ("convolution", r"convolution|conv2d|mkldnn_conv"),
    ("normalisation", r"batch_norm|group_norm"),
    ("optimizer", r"_fused_adam|adam"),
    ("element-wise / copies", r"add|mul|relu|threshold|clamp|sigmoid|copy|fill|cat|sub|div|abs"),
    ("resampling", r"upsample|pool|interp"),
)


def kind_of(name: str) -> str:
    for kind, pattern in KINDS:
        if re.search(pattern, name):
            return kind
    return "other"


def make_step(cfg: Config, batch: dict[str, torch.Tensor], compiled: bool) -> Callable[[], None]:
    """One fast-path training step (bf16 autocast, channels-last, fused Adam) on ``batch``."""
    torch.manual_seed(0)
    module = PseudoEdgeNetModule(cfg).to(memory_format=torch.channels_last)
    if compiled:
        module.net.compile(dynamic=False)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module.compute_losses(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=sorted(METHODS), default="pen_att")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    ap.add_argument("--time-compile", action="store_true", help="eager vs compiled images/s")
    args = ap.parse_args()

    ds = bench_dataset()
    cfg = resolve_config(args.method, overrides=[*TIMED, "data.crops_per_epoch=8"])
    crops = CropDataset(ds, ds.names, cfg.data, seed=0)
    items = [crops[i] for i in range(8)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}

    if args.time_compile:
        for compiled in (False, True):
            step = make_step(cfg, batch, compiled)
            t0 = time.perf_counter()
            step()
            step()
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            rate = args.steps * len(items) / (time.perf_counter() - t0)
            label = "compiled" if compiled else "eager"
            print(f"{label}: {rate:.2f} images/s, first two steps {first:.1f} s", flush=True)
        return
    step = make_step(cfg, batch, compiled=False)
    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    by_kind: dict[str, float] = {}
    for e in events:
        k = kind_of(e.key)
        by_kind[k] = by_kind.get(k, 0.0) + e.self_cpu_time_total
    lines = [
        f"{args.method}, fast path, batch 8 x 256 x 256, {args.steps} profiled steps, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        f"self CPU time per step: {total / args.steps / 1e6:.3f} s",
        "",
        "share by kind:",
        *(
            f"  {k:<24} {v / total:6.1%}  {v / args.steps / 1e6:.3f} s/step"
            for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])
        ),
        "",
        events.table(sort_by="self_cpu_time_total", row_limit=args.rows),
    ]
    report = "\n".join(lines)
    print(report)
    if args.out is not None:
        args.out.write_text(report + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
