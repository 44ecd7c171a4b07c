"""Exporting f: TorchScript and ONNX give the checkpoint's output."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import error_line
from pseudoedgenet import __version__
from pseudoedgenet.config import Config, apply_overrides
from pseudoedgenet.engine.module import Segmenter
from pseudoedgenet.engine.train import load_segmenter
from pseudoedgenet.errors import ConfigError
from pseudoedgenet.export import export_format, export_model
from pseudoedgenet.models import build_model
from pseudoedgenet.models.trained import TRAINING_MPP_KEY


@pytest.fixture(scope="module")
def f_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported f file (FPN-ResNet18, random weights)."""
    torch.manual_seed(0)
    seg = Segmenter(build_model("segnet_fpn", encoder="resnet18"))
    cfg = apply_overrides(Config(), ["model.encoder=resnet18"])
    path = tmp_path_factory.mktemp("f") / "f.pt"
    torch.save(
        {
            "format": "pseudoedgenet-f",
            "version": __version__,
            "config": cfg.to_dict(),
            "state_dict": seg.state_dict(),
            TRAINING_MPP_KEY: 0.252,
        },
        path,
    )
    return path


def _check_metadata(meta: dict[str, str]) -> None:
    """What a pipeline without the package needs: pixel size, input and output."""
    assert meta["training_mpp"] == "0.252"
    assert "float32 RGB 0..255" in meta["input"] and "multiples of 32" in meta["input"]
    assert "sigmoid(logits) > 0.5" in meta["output"]
    assert meta["method"] == "pen_att" and meta["pseudoedgenet_version"] == __version__


def _inputs() -> list[torch.Tensor]:
    """Batch and sizes other than the 1 x 3 x 256 x 256 used for tracing/export."""
    g = torch.Generator().manual_seed(1)
    return [
        torch.rand(2, 3, 96, 160, generator=g) * 255,
        torch.rand(1, 3, 320, 224, generator=g) * 255,
    ]


def _reference(f_file: Path, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return load_segmenter(f_file)(x).numpy()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_the_checkpoint(f_file: Path, tmp_path: Path) -> None:
    out = export_model(f_file, tmp_path / "f.ts", "torchscript")
    extra = {"pseudoedgenet.json": ""}
    scripted = torch.jit.load(str(out), _extra_files=extra)
    _check_metadata(json.loads(extra["pseudoedgenet.json"]))
    for x in _inputs():
        with torch.inference_mode():
            got = scripted(x).numpy()
        ref = _reference(f_file, x)
        assert got.shape == ref.shape == (x.shape[0], 1, *x.shape[2:])
        assert np.abs(got - ref).max() < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["f.ts"]  # no temporary left


def test_onnx_matches_the_checkpoint(f_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    out = export_model(f_file, tmp_path / "f.onnx", "onnx")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]
    _check_metadata(sess.get_modelmeta().custom_metadata_map)
    for x in _inputs():
        (got,) = sess.run(["logits"], {"image": x.numpy()})
        ref = _reference(f_file, x)
        assert got.shape == ref.shape
        # same graph, different kernels: float32 rounding only
        assert np.abs(got - ref).max() < 1e-3 * max(1.0, float(np.abs(ref).max()))


def test_onnx_without_the_extra_says_what_to_install(
    f_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"pip install 'pseudoedgenet\[onnx\]'"):
        export_model(f_file, tmp_path / "f.onnx", "onnx")
    with pytest.raises(ConfigError, match="unknown export format"):
        export_model(f_file, tmp_path / "f.x", "tflite")


def test_export_cli_formats(
    f_file: Path,
    tmp_path: Path,
    cli,
) -> None:
    run = cli
    code, out, err = run("export", f_file, "--out", tmp_path / "f.ts", "--format", "torchscript")
    assert code == 0, err
    assert out.strip() == f"wrote {tmp_path / 'f.ts'} (trained at 0.252 µm/px)"
    assert (tmp_path / "f.ts").is_file()
    # a TorchScript (or ONNX) file is for other runtimes: predict and export say so
    (tmp_path / "f.onnx").write_bytes(b"\x08\x07")
    for exported in (tmp_path / "f.ts", tmp_path / "f.onnx"):
        code, _, err = run("export", exported, "--out", tmp_path / "h.pt")
        assert code == 2 and "is a TorchScript/ONNX export, for other runtimes" in err
        assert len(err.strip().splitlines()) == 1
    # the default format needs a training checkpoint (it re-exports f from g, h, f)
    code, _, err = run("export", f_file, "--out", tmp_path / "g.pt")
    assert code == 2 and err.strip().startswith("error:") and "\n" not in err.strip()
    code, _, err = run(
        "export", tmp_path / "nope.ckpt", "--out", tmp_path / "h.pt", "--format", "torchscript"
    )
    assert code == 2 and "checkpoint not found" in err


def test_export_format_follows_the_file_name_and_keeps_existing_files(
    f_file: Path, tmp_path: Path, cli
) -> None:
    assert [export_format(n) for n in ("f.pt", "f.pth", "F.ONNX", "f.ts", "f")] == [
        "checkpoint", "checkpoint", "onnx", "torchscript", "checkpoint",
    ]  # fmt: skip
    # --out f.ts alone writes TorchScript
    code, _, err = cli("export", f_file, "--out", tmp_path / "f.ts")
    assert code == 0, err
    assert torch.jit.load(tmp_path / "f.ts")(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    # an ending that names another format than --format: one line, nothing written
    code, _, err = cli("export", f_file, "--out", tmp_path / "g.onnx", "--format", "checkpoint")
    assert code == 2 and error_line(err) == (
        "error: --out g.onnx ends in .onnx (onnx) but --format is checkpoint: drop --format, "
        "or name the file for checkpoint"
    )
    assert not (tmp_path / "g.onnx").exists()
    # an existing file is kept unless --force
    before = (tmp_path / "f.ts").read_bytes()
    code, _, err = cli("export", f_file, "--out", tmp_path / "f.ts")
    assert code == 2 and error_line(err) == (
        f"error: {tmp_path / 'f.ts'}: exists (use --force to replace it)"
    )
    assert (tmp_path / "f.ts").read_bytes() == before
    code, _, err = cli("export", f_file, "--out", tmp_path / "f.ts", "--force")
    assert code == 0, err
