"""Tests of training/evaluation.py against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from scorecast.training.evaluation import (
    expected_calibration_error,
    gains_points,
    lift_at,
    ranking_metrics,
    reliability_bins,
    roc_auc,
)


def test_roc_auc_hand_computed() -> None:
    """Of the 4 (positive, negative) pairs, 3 are ordered right: AUC 0.75."""
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)


def test_roc_auc_ties_count_one_half() -> None:
    assert roc_auc([False, True], [0.5, 0.5]) == pytest.approx(0.5)


def test_lift_top_row() -> None:
    """Top 10 % of 10 rows is the best row, a positive; base rate 0.2: lift 1 / 0.2 = 5."""
    y = [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert lift_at(y, np.arange(10, 0, -1), 0.10) == pytest.approx(5.0)


def test_lift_splits_a_tie_pro_rata() -> None:
    """k = 2: the top row (positive) and 1 of the 4 rows tied at 5, of which 1 is positive:
    hits 1 + 1/4, rate 1.25 / 2, base rate 2 / 10: lift 3.125."""
    score = [9, 5, 5, 5, 5, 1, 1, 1, 1, 1]
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert lift_at(y, score, 0.2) == pytest.approx(3.125)


def test_lift_does_not_depend_on_row_order() -> None:
    """Ties are resolved by expectation, not by position."""
    rng = np.random.default_rng(0)
    score = rng.integers(0, 5, 200).astype(float)
    y = rng.random(200) < 0.3
    perm = rng.permutation(200)
    assert lift_at(y, score) == pytest.approx(lift_at(y[perm], score[perm]), abs=1e-12)


def test_lift_of_a_constant_score_is_one() -> None:
    assert lift_at([1, 0, 0, 1, 0], [0.3] * 5, 0.4) == pytest.approx(1.0)


def test_lift_at_the_whole_base_is_one() -> None:
    assert lift_at([1, 0, 0, 1, 0], [5, 4, 3, 2, 1], 1.0) == pytest.approx(1.0)


def test_calibration_error_hand_computed() -> None:
    """Bin of 0.1: predicted 0.1, observed 0; bin of 0.9: predicted 0.9, observed 1; each
    half the rows: 0.5 * 0.1 + 0.5 * 0.1 = 0.1."""
    assert expected_calibration_error([0, 0, 1, 1], [0.1, 0.1, 0.9, 0.9]) == pytest.approx(0.1)


def test_calibration_error_is_zero_when_calibrated() -> None:
    assert expected_calibration_error([0, 1, 0, 1, 1], [0.5, 0.5, 0.5, 0.5, 1.0]) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: roc_auc([1, 1], [0.2, 0.3]), "both classes, y has 2 positives out of 2"),
        (lambda: roc_auc([0, 1, 2], [0.1, 0.2, 0.3]), r"binary \(bool or 0/1\), got values \[0, 1, 2\]"),
        (lambda: roc_auc([0, 1], [0.1]), "y has 2 values, score has 1"),
        (lambda: roc_auc([0, 1], [0.1, np.nan]), "score has 1 NaN values"),
        (lambda: roc_auc([], []), "empty"),
        (lambda: lift_at([0, 0], [0.1, 0.2]), "no positives out of 2"),
        (lambda: lift_at([0, 1], [0.1, 0.2], 0.0), r"fraction must be in \(0, 1\], got 0.0"),
        (lambda: expected_calibration_error([0, 1], [0.1, 1.5]), r"\[0, 1\], got range \[0.1, 1.5\]"),
        (lambda: expected_calibration_error([0, 1], [0.1, 0.5], 0), "n_bins must be >= 1, got 0"),
    ],
    ids=["auc-one-class", "non-binary", "lengths", "nan", "empty", "lift-no-positive", "fraction", "range", "bins"],
)
def test_errors_name_the_bad_value(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_gains_points_end_at_every_positive_and_give_the_lift() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(2_000) < 0.1
    score = y + rng.random(2_000)
    gains = gains_points(y, score)
    assert len(gains) == 20 and gains[-1] == pytest.approx(1.0)
    assert np.all(np.diff(gains) >= 0)
    assert gains[1] / 0.10 == pytest.approx(lift_at(y, score, 0.10), rel=1e-4)
    assert gains_points(y, np.zeros(2_000))[9] == pytest.approx(0.5)  # ties pro rata: the random line


def test_reliability_bins_are_deciles_that_add_up() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(5_000) * 0.2
    y = rng.random(5_000) < p**2 * 5
    bins = reliability_bins(y, p)
    assert [b["count"] for b in bins] == [500] * 10
    assert sum(b["count"] * b["predicted"] for b in bins) / 5_000 == pytest.approx(p.mean())
    assert sum(b["count"] * b["observed"] for b in bins) / 5_000 == pytest.approx(y.mean())
    assert [b["predicted"] for b in bins] == sorted(b["predicted"] for b in bins)
    assert bins[0]["observed"] < bins[0]["predicted"]  # 5 p**2 is below p under 0.2: over-confident at the bottom


def test_ranking_metrics_by_hand() -> None:
    """Row 1: one of its two relevant codes, at rank 2; row 2 has none relevant and is skipped."""
    top = np.array([[1, 2, 3], [4, 5, 6]])
    m = ranking_metrics(top, [np.array([2, 9]), np.array([])], 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["ndcg"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
