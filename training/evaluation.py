"""Holdout metrics every score is validated with: ROC AUC, lift, calibration error, for uplift scores
on randomised campaigns the Qini curve and AUUC, and for ranked lists (recommendations) recall@K
and NDCG@K."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score

__all__ = [
    "expected_calibration_error",
    "gains_points",
    "lift_at",
    "qini_bootstrap_sd",
    "qini_curve",
    "ranking_metrics",
    "reliability_bins",
    "roc_auc",
    "uplift_metrics",
]


def _check(y: ArrayLike, score: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as a bool vector and ``score`` as a float64 vector of the same length, no NaN."""
    y_arr = np.asarray(y)
    s = np.asarray(score, dtype=np.float64)
    if y_arr.ndim != 1 or s.ndim != 1:
        raise ValueError(f"y and score must be 1-d, got shapes {y_arr.shape} and {s.shape}")
    if len(y_arr) != len(s):
        raise ValueError(f"y has {len(y_arr)} values, score has {len(s)}")
    if len(y_arr) == 0:
        raise ValueError("y and score are empty")
    if y_arr.dtype != np.bool_:
        values = np.unique(y_arr)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"y must be binary (bool or 0/1), got values {values[:10].tolist()}")
        y_arr = y_arr.astype(bool)
    if np.isnan(s).any():
        raise ValueError(f"score has {int(np.isnan(s).sum())} NaN values")
    return y_arr, s


def roc_auc(y: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve (ties count one half); needs both classes in ``y``."""
    y_arr, s = _check(y, score)
    positives = int(y_arr.sum())
    if positives in (0, len(y_arr)):
        raise ValueError(f"ROC AUC needs both classes, y has {positives} positives out of {len(y_arr)}")
    return float(roc_auc_score(y_arr, s))


def lift_at(y: ArrayLike, score: ArrayLike, fraction: float = 0.10) -> float:
    """Response rate among the ``fraction`` highest scores divided by the overall rate.

    The top holds ``k = max(1, round(fraction * n))`` contacts. Contacts tied with the k-th
    score enter the top pro rata (each counts for the share of the tie that fits), which is
    the expected lift under random tie-breaking: deterministic and independent of row order.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    y_arr, s = _check(y, score)
    n = len(y_arr)
    base_rate = y_arr.mean()
    if base_rate == 0.0:
        raise ValueError(f"lift is undefined: y has no positives out of {n}")
    k = max(1, round(fraction * n))
    cutoff = np.partition(s, n - k)[n - k]  # the k-th highest score
    above = s > cutoff
    tied = s == cutoff
    n_above = int(above.sum())
    share_of_ties = (k - n_above) / int(tied.sum())
    hits = y_arr[above].sum() + share_of_ties * y_arr[tied].sum()
    return float(hits / k / base_rate)


def expected_calibration_error(y: ArrayLike, probability: ArrayLike, n_bins: int = 10) -> float:
    """Mean |mean predicted - observed rate| over ``n_bins`` equal-width probability bins,
    weighted by the bins' counts (0 is perfectly calibrated).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y_arr, p = _check(y, probability)
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(f"probabilities must lie in [0, 1], got range [{p.min()}, {p.max()}]")
    # bin i holds [i/n_bins, (i+1)/n_bins); p == 1 joins the last bin
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y_arr.astype(np.float64), minlength=n_bins)
    # sum over bins of (count / n) * |mean p - mean y|
    return float(np.abs(sum_p - sum_y).sum() / len(p))


def gains_points(y: ArrayLike, score: ArrayLike, points: int = 20) -> list[float]:
    """Cumulative gains: the share of positives among the top 1/points, 2/points, ... 1 by score
    (ties pro rata, as :func:`lift_at`); point i divided by (i+1)/points is the lift there."""
    y_arr, _ = _check(y, score)
    return [round(lift_at(y_arr, score, (i + 1) / points) * (i + 1) / points, 5) for i in range(points)]


def reliability_bins(y: ArrayLike, probability: ArrayLike, n_bins: int = 10) -> list[dict[str, float]]:
    """The reliability diagram on ``n_bins`` equal-count bins of the predicted probability (deciles
    by default; equal-width bins, as the ECE uses, leave most bins empty for a rare event): per
    bin its count, mean predicted probability and observed rate."""
    y_arr, p = _check(y, probability)
    order = np.argsort(p, kind="stable")
    return [{"count": int(rows.size), "predicted": float(p[rows].mean()), "observed": float(y_arr[rows].mean())}
            for rows in np.array_split(order, min(n_bins, p.size)) if rows.size]  # fmt: skip


def qini_curve(uplift: np.ndarray, treated: np.ndarray, y: np.ndarray, points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Fractions targeted and the Qini curve: extra buyers among the top fraction by ``uplift``,
    ``Y_T(f) - Y_C(f) * N_T(f) / N_C(f)``, divided by the number of contacts. Ties in
    ``uplift`` are broken at random (seeded) so a constant score gives the random line."""
    n = uplift.size
    if n == 0 or not treated.any() or treated.all():
        raise ValueError("the Qini curve needs treated and control contacts")
    jitter = np.random.default_rng(0).random(n)
    order = np.lexsort((jitter, -uplift))
    t, yy = treated[order].astype(np.float64), y[order].astype(np.float64)
    n_t, n_c = np.cumsum(t), np.cumsum(1 - t)
    y_t, y_c = np.cumsum(yy * t), np.cumsum(yy * (1 - t))
    fractions = np.linspace(0, 1, points + 1)[1:]
    idx = np.maximum(np.ceil(fractions * n).astype(np.int64) - 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(n_c[idx] > 0, y_t[idx] - y_c[idx] * n_t[idx] / n_c[idx], y_t[idx])
    return fractions, gain / n


def uplift_metrics(uplift: np.ndarray, treated: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``qini``: area between the Qini curve and the random line (0 for a random ranking);
    ``auuc``: mean of the Qini curve; ``uplift_top10``: observed uplift in the top 10 %."""
    fractions, gain = qini_curve(uplift, treated, y)
    top = np.argsort(-uplift, kind="stable")[: max(1, uplift.size // 10)]
    t, c = treated[top], ~treated[top]
    top_uplift = float(y[top][t].mean() - y[top][c].mean()) if t.any() and c.any() else float("nan")
    return {
        "qini": float(np.mean(gain - fractions * gain[-1])),
        "auuc": float(np.mean(gain)),
        "uplift_top10": top_uplift,
    }


def qini_bootstrap_sd(scores: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]], treated: np.ndarray, y: np.ndarray,
                      n: int = 200, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Bootstrap standard deviation of each score's ``qini`` (``uplift_metrics``) over the contacts;
    a pair ``(a, b)`` gives the deviation of ``qini(a) - qini(b)`` on the same resamples."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in scores}
    qini = lambda s, rows: uplift_metrics(s[rows], treated[rows], y[rows])["qini"]  # noqa: E731
    for _ in range(n):
        rows = rng.integers(0, len(y), len(y))
        if not treated[rows].any() or treated[rows].all():
            continue
        for name, score in scores.items():
            draws[name].append(qini(score[0], rows) - qini(score[1], rows) if isinstance(score, tuple) else qini(score, rows))
    return {name: float(np.std(v, ddof=1)) for name, v in draws.items()}


def ranking_metrics(top: np.ndarray, relevant: list[np.ndarray], k: int) -> dict[str, float]:
    """Mean ``recall``@k (hits / relevant) and ``ndcg``@k (binary gains) of the ranked codes
    ``top`` (a row per contact, -1: no item) over the rows with a relevant item (NaN when none has)."""
    top = np.asarray(top, np.int64)[:, :k]
    sizes = np.fromiter(map(len, relevant), np.int64, len(relevant))
    if len(sizes) != len(top):
        raise ValueError(f"top has {len(top)} rows, relevant {len(sizes)}")
    has = sizes > 0
    if not has.any():
        return {"recall": float("nan"), "ndcg": float("nan")}
    # one isin over (row, code) keys instead of one per row: the gate ranks thousands of contacts
    flat = np.concatenate([np.asarray(r, np.int64) for r in relevant])
    width = int(max(top.max(initial=0), flat.max(initial=0))) + 1
    rows = np.arange(len(top), dtype=np.int64)
    hit = np.isin(rows[:, None] * width + top, np.repeat(rows, sizes) * width + flat) & (top >= 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)[np.minimum(sizes[has], k) - 1]
    return {
        "recall": float(np.mean(hit[has].sum(axis=1) / sizes[has])),
        "ndcg": float(np.mean((hit[has] * discounts[: top.shape[1]]).sum(axis=1) / ideal)),
    }
