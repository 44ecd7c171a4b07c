"""Config loading, overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pseudoedgenet.config import Config, apply_overrides, config_from_dict, load_config
from pseudoedgenet.errors import ConfigError

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*/*.yaml"))
TABLE1 = {"baseline", "densecrf", "pen_large_g", "pen", "pen_att", "fully_supervised"}
TABLE2 = {"pen_att_g2", "pen_att_g6", "pen_att_g8", "pen_att_fpn18", "pen_att_fpn34"}


def test_every_shipped_config_loads_and_round_trips() -> None:
    assert len(CONFIGS) == 2 * (len(TABLE1) + len(TABLE2))
    for path in CONFIGS:
        cfg = load_config(path)
        assert cfg.method == path.stem
        assert config_from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


def test_paper_hyperparameters_in_configs() -> None:
    for path in CONFIGS:
        cfg = load_config(path)
        assert (cfg.loss.pos_weight, cfg.loss.neg_weight, cfg.loss.edge_weight) == (1.0, 0.1, 1.0)
        assert cfg.model.encoder == "resnet50" and cfg.model.attention_encoder == "resnet18"
        assert (cfg.train.lr, cfg.train.plateau_factor, cfg.train.plateau_patience) == (
            1e-3,
            0.5,
            5,
        )
    pen_att = load_config(CONFIGS[0].parent / "pen_att.yaml")
    assert pen_att.model.edge == "small" and pen_att.model.edge_layers == 4
    assert pen_att.model.edge_width == 64 and pen_att.model.attention


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


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: [1, 2}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("method: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match=r"unsafe\.yaml"):
        load_config(unsafe)
