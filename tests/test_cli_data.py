"""The data commands of the CLI (prepare, labels, show) on a tiny synthetic folder dataset.

Most calls run ``pseudoedgenet.cli.main`` in-process (with ``sys.argv`` patched) so that
the error handling of ``main`` is exercised cheaply; one test runs the installed console
script in a subprocess to check the wiring and that no traceback reaches the user.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import error_line
from pseudoedgenet import __version__
from pseudoedgenet.data.io import read_image, read_label_image, read_points_csv
from pseudoedgenet.data.splits import make_folds
from pseudoedgenet.labels import IGNORE, NEGATIVE, POSITIVE, voronoi_labels

REPO = Path(__file__).resolve().parents[1]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------------- end to end


def test_prepare_labels_show_end_to_end(tmp_path: Path, make_folder_dataset, cli) -> None:
    src, out = tmp_path / "src", tmp_path / "prepared"
    written = make_folder_dataset(src, n=4)
    names = sorted(written)

    code, stdout, _ = cli("prepare", "folder", "--src", src, "--out", out, "--seed", 3)
    assert code == 0
    assert stdout.strip() == (
        f"{out}: 4 images, 12 points; 4 fold(s), one per image (fewer than 10 images); "
        "pixel size unknown (--mpp records it)"
    )
    assert leftovers(tmp_path) == []
    for name, w in written.items():
        np.testing.assert_array_equal(read_image(out / "images" / f"{name}.png"), w.image)
        inst = read_label_image(out / "instances" / f"{name}.png")
        assert inst.dtype == np.uint16
        np.testing.assert_array_equal(inst, w.instances)
        np.testing.assert_array_equal(read_points_csv(out / "points" / f"{name}.csv"), w.points)

    folds = json.loads((out / "folds.json").read_text())
    assert set(folds) == {"k", "seed", "by", "folds"}
    assert (folds["k"], folds["seed"], folds["by"]) == (4, 3, "image")  # default: 4, not 10
    assert folds["folds"] == make_folds(names, 4, 3)
    assert sorted(n for f in folds["folds"] for n in f) == names

    meta = json.loads((out / "dataset.json").read_text())
    assert meta["n_images"] == 4 and meta["n_points"] == 12
    assert meta["has_instances"] is True
    assert meta["k_requested"] is None  # the default
    assert meta["groups"] == dict.fromkeys(names, "")
    assert meta["source"]["reader"] == "folder" and meta["source"]["path"] == str(src)
    assert meta["pseudoedgenet_version"] == __version__

    code, stdout, _ = cli("labels", out)
    assert code == 0 and stdout.strip() == f"wrote {out / 'labels'}"
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{n}.png" for n in names]
    for name, w in written.items():
        lab = np.asarray(Image.open(out / "labels" / f"{name}.png"))
        assert lab.dtype == np.uint8 and lab.shape == (24, 32)
        assert set(np.unique(lab)) == {NEGATIVE, POSITIVE, IGNORE}
        pos = [tuple(rc) for rc in np.argwhere(lab == POSITIVE)]
        assert pos == sorted((int(y), int(x)) for x, y in w.points)
        np.testing.assert_array_equal(lab, voronoi_labels(w.points, (24, 32)))
    assert leftovers(out) == []

    picture = tmp_path / "show" / "img1.png"
    code, stdout, _ = cli("show", out, "img1", "--out", picture)
    assert code == 0 and stdout.strip() == f"wrote {picture}"
    pic = np.asarray(Image.open(picture))
    assert pic.shape == (24, 32, 3) and pic.dtype == np.uint8
    image = written["img1"].image
    lab = voronoi_labels(written["img1"].points, (24, 32))
    rr, cc = np.mgrid[:24, :32]
    near_dot = np.zeros((24, 32), dtype=bool)
    for x, y in written["img1"].points:
        near_dot |= np.hypot(rr - y, cc - x) <= 3
    # untouched away from the boundaries and dots, one colour on the boundaries, dots drawn
    np.testing.assert_array_equal(
        pic[(lab == IGNORE) & ~near_dot], image[(lab == IGNORE) & ~near_dot]
    )
    boundary = pic[(lab == NEGATIVE) & ~near_dot]
    assert len(boundary) > 10 and (boundary == boundary[0]).all()
    assert not (boundary == image[(lab == NEGATIVE) & ~near_dot]).all(axis=1).any()
    assert not np.array_equal(pic[lab == POSITIVE], image[lab == POSITIVE])


def test_prepare_derives_points_from_masks(tmp_path: Path, make_folder_dataset, cli) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    written = make_folder_dataset(src, n=3, points=False)
    code, stdout, _ = cli("prepare", "folder", "--src", src, "--out", out, "--k", 3)
    assert code == 0 and stdout.strip() == (
        f"{out}: 3 images, 9 points; pixel size unknown (--mpp records it)"
    )
    for name, w in written.items():
        np.testing.assert_array_equal(read_points_csv(out / "points" / f"{name}.csv"), w.points)
    folds = json.loads((out / "folds.json").read_text())
    assert folds["k"] == 3 and sorted(map(len, folds["folds"])) == [1, 1, 1]


def test_prepare_points_only_has_no_instances(tmp_path: Path, make_folder_dataset, cli) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_folder_dataset(src, n=3, masks=False)
    assert cli("prepare", "folder", "--src", src, "--out", out)[0] == 0
    assert not (out / "instances").exists()
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["has_instances"] is False and meta["n_points"] == 9
    assert json.loads((out / "folds.json").read_text())["k"] == 3


# ---------------------------------------------------------------------------- errors


def test_existing_output_refused_unless_force(tmp_path: Path, make_folder_dataset, cli) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_folder_dataset(src, n=3)
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, stdout, stderr = cli("prepare", "folder", "--src", src, "--out", out)
    assert code == 2 and stdout == ""
    assert stderr == f"error: {out}: output folder exists (use --force to replace it)\n"
    assert (out / "keep.txt").read_text() == "mine"

    code, _, _ = cli("prepare", "folder", "--src", src, "--out", out, "--force")
    assert code == 0
    assert not (out / "keep.txt").exists() and (out / "dataset.json").is_file()
    assert leftovers(tmp_path) == []


def test_labels_refused_unless_force(tmp_path: Path, make_folder_dataset, cli) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_folder_dataset(src, n=2)
    assert cli("prepare", "folder", "--src", src, "--out", out)[0] == 0
    assert cli("labels", out)[0] == 0
    code, _, stderr = cli("labels", out)
    assert code == 2
    assert error_line(stderr).startswith(f"error: {out / 'labels'}: output folder exists")
    assert cli("labels", out, "--force")[0] == 0
    assert len(list((out / "labels").glob("*.png"))) == 2
    assert leftovers(out) == []


def test_failing_prepare_leaves_nothing_behind(tmp_path: Path, make_folder_dataset, cli) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_folder_dataset(src, n=4)
    bad = src / "images" / "img2.png"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated: fails after two images were written
    code, stdout, stderr = cli("prepare", "folder", "--src", src, "--out", out)
    assert code == 2 and stdout == ""
    assert error_line(stderr).startswith(f"error: {bad}: cannot decode image")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]

    # with --force over an existing dataset, a failure keeps the old dataset intact
    out.mkdir()
    (out / "keep.txt").write_text("old")
    code, _, stderr = cli("prepare", "folder", "--src", src, "--out", out, "--force")
    assert code == 2 and error_line(stderr).startswith(f"error: {bad}: ")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


@pytest.mark.parametrize("problem", ["orphan-points", "orphan-mask", "size-mismatch", "nan"])
def test_prepare_bad_folder_input(tmp_path: Path, make_folder_dataset, cli, problem) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_folder_dataset(src, n=3)
    if problem == "orphan-points":
        culprit = src / "points" / "zzz.csv"
        culprit.write_text("x,y\n1,1\n")
        words = "annotation has no matching image"
    elif problem == "orphan-mask":
        culprit = src / "masks" / "aaa.png"
        Image.fromarray(np.zeros((24, 32), np.uint8)).save(culprit)
        words = "annotation has no matching image"
    elif problem == "size-mismatch":
        culprit = src / "masks" / "img1.png"
        Image.fromarray(np.zeros((24, 31), np.uint16)).save(culprit)
        words = "mask size 31x24 does not match image size 32x24"
    else:
        culprit = src / "points" / "img2.csv"
        culprit.write_text("x,y\n1,1\nNaN,2\n")
        words = "point 1 has a NaN"
    code, _, stderr = cli("prepare", "folder", "--src", src, "--out", out)
    assert code == 2
    assert error_line(stderr).startswith(f"error: {culprit}: {words}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_labels_and_show_on_bad_folders(tmp_path: Path, make_folder_dataset, cli) -> None:
    code, _, stderr = cli("labels", tmp_path)
    assert code == 2
    assert error_line(stderr).startswith(f"error: {tmp_path}: not a prepared dataset")

    src, out = tmp_path / "src", tmp_path / "out"
    make_folder_dataset(src, n=2)
    assert cli("prepare", "folder", "--src", src, "--out", out)[0] == 0
    code, _, stderr = cli("show", out, "nope", "--out", tmp_path / "x.png")
    assert code == 2
    assert (
        error_line(stderr) == f"error: {out / 'images' / 'nope.png'}: no such image in the "
        "prepared dataset (img0, img1)"
    )
    assert not (tmp_path / "x.png").exists()


def test_console_script_prints_one_line_without_traceback(tmp_path: Path, make_folder_dataset):
    script = REPO / ".venv" / "bin" / "pseudoedgenet"
    cmd = (
        [str(script)]
        if script.is_file()
        else [sys.executable, "-c", "from pseudoedgenet.cli import main; main()"]
    )
    src, out = tmp_path / "src", tmp_path / "out"
    make_folder_dataset(src, n=2)
    (src / "points" / "img0.csv").write_text("x,y\n")  # header only
    res = subprocess.run(
        [*cmd, "prepare", "folder", "--src", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 2
    line = error_line(res.stderr)
    assert line == f"error: {src / 'points' / 'img0.csv'}: no points in file (empty point file)"
    assert not out.exists() and leftovers(tmp_path) == []

    res = subprocess.run(
        [*cmd, "prepare", "folder", "--src", str(src), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 2
    assert res.stderr == f"error: {tmp_path}: output folder exists (use --force to replace it)\n"
