"""The served ``clv.value``: a value ranking chosen on a time split inside the training data.

BG/NBD + Gamma-Gamma explain purchases well in aggregate, but as a ranking of future spend
they lose to the naive score (repeat purchases per day of tenure x mean spend) on CDNOW: most
customers never buy again, and the BTYD value orders those one-time buyers by their age, which
is noise. So the value is chosen among three rules, on data the model is trained on:

- ``calibrated``: a Poisson regression of the spend in the ``window_days`` after a cut on
  BTYD quantities as of the cut. Repeat buyers: log posterior purchase rate ``(r+x)/(alpha+T)``,
  log Gamma-Gamma mean spend, log P(alive); one-time buyers: one level (their BTYD quantities
  differ only by age). Value = the predicted spend per day x the horizon.
- ``BTYD``: expected orders over the horizon x Gamma-Gamma mean spend (the literature's CLV).
- ``naive``: x / T x (total spend / purchase days) x the horizon.

The cut is ``window_days`` before the training date; the regression is cross-fitted (two
folds of customers) so that every rule is scored on customers it was not fitted on, by the
share of the window's spend held by its top 10 % and its Spearman correlation with that spend
(within each fold, then averaged). The rule with the larger sum of the two is served (the
regression refitted on every customer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import PoissonRegressor

__all__ = ["RULES", "ValueRule", "choose_value_rule", "glm_features", "naive_value", "ranking_metrics", "top_capture"]

RULES = ("calibrated", "BTYD", "naive")
TOP_SHARE = 0.10
_ALPHA = 1e-4  # L2 of the Poisson regression: 5 coefficients, thousands of customers
_P_FLOOR = 1e-30  # P(alive) floor before its log (float32 underflow would give -inf)


def top_capture(score: np.ndarray, spend: np.ndarray, share: float = TOP_SHARE) -> float:
    """Share of the total ``spend`` held by the ``share`` of customers with the highest ``score``
    (ties broken by row order, as a sorted export would)."""
    k = max(1, round(share * len(score)))
    top = np.argsort(-score, kind="stable")[:k]
    total = float(spend.sum())
    return float(spend[top].sum() / total) if total > 0 else float("nan")


def ranking_metrics(score: np.ndarray, spend: np.ndarray) -> dict[str, float]:
    """``top10_capture`` and ``spearman`` of a value score against the spend that followed."""
    rho = spearmanr(score, spend).statistic if np.ptp(score) > 0 and np.ptp(spend) > 0 else 0.0
    return {"top10_capture": top_capture(score, spend), "spearman": float(rho)}


def naive_value(x: np.ndarray, T: np.ndarray, total: np.ndarray, days: float) -> np.ndarray:
    """Repeat purchase days per day of age x mean spend per purchase day x ``days``."""
    rate = np.divide(x, T, out=np.zeros_like(x), where=T > 0)
    return rate * total / (x + 1.0) * days


def glm_features(x: np.ndarray, rate: np.ndarray, mean_spend: np.ndarray, p_alive: np.ndarray) -> np.ndarray:
    """The regression's columns: repeat buyers' log rate, log mean spend, log P(alive), and the
    repeat-buyer indicator (one-time buyers: zeros and the indicator 0, one level)."""
    rep = x > 0
    log = lambda v: np.where(rep, np.log(np.maximum(np.where(rep, v, 1.0), _P_FLOOR)), 0.0)  # noqa: E731
    return np.column_stack([log(rate), log(mean_spend), log(p_alive), rep.astype(np.float64)])


@dataclass(frozen=True)
class ValueRule:
    """The chosen rule, the regression (``intercept``, ``coef`` over :func:`glm_features`) and
    the window it predicts, and every rule's cross-fitted ranking metrics."""

    rule: str
    intercept: float
    coef: tuple[float, ...]
    window_days: int
    metrics: dict[str, float]

    def predict(self, features: np.ndarray, days: float) -> np.ndarray:
        """The calibrated value over ``days`` from :func:`glm_features` rows."""
        return np.exp(self.intercept + features @ np.asarray(self.coef)) * days / self.window_days


def choose_value_rule(features: np.ndarray, btyd: np.ndarray, naive: np.ndarray, spend: np.ndarray, window_days: int,
                      seed: int = 0) -> ValueRule:  # fmt: skip
    """Fit the regression of ``spend`` (the window after the cut) on ``features`` (as of the cut),
    score the three rules on customers not fitted on, and choose (module docstring)."""
    fold = np.random.default_rng(seed).integers(0, 2, len(spend))
    per_fold: dict[str, list[dict[str, float]]] = {rule: [] for rule in RULES}
    for f in (0, 1):
        mine = fold == f  # scored within the fold: the two fits' levels are not comparable
        glm = PoissonRegressor(alpha=_ALPHA, max_iter=1000).fit(features[~mine], spend[~mine])
        for rule, score in zip(RULES, (glm.predict(features[mine]), btyd[mine], naive[mine]), strict=True):
            per_fold[rule].append(ranking_metrics(score, spend[mine]))
    metrics: dict[str, float] = {}
    totals = {}
    for rule, folds in per_fold.items():
        m = {k: float(np.mean([fm[k] for fm in folds])) for k in folds[0]}
        metrics |= {f"value:{rule}:{k}": v for k, v in m.items()}
        totals[rule] = m["top10_capture"] + m["spearman"]
    chosen = max(RULES, key=lambda r: totals[r])
    glm = PoissonRegressor(alpha=_ALPHA, max_iter=1000).fit(features, spend)
    metrics["value:window_days"] = float(window_days)
    return ValueRule(chosen, float(glm.intercept_), tuple(float(c) for c in glm.coef_), window_days, metrics)
