"""Does the attention h survive training? g and h trained against a frozen, trained f.

Isolates the edge term of Eq. (2), ``|s(f(I)) - g(I) ⊗ h(I)|``: f comes from a trained
checkpoint and is frozen, so s(f) is a fixed target; fresh g and h (built from the method
config plus ``--set`` overrides, e.g. ``model.edge_scale=1``) are trained on it with Adam
at the config's learning rate, on the same training crops each variant. Every
``--every`` steps it records:

- ``edge_fit`` = 1 − |s − g⊗h| / |s| on the batch (0: g⊗h explains nothing, e.g. ≡ 0),
- ``h_edge`` / ``h_rest``: mean attention where |s| is above ``--edge-threshold``
  (f's nucleus boundaries) and elsewhere,
- ``g_abs``: mean |γ_g g(I)|.

Usage::

    python benchmarks/attention_dynamics.py --checkpoint runs/.../best.ckpt --data data/tnbc \\
        --variant "paper init=model.edge_init=default,model.edge_scale=1,model.attention_scale=1" \\
        --variant "scaled=" --json results/attention_dynamics_tnbc.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from pseudoedgenet.config import resolve_config
from pseudoedgenet.data.datamodule import CropDataset
from pseudoedgenet.data.io import write_json
from pseudoedgenet.data.prepared import PreparedDataset
from pseudoedgenet.engine.train import load_module
from pseudoedgenet.losses.functional import edge_l1
from pseudoedgenet.models import sobel
from pseudoedgenet.models.trained import Normalize, build_network


def make_batches(
    checkpoint: Path, data: Path, fold: int, n_batches: int, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised training crops and s(f) of the frozen f, computed once (bf16 f)."""
    f_module = load_module(checkpoint)
    cfg = f_module.cfg
    ds = PreparedDataset(data)
    crops = CropDataset(ds, ds.split(fold).train, cfg.data, cfg.train.seed)
    norm = Normalize()
    batches = []
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        for b in range(n_batches):
            items = [crops[b * batch_size + i] for i in range(batch_size)]
            x = norm(torch.stack([it["image"] for it in items]))
            prob = torch.sigmoid(f_module.net.f(x).float())
            batches.append((x.float(), sobel(prob, cfg.loss.sobel_normalized).float()))
    return batches


def run_variant(
    config: str,
    overrides: list[str],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    every: int,
    edge_threshold: float,
) -> dict[str, Any]:
    cfg = resolve_config(config, overrides=overrides)
    torch.manual_seed(cfg.train.seed)
    net = build_network(cfg)
    assert net.g is not None and net.h is not None, "needs a config with g and h"
    params = [*net.g.parameters(), *net.h.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.train.lr)
    net.train()
    curve = []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        x, s = batches[(step - 1) % len(batches)]
        with torch.autocast("cpu", torch.bfloat16):
            out = net.edges(x)
        raw, att = out["raw_edge"].float(), out["attention"].float()
        loss = edge_l1(s, out["edge"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % every == 0:
            edge = s.abs().amax(1, keepdim=True) > edge_threshold
            curve.append(
                {
                    "step": step,
                    "edge_fit": round(1.0 - loss.item() / s.abs().mean().item(), 4),
                    "h_edge": round(att.detach()[edge].mean().item(), 4),
                    "h_rest": round(att.detach()[~edge].mean().item(), 4),
                    "g_abs": round(raw.detach().abs().mean().item(), 4),
                }
            )
            print(overrides, curve[-1], flush=True)
    return {"overrides": overrides, "curve": curve, "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="trained run (f is used)")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument(
        "--config", default="pen_att", help="a packaged method (with g and h) or a YAML overlay"
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help='"NAME=key=value,key=value" (overrides may be empty: "NAME=")',
    )
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--edge-threshold", type=float, default=0.05)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    batches = make_batches(args.checkpoint, args.data, args.fold, args.batches, args.batch_size)
    results: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "config": str(args.config),
        "steps": args.steps,
        "crops": f"{args.batches} batches x {args.batch_size}",
        "edge_threshold": args.edge_threshold,
        "variants": {},
    }
    for spec in args.variant or ["default="]:
        name, _, rest = spec.partition("=")
        overrides = [o for o in rest.split(",") if o]
        results["variants"][name] = run_variant(
            args.config, overrides, batches, args.steps, args.every, args.edge_threshold
        )
    if args.json:
        write_json(args.json, results)
    print(json.dumps({k: v["curve"][-1] for k, v in results["variants"].items()}, indent=1))


if __name__ == "__main__":
    main()
