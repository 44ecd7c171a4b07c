"""models.trained: f's padding, the file formats and their migrations, export and init;
the one precision rule (hardware) and BN folding from the module graph."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from pseudoedgenet import __version__, hardware
from pseudoedgenet.config import Config, apply_overrides, config_from_dict
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.inference.predict import fuse_conv_bn, predict_whole, prepare_predictor
from pseudoedgenet.models.trained import (
    CHECKPOINT_VERSION_KEY,
    EXPORT_FORMAT,
    FORMAT_VERSION,
    MIGRATIONS,
    PRE_SCALE_MODEL,
    TRAINING_MPP_KEY,
    Segmenter,
    build_network,
    export_segmenter,
    init_weights,
    load_networks,
    load_segmenter,
    migrate,
    pad_to_multiple,
    read_weights,
    run_padded,
)

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.encoder=resnet18", "model.attention_encoder=resnet18", "model.edge_layers=2"]


def _config(*overrides: str) -> Config:
    return apply_overrides(Config(), [*TINY, *overrides])


def _checkpoint(path: Path, cfg: Config, seed: int = 0, **extra: Any) -> Path:
    """A file shaped like Lightning's best.ckpt, written without Lightning: the config in
    ``hyper_parameters``, f, g, h under ``net.*`` plus the normalisation buffers."""
    torch.manual_seed(seed)
    net = build_network(cfg)
    sd = {f"net.{k}": v for k, v in net.state_dict().items()}
    sd.update({"normalize.mean": torch.zeros(1, 3, 1, 1), "normalize.std": torch.ones(1, 3, 1, 1)})
    torch.save(
        {"epoch": 3, "hyper_parameters": {"config": cfg.to_dict()}, "state_dict": sd, **extra}, path
    )
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "best.ckpt", _config())


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------ pad and run f


@pytest.mark.parametrize(("h", "w"), [(5, 7), (31, 33), (32, 64), (45, 70), (1, 40)])
def test_pad_to_multiple_is_numpy_reflect(h: int, w: int) -> None:
    """Same pixels as ``numpy.pad(mode="reflect")``, also for pads longer than the image."""
    image = np.arange(2 * 3 * h * w, dtype=np.float32).reshape(2, 3, h, w)
    got = pad_to_multiple(torch.from_numpy(image)).numpy()
    ph, pw = (-h) % 32, (-w) % 32
    ref = np.pad(image, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
    assert got.shape == (2, 3, h + ph, w + pw) and np.array_equal(got, ref)


def test_pad_to_multiple_by_hand_and_memory_format() -> None:
    x = torch.tensor([[0.0, 1.0, 2.0]]).repeat(10, 1)  # 10 rows: a multiple of 10 already
    assert pad_to_multiple(x, 10).tolist() == [[0, 1, 2, 1, 0, 1, 2, 1, 0, 1]] * 10
    cl = torch.rand(1, 3, 20, 40).contiguous(memory_format=torch.channels_last)
    out = pad_to_multiple(cl)
    assert out.shape == (1, 3, 32, 64) and out.is_contiguous(memory_format=torch.channels_last)
    same = torch.rand(1, 3, 32, 64)
    assert pad_to_multiple(same) is same


def test_run_padded_feeds_multiples_and_crops_every_output() -> None:
    seen: list[tuple[int, ...]] = []

    def fn(x: torch.Tensor) -> dict[str, torch.Tensor]:
        seen.append(tuple(x.shape))
        return {"a": x[:, :1] * 2, "b": x[:, 1:] + 1}

    x = torch.rand(1, 3, 45, 70)
    out = run_padded(fn, x)
    assert seen == [(1, 3, 64, 96)]
    assert torch.equal(out["a"], x[:, :1] * 2) and torch.equal(out["b"], x[:, 1:] + 1)
    assert torch.equal(run_padded(lambda t: t - 1, x), x - 1)


def test_segmenter_pads_any_size_and_is_plain_on_multiples() -> None:
    torch.manual_seed(0)
    seg = build_network(_config()).f
    s = Segmenter(seg).eval()
    assert list(s.state_dict())[:2] == ["0.mean", "0.std"]  # the exported file's layout
    x = torch.rand(1, 3, 40, 50) * 255
    with torch.inference_mode():
        ref = nn.Sequential(*s)(pad_to_multiple(x))[..., :40, :50]
        assert torch.equal(s(x), ref)
        x64 = torch.rand(1, 3, 64, 64) * 255
        assert torch.equal(s(x64), nn.Sequential(*s)(x64))


def test_predict_whole_uses_the_same_padding() -> None:
    image = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    seen: list[torch.Tensor] = []

    def spy(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return x[:, :1]

    predict_whole(spy, image, channels_last=False)
    ref = np.pad(image, ((0, 19), (0, 26), (0, 0)), mode="reflect")[..., 0]
    assert np.array_equal(seen[0][0, 0].numpy(), ref.astype(np.float32))


# ------------------------------------------------------------------ formats and versions


def test_a_checkpoint_loads_f_without_lightning(ckpt: Path) -> None:
    """Subprocess: inference and export import no Lightning, and f loads from a training
    checkpoint (plain networks from the stored config)."""
    code = (
        "import sys, torch\n"
        "import pseudoedgenet.inference, pseudoedgenet.inference.run, pseudoedgenet.export\n"
        "from pseudoedgenet.models.trained import load_segmenter\n"
        f"seg = load_segmenter({str(ckpt)!r})\n"
        "assert seg(torch.zeros(1, 3, 40, 40)).shape == (1, 1, 40, 40)\n"
        "assert 'lightning' not in sys.modules, 'lightning imported'\n"
        "assert 'pseudoedgenet.engine' not in sys.modules, 'engine imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def test_read_weights_of_a_checkpoint(ckpt: Path) -> None:
    w = read_weights(ckpt)
    assert (w.kind, w.format_version, w.config) == ("checkpoint", 1, _config())
    torch.manual_seed(0)
    net = build_network(_config())
    assert set(w.networks) == {"f", "g", "h"}
    assert all(_same(w.networks[n], getattr(net, n).state_dict()) for n in ("f", "g", "h"))
    torch.manual_seed(5)
    other = build_network(_config())
    load_networks(other, w)
    assert _same(other.state_dict(), net.state_dict())


def test_compiled_checkpoint_keys_and_the_version_stamp(tmp_path: Path) -> None:
    cfg = _config("model.edge=none", "model.attention=false")
    torch.manual_seed(0)
    net = build_network(cfg)
    sd = {f"net._orig_mod.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / "c.ckpt"
    torch.save(
        {
            "hyper_parameters": {"config": cfg.to_dict()},
            "state_dict": sd,
            CHECKPOINT_VERSION_KEY: 2,
        },
        path,
    )
    w = read_weights(path)
    assert w.format_version == 2 and set(w.networks) == {"f"}
    assert _same(w.networks["f"], net.f.state_dict())


def test_the_lightning_module_stamps_its_checkpoints() -> None:
    from pseudoedgenet.engine.module import PseudoEdgeNetModule

    module = PseudoEdgeNetModule(_config("model.edge=none", "model.attention=false"))
    ckpt: dict[str, Any] = {}
    module.on_save_checkpoint(ckpt)
    assert ckpt == {CHECKPOINT_VERSION_KEY: FORMAT_VERSION, TRAINING_MPP_KEY: None}
    module.training_mpp = 0.5  # set by the trainer from the training images
    module.on_save_checkpoint(ckpt)
    assert ckpt == {CHECKPOINT_VERSION_KEY: FORMAT_VERSION, TRAINING_MPP_KEY: 0.5}


def test_export_writes_the_current_format_and_loads_back(ckpt: Path, tmp_path: Path) -> None:
    out = export_segmenter(ckpt, tmp_path / "sub" / "f.pt")
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == EXPORT_FORMAT and payload["format_version"] == FORMAT_VERSION == 2
    assert payload["version"] == __version__ and payload["config"] == _config().to_dict()
    assert all(k.startswith(("0.", "1.")) for k in payload["state_dict"])
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["f.pt"]  # no temporary
    torch.manual_seed(0)
    ref = Segmenter(build_network(_config()).f).eval()
    x = torch.rand(1, 3, 64, 96) * 255
    with torch.inference_mode():
        assert torch.equal(load_segmenter(out)(x), ref(x))
        assert torch.equal(load_segmenter(ckpt)(x), ref(x))
    with pytest.raises(DataError, match="already an exported f file"):
        export_segmenter(out, tmp_path / "again.pt")


def _v1_export(path: Path, model: dict[str, Any], precision: str = "auto") -> Path:
    """An exported f file as version 1 wrote it: no format_version; ``model`` keys only
    those given (a config from before the output scales lacks three)."""
    torch.manual_seed(0)
    seg = Segmenter(build_network(_config()).f)
    config = {"method": "pen_att", "model": model, "train": {"precision": precision}}
    torch.save(
        {
            "format": EXPORT_FORMAT,
            "version": "0.0.9",
            "config": config,
            "state_dict": seg.state_dict(),
        },
        path,
    )
    return path


def test_version_1_export_before_the_output_scales_is_migrated(tmp_path: Path) -> None:
    path = _v1_export(tmp_path / "old.pt", {"encoder": "resnet18"}, precision="bf16-mixed")
    w = read_weights(path)
    assert (w.kind, w.format_version) == ("export", 1)
    m = w.config.model
    assert (m.edge_init, m.edge_scale, m.attention_scale) == ("default", 1.0, 1.0)
    assert PRE_SCALE_MODEL == {"edge_init": "default", "edge_scale": 1.0, "attention_scale": 1.0}
    assert w.config.train.precision == "bf16"  # Lightning's name, read in today's vocabulary
    torch.manual_seed(0)
    ref = build_network(_config()).f.state_dict()
    assert _same(w.networks["f"], ref)
    # a version-1 file that has the keys keeps its values
    newer = _v1_export(tmp_path / "new.pt", {"encoder": "resnet18", "edge_scale": 0.02})
    assert read_weights(newer).config.model.edge_scale == 0.02


def test_migrations_cover_every_version_and_refuse_unknown_ones(tmp_path: Path) -> None:
    assert sorted(MIGRATIONS) == list(range(1, FORMAT_VERSION))
    stored = {"config": {"model": {"encoder": "resnet18"}}, "state_dict": {}}
    assert migrate(stored, 1)["config"]["model"]["edge_scale"] == 1.0
    assert migrate(stored, FORMAT_VERSION) is stored  # nothing to do
    for bad in (0, FORMAT_VERSION + 1):
        with pytest.raises(ValueError, match="format_version"):
            migrate(stored, bad)
    path = _v1_export(tmp_path / "f.pt", {"encoder": "resnet18"})
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "format_version": FORMAT_VERSION + 1}, path)
    with pytest.raises(DataError, match=r"newer pseudoedgenet \(format_version 3; .*upgrade"):
        read_weights(path)
    torch.save({**payload, "format_version": "2"}, path)
    with pytest.raises(DataError, match="invalid format_version '2'"):
        read_weights(path)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"weights": 1}, "not a training checkpoint"),
        ([1, 2], "not a training checkpoint"),
        (
            {"format": EXPORT_FORMAT, "config": {}, "state_dict": {"0.mean": torch.zeros(1)}},
            "no weights of f",
        ),
        ({"format": EXPORT_FORMAT, "config": {"bogus": 1}, "state_dict": {}}, "invalid config"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, payload: Any, problem: str) -> None:
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(DataError, match=problem) as e:
        load_segmenter(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    with pytest.raises(DataError, match="checkpoint not found"):
        read_weights(tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"not a readable checkpoint \(\w+\): pass a run's best"):
        read_weights(tmp_path / "junk.ckpt")


def test_init_weights_takes_the_networks_that_fit(ckpt: Path) -> None:
    torch.manual_seed(9)
    net = build_network(_config("model.edge_layers=3"))  # another g
    rec = init_weights(net, ckpt, _config().model)
    assert rec["loaded"] == ["f", "h"] and list(rec["scratch"]) == ["g"]
    assert rec["scratch"]["g"].startswith("the file's g differs (")
    torch.manual_seed(0)
    ref = build_network(_config())
    assert _same(net.f.state_dict(), ref.f.state_dict())
    with pytest.raises(DataError, match=r"this config: resnet34\)$"):
        init_weights(
            build_network(_config("model.encoder=resnet34")),
            ckpt,
            _config("model.encoder=resnet34").model,
        )


# ------------------------------------------------------------------ one precision rule


def test_one_precision_rule_for_training_and_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    from pseudoedgenet.engine.runtime import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(hardware, "native_bf16_cpu", lambda native=native: native)
        assert hardware.choose_precision("auto", "cpu") == expected
        assert resolve_precision("auto") == {"bf16": "bf16-mixed", "fp32": "32"}[expected]
        _, dtype = prepare_predictor(nn.Conv2d(3, 1, 1), "cpu", "auto", fuse=False)
        assert dtype == hardware.autocast_dtype(expected)
    assert hardware.choose_precision("auto", "cuda:0") == "fp16"
    assert hardware.choose_precision("auto", torch.device("meta")) == "fp32"
    for p in ("fp32", "bf16", "fp16"):
        assert (
            hardware.choose_precision(p, "cuda")
            == p
            == hardware.precision_name(hardware.autocast_dtype(p))
        )
    assert resolve_precision("fp16", "cpu") == "16-mixed"
    for bad in ("32", "bf16-mixed", "fp64"):  # legacy names are read by the config, not here
        with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, fp16"):
            hardware.choose_precision(bad, "cpu")


@pytest.mark.parametrize(
    ("old", "new"), [("32", "fp32"), (32, "fp32"), ("bf16-mixed", "bf16"), ("16-mixed", "fp16")]
)
def test_configs_with_lightning_precision_names_still_load(old: Any, new: str) -> None:
    assert config_from_dict({"train": {"precision": old}}).train.precision == new
    assert apply_overrides(Config(), [f"train.precision={old}"]).train.precision == new


def test_committed_configs_load_in_the_one_vocabulary() -> None:
    """The packaged method and protocol overlays and the configs of every committed result
    record read in the package's precision vocabulary."""
    from pseudoedgenet.config import method_names, resolve_config
    from pseudoedgenet.experiments.records import load_results

    configs = [resolve_config(m) for m in method_names()]
    configs += [config_from_dict(r.record.config) for r in load_results(REPO / "results")]
    assert len(configs) >= 50
    for cfg in configs:
        assert cfg.train.precision in ("auto", "fp32", "bf16", "fp16"), cfg.method
    with pytest.raises(ConfigError, match=r"train\.precision must be one of auto, fp32, bf16"):
        config_from_dict({"train": {"precision": "fp64"}})


# ------------------------------------------------------------------ BN folding from the graph


class _Renamed(nn.Module):
    """conv/bn pairs under names no rule would guess, one of them reached through a helper."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.norm_a = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)
        self.second, self.norm_b = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_b(self.second(torch.relu(self.norm_a(self.first(x)))))


class _Traps(nn.Module):
    """Names that look like pairs but are not: bn1 normalises the input (conv1 comes after
    it), and conv2's output feeds bn2 and a skip connection."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)
        self.conv2, self.bn2 = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(self.bn1(x)))
        return self.bn2(y) + y


class _Untraceable(nn.Module):
    """Data-dependent control flow: tracing fails here, its child is traced alone."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _Renamed()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) if x.sum() > 0 else -self.body(x)


def _randomise(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize(
    ("model", "folded", "left"), [(_Renamed, 2, 0), (_Traps, 0, 2), (_Untraceable, 2, 0)]
)
def test_fuse_conv_bn_pairs_by_the_graph(model: type[nn.Module], folded: int, left: int) -> None:
    m = _randomise(model())
    x = torch.rand(2, 3, 8, 8)
    with torch.inference_mode():
        ref = m(x)
    assert fuse_conv_bn(m) == folded
    assert sum(isinstance(b, nn.BatchNorm2d) for b in m.modules()) == left
    with torch.inference_mode():
        assert torch.allclose(m(x), ref, atol=1e-5)


def test_normalize_is_imagenet_statistics_on_the_0_255_scale() -> None:
    """(x − 255 μ) / (255 σ) per channel, μ, σ ImageNet's: hand values for two pixels."""
    from pseudoedgenet.models.trained import Normalize

    x = torch.tensor([[[[0.0, 255.0]], [[0.0, 255.0]], [[0.0, 255.0]]]])  # (1, 3, 1, 2)
    got = Normalize()(x.to(torch.uint8))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for c in range(3):
        assert got[0, c, 0, 0].item() == pytest.approx(-mean[c] / std[c], rel=1e-6)
        assert got[0, c, 0, 1].item() == pytest.approx((1 - mean[c]) / std[c], rel=1e-6)
    assert got.dtype == torch.float32


def test_overlay_mask_blends_only_the_masked_pixels() -> None:
    from pseudoedgenet.viz import overlay_mask

    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[True, False], [False, False]])
    out = overlay_mask(image, mask)  # green at α = 0.4: 0.6·100 + 0.4·(0, 255, 0)
    assert out[0, 0].tolist() == [60, 162, 60]
    assert (out[mask == 0] == 100).all() and out.dtype == np.uint8
