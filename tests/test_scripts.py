"""scripts/land_results.sh: result files of a campaign worktree brought into a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO

SCRIPT = REPO / "scripts" / "land_results.sh"


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _record(path: Path, method: str, fold: int, iou: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "dataset": "tnbc",
                "method": method,
                "fold": fold,
                "protocol": "cpu-long",
                "device": "cpu",
                "precision": "fp32",
                "git_commit": "abcdef0123",
                "test": {"iou": iou},
                "best_epoch": 43,
                "config": {"train": {"epochs": 60}},
            }
        )
    )


def _land(main: Path, worktree: Path, fail: str = "") -> subprocess.CompletedProcess[str]:
    # a Python stand-in: `-m ...` (report, tnbc_fold1) is logged, not run; `-` (the
    # summary) runs in the real interpreter
    stub = main / "py"
    stub.write_text(
        f'#!/usr/bin/env bash\nif [ "$1" = "-m" ]; then echo "$@" >> "{main}/calls"; '
        f'[ "$2" = "$FAIL_MODULE" ] && exit 1; exit 0; fi\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    stub.chmod(0o755)
    return subprocess.run(
        ["bash", str(SCRIPT), str(worktree)],
        cwd=main,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": str(stub), "FAIL_MODULE": fail},
    )


def test_land_results_copies_new_files_and_scores_tnbc_fold1(tmp_path: Path) -> None:
    main, wt = tmp_path / "main", tmp_path / "wt"
    main.mkdir()
    wt.mkdir()
    _git(wt, "init", "-q")
    _record(wt / "results" / "tnbc" / "baseline" / "fold_0.json", "baseline", 0, 0.5)
    _git(wt, "add", "-A")
    _git(wt, "commit", "-qm", "committed record")
    # not a git checkout / no results: one line, exit 2
    res = subprocess.run(["bash", str(SCRIPT), str(main)], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith("error: give the campaign worktree")
    # only committed files in the worktree: nothing to land, nothing run
    res = _land(main, wt)
    assert res.returncode == 0 and res.stdout == f"nothing new in {wt}/results\n"
    assert not (main / "calls").exists()
    # two new fold files; the fold-1 run keeps its checkpoint
    _record(wt / "results" / "tnbc" / "pen_att" / "fold_1.json", "pen_att", 1, 0.4321)
    _record(wt / "results" / "tnbc" / "pen_att" / "fold_2.json", "pen_att", 2, 0.6)
    run = wt / "runs" / "crossval" / "tnbc" / "pen_att" / "fold_1"
    run.mkdir(parents=True)
    (run / "best.ckpt").write_bytes(b"x")
    res = _land(main, wt)
    assert res.returncode == 0, res.stderr
    for f in ("fold_1.json", "fold_2.json"):
        rel = Path("results") / "tnbc" / "pen_att" / f
        assert (main / rel).read_bytes() == (wt / rel).read_bytes()
    assert not (main / "results" / "tnbc" / "baseline").exists()  # committed there: not copied
    calls = (main / "calls").read_text().splitlines()
    assert calls[0] == "-m pseudoedgenet report results --out results/README.md --readme README.md"
    assert calls[1].endswith(f"--out docs --score {run}")
    assert (
        "landed results/tnbc/pen_att/fold_1.json: tnbc pen_att fold 1 (cpu-long, cpu, fp32, "
        "commit abcdef0): test IoU 0.4321 (epoch 43/60)" in res.stdout
    )
    # the fold-1 page failing to regenerate stops the landing with one line (exit 1)
    _record(wt / "results" / "tnbc" / "pen" / "fold_2.json", "pen", 2, 0.6)
    res = _land(main, wt, fail="pseudoedgenet.experiments.tnbc_fold1")
    assert res.returncode == 1 and res.stderr.startswith(
        "error: docs/tnbc-fold1.md was not regenerated (see above): fix that, rerun the line"
    )
    assert "landed" not in res.stdout
    # landed files are skipped next time; a file here with other content is refused
    res = _land(main, wt)
    assert res.stdout == f"nothing new in {wt}/results\n"
    (main / "results" / "tnbc" / "pen_att" / "fold_2.json").write_text("{}")
    res = _land(main, wt)
    assert res.returncode == 2
    assert res.stderr == (
        "error: results/tnbc/pen_att/fold_2.json exists here with other content: compare and "
        "replace it by hand\n"
    )


def test_land_results_draws_figure2_only_from_a_clean_checkout(tmp_path: Path) -> None:
    main, wt = tmp_path / "main", tmp_path / "wt"
    for d in (main, wt):
        d.mkdir()
        _git(d, "init", "-q")
    (main / "tracked.txt").write_text("a\n")
    (main / ".gitignore").write_text("py\ncalls\nresults/\n")
    _git(main, "add", "-A")
    _git(main, "commit", "-qm", "main")
    for m in ("baseline", "pen_att"):
        _record(wt / "results" / "tnbc" / m / "fold_0.json", m, 0, 0.5)
        run = wt / "runs" / "crossval" / "tnbc" / m / "fold_0"
        run.mkdir(parents=True)
        (run / "best.ckpt").write_bytes(m.encode())
    # a tracked file changed here: one line, exit 2, nothing drawn or copied
    (main / "tracked.txt").write_text("b\n")
    res = _land(main, wt)
    assert res.returncode == 2
    assert res.stderr == (
        "error: this checkout has uncommitted changes: commit them first (Figure 2 of tnbc "
        "records the commit it is drawn at)\n"
    )
    assert not (main / "calls").exists() and not (main / "results").exists()
    # clean: the figure is drawn from the worktree's fold-0 checkpoints, then the records land
    _git(main, "checkout", "--", "tracked.txt")
    res = _land(main, wt)
    assert res.returncode == 0, res.stderr
    calls = (main / "calls").read_text().splitlines()
    pen = wt / "runs" / "crossval" / "tnbc" / "pen_att" / "fold_0" / "best.ckpt"
    base = wt / "runs" / "crossval" / "tnbc" / "baseline" / "fold_0" / "best.ckpt"
    assert calls[0] == (
        f"-m pseudoedgenet figure2 --checkpoint {pen} --baseline {base} --data {wt}/data/tnbc "
        "--fold 0 --images 3 --title TNBC, protocol `cpu-long` --out results/figure2_tnbc.png"
    )
    assert (main / "results" / "tnbc" / "pen_att" / "fold_0.json").exists()
    # a rerun's record lands under results/repeats/, a changed one is refused
    _record(wt / "runs" / "rerun" / "tnbc" / "baseline" / "fold_0.json", "baseline", 0, 0.52)
    res = _land(main, wt)
    assert res.returncode == 0, res.stderr
    rel = Path("runs") / "rerun" / "tnbc" / "baseline" / "fold_0.json"
    landed = main / "results" / "repeats" / "tnbc" / "baseline" / "fold_0.json"
    assert landed.read_bytes() == (wt / rel).read_bytes()
    assert "landed results/repeats/tnbc/baseline/fold_0.json: tnbc baseline fold 0" in res.stdout
    _record(wt / rel, "baseline", 0, 0.53)
    res = _land(main, wt)
    assert res.returncode == 2 and res.stderr == (
        "error: results/repeats/tnbc/baseline/fold_0.json exists here with other content: "
        "compare and replace it by hand\n"
    )
