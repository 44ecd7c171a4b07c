"""One-time migration of the committed result files from schema 1 to schema 2.

Schema 1 (no ``schema_version``) is the dict the engine wrote before
:mod:`pseudoedgenet.record` existed; most fold files kept their config by hash only
(``config_sha256``), the config text itself in the content-addressed store
``results/configs/<sha256>.yaml`` (recovered by re-resolving each fold's config with the
code of the commit its record names, SHA-verified). Schema 2 is
:class:`pseudoedgenet.record.ResultRecord`.

For every fold file (``<dataset>/<method>/fold_<i>.json``), split file
(``monuseg-test/<method>.json``) and own-data step file (``own-data/<step>.json``):

1. The run's config is taken from the record's ``config`` field, from the store (its file
   must hash to its name), or, for an own-data step, re-resolved from the step's
   ``budget`` with this code, which must reproduce the recorded ``config_sha256``.
2. Keys the run's code did not have yet are completed with today's default *only* where
   they had no effect on that run (:data:`INERT`); any other missing key stops the
   migration.
3. ``epochs``, ``crop``, ``crops_per_epoch`` and ``pretrained`` must equal the config's
   (they are read from it in schema 2); precision is renamed to the package's vocabulary;
   ``selection: "last"`` becomes ``selected_by: "last"`` and a record with ``val_iou``
   gets ``selected_by: "val/iou"``.
4. The record states its migration (``migration``: the schema it came from, this script,
   the ``config_sha256`` the run wrote and the completed keys with the reason), is read
   back with the strict schema-2 reader, and replaces the file atomically.

Files already at schema 2 are left alone, so the script can be run again. After it ran,
the store is no longer read by anything and is deleted (``--delete-store``).

Run from the repository root: ``python scripts/migrate_records_v2.py results``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from pseudoedgenet.config import Config, config_from_dict
from pseudoedgenet.data.io import write_json
from pseudoedgenet.engine.train import config_sha256
from pseudoedgenet.experiments.owndata import read_step
from pseudoedgenet.record import SCHEMA_VERSION, precision_name, record_from_dict

SCRIPT = "scripts/migrate_records_v2.py"

#: Keys a schema-1 config may lack, and when the missing key had no effect on the run.
INERT: dict[str, tuple[str, Any]] = {
    "loss.crf_warmup_epochs": ("loss.crf_weight", 0.0),
    "model.edge_init": ("model.edge", "none"),
    "model.edge_scale": ("model.edge", "none"),
    "model.attention_scale": ("model.edge", "none"),
}

_RENAMED = {"selection": "selected_by"}
_FROM_CONFIG = {
    "epochs": ("train", "epochs"),
    "crop": ("data", "crop"),
    "crops_per_epoch": ("data", "crops_per_epoch"),
    "pretrained": ("model", "pretrained"),
}


class MigrationError(Exception):
    """A record that cannot be migrated exactly."""


def _store(results: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((results / "configs").glob("*.yaml")):
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != path.stem:
            raise MigrationError(f"{path}: text does not hash to its name")
        found[path.stem] = yaml.safe_load(raw.decode("utf-8"))
    return found


def _run_config(
    path: Path, raw: dict[str, Any], store: dict[str, dict[str, Any]], budget: list[str] | None
) -> dict[str, Any]:
    config = raw.get("config")
    if isinstance(config, str):  # a few fold files kept the config as a Python literal
        config = ast.literal_eval(config)
    if isinstance(config, dict):
        return config
    if budget is not None:  # an own-data step: the packaged default plus its budget
        from pseudoedgenet.experiments.owndata import _cfg

        cfg = _cfg(budget)
        if config_sha256(cfg) != raw["config_sha256"]:
            raise MigrationError(f"{path}: its budget no longer resolves to its config")
        return cfg.to_dict()
    sha = raw.get("config_sha256")
    if sha not in store:
        raise MigrationError(f"{path}: config {sha} neither in the record nor in the store")
    return store[sha]


def complete_config(path: Path, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The config with every key, and the keys completed (each with why it was inert)."""
    defaults = Config().to_dict()
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    completed: dict[str, str] = {}
    for section, values in defaults.items():
        if not isinstance(values, dict):
            continue
        have = out.setdefault(section, {})
        for key, default in values.items():
            if key in have:
                continue
            name = f"{section}.{key}"
            if name not in INERT:
                raise MigrationError(f"{path}: config lacks {name}, which is not known inert")
            cond_key, cond_value = INERT[name]
            cs, ck = cond_key.split(".")
            if out[cs][ck] != cond_value:
                raise MigrationError(
                    f"{path}: config lacks {name} and {cond_key} = {out[cs][ck]!r}, so it mattered"
                )
            have[key] = default
            completed[name] = f"no effect with {cond_key} = {cond_value!r}; filled with {default!r}"
    cfg = config_from_dict(out)
    if cfg.to_dict() != {**out, "train": {**out["train"], "precision": cfg.train.precision}}:
        raise MigrationError(f"{path}: config changes when read by this version")
    return cfg.to_dict(), completed


def migrate_record(
    path: Path,
    raw: dict[str, Any],
    store: dict[str, dict[str, Any]],
    budget: list[str] | None = None,
) -> dict[str, Any]:
    """The schema-2 form of a schema-1 record (validated by the strict reader)."""
    config, completed = complete_config(path, _run_config(path, raw, store, budget))
    cfg = config_from_dict(config)
    rec = {_RENAMED.get(k, k): v for k, v in raw.items()}
    for key, (section, name) in _FROM_CONFIG.items():
        if key in rec and rec.pop(key) != config[section][name]:
            raise MigrationError(f"{path}: {key} disagrees with the config's {section}.{name}")
    rec["precision"] = precision_name(rec["precision"])
    if "selected_by" not in rec:
        rec["selected_by"] = "val/iou" if "val_iou" in rec else "last"
    rec["config"] = config
    rec["migration"] = {
        "from_schema": 1,
        "script": SCRIPT,
        "config_sha256_as_run": raw["config_sha256"],
        "completed": completed,
    }
    rec["config_sha256"] = config_sha256(cfg)
    rec["schema_version"] = SCHEMA_VERSION
    return record_from_dict(rec, path).to_dict()


def migrate_step(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """The schema-2 form of a schema-1 own-data step file."""
    step = {k: raw.pop(k) for k in ("step", "budget", "command", "step_wall_s")}
    slide_keys = ("pictures", "regions", "clicks", "slide_score", "predict_s", "nuclei")
    slide = {k: raw.pop(k) for k in slide_keys if k in raw}
    record = migrate_record(path, raw, {}, step["budget"])
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, **step, "record": record}
    if slide:
        score = slide.pop("slide_score")
        if score["n"] != len(score["images"]):
            raise MigrationError(f"{path}: slide_score n disagrees with its images")
        out["slide"] = {
            "pictures": slide["pictures"],
            "regions": slide["regions"],
            "clicks": slide["clicks"],
            "held_out": score["images"],
            "mean": score["mean"],
            "predict_s": slide["predict_s"],
            "nuclei": slide["nuclei"],
        }
    return out


def migrate(results: Path) -> list[Path]:
    """Migrates every schema-1 file under ``results``; returns the files changed."""
    store = _store(results)
    changed = []
    paths = sorted(results.glob("*/*/fold_*.json")) + sorted(results.glob("*/*.json"))
    for path in paths:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("schema_version") == SCHEMA_VERSION:
            continue
        if path.parent.name == "own-data":
            out = migrate_step(path, dict(raw))
        elif "test" in raw and "method" in raw:
            out = migrate_record(path, raw, store)
        else:
            continue
        write_json(path, out)
        if path.parent.name == "own-data":
            read_step(path)
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--delete-store", action="store_true", help="remove results/configs after")
    args = ap.parse_args(argv)
    if not args.results.is_dir():
        print(f"error: {args.results}: results folder not found", file=sys.stderr)
        return 2
    try:
        changed = migrate(args.results)
    except MigrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in changed:
        print(f"migrated {p}")
    if args.delete_store and (args.results / "configs").is_dir():
        shutil.rmtree(args.results / "configs")
        print(f"deleted {args.results / 'configs'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
