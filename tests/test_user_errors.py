"""User mistakes end with one line and exit code 2 (or the right behaviour), and runs are
quiet: issue 16, items 1 and 7.

Each test reproduces a row as a new user would, through ``pseudoedgenet.cli.main``
(in-process, ``sys.argv`` patched; a subprocess where a signal or the console script is
needed), and checks that nothing is left behind. One tiny training run (baseline, f =
FPN-ResNet18, one 2-step epoch on 64 px crops) is shared by the tests that need a run
folder; they copy it before changing it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import error_line
from pseudoedgenet.config import apply_overrides, default_config
from pseudoedgenet.data.prepared import PreparedDataset, prepare_dataset
from pseudoedgenet.engine.train import train_fold
from test_engine import synthetic_sample

REPO = Path(__file__).resolve().parents[1]

#: The ``--set`` options of the tiny runs; the CLI builds the same config as
#: ``apply_overrides(default_config(), SETS)`` (no --config: the packaged default).
SETS = [
    "method=baseline",
    "model.edge=none",
    "model.attention=false",
    "model.encoder=resnet18",
    "data.crop=64",
    "data.crops_per_epoch=4",
    "data.batch_size=4",
    "data.num_workers=0",
    "train.precision=fp32",
]
SET_ARGS = [a for s in SETS for a in ("--set", s)]


def _hidden(folder: Path) -> list[str]:
    """Names starting with a dot: the temporary files and folders of atomic writes."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under ``folder``: to show that nothing changed."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _console() -> list[str]:
    script = REPO / ".venv" / "bin" / "pseudoedgenet"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from pseudoedgenet.cli import main; main()"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """6 synthetic 160 px images with masks, 3 folds."""
    out = tmp_path_factory.mktemp("data") / "tiny"
    prepare_dataset([synthetic_sample(f"img{i}", i) for i in range(6)], out, source={}, k=3)
    return PreparedDataset(out)


@pytest.fixture(scope="module")
def run(tiny: PreparedDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder of fold 0 (one epoch), as the CLI with ``SET_ARGS`` makes it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    cfg = apply_overrides(default_config(), [*SETS, "train.epochs=1"])
    train_fold(cfg, tiny.root, 0, out, log=lambda _: None)
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


# ------------------------------------------------------------------ export, evaluate


def test_export_to_a_folder_is_one_line_and_leaves_nothing(run: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "exports"
    folder.mkdir()
    code, out, err = cli("export", run / "best.ckpt", "--out", folder)
    assert code == 2 and out == ""
    assert error_line(err) == (
        f"error: {folder}: --out names a folder: give a file name inside it instead"
    )
    assert list(folder.iterdir()) == [] and _hidden(tmp_path) == []
    # a file name inside it works, and best.ckpt (weights only) is enough to export f
    code, out, _ = cli("export", run / "best.ckpt", "--out", folder / "f.pt")
    # (a run on images without a pixel size: the export says so)
    assert code == 0
    assert out.strip() == f"wrote {folder / 'f.pt'} (no training pixel size recorded)"
    assert [p.name for p in folder.iterdir()] == ["f.pt"]


def test_export_on_a_full_disk_leaves_nothing(
    run: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import pseudoedgenet.models.trained as trained

    def full(obj: object, path: object) -> None:
        Path(str(path)).write_bytes(b"half")  # a partial file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trained.torch, "save", full)
    code, _, err = cli("export", run / "best.ckpt", "--out", tmp_path / "f.pt")
    assert code == 2
    assert error_line(err) == (
        f"error: {tmp_path / 'f.pt'}: cannot write: No space left on device; nothing was written"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_evaluate_json_to_a_folder_is_refused_before_scoring(
    run: Path, tiny: PreparedDataset, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import pseudoedgenet.engine.evaluate as evaluate

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("scores computed before --json was checked")

    monkeypatch.setattr(evaluate, "evaluate_checkpoint", never)
    code, out, err = cli("evaluate", run / "best.ckpt", "--data", tiny.root, "--json", tmp_path)
    assert code == 2 and out == ""
    assert error_line(err) == (
        f"error: {tmp_path}: --json names a folder: give a file name inside it instead"
    )
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = cli(
        "evaluate", run / "best.ckpt", "--data", tiny.root, "--json", blocker / "s.json"
    )
    assert code == 2 and error_line(err) == (
        f"error: {blocker / 's.json'}: --json: {blocker} is a file, not a folder"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_without_a_gpu_is_one_line(
    run: Path, tiny: PreparedDataset, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("evaluate", run / "best.ckpt", "--data", tiny.root, "--accelerator", "gpu")
    assert code == 2 and out == ""
    line = error_line(err)
    assert line.startswith("error: --accelerator gpu: PyTorch sees no GPU device on this machine")
    assert line.endswith("use cpu or auto")
    new = tmp_path / "new"
    code, out, err = cli(
        "train", "--data", tiny.root, "--out", new, *SET_ARGS, "--set", "train.accelerator=gpu"
    )
    assert code == 2 and out == "" and not new.exists()
    assert error_line(err).startswith("error: train.accelerator gpu: PyTorch sees no GPU")
    code, _, err = cli("train", "--data", tiny.root, "--out", new, "--set", "train.accelerator=tpu")
    assert code == 2 and not new.exists()
    assert error_line(err) == (
        "error: train.accelerator must be one of auto, cpu, gpu, cuda, mps, got 'tpu'"
    )


# ------------------------------------------------------------------------- resuming


def test_truncated_last_ckpt_is_one_line_naming_it(
    run: Path, tiny: PreparedDataset, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    out = _copy(run, tmp_path)
    last = out / "last.ckpt"
    with last.open("r+b") as fh:
        fh.truncate(last.stat().st_size // 2)
    before = _snapshot(out)
    code, stdout, err = cli(
        "train", "--data", tiny.root, "--fold", 0, "--out", out, "--epochs", 1, *SET_ARGS
    )
    assert code == 2 and stdout == ""
    assert error_line(err) == (
        f"error: {last}: truncated or corrupt checkpoint (RuntimeError): delete it to train "
        "this run again from its start, or use a new --out"
    )
    assert _snapshot(out) == before
    # a weights-only file in its place (best.ckpt copied over it) cannot resume either
    shutil.copyfile(out / "best.ckpt", last)
    code, _, err = cli(
        "train", "--data", tiny.root, "--fold", 0, "--out", out, "--epochs", 1, *SET_ARGS
    )
    assert code == 2 and "not a resumable training checkpoint" in error_line(err)


def test_resuming_with_another_config_is_refused_before_writing(
    run: Path, tiny: PreparedDataset, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    out = _copy(run, tmp_path)
    before = _snapshot(out)
    args = ["train", "--data", tiny.root, "--fold", 0, "--out", out, "--epochs", 1, *SET_ARGS]
    code, stdout, err = cli(*args, "--set", "train.lr=0.05")
    assert code == 2 and stdout == ""
    assert error_line(err) == (
        f"error: {out}: holds a run of another config (train.lr: 0.001 in the run, 0.05 "
        f"now): use a new --out for a new run, or resume it with its own config "
        f"({out / 'config.yaml'})"
    )
    code, _, err = cli(
        "train", "--config", "pen_att", "--data", tiny.root,
        "--fold", 0, "--out", out, "--epochs", 1,
    )  # fmt: skip
    line = error_line(err)
    assert code == 2 and "method: baseline in the run, pen_att now" in line
    assert "model.edge: none in the run, small now" in line
    assert "model.attention: false in the run, true now" in line
    assert "model.encoder: resnet18 in the run, resnet50 now" in line
    assert _snapshot(out) == before
    # the record of the finished run still says what it was trained with
    assert json.loads((out / "result.json").read_text())["config"]["train"]["lr"] == 0.001


# ---------------------------------------------------------------- options out of range


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", 0], "--epochs must be >= 1, got 0"),
        (["--epochs", -3], "--epochs must be >= 1, got -3"),
        (["--max-steps", 0], "--max-steps must be >= 1, got 0"),
        (["--crop", 0], "--crop must be >= 1, got 0"),
        (["--crop", 100], "--crop must be a multiple of 32, got 100"),
        (["--set", "train.epochs=0"], "train.epochs must be >= 1, got 0"),
        (["--set", "train.max_steps=0"], "train.max_steps must be >= 1 (or -1: no limit), got 0"),
        (["--set", "data.crop=0"], "data.crop must be a positive multiple of 32, got 0"),
        (["--set", "train.val_every=0"], "train.val_every must be >= 1, got 0"),
    ],
)
def test_zero_or_negative_training_options_are_refused(
    tiny: PreparedDataset, tmp_path: Path, cli, args: list[object], message: str
) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("train", "--data", tiny.root, "--out", tmp_path / "r", *args)
    assert code == 2 and out == ""
    assert error_line(err) == f"error: {message}"
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- prepare


@pytest.mark.parametrize("k", [0, 1, 2, -1])
def test_prepare_refuses_fewer_than_three_folds(
    tmp_path: Path, make_folder_dataset, cli, k: int
) -> None:  # type: ignore[no-untyped-def]
    make_folder_dataset(tmp_path / "src", n=4)
    code, out, err = cli(
        "prepare", "folder", "--src", tmp_path / "src", "--out", tmp_path / "out", "--k", k
    )
    assert code == 2 and out == ""
    assert error_line(err) == (
        f"error: --k {k}: the fold rotation needs at least 3 folds (a test, a validation and "
        "a training fold): use --k 3 or more, or omit --k for up to 10"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_prepare_refuses_more_folds_than_images_and_says_what_the_default_did(
    tmp_path: Path, make_folder_dataset, cli
) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    make_folder_dataset(src, n=4)
    code, out, err = cli("prepare", "folder", "--src", src, "--out", tmp_path / "o", "--k", 5)
    assert code == 2 and out == ""
    assert error_line(err) == (
        "error: --k 5: only 4 images to split into folds: use --k 4 at most (or omit --k: "
        "up to 10 folds, one per image when there are fewer)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    # an explicit k is used as given
    code, out, _ = cli("prepare", "folder", "--src", src, "--out", tmp_path / "k3", "--k", 3)
    assert code == 0 and out.strip() == (
        f"{tmp_path / 'k3'}: 4 images, 12 points; pixel size unknown (--mpp records it)"
    )
    assert json.loads((tmp_path / "k3" / "folds.json").read_text())["k"] == 3
    # the default (10) with 4 images: one fold per image, said in the summary line
    code, out, _ = cli("prepare", "folder", "--src", src, "--out", tmp_path / "d")
    assert code == 0 and out.strip() == (
        f"{tmp_path / 'd'}: 4 images, 12 points; 4 fold(s), one per image (fewer than 10 "
        "images); pixel size unknown (--mpp records it)"
    )
    assert json.loads((tmp_path / "d" / "dataset.json").read_text())["k_requested"] is None


def test_prepare_on_a_full_disk_leaves_nothing(
    tmp_path: Path, make_folder_dataset, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import pseudoedgenet.data.prepared as prepared

    src, out = tmp_path / "src", tmp_path / "out"
    make_folder_dataset(src, n=3)
    calls: list[Path] = []
    real = prepared.write_png

    def fill_up(path: Path, array: object) -> None:
        calls.append(Path(path))
        if len(calls) == 3:  # image, mask of img0 written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, array)  # type: ignore[arg-type]

    monkeypatch.setattr(prepared, "write_png", fill_up)
    code, stdout, err = cli("prepare", "folder", "--src", src, "--out", out)
    assert code == 2 and stdout == ""
    assert error_line(err) == (
        f"error: {out}: cannot write: No space left on device ({calls[-1]}); nothing was "
        "written: choose a writable --out on a disk with free space"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_prepare_into_a_read_only_folder_is_one_line(
    tmp_path: Path, make_folder_dataset, cli
) -> None:  # type: ignore[no-untyped-def]
    src, parent = tmp_path / "src", tmp_path / "ro"
    make_folder_dataset(src, n=3)
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, _, err = cli("prepare", "folder", "--src", src, "--out", parent / "out")
        assert code == 2 and "Permission denied" in error_line(err)
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


def test_prepare_refused_a_write_is_one_line_whoever_runs_it(
    tmp_path: Path, make_folder_dataset, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The read-only case above for every user, root included (root writes into read-only
    folders, so there the refusal is simulated at the first file written)."""
    import pseudoedgenet.data.prepared as prepared

    src, out = tmp_path / "src", tmp_path / "out"
    make_folder_dataset(src, n=3)

    def refuse(path: Path, array: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(prepared, "write_png", refuse)
    code, stdout, err = cli("prepare", "folder", "--src", src, "--out", out)
    assert code == 2 and stdout == ""
    line = error_line(err)
    assert line.startswith(f"error: {out}: cannot write: Permission denied (") and "--out" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing left behind


def test_prepare_folder_drops_and_counts_duplicate_points(
    tmp_path: Path, make_folder_dataset, cli
) -> None:  # type: ignore[no-untyped-def]
    src, out = tmp_path / "src", tmp_path / "out"
    written = make_folder_dataset(src, n=3)
    csv = src / "points" / "img0.csv"
    # (6, 5) is img0's first point: once again exactly, once 0.2 px away (same pixel)
    csv.write_text(csv.read_text() + "6,5\n6.2,4.9\n")
    code, stdout, _ = cli("prepare", "folder", "--src", src, "--out", out)
    assert code == 0
    assert stdout.strip() == (
        f"{out}: 3 images, 9 points (duplicates dropped: 2: points on an already clicked "
        "pixel); 3 fold(s), one per image (fewer than 10 images); pixel size unknown "
        "(--mpp records it)"
    )
    meta = json.loads((out / "dataset.json").read_text())
    assert (meta["n_points"], meta["duplicates_dropped"]) == (9, 2)
    assert [meta["images"][f"img{i}"]["duplicates_dropped"] for i in range(3)] == [2, 0, 0]
    assert PreparedDataset(out).points("img0").tolist() == written["img0"].points.tolist()


# ----------------------------------------------------------------------------- predict


def test_predict_shard_without_inputs_says_so(tmp_path: Path, make_folder_dataset, cli) -> None:  # type: ignore[no-untyped-def]
    make_folder_dataset(tmp_path / "src", n=1)
    image = tmp_path / "src" / "images" / "img0.png"
    code, out, err = cli(
        "predict", tmp_path / "f.pt", image, "--out", tmp_path / "o", "--shard", "1/2"
    )
    assert code == 0 and err == ""
    assert out == "shard 1/2: no input of 1 falls in this shard\n"
    assert not (tmp_path / "o").exists()


def test_folders_where_files_belong_say_what_to_pass(
    run: Path, tiny: PreparedDataset, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    images = tiny.root / "images"
    code, _, err = cli("predict", run / "best.ckpt", images, "--out", tmp_path / "o")
    assert code == 2 and error_line(err) == (
        f"error: {images}: is a folder: pass the images or slides in it "
        f"(e.g. {images}/*.tif or {images}/*.svs)"
    )
    code, _, err = cli("predict", run, images / "img0.png", "--out", tmp_path / "o")
    assert code == 2 and error_line(err) == (
        f"error: {run}: is a folder, not a checkpoint file: pass {run / 'best.ckpt'}"
    )
    code, _, err = cli("show", tiny.root, "img9", "--out", tmp_path / "s.png")
    assert code == 2 and error_line(err).endswith(
        "no such image in the prepared dataset (img0, img1, img2, img3, img4, img5)"
    )
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.png").exists()


def test_schedule_text_states_the_budget_and_a_finished_run() -> None:
    from pseudoedgenet.engine.train import _schedule_text

    cfg = apply_overrides(default_config(), ["train.epochs=12", "data.crops_per_epoch=64"])
    assert _schedule_text(cfg, None) == "schedule: 12 epochs × 64 crops of 256²"
    assert (
        _schedule_text(cfg, 5) == "schedule: 12 epochs × 64 crops of 256² (resuming after epoch 5)"
    )
    assert _schedule_text(cfg, 12).endswith(
        "(all 12 trained already: nothing to train, testing again)"
    )
    assert _schedule_text(cfg, 12, testing=False).endswith(
        "(all 12 trained already: nothing to train, no test set to run again)"
    )
    one = apply_overrides(cfg, ["train.epochs=1", "train.max_steps=2"])
    assert (
        _schedule_text(one, None) == "schedule: 1 epoch × 64 crops of 256², stopping after 2 steps"
    )


# ----------------------------------------------------------------------- quiet runs


def test_a_run_prints_its_lines_only_and_verbose_shows_lightning(
    tiny: PreparedDataset,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pseudoedgenet.cli import main

    def train(out: Path, *more: str) -> tuple[str, str]:
        argv = ["pseudoedgenet", "train", "--data", str(tiny.root), "--fold", "0"]
        argv += ["--out", str(out), "--max-steps", "1", *SET_ARGS, *more]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exc:
            main()
        assert exc.value.code in (0, None)
        captured = capfd.readouterr()
        return captured.out, captured.err

    levels = {n: logging.getLogger(n).level for n in ("lightning.pytorch", "lightning.fabric")}
    out, err = train(tmp_path / "quiet")
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert lines[0].startswith("config: packaged default") and lines[1].startswith("epoch 1/")
    assert json.loads(lines[2])["method"] == "baseline"
    # stderr: the epoch's progress bar, nothing of Lightning's
    bar = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert bar and all(ln.startswith(("train:", "epoch 1/")) for ln in bar), err
    assert "GPU available" not in caplog.text and "Tip" not in caplog.text
    # the loggers are as they were before the run
    assert {n: logging.getLogger(n).level for n in levels} == levels

    with pytest.warns(UserWarning, match="exists and is not empty"):
        out, _ = train(tmp_path / "verbose", "--verbose")
    assert "GPU available" in caplog.text and "epoch 1/" in out


def test_best_checkpoints_hold_weights_only(run: Path) -> None:
    last = torch.load(run / "last.ckpt", weights_only=True, map_location="cpu")
    for name in ("best.ckpt", "best_points.ckpt"):
        best = torch.load(run / name, weights_only=True, map_location="cpu")
        assert not {"optimizer_states", "lr_schedulers", "callbacks"} & set(best), name
        assert {"state_dict", "hyper_parameters", "epoch"} <= set(best)
        assert best["state_dict"].keys() == last["state_dict"].keys()
    assert {"optimizer_states", "lr_schedulers", "callbacks", "loops"} <= set(last)
    # Adam keeps two moments per weight: the weights alone are about a third of last.ckpt
    assert (run / "best.ckpt").stat().st_size < 0.4 * (run / "last.ckpt").stat().st_size


def test_best_ckpt_without_validation_is_the_weights_of_last(
    tiny: PreparedDataset, tmp_path: Path
) -> None:
    cfg = apply_overrides(default_config(), [*SETS, "train.max_steps=1"])
    train_fold(cfg, tiny.root, None, tmp_path / "r", val=0, log=lambda _: None)
    best = torch.load(tmp_path / "r" / "best.ckpt", weights_only=True, map_location="cpu")
    last = torch.load(tmp_path / "r" / "last.ckpt", weights_only=True, map_location="cpu")
    assert "optimizer_states" not in best and "optimizer_states" in last
    assert best["epoch"] == last["epoch"]
    for key, value in last["state_dict"].items():
        assert torch.equal(best["state_dict"][key], value), key


# ------------------------------------------------------------------------- SIGTERM


@pytest.mark.slow
def test_sigterm_saves_last_ckpt_exits_143_and_the_same_command_resumes(
    tiny: PreparedDataset, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cmd = [*_console(), "train", "--data", str(tiny.root), "--fold", "0", "--out", str(out)]
    cmd += [*SET_ARGS, "--set", "data.crops_per_epoch=4"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*cmd, "--epochs", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("epoch 1/50"):
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert error_line(err) == (
        f"error: interrupted by SIGTERM; {out / 'last.ckpt'} saved at epoch 1; rerun the same "
        "command to resume"
    )
    assert len(lines) == 2 and rest == ""  # the start line and epoch 1 only
    assert torch.load(out / "last.ckpt", weights_only=True, mmap=True)["epoch"] == 0
    assert not (out / "result.json").exists()
    # resuming continues at epoch 2 (a run may be given more or fewer epochs)
    res = subprocess.run(
        [*cmd, "--epochs", "2"], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert res.returncode == 0, res.stderr
    printed = res.stdout.splitlines()
    assert printed[0].endswith("; resumed with train.epochs 50 -> 2")
    assert [ln.split()[1] for ln in printed if ln.startswith("epoch ")] == ["2/2"]
    assert json.loads((out / "result.json").read_text())["attempts"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "{missing}", "--out", "{tmp}/run"], "not a prepared dataset"),
        (["train", "--data", "{data}", "--out", "{tmp}/run", "--fold", "1", "--val", "2"], "--val"),
        (["train", "--data", "{data}", "--out", "{tmp}/run", "--config", "basline"], "basline"),
        (["crossval", "--config", "baseline", "--data", "{missing}"], "not a prepared dataset"),
        (["crossval", "--config", "baseline", "--data", "{data}", "--folds", "7"], "out of range"),
    ],
)
def test_train_and_crossval_mistakes_are_reported_before_torch_loads(
    tiny: PreparedDataset, tmp_path: Path, args: list[str], message: str
) -> None:
    """A wrong option or dataset is one line with exit 2, found before the engine (torch,
    Lightning: seconds to import) is loaded."""
    filled = [a.format(missing=tmp_path / "nope", data=tiny.root, tmp=tmp_path) for a in args]
    code = (
        "import sys\n"
        "from pseudoedgenet.cli import main\n"
        f"sys.argv = ['pseudoedgenet', *{filled!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code, 'torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip().splitlines()[-1] == "exit 2 False False", res.stdout + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr, res.stderr
    assert not (tmp_path / "run").exists()


def test_python_m_pseudoedgenet_is_the_command(tmp_path: Path) -> None:
    args = ["crossval", "--config", "baseline", "--data", str(tmp_path / "nope")]
    res = subprocess.run(
        [sys.executable, "-m", "pseudoedgenet", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"error: {tmp_path / 'nope'}: not a prepared dataset (no dataset.json; run "
        "`pseudoedgenet prepare` first)"
    )


# ------------------------------------------------------------------ usage mistakes


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["predict", "f.pt", "a.png", "--input-mpp", "abc"],
            "error: Invalid value for '--input-mpp': Input should be a valid number, unable to "
            "parse string as a number: see pseudoedgenet predict --help",
        ),
        (
            ["predict", "f.pt", "a.png", "--tile", "512"],
            "error: No such option: --tile (Possible options: --compile, --tile-size, --tiled): "
            "see pseudoedgenet predict --help",
        ),
        (["predict"], "error: Missing argument 'CHECKPOINT': see pseudoedgenet predict --help"),
        (["frob"], "error: No such command 'frob': see pseudoedgenet --help"),
        (
            ["prepare", "qupat", "--src", "x", "--out", "y"],
            "error: Invalid value for 'SOURCE': 'qupat' is not one of 'monuseg', 'tnbc', "
            "'folder', 'qupath': see pseudoedgenet prepare --help",
        ),
        # the reader's name in any case (QuPath as the program spells it): the folder is next
        (
            ["prepare", "QuPath", "--src", "x", "--out", "y"],
            "error: x: not a folder (expected images/slides with <stem>.geojson beside)",
        ),
    ],
)
def test_a_mistyped_option_or_value_is_one_line(cli, args: list[str], line: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli(*args)
    assert (code, out) == (2, "")
    assert error_line(err) == line and len(err.strip().splitlines()) == 1


def test_help_version_and_no_arguments(cli) -> None:  # type: ignore[no-untyped-def]
    from pseudoedgenet import __version__

    assert cli("--version") == (0, f"pseudoedgenet {__version__}\n", "")
    code, out, _ = cli("predict", "--help")
    assert code == 0 and "Usage: pseudoedgenet predict" in out
    code, out, err = cli()  # help, as a usage mistake
    assert code == 2 and "Usage: pseudoedgenet" in out + err and "error:" not in out + err


def test_help_at_80_columns_names_every_option_whole(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A terminal of 80 columns shows each command's option names uncut (Rich's tables cut
    them to 'region-from-n…') and each command's summary whole on the top-level help."""
    import typer

    from pseudoedgenet.cli import app

    monkeypatch.setenv("COLUMNS", "80")
    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        code, out, _ = cli(name, "--help")
        assert code == 0 and "…" not in out, name
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in out, (name, opt)
    code, out, _ = cli("--help")
    commands = out.split("Commands:")[1]
    assert code == 0 and "..." not in commands and "…" not in out


def test_help_texts_keep_their_brackets(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Rich reads '[d=2,...]' as markup and drops it: every bracketed part of an option's
    help must reach --help (QuPath's export name in predict's --region-from-name)."""
    import re

    import typer

    from pseudoedgenet.cli import app

    monkeypatch.setenv("COLUMNS", "1000")  # one line per option
    root = typer.main.get_command(app)
    checked = 0
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        code, out, _ = cli(name, "--help")
        assert code == 0
        text = " ".join(out.replace("│", " ").split())
        for param in command.params:
            for part in re.findall(r"\[[^\]]*\]", getattr(param, "help", None) or ""):
                if part.startswith("[default"):
                    continue
                assert part.replace("\\", "") in text, (name, part)
                checked += 1
    assert checked >= 1  # predict's --region-from-name at least
