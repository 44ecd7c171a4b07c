"""Deterministic k-fold splits with the paper's fold rotation (Section 4.1).

Of k folds, fold ``i`` is the test set, fold ``(i + 1) mod k`` the validation set and the
other ``k - 2`` folds the training set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FoldSplit:
    """Names of the images in each part of one cross-validation split."""

    test_fold: int
    val_fold: int
    train: list[str]
    val: list[str]
    test: list[str]


def make_folds(
    names: Sequence[str], k: int = 10, seed: int = 0, groups: Sequence[str] | None = None
) -> list[list[str]]:
    """Splits image names into ``k`` folds, deterministically.

    Without groups the names are shuffled with ``numpy.random.default_rng(seed)`` and
    dealt round-robin, so fold sizes differ by at most one. With groups (e.g. TNBC
    patients), whole groups are shuffled and each is assigned to the currently smallest
    fold (largest groups first), so no group crosses folds.

    Args:
        names: unique image names.
        k: number of folds, ``2 <= k <= len(names)`` (or number of groups).
        seed: shuffling seed.
        groups: one group key per name, or ``None``.

    Returns:
        ``k`` lists of names, each sorted.

    Raises:
        ValueError: duplicate names, bad ``k`` or mismatched ``groups``.
    """
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError("image names must be unique")
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    if groups is None:
        if not 2 <= k <= len(names):
            raise ValueError(f"k={k} folds need 2 <= k <= {len(names)} images")
        for i, j in enumerate(rng.permutation(len(names))):
            folds[i % k].append(names[j])
    else:
        if len(groups) != len(names):
            raise ValueError("groups must have one entry per name")
        members: dict[str, list[str]] = {}
        for n, g in zip(names, groups, strict=True):
            members.setdefault(g, []).append(n)
        keys = sorted(members)
        if not 2 <= k <= len(keys):
            raise ValueError(f"k={k} folds need 2 <= k <= {len(keys)} groups")
        order = [keys[j] for j in rng.permutation(len(keys))]
        order.sort(key=lambda g: -len(members[g]))  # stable: ties keep the shuffled order
        for g in order:
            smallest = min(range(k), key=lambda f: (len(folds[f]), f))
            folds[smallest].extend(members[g])
    return [sorted(f) for f in folds]


def fold_split(folds: Sequence[Sequence[str]], test_fold: int) -> FoldSplit:
    """The paper's rotation: test ``i``, validation ``(i + 1) mod k``, train the rest."""
    k = len(folds)
    if k < 3:
        raise ValueError(f"the test/validation/train rotation needs at least 3 folds, got {k}")
    if not 0 <= test_fold < k:
        raise ValueError(f"fold {test_fold} out of range 0..{k - 1}")
    val_fold = (test_fold + 1) % k
    train = sorted(
        n for f, names in enumerate(folds) if f not in (test_fold, val_fold) for n in names
    )
    return FoldSplit(test_fold, val_fold, train, sorted(folds[val_fold]), sorted(folds[test_fold]))
