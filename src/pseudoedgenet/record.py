"""The result record of one training run: a typed, versioned schema.

The engine (:func:`pseudoedgenet.engine.train.train_fold`) writes one
:class:`ResultRecord` per run as ``result.json``; the experiments code keeps the same record
as ``RESULTS/<dataset>/<method>/fold_<i>.json`` (cross-validation), ``RESULTS/<folder>/
<method>.json`` (a train/test split) and inside the own-data step files, and reads it back
with :func:`record_from_dict`. Reading is strict: an unknown field, a missing required
field, a value of the wrong type or another ``schema_version`` is a one-line
:class:`~pseudoedgenet.errors.DataError` naming the file. There is no fallback for older
files: the committed ones were migrated once (``scripts/migrate_records_v2.py``, schema 1 →
2) and the migration is recorded in each migrated record (:class:`Migration`).

Schema history:

- 1 (no ``schema_version`` field): a dict whose fields grew over time; the config was kept
  by hash only (``config_sha256``, with a content-addressed store beside the results).
- 2: this module. The complete resolved config travels in every record (``config``; the
  run's ``epochs``, ``crop``, ... are read from it), precision in the package's vocabulary
  (``fp32``, ``bf16``, ``fp16``), the selection rule always stated (``selected_by``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pseudoedgenet.config import LEGACY_PRECISIONS, PRECISIONS, config_from_dict
from pseudoedgenet.errors import ConfigError, DataError

#: The schema this version of the package writes and reads.
SCHEMA_VERSION = 2

#: How a run chose the checkpoint it tested (``selected_by``): by validation IoU (the
#: paper's rule, when the validation images have masks), by validation point F1 (clicks
#: only) or the last epoch (no validation images).
SELECTIONS = ("val/iou", "val/point_f1", "last")


@dataclass(frozen=True)
class Scores:
    """Segmentation scores against instance masks (threshold 0.5 on f's probability).

    Attributes:
        iou: foreground IoU.
        dice: foreground Dice.
        f1: object-level F1 (matched at IoU > 0.5).
        aji: aggregated Jaccard index.
    """

    iou: float
    dice: float
    f1: float
    aji: float


@dataclass(frozen=True)
class PointScores:
    """Point-based scores of f's instances against the clicks (:mod:`pseudoedgenet.metrics.points`).

    Attributes:
        f1: harmonic mean of ``recall`` and ``precision``.
        recall: share of clicks inside a predicted nucleus.
        precision: share of predicted nuclei that hold a click.
    """

    f1: float
    recall: float
    precision: float


@dataclass(frozen=True)
class InitRecord:
    """Where a fine-tuned run's weights came from (``train --init``).

    Attributes:
        path: the checkpoint or exported file as given.
        sha256: its SHA-256.
        loaded: the networks started from it (``f``, ``g``, ``h``).
        scratch: the networks started from scratch, with the reason.
    """

    path: str
    sha256: str
    loaded: tuple[str, ...]
    scratch: dict[str, str]


@dataclass(frozen=True)
class Migration:
    """How a record written under an older schema was brought to this one.

    Attributes:
        from_schema: the schema it was written under.
        script: the committed script that migrated it.
        config_sha256_as_run: ``config_sha256`` as the run wrote it (the hash of the config
            text of its commit; ``config_sha256`` now hashes the completed config).
        completed: config keys the run's code did not have yet, filled with the current
            default because they had no effect on that run (each with the reason).
    """

    from_schema: int
    script: str
    config_sha256_as_run: str
    completed: dict[str, str]


@dataclass(frozen=True)
class ResultRecord:
    """What one training run measured, and how it was run.

    Attributes:
        method: the config's method (a Table 1/2 row, e.g. ``pen_att``).
        config: the complete resolved config (every section, every key).
        config_sha256: SHA-256 of that config's YAML (``Config.to_yaml``).
        git_commit: the commit of the code that ran (``-dirty`` when the tree had changes).
        device: the device, in words (e.g. ``cpu (2 threads, x86_64, AVX2)``).
        precision: ``fp32``, ``bf16`` or ``fp16``: what the run computed in.
        selected_by: how the tested checkpoint was chosen (:data:`SELECTIONS`).
        wall_s: training and testing time in seconds (summed over attempts).
        fold: test fold of the paper's rotation, ``None`` for a split-free run.
        dataset: dataset name (``tnbc``, ``monuseg``, ...), ``None`` for a plain run.
        protocol: named protocol (``paper``, ``cpu``, ``cpu-long``, ...) or ``config``.
        test_data: a separately prepared test set (a train/test split run).
        validation: the validation plan in words, as the run's start line said it.
        train_images, val_images, test_images: images in each part (``None``: not
            recorded by schema-1 runs).
        init: the starting weights of a fine-tuned run.
        best_epoch: 1-based epoch of the tested checkpoint (``best.ckpt``).
        val_iou: validation IoU of ``best.ckpt`` (IoU selection).
        val_point_f1: best validation point F1 (``best_points.ckpt``, or ``best.ckpt``
            under point selection).
        best_epoch_points: 1-based epoch of ``best_points.ckpt`` (IoU selection).
        val_curve: validation IoU per 1-based epoch.
        val_curve_points: validation point F1 per 1-based epoch.
        test: scores of the tested checkpoint, per-image mean.
        test_pooled: the same from summed counts.
        test_points: point scores of the tested checkpoint on the test images.
        test_point_selected: scores of ``best_points.ckpt`` (what selection by clicks
            alone would have given), per-image mean.
        attempts: training attempts (1 + resumes).
        migration: set on records migrated from an older schema.
        schema_version: :data:`SCHEMA_VERSION`.
    """

    method: str
    config: dict[str, Any]
    config_sha256: str
    git_commit: str
    device: str
    precision: str
    selected_by: str
    wall_s: float
    fold: int | None = None
    dataset: str | None = None
    protocol: str | None = None
    test_data: str | None = None
    validation: str | None = None
    train_images: int | None = None
    val_images: int | None = None
    test_images: int | None = None
    init: InitRecord | None = None
    best_epoch: int | None = None
    val_iou: float | None = None
    val_point_f1: float | None = None
    best_epoch_points: int | None = None
    val_curve: dict[int, float] | None = None
    val_curve_points: dict[int, float] | None = None
    test: Scores | None = None
    test_pooled: Scores | None = None
    test_points: PointScores | None = None
    test_point_selected: Scores | None = None
    attempts: int | None = None
    migration: Migration | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def epochs(self) -> int:
        """``train.epochs`` of the run's config."""
        return int(self.config["train"]["epochs"])

    @property
    def crop(self) -> int:
        """``data.crop`` of the run's config."""
        return int(self.config["data"]["crop"])

    @property
    def crops_per_epoch(self) -> int:
        """``data.crops_per_epoch`` of the run's config."""
        return int(self.config["data"]["crops_per_epoch"])

    @property
    def pretrained(self) -> str:
        """``model.pretrained`` of the run's config (``none`` or ``imagenet``)."""
        return str(self.config["model"]["pretrained"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``schema_version`` first, then the fields in declaration order,
        ``None`` fields left out, epoch keys of the curves as strings."""
        out: dict[str, Any] = {"schema_version": self.schema_version}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "schema_version" or value is None:
                continue
            if f.name in ("val_curve", "val_curve_points"):
                value = {str(e): v for e, v in sorted(value.items())}
            elif isinstance(value, Scores | PointScores | InitRecord | Migration):
                value = {g.name: _json_value(getattr(value, g.name)) for g in fields(value)}
            out[f.name] = value
        return out


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def precision_name(precision: str) -> str:
    """The package's name (``fp32``, ``bf16``, ``fp16``) of a precision, also accepting
    Lightning's (``32``, ``bf16-mixed``, ``16-mixed``)."""
    return LEGACY_PRECISIONS.get(precision, precision)


class _Reader:
    """Field-by-field validation of one JSON object, errors naming the file."""

    def __init__(self, path: Path | None, raw: dict[str, Any], where: str) -> None:
        self.path, self.raw, self.where = path, raw, where

    def fail(self, problem: str) -> DataError:
        return DataError(self.path, f"{self.where}{problem}")

    def get(self, key: str, kind: type | tuple[type, ...], required: bool = False) -> Any:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise self.fail(f"missing the {key!r} field")
            return None
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(f"{key!r} must be {_kind_name(kind)}, got {value!r}")
        return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "an object"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _sub(r: _Reader, key: str, cls: type) -> Any:
    raw = r.get(key, dict)
    if raw is None:
        return None
    sub = _Reader(r.path, raw, f"{r.where}{key}: ")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise sub.fail(f"unknown field(s) {unknown}")
    if cls in (Scores, PointScores):
        return cls(**{n: sub.get(n, float, required=True) for n in names})
    if cls is InitRecord:
        loaded = sub.get("loaded", list, required=True)
        scratch = sub.get("scratch", dict, required=True)
        if not all(isinstance(x, str) for x in loaded) or not all(
            isinstance(v, str) for v in scratch.values()
        ):
            raise sub.fail("'loaded' lists network names and 'scratch' maps names to reasons")
        return InitRecord(
            sub.get("path", str, required=True),
            sub.get("sha256", str, required=True),
            tuple(loaded),
            dict(scratch),
        )
    completed = sub.get("completed", dict, required=True)
    if not all(isinstance(v, str) for v in completed.values()):
        raise sub.fail("'completed' maps config keys to reasons")
    return Migration(
        sub.get("from_schema", int, required=True),
        sub.get("script", str, required=True),
        sub.get("config_sha256_as_run", str, required=True),
        dict(completed),
    )


def _curve(r: _Reader, key: str) -> dict[int, float] | None:
    raw = r.get(key, dict)
    if raw is None:
        return None
    bad = r.fail(f"{key!r} must map epoch numbers to numbers")
    curve: dict[int, float] = {}
    for e, v in raw.items():
        if not isinstance(v, int | float) or isinstance(v, bool) or not str(e).isdigit():
            raise bad
        curve[int(e)] = float(v)
    return dict(sorted(curve.items()))


def init_record(raw: dict[str, Any]) -> InitRecord:
    """The :class:`InitRecord` of :func:`pseudoedgenet.models.trained.init_weights`'s dict
    (``{"path", "sha256", "loaded": [...], "scratch": {...}}``)."""
    return InitRecord(
        str(raw["path"]), str(raw["sha256"]), tuple(raw["loaded"]), dict(raw["scratch"])
    )


def record_from_dict(raw: Any, path: str | Path | None = None) -> ResultRecord:
    """Validates a record's JSON form (:meth:`ResultRecord.to_dict`).

    Args:
        raw: the parsed JSON.
        path: the file it came from, for error messages.

    Returns:
        The record.

    Raises:
        DataError: naming ``path``: not an object, another ``schema_version`` (older files
            say how they are migrated), an unknown field, a missing required field, a value
            of the wrong type, a ``selected_by`` or ``precision`` outside the vocabulary, or
            a config that is not complete.
    """
    p = None if path is None else Path(path)
    if not isinstance(raw, dict):
        raise DataError(p, "result record is not a JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(
            p,
            f"result record of schema_version {version!r}; this pseudoedgenet reads "
            f"{SCHEMA_VERSION} (older records: see scripts/migrate_records_v2.py, or re-run)",
        )
    r = _Reader(p, raw, "")
    names = {f.name for f in fields(ResultRecord)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise r.fail(f"unknown result field(s) {unknown}")
    config = r.get("config", dict, required=True)
    check_complete_config(config, p)
    precision = r.get("precision", str, required=True)
    if precision not in PRECISIONS or precision == "auto":
        raise r.fail(f"'precision' must be fp32, bf16 or fp16, got {precision!r}")
    selected_by = r.get("selected_by", str, required=True)
    if selected_by not in SELECTIONS:
        raise r.fail(f"'selected_by' must be one of {', '.join(SELECTIONS)}, got {selected_by!r}")
    ints = ("fold", "train_images", "val_images", "test_images", "best_epoch")
    return ResultRecord(
        method=r.get("method", str, required=True),
        config=config,
        config_sha256=r.get("config_sha256", str, required=True),
        git_commit=r.get("git_commit", str, required=True),
        device=r.get("device", str, required=True),
        precision=precision,
        selected_by=selected_by,
        wall_s=r.get("wall_s", float, required=True),
        dataset=r.get("dataset", str),
        protocol=r.get("protocol", str),
        test_data=r.get("test_data", str),
        validation=r.get("validation", str),
        init=_sub(r, "init", InitRecord),
        val_iou=r.get("val_iou", float),
        val_point_f1=r.get("val_point_f1", float),
        best_epoch_points=r.get("best_epoch_points", int),
        val_curve=_curve(r, "val_curve"),
        val_curve_points=_curve(r, "val_curve_points"),
        test=_sub(r, "test", Scores),
        test_pooled=_sub(r, "test_pooled", Scores),
        test_points=_sub(r, "test_points", PointScores),
        test_point_selected=_sub(r, "test_point_selected", Scores),
        attempts=r.get("attempts", int),
        migration=_sub(r, "migration", Migration),
        **{k: r.get(k, int) for k in ints},
    )


def check_complete_config(config: dict[str, Any], path: str | Path | None = None) -> None:
    """Checks that a record's config is a complete, valid config of this package.

    Raises:
        DataError: naming ``path``, when a key is missing, unknown or invalid.
    """
    p = None if path is None else Path(path)
    try:
        cfg = config_from_dict(config)
    except (ConfigError, TypeError) as exc:
        raise DataError(p, f"record's config is not valid: {exc}") from None
    missing = [
        f"{section}.{key}"
        for section, values in cfg.to_dict().items()
        if isinstance(values, dict)
        for key in values
        if key not in (config.get(section) or {})
    ]
    if missing:
        raise DataError(p, f"record's config is incomplete: no {', '.join(missing)}")


def read_record(path: str | Path) -> ResultRecord:
    """Reads a ``result.json`` / ``fold_<i>.json`` (:func:`record_from_dict`).

    Raises:
        DataError: unreadable file, invalid JSON or an invalid record.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            path, f"invalid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read result record ({type(exc).__name__})") from None
    return record_from_dict(raw, path)


def write_record(path: str | Path, record: ResultRecord) -> Path:
    """Writes a record as JSON, atomically (temp file, then rename)."""
    from pseudoedgenet.data.io import write_json

    path = Path(path)
    write_json(path, record.to_dict())
    return path
