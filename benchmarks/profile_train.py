"""Where a fast-path training step spends its time: ``torch.profiler`` over a few steps.

    python benchmarks/profile_train.py [--method pen_att] [--steps 3] [--out FILE.txt]

One process, the fast path of ``benchmarks/run.py`` (bf16 autocast, channels-last, fused
Adam) on one batch of 8 real 256 x 256 crops (the model step alone, no DataLoader), after
two warm-up steps. Prints the operators with the most self CPU time and a summary by kind:
convolutions (forward and backward), batch/group normalisation, element-wise and other.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from pseudoedgenet.config import Config, apply_overrides
from pseudoedgenet.data.datamodule import CropDataset
from pseudoedgenet.data.folder import read_folder
from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset
from pseudoedgenet.engine.module import PseudoEdgeNetModule

ROOT = Path(__file__).resolve().parents[1]
METHODS = {
    "baseline": ["model.edge=none", "model.attention=false"],
    "pen": ["model.attention=false"],
    "pen_att": [],
}
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=sorted(METHODS), default="pen_att")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()

    tmp = ROOT / "runs/bench_data"
    if not (tmp / "dataset.json").is_file():
        prepare_dataset(
            read_folder(ROOT / "examples/monuseg_crops"), tmp, source={"reader": "folder"}, k=4
        )
    ds = PreparedDataset(tmp)
    cfg = apply_overrides(Config(), [*METHODS[args.method], "data.crops_per_epoch=8"])
    crops = CropDataset(ds, ds.names, cfg.data, seed=0)
    items = [crops[i] for i in range(8)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}

    torch.manual_seed(0)
    module = PseudoEdgeNetModule(cfg).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = module.compute_losses(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

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
    sys.exit(main())
