"""Datasets and the Lightning DataModule for training, validation and testing.

Training samples are random square crops with augmentation and on-the-fly Voronoi labels;
validation and test samples are whole images (padded to a multiple of 32) with their
instance masks. Decoded images, masks and points are cached once per process, never
re-read per crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from pseudoedgenet.config import DataConfig
from pseudoedgenet.data.prepared import PreparedDataset
from pseudoedgenet.data.transforms import augment_window, geometric_transform, photometric_transform
from pseudoedgenet.errors import ConfigError, DataError
from pseudoedgenet.labels.voronoi import IGNORE, voronoi_labels


@dataclass
class _Item:
    image: np.ndarray
    instances: np.ndarray | None
    points: np.ndarray
    roi: np.ndarray | None = None  # (H, W) bool annotated region; None = whole image


def _load(dataset: PreparedDataset, names: list[str]) -> list[_Item]:
    items = []
    for n in names:
        image = dataset.image(n)
        roi = dataset.roi(n, image.shape[:2])
        items.append(_Item(image, dataset.instances(n), dataset.points(n), roi))
    return items


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` uint8 tensor (normalised on the model side)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class CropDataset(Dataset):
    """Random augmented crops with point labels (and mask labels for full supervision).

    Each item is a dict: ``image`` (3, C, C) uint8, ``labels`` (C, C) uint8 Voronoi label
    map (1 = point, 0 = boundary, 255 = ignore), ``mask`` (C, C) uint8 foreground of the
    instance mask (zeros when the dataset has no masks), with C = ``cfg.crop``. Images are
    chosen with probability proportional to their area; the window is read with
    ``cfg.context`` pixels of context on each side (reflect-padded at image borders),
    augmented, then centre-cropped. An image's roi (annotated region) travels through
    the augmentation as a second mask channel beside the instances (zero-padded at image
    borders), and labels outside it are 255, so no negative comes from unannotated
    tissue.

    Args:
        dataset: prepared dataset.
        names: training image names.
        cfg: data configuration.
        seed: base seed; each worker derives its own stream from it.
    """

    def __init__(self, dataset: PreparedDataset, names: list[str], cfg: DataConfig, seed: int = 0):
        if not names:
            raise DataError(dataset.root, "no training images in this split")
        self.items = _load(dataset, names)
        self.cfg = cfg
        self.seed = seed
        areas = np.array([it.image.shape[0] * it.image.shape[1] for it in self.items], float)
        self.p = areas / areas.sum()
        self.geometric = geometric_transform(cfg.augment)
        self.photometric = photometric_transform(cfg.augment)
        self.rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return self.cfg.crops_per_epoch

    def _rng(self) -> np.random.Generator:
        if self.rng is None:
            info = get_worker_info()
            s = int(torch.initial_seed() % 2**32) if info is not None else self.seed
            self.rng = np.random.default_rng(s)
            self.geometric.set_random_seed(s)
            self.photometric.set_random_seed(s + 1)
        return self.rng

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self._rng()
        item = self.items[int(rng.choice(len(self.items), p=self.p))]
        c, m = self.cfg.crop, self.cfg.context
        win = c + 2 * m
        h, w = item.image.shape[:2]
        y0 = int(rng.integers(0, max(h - c, 0) + 1)) - m
        x0 = int(rng.integers(0, max(w - c, 0) + 1)) - m
        pad = ((max(0, -y0), max(0, y0 + win - h)), (max(0, -x0), max(0, x0 + win - w)))
        ys, xs = slice(max(0, y0), min(h, y0 + win)), slice(max(0, x0), min(w, x0 + win))
        image = np.pad(item.image[ys, xs], (*pad, (0, 0)), mode="reflect")
        inst = item.instances if item.instances is not None else np.zeros((h, w), np.uint16)
        if item.roi is None:
            instances = np.pad(inst[ys, xs], pad, mode="constant")
        else:  # (win, win, 2): instances and roi, transformed together
            masks = np.dstack([inst[ys, xs].astype(np.int32), item.roi[ys, xs].astype(np.int32)])
            instances = np.pad(masks, (*pad, (0, 0)), mode="constant")
        pts = item.points - np.array([x0, y0], dtype=np.float64)
        # Only in-window points: their image content is in the window. Points of the
        # reflected border get reflected copies from the affine transform, consistently.
        near = np.all((pts >= -0.5) & (pts < win - 0.5), axis=1)
        image, instances, pts = augment_window(
            self.geometric, self.photometric, image, instances, pts[near]
        )
        image, instances = image[m : m + c, m : m + c], instances[m : m + c, m : m + c]
        labels = voronoi_labels(pts - m, (c, c), margin=m)
        if item.roi is not None:
            labels[instances[:, :, 1] == 0] = IGNORE
            instances = instances[:, :, 0]
        return {
            "image": _to_tensor(image),
            "labels": torch.from_numpy(labels),
            "mask": torch.from_numpy((instances > 0).astype(np.uint8)),
        }


class WholeImageDataset(Dataset):
    """Whole images for validation/testing, zero-padded to a multiple of 32.

    Each item: ``image`` (3, H, W) uint8 (unpadded: the model pads it,
    :func:`pseudoedgenet.models.trained.run_padded`), ``instances`` (H, W) int64 (zeros
    without masks), ``has_mask`` bool (:attr:`has_masks`: the same for every item),
    ``points`` (N, 2) float64 ``(x, y)`` pixel coordinates (x = column, y = row; the
    pixel of a point is ``(round(y), round(x))``), ``roi`` (H, W) bool (the pixels where
    every nucleus was clicked; all ``True`` when the dataset has no roi for the image),
    ``size`` (2,) the original (H, W), ``index``. ``points`` differ in length between
    images, so loaders use ``batch_size=1``.
    """

    def __init__(self, dataset: PreparedDataset, names: list[str]):
        self.names = list(names)
        self.items = _load(dataset, self.names)

    @property
    def n_with_masks(self) -> int:
        """Number of images that have an instance mask."""
        return sum(it.instances is not None for it in self.items)

    @property
    def has_masks(self) -> bool:
        """Every image has an instance mask (IoU is only scored then, over all of them)."""
        return bool(self.items) and self.n_with_masks == len(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        it = self.items[index]
        h, w = it.image.shape[:2]
        inst = it.instances if it.instances is not None else np.zeros((h, w), np.uint16)
        return {
            "image": _to_tensor(it.image),
            "instances": torch.from_numpy(inst.astype(np.int64)),
            "has_mask": self.has_masks,
            "points": torch.from_numpy(np.asarray(it.points, np.float64).reshape(-1, 2)),
            "roi": torch.ones((h, w), dtype=torch.bool)
            if it.roi is None
            else torch.from_numpy(np.ascontiguousarray(it.roi, dtype=bool)),
            "size": torch.tensor([h, w]),
            "index": index,
        }


class PointDataModule(L.LightningDataModule):
    """Train/val/test loaders of one split of a prepared dataset.

    Args:
        data: prepared dataset folder or object.
        fold: test fold of the paper's rotation (validation = fold + 1, train = the
            rest), or ``None``: no test set, ``val`` images held out for validation and
            the rest trained on.
        cfg: data configuration.
        seed: base seed of the crop sampler and of the choice of the ``val`` images.
        val: with ``fold=None``, the number of validation images, drawn from the sorted
            names by ``numpy.random.default_rng(seed).permutation`` (0 = train on all).

    Raises:
        ConfigError: ``val`` with a fold, or ``val`` outside ``0..n-1``.
    """

    def __init__(
        self,
        data: PreparedDataset,
        fold: int | None,
        cfg: DataConfig,
        seed: int = 0,
        val: int = 0,
    ):
        super().__init__()
        self.data, self.fold, self.cfg, self.seed = data, fold, cfg, seed
        names = sorted(data.names)
        if fold is None:
            if not 0 <= val < len(names):
                raise ConfigError(
                    f"--val {val}: must be 0..{len(names) - 1} ({data.root} has {len(names)} "
                    "images and at least one must remain for training)"
                )
            order = np.random.default_rng(seed).permutation(len(names))
            held = {names[int(i)] for i in order[:val]}
            self.train_names = [n for n in names if n not in held]
            self.val_names, self.test_names = sorted(held), []
        else:
            if val:
                raise ConfigError(
                    "--val applies without --fold only (with --fold the rotation sets the "
                    "validation images: fold + 1)"
                )
            split = data.split(fold)
            self.train_names, self.val_names, self.test_names = split.train, split.val, split.test
        self._train: CropDataset | None = None
        self._val: WholeImageDataset | None = None
        self._test: WholeImageDataset | None = None

    def train_dataloader(self) -> DataLoader:
        if self._train is None:
            self._train = CropDataset(self.data, self.train_names, self.cfg, self.seed)
        return DataLoader(
            self._train,
            batch_size=self.cfg.batch_size,
            shuffle=False,
            num_workers=self.cfg.num_workers,
            drop_last=True,
            persistent_workers=self.cfg.num_workers > 0,
        )

    @property
    def val_set(self) -> WholeImageDataset:
        """The validation images (loaded once)."""
        if self._val is None:
            self._val = WholeImageDataset(self.data, self.val_names)
        return self._val

    @property
    def test_set(self) -> WholeImageDataset:
        """The test images (loaded once)."""
        if self._test is None:
            self._test = WholeImageDataset(self.data, self.test_names)
        return self._test

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=1, num_workers=0)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=1, num_workers=0)
