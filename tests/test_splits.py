"""k-fold splits and the paper's fold rotation (pseudoedgenet.data.splits)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pseudoedgenet.data.splits import fold_split, make_folds


def names_of(n: int) -> list[str]:
    return [f"im{i:03d}" for i in range(n)]


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 40), st.data())
def test_folds_cover_every_image_exactly_once(n: int, data) -> None:
    k = data.draw(st.integers(2, n), label="k")
    seed = data.draw(st.integers(0, 2**31), label="seed")
    names = names_of(n)
    folds = make_folds(names, k, seed)
    assert len(folds) == k
    assert Counter(x for f in folds for x in f) == Counter(names)
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    assert all(f == sorted(f) for f in folds)


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 30), st.data())
def test_fold_rotation(n: int, data) -> None:
    k = data.draw(st.integers(3, n), label="k")
    folds = make_folds(names_of(n), k, seed=data.draw(st.integers(0, 99), label="seed"))
    for i in range(k):
        s = fold_split(folds, i)
        assert (s.test_fold, s.val_fold) == (i, (i + 1) % k)
        assert s.test == folds[i]
        assert s.val == folds[(i + 1) % k]
        expected_train = sorted(
            x for j, f in enumerate(folds) if j not in (i, (i + 1) % k) for x in f
        )
        assert s.train == expected_train
        parts = [set(s.train), set(s.val), set(s.test)]
        assert sum(map(len, parts)) == n
        assert set().union(*parts) == set(names_of(n))
    # over the k rotations every image is tested once and validated once
    assert Counter(x for i in range(k) for x in fold_split(folds, i).test) == Counter(names_of(n))
    assert Counter(x for i in range(k) for x in fold_split(folds, i).val) == Counter(names_of(n))


def test_rotation_with_three_folds_by_hand() -> None:
    folds = [["a"], ["b", "c"], ["d"]]
    s = fold_split(folds, 2)
    assert (s.test, s.val, s.train) == (["d"], ["a"], ["b", "c"])
    s = fold_split(folds, 0)
    assert (s.test, s.val, s.train) == (["a"], ["b", "c"], ["d"])
    with pytest.raises(ValueError):
        fold_split(folds, 3)
    with pytest.raises(ValueError):
        fold_split(folds, -1)
    with pytest.raises(ValueError, match="at least 3 folds"):
        fold_split([["a"], ["b"]], 0)


def test_deterministic_for_a_seed_and_different_for_another() -> None:
    names = names_of(30)
    assert make_folds(names, 10, seed=0) == make_folds(names, 10, seed=0)
    assert make_folds(names, 10, seed=0) != make_folds(names, 10, seed=1)
    # the input order does not matter beyond the permutation it is dealt from
    assert make_folds(list(names), 5, seed=3) == make_folds(tuple(names), 5, seed=3)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=2, max_size=12),  # group sizes
    st.data(),
)
def test_group_mode_never_splits_a_group(sizes: list[int], data) -> None:
    names, groups = [], []
    for g, size in enumerate(sizes):
        for j in range(size):
            names.append(f"g{g}_{j}")
            groups.append(f"patient{g:02d}")
    k = data.draw(st.integers(2, len(sizes)), label="k")
    seed = data.draw(st.integers(0, 999), label="seed")
    folds = make_folds(names, k, seed, groups)
    assert len(folds) == k
    assert all(folds), "every fold gets at least one group"
    assert Counter(x for f in folds for x in f) == Counter(names)
    fold_of = {x: i for i, f in enumerate(folds) for x in f}
    for g in set(groups):
        assert len({fold_of[n] for n, gg in zip(names, groups, strict=True) if gg == g}) == 1
    assert folds == make_folds(names, k, seed, groups)


def test_group_mode_fills_the_smallest_fold_largest_group_first() -> None:
    # sizes a=5, b=3, c=2, d=2 into 2 folds: a -> 0, b -> 1, then the first 2-group -> 1
    # (3 < 5), the second 2-group -> 0 (5 = 5, lower index wins): sizes 7 and 5.
    names = [f"n{i:02d}" for i in range(12)]
    groups = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2
    for seed in range(5):
        folds = make_folds(names, 2, seed=seed, groups=groups)
        assert [len(f) for f in folds] == [7, 5]
        assert set(names[:5]) <= set(folds[0])
        assert set(names[5:8]) <= set(folds[1])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unique"):
        make_folds(["a", "a", "b"], 2)
    with pytest.raises(ValueError):
        make_folds(names_of(3), 4)
    with pytest.raises(ValueError):
        make_folds(names_of(3), 1)
    with pytest.raises(ValueError):
        make_folds(names_of(4), 3, groups=["x", "x", "y", "y"])  # 3 folds, 2 groups
    with pytest.raises(ValueError):
        make_folds(names_of(4), 2, groups=["x", "y"])
