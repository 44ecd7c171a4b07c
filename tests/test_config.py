"""Config: one base plus overlays, loading, overrides, validation, the complete saved form."""

from __future__ import annotations

import ast
import copy
import fnmatch
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from pseudoedgenet.config import (
    SECTIONS,
    Config,
    apply_overrides,
    config_from_dict,
    default_config,
    load_config,
    method_names,
    method_overlay,
    protocol_names,
    protocol_overlay,
    resolve_config,
)
from pseudoedgenet.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
PACKAGED = REPO / "src" / "pseudoedgenet" / "configs"
TABLE1 = {"baseline", "densecrf", "pen_large_g", "pen", "pen_att", "fully_supervised"}
TABLE2 = {"pen_att_g2", "pen_att_g6", "pen_att_g8", "pen_att_fpn18", "pen_att_fpn34"}

# --------------------------------------------------------------------------------------
# What the 22 complete files configs/{tnbc,monuseg}/<method>.yaml said before they became
# overlays (the tnbc and monuseg copies were identical but for a comment). Each old file
# was the pen_att values below with the method's changes; keys the old files left out took
# the dataclass defaults (config_from_dict), and the protocols were these override lists.
# --------------------------------------------------------------------------------------
OLD_PEN_ATT: dict[str, Any] = {
    "method": "pen_att",
    "data": {
        "crop": 256,
        "crops_per_epoch": 160,
        "batch_size": 8,
        "num_workers": 2,
        "augment": True,
        "context": 64,
    },
    "model": {
        "encoder": "resnet50",
        "pretrained": "none",
        "edge": "small",
        "edge_layers": 4,
        "edge_width": 64,
        "edge_encoder": "resnet50",
        "attention": True,
        "attention_encoder": "resnet18",
    },
    "loss": {
        "supervision": "points",
        "pos_weight": 1.0,
        "neg_weight": 0.1,
        "normalization": "per_class",
        "edge_weight": 1.0,
        "edge_warmup_epochs": 5,
        "sobel_normalized": True,
        "crf_weight": 0.0,
    },
    "train": {
        "epochs": 100,
        "lr": 0.001,
        "plateau_factor": 0.5,
        "plateau_patience": 5,
        "precision": "auto",
        "channels_last": True,
        "seed": 0,
        "threshold": 0.5,
    },
}
_NO_G = {"model.edge": "none", "model.attention": False, "loss.edge_warmup_epochs": 0}
OLD_CHANGES: dict[str, dict[str, Any]] = {
    "baseline": _NO_G,
    "densecrf": {**_NO_G, "loss.crf_weight": 0.02, "loss.crf_warmup_epochs": 5},
    "fully_supervised": {**_NO_G, "loss.supervision": "masks"},
    "pen": {"model.attention": False},
    "pen_att": {},
    "pen_att_g2": {"model.edge_layers": 2},
    "pen_att_g6": {"model.edge_layers": 6},
    "pen_att_g8": {"model.edge_layers": 8},
    "pen_att_fpn18": {"model.edge": "fpn", "model.edge_encoder": "resnet18"},
    "pen_att_fpn34": {"model.edge": "fpn", "model.edge_encoder": "resnet34"},
    "pen_large_g": {"model.edge": "fpn", "model.edge_encoder": "resnet50"},
}
OLD_PROTOCOLS: dict[str, list[str]] = {
    "paper": ["train.epochs=100", "data.crops_per_epoch=800"],
    "cpu": ["train.epochs=30", "data.crops_per_epoch=160"],
    "cpu-long": ["train.epochs=60", "data.crops_per_epoch=160"],
    "smoke": [
        "train.epochs=1",
        "data.crops_per_epoch=16",
        "data.batch_size=4",
        "data.crop=128",
        "data.num_workers=0",
    ],
}
#: The demo's own override list before it became the ``demo`` protocol, on ``Config()``.
OLD_DEMO = [
    "train.epochs=16",  # 8 until the demo was seen to end before f separates nuclei
    "data.crop=128",
    "data.crops_per_epoch=32",
    "data.batch_size=4",
    "data.num_workers=0",
    "train.plateau_patience=2",
    "loss.edge_warmup_epochs=2",
]


def old_config(method: str, protocol: str | None = None) -> Config:
    """The config the old complete file (and the old protocol list) resolved to."""
    d = copy.deepcopy(OLD_PEN_ATT)
    d["method"] = method
    for key, value in OLD_CHANGES[method].items():
        section, name = key.split(".")
        d[section][name] = value
    cfg = config_from_dict(d)
    return cfg if protocol is None else apply_overrides(cfg, OLD_PROTOCOLS[protocol])


# --------------------------------------------------------------------------------------
# base and overlays resolve to exactly the old configs (so config_sha256 is unchanged)
# --------------------------------------------------------------------------------------


def test_packaged_methods_are_the_table_rows() -> None:
    assert set(method_names()) == TABLE1 | TABLE2 == set(OLD_CHANGES)
    assert set(protocol_names()) == {*OLD_PROTOCOLS, "demo"}


@pytest.mark.parametrize("protocol", [None, *OLD_PROTOCOLS])
def test_every_method_and_protocol_resolves_to_the_old_config(protocol: str | None) -> None:
    for method in method_names():
        new, old = resolve_config(method, protocol), old_config(method, protocol)
        assert new == old, (method, protocol)
        # config_sha256 (engine.train) hashes this text: the recorded hashes stay valid
        assert new.to_yaml() == old.to_yaml()


def test_base_is_the_papers_method() -> None:
    assert default_config() == old_config("pen_att") == resolve_config() == load_config("pen_att")
    # the one key the base sets apart from the dataclass defaults
    assert Config().loss.edge_warmup_epochs == 0 and default_config().loss.edge_warmup_epochs == 5


def test_demo_protocol_is_the_demos_old_schedule() -> None:
    assert resolve_config("pen_att", "demo") == apply_overrides(Config(method="pen_att"), OLD_DEMO)
    with_epochs = apply_overrides(Config(method="pen_att"), [*OLD_DEMO, "train.epochs=3"])
    assert resolve_config("pen_att", "demo", epochs=3) == with_epochs


def test_method_overlays_name_only_what_they_change() -> None:
    base = default_config().to_dict()
    for name in method_names():
        path = PACKAGED / "methods" / f"{name}.yaml"
        text = path.read_text()
        assert text.startswith("#") and ("Table 1" in text or "Table 2" in text), path
        overlay = method_overlay(name)
        assert overlay["method"] == name
        for section, keys in overlay.items():
            if section == "method":
                continue
            for key, value in keys.items():
                assert base[section][key] != value, f"{path}: {section}.{key} is the base's"
    assert method_overlay("pen_att") == {"method": "pen_att"}


def test_protocol_overlays_change_the_schedule_only() -> None:
    for name in protocol_names():
        overlay = protocol_overlay(name)
        assert "method" not in overlay
        assert set(overlay) <= set(SECTIONS)
        assert not set(overlay.get("model", {})), name
    # everything but demo touches data and train only (the demo shortens the warm-up too)
    for name in set(protocol_names()) - {"demo"}:
        assert set(protocol_overlay(name)) <= {"data", "train"}, name


def test_overlays_are_package_data() -> None:
    """pyproject's package-data covers every packaged overlay, so a wheel carries them."""
    pyproject = (REPO / "pyproject.toml").read_text()
    found = re.search(r"\[tool\.setuptools\.package-data\]\npseudoedgenet = (\[.*\])", pyproject)
    assert found, "pyproject.toml: no package-data for pseudoedgenet"
    patterns = ast.literal_eval(found.group(1))
    files = sorted(PACKAGED.rglob("*.yaml"))
    assert len(files) == len(method_names()) + len(protocol_names())
    for path in files:
        rel = path.relative_to(PACKAGED.parent).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


# --------------------------------------------------------------------------------------
# layers and user files
# --------------------------------------------------------------------------------------


def test_layer_order_base_method_protocol_flags_set() -> None:
    cfg = resolve_config(
        "baseline",
        "smoke",
        epochs=3,
        crop=64,
        overrides=["train.epochs=5", "model.encoder=resnet18"],
    )
    assert cfg.method == "baseline" and cfg.model.edge == "none"  # method
    assert cfg.data.batch_size == 4 and cfg.data.num_workers == 0  # protocol
    assert cfg.data.crop == 64  # --crop over the protocol's 128
    assert cfg.train.epochs == 5  # --set over --epochs over the protocol's 1
    assert cfg.model.encoder == "resnet18" and cfg.train.lr == 1e-3  # --set; base


def test_user_overlay_applies_on_the_base(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("# my variant\nmethod: mine\ntrain:\n  lr: 5e-4\nmodel:\n  edge_layers: 3\n")
    cfg = load_config(f)
    expected = apply_overrides(
        default_config(), ["method=mine", "train.lr=0.0005", "model.edge_layers=3"]
    )
    assert cfg == expected
    # no method: the base's name; an empty file: the base
    f.write_text("loss:\n  edge_weight: 0.5\n")
    assert load_config(f) == apply_overrides(default_config(), ["loss.edge_weight=0.5"])
    f.write_text("")
    assert load_config(f) == default_config()
    # with protocol and --set on top, as the CLI layers it
    assert resolve_config(str(f), "cpu", overrides=["train.seed=3"]) == apply_overrides(
        default_config(), [*OLD_PROTOCOLS["cpu"], "train.seed=3"]
    )


def test_user_overlay_naming_a_table_row_starts_from_it(tmp_path: Path) -> None:
    f = tmp_path / "b.yaml"
    f.write_text("method: baseline\ntrain:\n  lr: 1e-4\n")
    assert load_config(f) == apply_overrides(old_config("baseline"), ["train.lr=0.0001"])
    # overriding one of the row's own keys is the user's explicit choice
    f.write_text("method: pen_att_g2\nmodel:\n  edge_layers: 4\n")
    assert load_config(f) == apply_overrides(old_config("pen_att"), ["method=pen_att_g2"])


@pytest.mark.parametrize("method", sorted(TABLE1 | TABLE2))
def test_saved_config_is_complete_and_loads_back(tmp_path: Path, method: str) -> None:
    """A run's config.yaml (``to_yaml``) holds every field of every section and loads back
    to the same config, whatever layers made it."""
    cfg = resolve_config(method, "smoke", max_steps=7, overrides=["train.lr=2e-4"])
    saved = yaml.safe_load(cfg.to_yaml())
    assert list(saved) == ["method", *SECTIONS]
    for name, cls in SECTIONS.items():
        assert list(saved[name]) == [f.name for f in fields(cls)], name
    path = tmp_path / "config.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg
    assert config_from_dict(saved) == cfg  # complete: no layer below it matters


def test_complete_old_style_file_loads_as_it_is(tmp_path: Path) -> None:
    """A complete file of a row loads to that row, not the base under it."""
    for method in ("baseline", "fully_supervised", "pen_large_g"):
        d = old_config(method).to_dict()
        d["method"] = f"{method}_copy"  # not a packaged name: starts from the base
        path = tmp_path / f"{method}.yaml"
        path.write_text(yaml.safe_dump(d))
        assert load_config(path) == config_from_dict(d)


# --------------------------------------------------------------------------------------
# numbers in YAML
# --------------------------------------------------------------------------------------


NUMBERS = [("1e-3", 1e-3), ("1E-3", 1e-3), ("5e-4", 5e-4), ("0.001", 1e-3), ("2", 2.0)]


@pytest.mark.parametrize(("text", "value"), [*NUMBERS, ("+1.5e-2", 0.015), (".5", 0.5)])
def test_scientific_notation_is_a_number(tmp_path: Path, text: str, value: float) -> None:
    f = tmp_path / "lr.yaml"
    f.write_text(f"train:\n  lr: {text}\n")
    lr = load_config(f).train.lr
    assert isinstance(lr, float) and lr == value
    lr = resolve_config(overrides=[f"train.lr={text}"]).train.lr
    assert isinstance(lr, float) and lr == value
    assert resolve_config(overrides=[f"loss.neg_weight={text}"]).loss.neg_weight == value


@pytest.mark.parametrize("text", ["fast", "1e-3x", "'1,5'", "[0.1]", "true", "e-3"])
def test_non_numeric_float_is_a_one_line_error_naming_the_key(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"train\.lr expects a number") as info:
        resolve_config(overrides=[f"train.lr={text}"])
    assert "\n" not in str(info.value)
    f = tmp_path / "bad.yaml"
    f.write_text(f"train:\n  lr: {text}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: train\.lr expects a number"):
        load_config(f)


def test_int_fields_stay_strict() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs expects int"):
        resolve_config(overrides=["train.epochs=1e2"])


# --------------------------------------------------------------------------------------
# overrides and errors
# --------------------------------------------------------------------------------------


def test_overrides_parse_yaml_values() -> None:
    cfg = apply_overrides(
        Config(), ["train.epochs=3", "loss.edge_weight=2", "model.attention=false"]
    )
    assert cfg.train.epochs == 3 and cfg.loss.edge_weight == 2.0 and not cfg.model.attention


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.epoch=3"], "unknown key"),
        (["nosection.x=1"], "section.key"),
        (["data.crop=100"], "multiple of 32"),
        (["model.edge=none"], "attention needs an edge"),
        (["train.epochs=many"], "expects int"),
        (["loss.supervision=boxes"], "points or masks"),
        (["train.epochs"], "section.key=value"),
    ],
)
def test_bad_overrides_are_one_line_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        apply_overrides(Config(), overrides)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"config": "nosuch"},
            r"nosuch: --config is neither a packaged method nor a YAML file; methods: baseline, ",
        ),
        ({"protocol": "fast"}, r"unknown protocol 'fast'; valid: cpu, cpu-long, demo, paper"),
        ({"epochs": 0}, r"--epochs must be >= 1, got 0"),
        ({"max_steps": 0}, r"--max-steps must be >= 1, got 0"),
        ({"crop": 100}, r"--crop must be a multiple of 32"),
    ],
)
def test_resolve_errors_are_one_line(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        resolve_config(**kwargs)
    assert "\n" not in str(info.value)


def test_old_per_dataset_path_names_the_new_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for dataset in ("tnbc", "monuseg"):
        with pytest.raises(ConfigError) as info:
            load_config(f"configs/{dataset}/densecrf.yaml")
        assert str(info.value) == (
            f"configs/{dataset}/densecrf.yaml: not found; the per-dataset files "
            "configs/<dataset>/<method>.yaml are packaged method overlays now: "
            "use --config densecrf"
        )


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: [1, 2}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_config(bad)
    with pytest.raises(
        ConfigError,
        match=r"missing\.yaml: --config is neither a packaged method nor an existing YAML file",
    ):
        load_config(tmp_path / "missing.yaml")
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("method: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match=r"unsafe\.yaml"):
        load_config(unsafe)
    for text, message in [
        ("- 1\n- 2\n", "a config must be a mapping"),
        ("optim:\n  lr: 1\n", r"unknown config section\(s\): \['optim'\]"),
        ("train: 3\n", "section 'train' must be a mapping"),
        ("model:\n  edges: fpn\n", r"unknown key\(s\) in model: \['edges'\]"),
        ("method:\n", "method must be a name"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=rf"bad\.yaml: {message}") as info:
            load_config(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path)


def test_cli_config_by_name_and_old_path(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    from conftest import error_line

    monkeypatch.chdir(tmp_path)
    args = ["--data", tmp_path / "data", "--fold", 0, "--out", tmp_path / "run"]
    code, _, err = cli("train", "--config", "configs/tnbc/pen_att.yaml", *args)
    assert code == 2 and error_line(err).endswith("use --config pen_att")
    code, _, err = cli("crossval", "--config", "pen_atn", "--data", tmp_path / "data")
    assert code == 2 and "pen_atn: --config is neither a packaged method" in error_line(err)
    assert "did you mean --config pen_att?" in error_line(err)
    code, _, err = cli("train", "--config", "baseline", "--protocol", "gpu", *args)
    assert code == 2 and "unknown protocol 'gpu'" in error_line(err)
    assert not (tmp_path / "run").exists()
