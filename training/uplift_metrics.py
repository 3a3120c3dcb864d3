"""Holdout metrics for uplift scores on randomised campaigns: Qini coefficient and AUUC."""

from __future__ import annotations

import numpy as np

__all__ = ["qini_curve", "uplift_metrics"]


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
