"""The one-time result-record migration (schema 1 -> 2) and the committed results it left."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from pseudoedgenet.config import Config, apply_overrides, config_from_dict
from pseudoedgenet.engine.train import config_sha256
from pseudoedgenet.experiments.owndata import STEPS, read_step
from pseudoedgenet.experiments.records import load_holdout, load_results
from pseudoedgenet.record import SCHEMA_VERSION, read_record

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "migrate_records_v2", REPO / "scripts" / "migrate_records_v2.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _old_config(method: str, drop: list[str]) -> dict:
    """A config as older code wrote it: without the keys in ``drop``."""
    edge = ["model.edge=none", "model.attention=false"] if method == "baseline" else []
    d = apply_overrides(Config(method=method), ["train.epochs=30", *edge]).to_dict()
    for key in drop:
        section, name = key.split(".")
        del d[section][name]
    return d


def _v1_fold(results: Path, method: str, drop: list[str], **fields: object) -> Path:
    """A schema-1 fold file naming its config by hash, the config in the store."""
    text = yaml.safe_dump(_old_config(method, drop), sort_keys=False)
    sha = hashlib.sha256(text.encode()).hexdigest()
    (results / "configs").mkdir(parents=True, exist_ok=True)
    (results / "configs" / f"{sha}.yaml").write_text(text)
    record = {
        "dataset": "tnbc",
        "protocol": "cpu",
        "method": method,
        "fold": 0,
        "epochs": 30,
        "crop": 256,
        "crops_per_epoch": 160,
        "pretrained": "none",
        "precision": "bf16-mixed",
        "device": "cpu (2 threads, x86_64, AVX512)",
        "config_sha256": sha,
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "val_iou": 0.5,
        "best_epoch": 7,
        "test": {"iou": 0.5, "dice": 0.6, "f1": 0.4, "aji": 0.3},
        "test_pooled": {"iou": 0.51, "dice": 0.61, "f1": 0.41, "aji": 0.31},
        "test_images": 5,
        "wall_s": 600.0,
        **fields,
    }
    path = results / "tnbc-cpu" / method / "fold_0.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_migration_completes_only_inert_keys_and_records_how(
    migration: ModuleType, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    gh_keys = ["model.edge_init", "model.edge_scale", "model.attention_scale"]
    path = _v1_fold(results, "baseline", [*gh_keys, "loss.crf_warmup_epochs"])
    old_sha = json.loads(path.read_text())["config_sha256"]
    assert migration.main([str(results), "--delete-store"]) == 0
    rec = read_record(path)
    assert rec.schema_version == SCHEMA_VERSION and rec.precision == "bf16"
    assert rec.selected_by == "val/iou" and rec.epochs == 30 and rec.crops_per_epoch == 160
    assert rec.test is not None and rec.test.iou == 0.5 and rec.best_epoch == 7
    # the config is complete now; what was filled in is listed with its reason
    cfg = config_from_dict(rec.config)
    assert cfg.model.edge_scale == Config().model.edge_scale and cfg.model.edge == "none"
    assert rec.config_sha256 == config_sha256(cfg)
    assert rec.migration is not None and rec.migration.from_schema == 1
    assert rec.migration.config_sha256_as_run == old_sha
    assert sorted(rec.migration.completed) == sorted([*gh_keys, "loss.crf_warmup_epochs"])
    assert "no effect with model.edge = 'none'" in rec.migration.completed["model.edge_scale"]
    assert not (results / "configs").exists()
    # a second run finds nothing to migrate and changes nothing
    before = path.read_bytes()
    assert migration.migrate(results) == [] and path.read_bytes() == before


@pytest.mark.parametrize(
    ("method", "drop", "fields", "problem"),
    [
        ("pen_att", ["model.edge_scale"], {}, "lacks model.edge_scale and model.edge = 'small'"),
        ("baseline", ["train.lr"], {}, "lacks train.lr, which is not known inert"),
        ("baseline", [], {"epochs": 60}, "epochs disagrees with the config's train.epochs"),
        ("baseline", [], {"config_sha256": "f" * 64}, "neither in the record nor in the store"),
    ],
)
def test_migration_refuses_what_it_cannot_migrate_exactly(
    migration: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    method: str,
    drop: list[str],
    fields: dict,
    problem: str,
) -> None:
    results = tmp_path / "results"
    path = _v1_fold(results, method, drop, **fields)
    before = path.read_bytes()
    assert migration.main([str(results)]) == 2
    assert problem in capsys.readouterr().err
    assert path.read_bytes() == before


def test_committed_results_are_all_schema_2() -> None:
    """Every committed result file reads with the strict reader: no schema-1 file, no
    config store, nothing the fallbacks once handled."""
    results = REPO / "results"
    assert not (results / "configs").exists()
    folds = load_results(results)
    assert folds and all(r.record.schema_version == SCHEMA_VERSION for r in folds)
    assert all(config_from_dict(r.record.config).to_dict() == r.record.config for r in folds)
    assert load_holdout(results)
    for step in STEPS:
        path = results / "own-data" / f"{step}.json"
        if path.is_file():
            assert read_step(path).record.schema_version == SCHEMA_VERSION


def test_migration_of_a_missing_folder_is_one_line(
    migration: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migration.main([str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope'}: results folder not found\n"
