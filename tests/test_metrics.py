"""Tests of pseudoedgenet.metrics on tiny hand-made images with hand-computed values."""

from __future__ import annotations

from fractions import Fraction
from itertools import permutations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pseudoedgenet.metrics import (
    MatchResult,
    SegmentationMetric,
    SegmentationScores,
    aggregated_jaccard_index,
    evaluate_binary,
    instances_from_binary,
    object_f1,
    pixel_dice,
    pixel_iou,
)


def lab(rows: list[str]) -> np.ndarray:
    """Build an int32 label image from strings of digits ('.' = background)."""
    return np.array([[0 if ch == "." else int(ch) for ch in row] for row in rows], dtype=np.int32)


def approx(frac: Fraction) -> object:
    return pytest.approx(float(frac), abs=1e-12)


# --------------------------------------------------------------------------------------
# pixel IoU / Dice
# --------------------------------------------------------------------------------------

PIXEL_CASES = [
    # name, pred, target, IoU, Dice
    (
        # |P| = 4, |T| = 6, |P∩T| = 4, |P∪T| = 6 -> IoU 4/6, Dice 8/10
        "subset",
        ["11..", "11..", "....", "...."],
        ["111.", "111.", "....", "...."],
        Fraction(2, 3),
        Fraction(4, 5),
    ),
    (
        # row vs column crossing at one pixel: |P∩T| = 1, |P∪T| = 5 -> 1/5, Dice 2/6
        "cross",
        ["111.", "....", "....", "...."],
        ["1...", "1...", "1...", "...."],
        Fraction(1, 5),
        Fraction(1, 3),
    ),
    ("disjoint", ["11..", "....", "....", "...."], ["....", "....", "....", "..11"], 0, 0),
    ("identical", ["1.1.", ".1..", "....", "...1"], ["1.1.", ".1..", "....", "...1"], 1, 1),
    # instance labels count as foreground whatever their value
    ("labels", ["12..", "....", "....", "...."], ["33..", "....", "....", "...."], 1, 1),
    ("both empty", ["....", "....", "....", "...."], ["....", "....", "....", "...."], 1, 1),
    ("pred empty", ["....", "....", "....", "...."], ["1...", "....", "....", "...."], 0, 0),
    ("target empty", ["1...", "....", "....", "...."], ["....", "....", "....", "...."], 0, 0),
]


@pytest.mark.parametrize(("name", "pred", "target", "iou", "dice"), PIXEL_CASES)
def test_pixel_iou_dice(
    name: str, pred: list[str], target: list[str], iou: Fraction, dice: Fraction
) -> None:
    p, t = lab(pred), lab(target)
    assert pixel_iou(p, t) == approx(Fraction(iou)), name
    assert pixel_dice(p, t) == approx(Fraction(dice)), name
    # bool and uint8 (0/255) inputs give the same result
    assert pixel_iou(p > 0, (t > 0).astype(np.uint8) * 255) == approx(Fraction(iou))
    assert pixel_dice(p > 0, (t > 0).astype(np.uint8) * 255) == approx(Fraction(dice))
    assert isinstance(pixel_iou(p, t), float)


def test_pixel_shape_mismatch_message() -> None:
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)") as exc:
        pixel_iou(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        pixel_dice(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


def test_pixel_rejects_float_masks() -> None:
    with pytest.raises(ValueError, match="dtype float64"):
        pixel_iou(np.zeros((2, 2)), np.zeros((2, 2), bool))


# --------------------------------------------------------------------------------------
# object F1
# --------------------------------------------------------------------------------------

# T1 matched exactly (IoU 1); T2 overlapped by P2 with IoU 2/6 = 1/3; P3 overlaps nothing;
# T3 is missed.
F1_TRUE = lab(
    [
        "11..22",
        "11..22",
        "......",
        "......",
        "33....",
        "33....",
    ]
)
F1_PRED = lab(
    [
        "11.22.",
        "11.22.",
        "......",
        "......",
        "....33",
        "....33",
    ]
)

# One row: T1 = cols 0-4, T2 = cols 5-9; P1 = cols 3-7, P2 = cols 8-12.
# IoU(T1,P1) = 2/8 = 0.25, IoU(T2,P1) = 3/7 ~ 0.43, IoU(T2,P2) = 2/8 = 0.25.
# Greedy (P1 -> T2 first) would give 1 match; the optimal assignment gives 2.
ASSIGN_TRUE = lab(["1111122222..."])
ASSIGN_PRED = lab(["...1111122222"])

# One 2x2 prediction covering two 1x2 true objects: IoU 2/4 = 0.5 with each. Only one of
# them may be matched (one-to-one).
TIE_TRUE = lab(["11", "22"])
TIE_PRED = lab(["11", "11"])

# A 2x2 true object half covered: IoU = 2/4 = 0.5 exactly, which matches since the rule is
# IoU >= threshold.
HALF_TRUE = lab(["11", "11"])
HALF_PRED = lab(["11", ".."])

EMPTY = np.zeros((2, 2), np.int32)

F1_CASES = [
    # name, pred, true, thr, (tp, fp, fn), precision, recall, f1
    ("f1 0.5", F1_PRED, F1_TRUE, 0.5, (1, 2, 2), Fraction(1, 3), Fraction(1, 3), Fraction(1, 3)),
    ("f1 0.3", F1_PRED, F1_TRUE, 0.3, (2, 1, 1), Fraction(2, 3), Fraction(2, 3), Fraction(2, 3)),
    ("assign", ASSIGN_PRED, ASSIGN_TRUE, 0.25, (2, 0, 0), 1, 1, 1),
    ("assign 0.3", ASSIGN_PRED, ASSIGN_TRUE, 0.3, (1, 1, 1), Fraction(1, 2), Fraction(1, 2), 0.5),
    ("tie", TIE_PRED, TIE_TRUE, 0.5, (1, 0, 1), 1, Fraction(1, 2), Fraction(2, 3)),
    ("half >=", HALF_PRED, HALF_TRUE, 0.5, (1, 0, 0), 1, 1, 1),
    ("half above", HALF_PRED, HALF_TRUE, 0.51, (0, 1, 1), 0, 0, 0),
    ("both empty", EMPTY, EMPTY, 0.5, (0, 0, 0), 1, 1, 1),
    ("pred empty", EMPTY, TIE_TRUE, 0.5, (0, 0, 2), 0, 0, 0),
    ("true empty", TIE_PRED, EMPTY, 0.5, (0, 1, 0), 0, 0, 0),
]


@pytest.mark.parametrize(
    ("name", "pred", "true", "thr", "counts", "precision", "recall", "f1"), F1_CASES
)
def test_object_f1(
    name: str,
    pred: np.ndarray,
    true: np.ndarray,
    thr: float,
    counts: tuple[int, int, int],
    precision: Fraction,
    recall: Fraction,
    f1: Fraction,
) -> None:
    res = object_f1(pred, true, iou_threshold=thr)
    assert isinstance(res, MatchResult)
    assert (res.tp, res.fp, res.fn) == counts, name
    assert res.n_true == counts[0] + counts[2]
    assert res.n_pred == counts[0] + counts[1]
    assert res.precision == approx(Fraction(precision)), name
    assert res.recall == approx(Fraction(recall)), name
    assert res.f1 == approx(Fraction(f1)), name


def test_object_f1_label_values_do_not_matter() -> None:
    remapped_pred = np.select([F1_PRED == 1, F1_PRED == 2, F1_PRED == 3], [1000, 7, 65000], 0)
    remapped_true = np.select([F1_TRUE == 1, F1_TRUE == 2, F1_TRUE == 3], [5, 3, 99], 0)
    res = object_f1(remapped_pred.astype(np.uint16), remapped_true.astype(np.int64))
    assert (res.tp, res.fp, res.fn) == (1, 2, 2)


def test_match_result_is_frozen() -> None:
    res = object_f1(HALF_PRED, HALF_TRUE)
    with pytest.raises(AttributeError):
        res.tp = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("pred", "true", "pattern"),
    [
        (np.zeros((4, 4), np.int32), np.zeros((4, 5), np.int32), r"\(4, 4\).*\(4, 5\)"),
        (np.zeros((4, 4)), np.zeros((4, 4), np.int32), "integer label image"),
        (np.zeros((4, 4), bool), np.zeros((4, 4), np.int32), "integer label image"),
        (np.zeros((2, 4, 4), np.int32), np.zeros((2, 4, 4), np.int32), "must be 2-D"),
        (np.full((2, 2), -1, np.int32), np.zeros((2, 2), np.int32), "negative"),
    ],
)
def test_label_validation(pred: np.ndarray, true: np.ndarray, pattern: str) -> None:
    for fn in (object_f1, aggregated_jaccard_index):
        with pytest.raises(ValueError, match=pattern) as exc:
            fn(pred, true)
        assert "\n" not in str(exc.value)


def test_object_f1_bad_threshold() -> None:
    with pytest.raises(ValueError, match="iou_threshold"):
        object_f1(HALF_PRED, HALF_TRUE, iou_threshold=0.0)


# --------------------------------------------------------------------------------------
# AJI
# --------------------------------------------------------------------------------------

AJI_TRUE = lab(
    [
        "1122..",
        "1122..",
        "......",
        "..44..",
        "....33",
        "....33",
    ]
)
AJI_PRED = lab(
    [
        "1111..",
        "1111..",
        "......",
        "......",
        "22.333",
        "22.333",
    ]
)
# G1 (4 px): best S1 (8 px), IoU 4/8       -> C += 4, U += 8
# G2 (4 px): best S1 again (reuse), 4/8    -> C += 4, U += 8
# G3 (4 px): best S3 (6 px), IoU 4/6       -> C += 4, U += 6
# G4 (2 px): overlaps no prediction        ->         U += 2
# S2 (4 px) never picked                   ->         U += 4
# AJI = (4 + 4 + 4) / (8 + 8 + 6 + 2 + 4) = 12 / 28 = 3/7

# One true nucleus G (8 px) split into S1 (6 px) and S2 (2 px):
# G: best S1, IoU 6/8 -> C = 6, U = 8; S2 never picked -> U += 2; AJI = 6/10 = 3/5
SPLIT_TRUE = lab(["1111", "1111"])
SPLIT_PRED = lab(["1112", "1112"])

AJI_CASES = [
    ("reuse + unmatched", AJI_PRED, AJI_TRUE, Fraction(3, 7)),
    ("split", SPLIT_PRED, SPLIT_TRUE, Fraction(3, 5)),
    ("identical", AJI_TRUE, AJI_TRUE, 1),
    ("disjoint", lab(["1.", ".."]), lab(["..", ".1"]), 0),
    ("both empty", EMPTY, EMPTY, 1),
    ("pred empty", EMPTY, TIE_TRUE, 0),
    ("true empty", TIE_PRED, EMPTY, 0),
]


@pytest.mark.parametrize(("name", "pred", "true", "expected"), AJI_CASES)
def test_aji(name: str, pred: np.ndarray, true: np.ndarray, expected: Fraction) -> None:
    assert aggregated_jaccard_index(pred, true) == approx(Fraction(expected)), name


# --------------------------------------------------------------------------------------
# instances / evaluate_binary
# --------------------------------------------------------------------------------------


def test_instances_from_binary_connectivity() -> None:
    mask = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    eight = instances_from_binary(mask)
    four = instances_from_binary(mask, connectivity=1)
    assert eight.dtype == np.uint32
    assert four.dtype == np.uint32
    assert eight.max() == 1
    assert four.max() == 2
    assert set(np.unique(four[mask]).tolist()) == {1, 2}
    with pytest.raises(ValueError, match="connectivity"):
        instances_from_binary(mask, connectivity=3)
    with pytest.raises(ValueError, match="2-D"):
        instances_from_binary(np.zeros((2, 2, 2), bool))


# Image A (4x4): prediction == truth, one 2x2 nucleus: all scores 1.
# inter 4, union 4, |P|+|T| 8, tp 1 fp 0 fn 0, AJI C 4 U 4.
ACC_A_TRUE = lab(["11..", "11..", "....", "...."])
ACC_A_PRED = ACC_A_TRUE > 0
# Image B (6x6): truth one 2x4 nucleus (8 px); prediction a 2x2 part (4 px) plus a stray
# 2x2 blob (4 px).
# pixel: inter 4, union 8 + 8 - 4 = 12 -> IoU 1/3; Dice 2*4/16 = 1/2
# objects: IoU(T, P1) = 4/8 = 0.5 >= 0.5 -> tp 1, fp 1, fn 0 -> F1 = 2/(2+1) = 2/3
# AJI: C = 4, U = 8 + 4 (stray never picked) = 12 -> 1/3
ACC_B_TRUE = lab(["1111..", "1111..", "......", "......", "......", "......"])
ACC_B_PRED = lab(["11....", "11....", "......", "......", "....11", "....11"]) > 0


def test_evaluate_binary() -> None:
    scores = evaluate_binary(ACC_B_PRED, ACC_B_TRUE)
    assert isinstance(scores, SegmentationScores)
    assert scores.iou == approx(Fraction(1, 3))
    assert scores.dice == approx(Fraction(1, 2))
    assert scores.f1 == approx(Fraction(2, 3))
    assert scores.aji == approx(Fraction(1, 3))
    assert evaluate_binary(ACC_A_PRED, ACC_A_TRUE) == SegmentationScores(1.0, 1.0, 1.0, 1.0)


def test_evaluate_binary_shape_mismatch() -> None:
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(6, 6\)"):
        evaluate_binary(ACC_A_PRED, ACC_B_TRUE)


def test_accumulator_mean_vs_pooled() -> None:
    metric = SegmentationMetric()
    metric.update(ACC_A_PRED, ACC_A_TRUE)
    metric.update(ACC_B_PRED, ACC_B_TRUE)
    assert len(metric) == 2
    mean = metric.compute()
    assert mean == metric.compute("mean")
    # mean of per-image scores
    assert mean["iou"] == approx((1 + Fraction(1, 3)) / 2)  # 2/3
    assert mean["dice"] == approx((1 + Fraction(1, 2)) / 2)  # 3/4
    assert mean["f1"] == approx((1 + Fraction(2, 3)) / 2)  # 5/6
    assert mean["aji"] == approx((1 + Fraction(1, 3)) / 2)  # 2/3
    pooled = metric.compute("pooled")
    assert pooled["iou"] == approx(Fraction(4 + 4, 4 + 12))  # 1/2
    assert pooled["dice"] == approx(Fraction(2 * (4 + 4), 8 + 16))  # 2/3
    # tp 2, fp 1, fn 0 -> 2*2 / (2*2 + 1 + 0) = 4/5
    assert pooled["f1"] == approx(Fraction(4, 5))
    assert pooled["aji"] == approx(Fraction(4 + 4, 4 + 12))  # 1/2
    assert set(mean) == set(pooled) == {"iou", "dice", "f1", "aji"}

    metric.reset()
    assert len(metric) == 0
    with pytest.raises(RuntimeError):
        metric.compute()
    metric.update(ACC_B_PRED, ACC_B_TRUE)
    assert metric.compute()["aji"] == approx(Fraction(1, 3))
    with pytest.raises(ValueError, match="reduction"):
        metric.compute("median")  # type: ignore[arg-type]


def test_accumulator_per_image_rows() -> None:
    metric = SegmentationMetric()
    assert metric.per_image() == []
    metric.update(ACC_A_PRED, ACC_A_TRUE)
    metric.update(ACC_B_PRED, ACC_B_TRUE)
    a, b = metric.per_image()
    # image A: perfect, 4 true px, 1 nucleus found
    assert a == {
        "iou": 1.0, "dice": 1.0, "f1": 1.0, "aji": 1.0,
        "true_px": 4, "pred_px": 4, "fp_px": 0, "fn_px": 0,
        "tp_nuclei": 1, "fp_nuclei": 0, "fn_nuclei": 0,
    }  # fmt: skip
    # image B: 8 true px, 8 predicted (4 inside the nucleus, the 4 of the stray blob
    # outside): fp 4, fn 4; the stray blob is an unmatched prediction
    assert b["true_px"] == 8 and b["pred_px"] == 8
    assert b["fp_px"] == 4 and b["fn_px"] == 4
    assert (b["tp_nuclei"], b["fp_nuclei"], b["fn_nuclei"]) == (1, 1, 0)
    assert b["iou"] == approx(Fraction(1, 3)) and b["aji"] == approx(Fraction(1, 3))
    # the rows agree with the mean reduction
    assert metric.compute("mean")["iou"] == approx((a["iou"] + b["iou"]) / 2)


def test_accumulator_all_empty_images() -> None:
    metric = SegmentationMetric()
    metric.update(np.zeros((3, 3), bool), np.zeros((3, 3), np.int32))
    assert metric.compute("mean") == {"iou": 1.0, "dice": 1.0, "f1": 1.0, "aji": 1.0}
    assert metric.compute("pooled") == {"iou": 1.0, "dice": 1.0, "f1": 1.0, "aji": 1.0}


# --------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------


@st.composite
def label_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shape = draw(st.tuples(st.integers(1, 8), st.integers(1, 8)))
    labels = hnp.arrays(np.int32, shape, elements=st.integers(0, 4))
    return draw(labels), draw(labels)


@settings(max_examples=200, deadline=None)
@given(label_pairs())
def test_property_ranges_and_identity(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, true = pair
    for value in (
        aggregated_jaccard_index(pred, true),
        pixel_iou(pred, true),
        pixel_dice(pred, true),
        object_f1(pred, true).f1,
    ):
        assert 0.0 <= value <= 1.0
    # swapping prediction and truth swaps fp and fn
    a, b = object_f1(pred, true, 0.3), object_f1(true, pred, 0.3)
    assert (a.tp, a.fp, a.fn) == (b.tp, b.fn, b.fp)
    if true.any():
        assert aggregated_jaccard_index(true, true) == 1.0
        assert pixel_iou(true, true) == 1.0
        assert object_f1(true, true).f1 == 1.0


def _reference_aji(pred: np.ndarray, true: np.ndarray) -> float:
    """Straightforward loop version of Kumar et al. (2017), Algorithm 1."""
    c = u = 0
    used: set[int] = set()
    pred_ids = [int(j) for j in np.unique(pred) if j != 0]
    for i in (int(i) for i in np.unique(true) if i != 0):
        g = true == i
        best, best_iou = None, 0.0
        for j in pred_ids:
            s = pred == j
            iou = np.count_nonzero(g & s) / np.count_nonzero(g | s)
            if iou > best_iou:
                best, best_iou = j, iou
        if best is None:
            u += int(np.count_nonzero(g))
        else:
            s = pred == best
            c += int(np.count_nonzero(g & s))
            u += int(np.count_nonzero(g | s))
            used.add(best)
    u += sum(int(np.count_nonzero(pred == j)) for j in pred_ids if j not in used)
    return c / u if u else 1.0


def _reference_tp(pred: np.ndarray, true: np.ndarray, thr: float) -> int:
    """Maximum one-to-one matching by brute force over permutations."""
    t_ids = [int(i) for i in np.unique(true) if i != 0]
    p_ids = [int(j) for j in np.unique(pred) if j != 0]
    ok = {
        (i, j)
        for i in t_ids
        for j in p_ids
        if np.count_nonzero((true == i) & (pred == j)) > 0
        and np.count_nonzero((true == i) & (pred == j))
        / np.count_nonzero((true == i) | (pred == j))
        >= thr
    }
    padded = p_ids + [None] * len(t_ids)
    return max(
        (
            sum((i, j) in ok for i, j in zip(t_ids, perm, strict=True))
            for perm in permutations(padded, len(t_ids))
        ),
        default=0,
    )


@settings(max_examples=150, deadline=None)
@given(label_pairs(), st.sampled_from([0.2, 0.25, 0.5, 0.7]))
def test_property_matches_reference(pair: tuple[np.ndarray, np.ndarray], thr: float) -> None:
    pred, true = pair
    assert aggregated_jaccard_index(pred, true) == pytest.approx(_reference_aji(pred, true))
    assert object_f1(pred, true, thr).tp == _reference_tp(pred, true, thr)
