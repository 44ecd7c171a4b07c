"""k-fold cross-validation with the paper's rotation, one result file per finished fold.

``fold_<i>.json`` is written as soon as fold ``i`` is tested; re-running skips folds whose
file exists, so a long cross-validation can be spread over sittings and machines.
Checkpoints stay in the runs folder (outside git).
"""

from __future__ import annotations

from pathlib import Path

from pseudoedgenet.config import Config
from pseudoedgenet.data.prepared import PreparedDataset
from pseudoedgenet.errors import ConfigError
from pseudoedgenet.record import ResultRecord, read_record, write_record

#: Protocols are packaged overlays (``pseudoedgenet/configs/protocols/<name>.yaml``, applied
#: by :func:`pseudoedgenet.config.resolve_config`). The protocol whose results live in
#: ``results/<dataset>/<method>``; every other protocol gets its own folder
#: ``results/<dataset>-<protocol>/<method>``, so fold files of different protocols never
#: share a name.
DEFAULT_RESULTS_PROTOCOL = "cpu-long"


def results_subdir(dataset: str, protocol: str, method: str) -> Path:
    """``<dataset>/<method>`` for the ``cpu-long`` protocol (the one this project's
    headline CPU results use), ``<dataset>-<protocol>/<method>`` otherwise (relative to
    ``results/`` and to ``runs/crossval/``)."""
    folder = dataset if protocol == DEFAULT_RESULTS_PROTOCOL else f"{dataset}-{protocol}"
    return Path(folder) / method


def parse_folds(spec: str, k: int) -> list[int]:
    """``"0-9"``, ``"0,2,5"`` or ``"3"`` -> sorted fold indices, validated against ``k``."""
    folds: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                folds.update(range(a, b + 1))
            else:
                folds.add(int(part))
        except ValueError:
            raise ConfigError(f"bad fold list {spec!r}: use e.g. 0-9 or 0,2,5") from None
    bad = sorted(f for f in folds if not 0 <= f < k)
    if bad:
        raise ConfigError(f"fold(s) {bad} out of range 0..{k - 1}")
    return sorted(folds)


def crossval(
    cfg: Config,
    data: str | Path,
    folds: list[int],
    out: str | Path,
    runs: str | Path,
    protocol: str,
    dataset_name: str | None = None,
    *,
    verbose: bool = False,
) -> list[ResultRecord]:
    """Runs the given folds, writing ``out/fold_<i>.json`` after each; skips done folds.

    With several devices (``train.devices``, DDP), Lightning starts the other processes by
    re-running the command; each of them returns after the first fold it trained in, and
    the next fold starts them afresh (they skip the folds whose files exist).

    Args:
        cfg: method config with the protocol already applied.
        data: prepared dataset folder.
        folds: test folds to run.
        out: results folder (e.g. ``results/tnbc/pen_att``).
        runs: folder for run directories and checkpoints (outside git).
        protocol: protocol name recorded in every result.
        dataset_name: recorded as ``dataset`` (defaults to the prepared folder's reader).
        verbose: show Lightning's own output (:func:`train_fold`).

    Returns:
        The result records of all requested folds (read back for skipped ones).
    """
    ds = PreparedDataset(Path(data))
    name = dataset_name or str(ds.meta.get("source", {}).get("reader", Path(data).name))
    out, runs = Path(out), Path(runs)
    results = []
    for fold in folds:
        path = out / f"fold_{fold}.json"
        if path.is_file():
            done = read_record(path)
            if done.protocol != protocol or done.method != cfg.method:
                raise ConfigError(
                    f"{path} holds method {done.method!r}, protocol "
                    f"{done.protocol!r}, not {cfg.method!r}, {protocol!r}: use another --out"
                )
            print(f"fold {fold}: {path} exists, skipped")
            results.append(done)
            continue
        # imported here, not at the top: the CLI validates the fold list and the dataset
        # before the engine (torch, Lightning) loads
        from pseudoedgenet.engine.train import train_fold

        res = train_fold(
            cfg,
            data,
            fold,
            runs / f"fold_{fold}",
            dataset=name,
            protocol=protocol,
            verbose=verbose,
        )
        if res is None:  # a DDP process of rank > 0: rank 0 writes the record
            return results
        write_record(path, res)
        iou = f"{res.test.iou:.4f}" if res.test is not None else "– (no masks)"
        print(f"fold {fold}: test IoU {iou} -> {path}")
        results.append(res)
    return results
