"""Shared fixtures: the real-data location and a tiny synthetic folder dataset."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.draw import disk

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``<repo>/../shared/data`` (MoNuSeg, TNBC); the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@dataclass(frozen=True)
class SyntheticImage:
    """What was written for one image of a synthetic folder dataset."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8
    instances: np.ndarray  # (H, W) uint16, disk ids (not consecutive)
    points: np.ndarray  # (N, 2) float64 (x, y) = disk centres, in id order


#: (row, col, radius) of the disks drawn into the synthetic images; shifted per image.
_DISKS = [(5, 6, 3), (16, 20, 4), (8, 26, 2)]


def build_folder_dataset(
    root: Path,
    n: int = 4,
    shape: tuple[int, int] = (24, 32),
    masks: bool = True,
    points: bool = True,
    seed: int = 0,
) -> dict[str, SyntheticImage]:
    """Writes ``root/images/*.png``, ``root/points/*.csv`` and ``root/masks/*.png``.

    Image ``img<i>`` holds the disks of ``_DISKS`` shifted down by ``i`` rows, with
    instance ids 3, 7, 11 (deliberately not consecutive). The point files list the disk
    centres as ``x,y``. Images are non-square so that a row/column swap shows.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    out: dict[str, SyntheticImage] = {}
    for sub in ("images", *(("masks",) if masks else ()), *(("points",) if points else ())):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"img{i}"
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        instances = np.zeros(shape, dtype=np.uint16)
        pts = []
        for j, (r, c, rad) in enumerate(_DISKS):
            rr, cc = disk((r + i, c), rad + 0.5, shape=shape)
            instances[rr, cc] = 3 + 4 * j
            pts.append((c, r + i))
        Image.fromarray(image).save(root / "images" / f"{name}.png")
        if masks:
            Image.fromarray(instances).save(root / "masks" / f"{name}.png")
        if points:
            lines = ["x,y"] + [f"{x},{y}" for x, y in pts]
            (root / "points" / f"{name}.csv").write_text("\n".join(lines) + "\n")
        out[name] = SyntheticImage(name, image, instances, np.asarray(pts, dtype=np.float64))
    return out


@pytest.fixture
def make_folder_dataset() -> Callable[..., dict[str, SyntheticImage]]:
    """Factory fixture: ``make_folder_dataset(root, n=4, ...)``, see ``build_folder_dataset``."""
    return build_folder_dataset


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``cli(*args) -> (exit code, stdout, stderr)`` of ``pseudoedgenet.cli.main``."""
    from pseudoedgenet.cli import main

    def run(*args: object) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["pseudoedgenet", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            main()
        out = capsys.readouterr()
        return int(exc.value.code or 0), out.out, out.err

    return run


def error_line(stderr: str) -> str:
    """The single ``error:`` line of stderr (progress bars may precede it), no traceback."""
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, stderr
    assert lines[-1] == errors[0]
    return errors[0]
