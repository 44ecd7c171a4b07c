"""Cross-validation outputs read back: fold files, holdout files and run logs.

:func:`pseudoedgenet.experiments.crossval.crossval` writes one
``RESULTS/<dataset>/<method>/fold_<i>.json`` per finished fold and keeps its run folder
(``metrics.csv``, ``best.ckpt``) under ``runs/crossval``; ``pseudoedgenet holdout`` writes
``RESULTS/<folder>/<method>.json``. This module reads and validates those files, groups the
fold records by ``(dataset, method, protocol)`` and computes the statistics the report
shows (mean and sample std over folds, paired differences on shared folds, mean
validation curves). It draws and formats nothing: that is
:mod:`pseudoedgenet.experiments.report` and :mod:`pseudoedgenet.experiments.figures`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pseudoedgenet.data.io import atomic_path
from pseudoedgenet.errors import DataError


class _Absent:
    """Marks a setting missing from a config (a run written before the setting existed)."""

    def __repr__(self) -> str:
        return "absent"


#: Stands in for a setting a config does not have (see :func:`config_differences`).
ABSENT = _Absent()

#: File names of fold results; group 1 is the fold index.
FOLD_FILE = re.compile(r"fold_(\d+)\.json$")


@dataclass(frozen=True)
class FoldRecord:
    """One ``fold_<i>.json`` file.

    Attributes:
        path: the file.
        dataset: ``dataset`` field (e.g. ``tnbc``).
        method: ``method`` field (the config's method, a table row).
        protocol: ``protocol`` field (``paper``, ``cpu``, ...).
        fold: test fold index.
        data: the whole record.
    """

    path: Path
    dataset: str
    method: str
    protocol: str
    fold: int
    data: dict[str, Any]

    def metric(self, name: str) -> float | None:
        """The test metric ``name`` (per-image mean), or ``None`` when absent."""
        value = self.data.get("test", {}).get(name)
        return None if value is None else float(value)


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (``ddof=1``; ``None`` when ``n < 2``) of values."""

    mean: float
    std: float | None
    n: int


@dataclass(frozen=True)
class Paired:
    """Per-fold differences ``a − b`` of test IoU on the folds both methods have.

    Attributes:
        folds: the shared folds, sorted.
        diffs: ``a − b`` per shared fold, same order.
        a_mean: mean IoU of ``a`` on the shared folds (``nan`` without any).
        b_mean: mean IoU of ``b`` on the shared folds (``nan`` without any).
    """

    folds: list[int]
    diffs: list[float]
    a_mean: float
    b_mean: float

    @property
    def summary(self) -> Summary | None:
        """Mean and sample std of the differences, ``None`` without shared folds."""
        return summarize(self.diffs)


Groups = dict[tuple[str, str, str], dict[int, FoldRecord]]


def require_field(
    path: Path, record: dict[str, Any], key: str, kind: type | tuple[type, ...]
) -> Any:
    """``record[key]`` when it is an instance of ``kind`` (booleans never count as numbers).

    Raises:
        DataError: naming ``path``, when the field is missing or of another type.
    """
    value = record.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(path, f"result file without a valid {key!r} field (got {value!r})")
    return value


def read_fold_record(path: str | Path) -> FoldRecord:
    """Reads and validates one fold file.

    Args:
        path: a ``fold_<i>.json`` written by the cross-validation driver.

    Returns:
        The record.

    Raises:
        DataError: unreadable or invalid JSON, a missing field (``dataset``, ``method``,
            ``protocol``, ``fold``, ``test.iou``), or a ``fold`` that disagrees with the
            file name.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            path, f"invalid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read fold file ({type(exc).__name__})") from None
    if not isinstance(record, dict):
        raise DataError(path, "fold file is not a JSON object")
    dataset = require_field(path, record, "dataset", str)
    method = require_field(path, record, "method", str)
    protocol = require_field(path, record, "protocol", str)
    fold = require_field(path, record, "fold", int)
    test = record.get("test")
    if not isinstance(test, dict) or not isinstance(test.get("iou"), (int, float)):
        raise DataError(path, "fold file without a numeric test.iou")
    m = FOLD_FILE.search(path.name)
    if m and int(m.group(1)) != fold:
        raise DataError(path, f"file name says fold {m.group(1)} but the record says {fold}")
    return FoldRecord(path, dataset, method, protocol, fold, record)


def load_results(results_dir: str | Path) -> list[FoldRecord]:
    """Reads every ``results_dir/<dataset>/<method>/fold_<i>.json``.

    Args:
        results_dir: the results folder.

    Returns:
        The records, sorted by file path.

    Raises:
        DataError: the folder is missing or holds no fold file, a fold file is invalid
            (see :func:`read_fold_record`), or two files claim the same
            ``(dataset, method, protocol, fold)``.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise DataError(root, "results folder not found")
    paths = sorted(p for p in root.glob("*/*/fold_*.json") if FOLD_FILE.search(p.name))
    if not paths:
        raise DataError(root, "no fold files (expected <dataset>/<method>/fold_<i>.json)")
    records = [read_fold_record(p) for p in paths]
    seen: dict[tuple[str, str, str, int], Path] = {}
    for r in records:
        key = (r.dataset, r.method, r.protocol, r.fold)
        if key in seen:
            raise DataError(
                r.path,
                f"same dataset/method/protocol/fold as {seen[key]}: {'/'.join(map(str, key))}",
            )
        seen[key] = r.path
    return records


def group_records(records: Iterable[FoldRecord]) -> Groups:
    """Groups records by ``(dataset, method, protocol)`` -> ``{fold: record}``."""
    groups: Groups = {}
    for r in records:
        groups.setdefault((r.dataset, r.method, r.protocol), {})[r.fold] = r
    return groups


def summarize(values: Sequence[float]) -> Summary | None:
    """Mean and sample std (``ddof=1``, only when ``n >= 2``); ``None`` for no values."""
    if len(values) == 0:
        return None
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size >= 2 else None
    return Summary(float(arr.mean()), std, int(arr.size))


def cell_summary(group: Mapping[int, FoldRecord] | None, metric: str = "iou") -> Summary | None:
    """Summary of one test metric over the folds of a group (records lacking it skipped)."""
    if not group:
        return None
    values = [v for r in group.values() if (v := r.metric(metric)) is not None]
    return summarize(values)


def paired_difference(
    a: Mapping[int, FoldRecord] | None, b: Mapping[int, FoldRecord] | None, metric: str = "iou"
) -> Paired:
    """Differences ``a − b`` of a test metric on the folds both groups have.

    Args:
        a: ``{fold: record}`` of one method (one dataset, one protocol).
        b: the same for the other method.
        metric: test metric name.

    Returns:
        The per-fold differences on the shared folds (none when nothing is shared).
    """
    a, b = a or {}, b or {}
    folds: list[int] = []
    av: list[float] = []
    bv: list[float] = []
    for f in sorted(set(a) & set(b)):
        x, y = a[f].metric(metric), b[f].metric(metric)
        if x is not None and y is not None:
            folds.append(f)
            av.append(x)
            bv.append(y)
    diffs = [x - y for x, y in zip(av, bv, strict=True)]
    nan = float("nan")
    return Paired(
        folds, diffs, float(np.mean(av)) if av else nan, float(np.mean(bv)) if bv else nan
    )


def load_holdout(results_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Split-based results (``pseudoedgenet holdout``): ``<folder>/<method>.json`` files
    with a ``test_data`` field, sorted by path. Fold files and other JSON are ignored.

    Raises:
        DataError: a holdout file that is not valid JSON or lacks ``test.iou``.
    """
    found = []
    for path in sorted(Path(results_dir).glob("*/*.json")):
        if FOLD_FILE.search(path.name):
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
            raise DataError(path, f"cannot read result file ({type(exc).__name__})") from None
        if not isinstance(record, dict) or "test_data" not in record:
            continue
        require_field(path, record, "method", str)
        require_field(path, record, "protocol", str)
        test = require_field(path, record, "test", dict)
        require_field(path, test, "iou", (int, float))
        found.append((path, record))
    return found


def run_folder(record: FoldRecord, results_dir: Path, runs_dir: Path) -> Path | None:
    """The run folder (``metrics.csv``, ``best.ckpt``) of a fold record, if it exists.

    ``pseudoedgenet crossval`` puts fold ``i``'s run into
    ``runs/crossval/<dataset>[-<protocol>]/<method>/fold_<i>`` by default, the results
    folder's sub-path under ``runs_dir`` (e.g. ``runs/crossval/tnbc-cpu/pen_att``
    for ``results/tnbc-cpu/pen_att``). Also tried, for runs made with an explicit
    ``--runs``: ``runs_dir/<results folder>/<sub-path>`` and
    ``runs_dir/<results folder name>/<sub-path>``.
    """
    rel = record.path.parent.relative_to(results_dir)
    bases = [runs_dir / results_dir / rel] if not results_dir.is_absolute() else []
    bases += [runs_dir / results_dir.name / rel, runs_dir / rel]
    for base in bases:
        candidate = base / f"fold_{record.fold}"
        if candidate.is_dir():
            return candidate
    return None


def read_val_curve(run_dir: str | Path) -> dict[int, float]:
    """Validation IoU per epoch of one run folder.

    Reads ``metrics.csv`` (Lightning CSV log; rows with a ``val/iou`` value), or, while a
    run is still going and that file is not yet merged, ``logs/attempt_*/metrics.csv``
    in attempt order. A later row of the same epoch (a resumed attempt) wins.

    Args:
        run_dir: a fold's run folder.

    Returns:
        ``{epoch: val IoU}`` with 1-based epochs (as ``best_epoch`` in the fold files);
        empty when no log exists.

    Raises:
        DataError: a log without ``epoch`` and ``val/iou`` columns or with a bad number.
    """
    run_dir = Path(run_dir)
    files = [run_dir / "metrics.csv"]
    if not files[0].is_file():
        files = sorted(
            (run_dir / "logs").glob("attempt_*/metrics.csv"),
            key=lambda p: int(p.parent.name.split("_")[-1]) if p.parent.name[8:].isdigit() else 0,
        )
    curve: dict[int, float] = {}
    for f in files:
        if not f.is_file():
            continue
        with f.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                continue
            if "epoch" not in reader.fieldnames or "val/iou" not in reader.fieldnames:
                continue
            for line, row in enumerate(reader, start=2):
                value = row.get("val/iou") or ""
                if not value.strip():
                    continue
                try:
                    curve[int(float(row["epoch"])) + 1] = float(value)
                except (TypeError, ValueError):
                    raise DataError(f, f"line {line}: bad epoch or val/iou value") from None
    return dict(sorted(curve.items()))


def record_val_curve(
    record: FoldRecord, results_dir: Path, runs_dir: Path | None
) -> dict[int, float]:
    """Validation IoU per epoch of a fold: its record's ``val_curve`` or its run's log.

    Fold files keep the curve (``{"<1-based epoch>": val IoU}``) since that field was
    added; for older ones the run folder's log is read (:func:`read_val_curve`).

    Args:
        record: a fold record.
        results_dir: the results folder the record was read from.
        runs_dir: root of the run folders, or ``None``.

    Returns:
        ``{epoch: val IoU}``; empty when neither source exists.

    Raises:
        DataError: a ``val_curve`` that is not a mapping of epochs to numbers, or a bad log.
    """
    stored = record.data.get("val_curve")
    if stored is not None:
        try:
            if not isinstance(stored, dict):
                raise TypeError
            return dict(sorted((int(e), float(v)) for e, v in stored.items()))
        except (TypeError, ValueError):
            raise DataError(
                record.path, "val_curve is not a mapping of epochs to numbers"
            ) from None
    run = run_folder(record, results_dir, runs_dir) if runs_dir is not None else None
    return read_val_curve(run) if run is not None else {}


def mean_curve(curves: Sequence[Mapping[int, float]]) -> dict[int, tuple[float, int]]:
    """Mean over runs per epoch: ``{epoch: (mean, number of runs with that epoch)}``."""
    epochs = sorted({e for c in curves for e in c})
    out: dict[int, tuple[float, int]] = {}
    for e in epochs:
        values = [c[e] for c in curves if e in c]
        out[e] = (float(np.mean(values)), len(values))
    return out


#: Folder (under the results folder) of the content-addressed config store: one
#: ``<sha256>.yaml`` per resolved config that a fold file names by ``config_sha256`` but does
#: not hold itself, so the configs survive the (git-ignored) run folders.
CONFIG_STORE = "configs"

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _parse_config(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(path, f"not a valid YAML config ({exc.__class__.__name__})") from None
    if not isinstance(loaded, dict):
        raise DataError(path, "not a YAML mapping of config sections")
    return loaded


def _wanted_shas(records: Iterable[FoldRecord]) -> set[str]:
    return {
        sha
        for r in records
        if isinstance(sha := r.data.get("config_sha256"), str)
        and not isinstance(r.data.get("config"), dict)
    }


def read_config_store(store_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Configs of the content-addressed store ``<store_dir>/<sha256>.yaml``.

    Each file's SHA-256 must equal its name, so a stored config is exactly the text whose
    hash a fold file records as ``config_sha256`` (read with ``yaml.safe_load``; nothing
    executed).

    Args:
        store_dir: the store folder (missing: empty store).

    Returns:
        ``{sha256 hex: config mapping}``.

    Raises:
        DataError: a file whose name is not a SHA-256, whose text does not hash to its
            name, or that is not a YAML mapping.
    """
    found: dict[str, dict[str, Any]] = {}
    store_dir = Path(store_dir)
    for path in sorted(store_dir.glob("*.yaml")) if store_dir.is_dir() else []:
        if not _SHA256.fullmatch(path.stem):
            raise DataError(path, "config store files are named <sha256>.yaml")
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != path.stem:
            raise DataError(path, "text does not hash to its name (edited after it was stored?)")
        found[path.stem] = _parse_config(path, raw)
    return found


def update_config_store(
    records: Iterable[FoldRecord], runs_dir: Path | None, store_dir: str | Path
) -> list[Path]:
    """Copies into the store the run-folder configs that fold files name but do not hold.

    A fold file written before it kept its ``config`` names it only by ``config_sha256``,
    the hash of its run folder's ``config.yaml``; any ``config.yaml`` under ``runs_dir``
    with that hash is copied, byte for byte, to ``<store_dir>/<sha256>.yaml`` (atomically)
    unless already stored.

    Args:
        records: fold records.
        runs_dir: folder searched recursively for ``config.yaml`` files, or ``None``.
        store_dir: the store folder (created when something is stored).

    Returns:
        The files written.

    Raises:
        DataError: a matching ``config.yaml`` that is not a YAML mapping.
    """
    store_dir = Path(store_dir)
    wanted = _wanted_shas(records)
    written: list[Path] = []
    for path in sorted(runs_dir.rglob("config.yaml")) if runs_dir is not None else []:
        raw = path.read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        target = store_dir / f"{sha}.yaml"
        if sha not in wanted or target.is_file():
            continue
        _parse_config(path, raw)
        store_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_bytes(raw)
        written.append(target)
    return written


def known_configs(
    records: Iterable[FoldRecord], store_dir: str | Path | None = None
) -> dict[str, dict[str, Any]]:
    """Resolved configs by ``config_sha256``, from everything that keeps one.

    A fold file keeps its config in the ``config`` field (written since that field was
    added); older folds are found in the config store (:func:`read_config_store`, filled
    from the run folders by :func:`update_config_store`).

    Args:
        records: fold records.
        store_dir: config store folder, or ``None``.

    Returns:
        ``{sha256 hex: config mapping}``.

    Raises:
        DataError: a bad store file.
    """
    records = list(records)
    found: dict[str, dict[str, Any]] = {}
    for r in records:
        sha, config = r.data.get("config_sha256"), r.data.get("config")
        if isinstance(sha, str) and isinstance(config, dict):
            found[sha] = config
    if store_dir is not None:
        stored = read_config_store(store_dir)
        found.update({sha: stored[sha] for sha in _wanted_shas(records) if sha in stored})
    return found


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_differences(configs: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The settings on which configs disagree.

    Args:
        configs: nested config mappings (sections of ``key: value``).

    Returns:
        ``{"section.key": [value per config]}`` for every dotted key whose value is not the
        same in all configs, in sorted key order; a config without the key (an older run,
        written before the setting existed) contributes :data:`ABSENT`. Empty when all
        agree.
    """
    flats = [_flatten(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    out: dict[str, list[Any]] = {}
    for k in keys:
        values = [f.get(k, ABSENT) for f in flats]
        if any(v is ABSENT or v != values[0] for v in values):
            out[k] = values
    return out
