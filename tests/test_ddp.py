"""``train.devices=N`` is tested code: Lightning DDP with 2 CPU processes (gloo).

Lightning's DDP launcher starts the second process by re-running the command, so the run
goes through the console script in a subprocess. Rank 0 alone prints and writes the
record; it tests on one device, so the test scores cover every test image (a DDP test
would give each process half of them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pseudoedgenet.data.prepared import prepare_dataset
from pseudoedgenet.engine.evaluate import evaluate_checkpoint
from test_engine import synthetic_sample

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_cpu_processes_train_validate_and_test(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "run"
    prepare_dataset([synthetic_sample(f"img{i}", i) for i in range(6)], data, source={}, k=3)
    script = REPO / ".venv" / "bin" / "pseudoedgenet"
    cmd = (
        [str(script)]
        if script.is_file()
        else [sys.executable, "-c", "from pseudoedgenet.cli import main; main()"]
    )
    sets = [
        "method=baseline",
        "model.edge=none",
        "model.attention=false",
        "model.encoder=resnet18",
        "data.crops_per_epoch=8",
        "data.batch_size=2",
        "data.num_workers=0",
        "train.precision=fp32",
        "train.accelerator=cpu",
        "train.devices=2",
        "train.strategy=ddp",
    ]
    res = subprocess.run(
        [*cmd, "train", "--data", str(data), "--fold", "0", "--out", str(out), "--crop", "64",
         "--max-steps", "2", *[a for s in sets for a in ("--set", s)]],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    # one start line, one epoch line, one record: the second process prints nothing
    assert [ln.split()[0] for ln in lines] == ["config:", "epoch", '{"method":'], res.stdout
    record = json.loads((out / "result.json").read_text())
    assert json.loads(lines[-1])["test"] == record["test"]
    assert record["config"]["train"]["devices"] == "2"
    # 8 crops per epoch, 2 per batch, shared by 2 processes: 2 steps make one epoch
    last = torch.load(out / "last.ckpt", weights_only=True, map_location="cpu")
    assert (last["global_step"], last["epoch"]) == (2, 0)
    # validated (best.ckpt by val IoU) and tested on all of fold 0 by rank 0 alone
    assert record["schema_version"] == 2
    assert record["selected_by"] == "val/iou" and record["best_epoch"] == 1
    assert record["test_images"] == 2 and set(record["test"]) == {"iou", "dice", "f1", "aji"}
    assert (out / "best.ckpt").is_file() and (out / "metrics.csv").is_file()
    # the same scores as testing best.ckpt on every test image in one process
    again = evaluate_checkpoint(out / "best.ckpt", data, 0, "cpu")
    for key, value in record["test"].items():
        assert again["test"][key] == pytest.approx(value, abs=1e-9), key
