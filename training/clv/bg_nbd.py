"""The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005): ``BetaGeoModel``.

Also home of the small helpers the other buy-till-you-die models share (input checks and
the maximum-likelihood driver): :mod:`.mbg_nbd`, :mod:`.pareto_nbd` and
:mod:`.gamma_gamma` import them from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

__all__ = ["BetaGeoModel"]


# --------------------------------------------------------------------------------------
# Shared helpers (private to the CLV model modules)


def _as_1d(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError(f"{name} must be a scalar or 1-d, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(np.atleast_1d(arr)))
    if bad.size:
        raise ValueError(
            f"{name} must be finite, got {name}[{bad[0]}]={np.atleast_1d(arr)[bad[0]]}"
        )
    return arr


def _first_bad(name: str, arr: np.ndarray, bad: np.ndarray, rule: str) -> None:
    bad = np.atleast_1d(bad)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must be {rule}, got {name}[{i}]={float(np.atleast_1d(arr)[i])}"
        )


def _check_nonneg(name: str, values: ArrayLike) -> np.ndarray:
    arr = _as_1d(name, values)
    _first_bad(name, arr, arr < 0, ">= 0")
    return arr


def _check_rft(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check and broadcast a (frequency x, recency t_x, age T) summary to float64 1-d arrays.

    x: repeat purchases, a non-negative whole number; t_x: time of the last purchase since
    the first, 0 <= t_x <= T, and 0 where x = 0; T: time since the first purchase.
    """
    x_arr = _check_nonneg("x", x)
    _first_bad("x", x_arr, np.abs(x_arr - np.round(x_arr)) > 1e-9, "a whole number")
    tx_arr = _check_nonneg("t_x", t_x)
    T_arr = _check_nonneg("T", T)
    try:
        x_arr, tx_arr, T_arr = (
            np.atleast_1d(a) for a in np.broadcast_arrays(x_arr, tx_arr, T_arr)
        )
    except ValueError:
        raise ValueError(
            f"x, t_x and T must have the same length, got shapes {np.shape(x)}, {np.shape(t_x)}, {np.shape(T)}"
        ) from None
    over = tx_arr > T_arr * (1 + 1e-12)
    if over.any():
        i = int(np.flatnonzero(over)[0])
        raise ValueError(
            f"t_x must be <= T, got t_x[{i}]={float(tx_arr[i])} > T[{i}]={float(T_arr[i])}"
        )
    nonzero = (x_arr == 0) & (tx_arr != 0)
    if nonzero.any():
        i = int(np.flatnonzero(nonzero)[0])
        raise ValueError(
            f"t_x must be 0 where x is 0 (no repeat purchase), got t_x[{i}]={float(tx_arr[i])} with x[{i}]=0"
        )
    return np.round(x_arr), tx_arr, np.maximum(T_arr, tx_arr)


def _unique_rows(*columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """The distinct rows of the columns and how often each occurs (the last array).

    Summaries repeat a lot (CDNOW: 2,357 customers, 1,016 distinct (x, t_x, T)), and the
    likelihood is a sum over rows, so fitting on weighted distinct rows is exact and faster.
    """
    rows, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    return (*rows.T, counts.astype(np.float64))


def _check_threshold(threshold: ArrayLike) -> np.ndarray:
    th = _as_1d("threshold", threshold)
    _first_bad("threshold", th, (th <= 0) | (th >= 1), "in (0, 1)")
    return th


def _shape_out(result: np.ndarray, *inputs: ArrayLike) -> np.ndarray | float:
    """A float when every input was a scalar, else the float64 array."""
    if all(np.ndim(v) == 0 for v in inputs):
        return float(np.asarray(result).reshape(-1)[0])
    return np.asarray(result, dtype=np.float64)


_MAX_ABS_LOG_PARAM = float(np.log(1e6))


def _fit_summary(model: Any, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> Any:
    """Fit a model of the (x, t_x, T) summary by maximum likelihood; sets ``params_``,
    ``log_likelihood_`` and ``n_customers_``. Distinct rows are evaluated once, weighted by
    their count: the same likelihood, fewer special-function calls."""
    x, t_x, T = _check_rft(x, t_x, T)
    if x.size == 0:
        raise ValueError("x, t_x and T are empty: give at least one customer")
    ux, utx, uT, w = _unique_rows(x, t_x, T)

    def neg_ll(theta: np.ndarray) -> float:
        return -float(w @ model._ll_terms(*np.exp(theta), ux, utx, uT))

    model.params_, model.log_likelihood_ = _fit_log_params(neg_ll, model._param_names, x.size)
    model.n_customers_ = int(x.size)
    return model


def _fit_log_params(
    neg_ll: Callable[[np.ndarray], float],
    names: Sequence[str],
    n: int,
    init: Sequence[float] | None = None,
) -> tuple[dict[str, float], float]:
    """Maximise a log-likelihood over positive parameters on the log scale.

    ``neg_ll(theta)`` is the negative total log-likelihood at ``exp(theta)``. Nelder-Mead
    from ``init`` (default all ones) finds the basin without gradients (the 2F1 terms have
    none in closed form); L-BFGS-B with finite differences then polishes the optimum.
    Returns the parameters and the total log-likelihood.
    """

    def scaled(theta: np.ndarray) -> float:
        # parameters beyond [1e-6, 1e6] are outside every published fit, and out there the
        # gammaln differences of the likelihoods cancel catastrophically (Gamma-Gamma ran
        # to p = 1e15 with a positive "log-likelihood"): treat them as infeasible
        if np.any(np.abs(theta) > _MAX_ABS_LOG_PARAM):
            return 1e300
        value = neg_ll(theta) / n
        return value if np.isfinite(value) else 1e300

    theta0 = np.log(
        np.asarray(init if init is not None else np.ones(len(names)), dtype=np.float64)
    )
    with np.errstate(all="ignore"):
        nm = minimize(
            scaled,
            theta0,
            method="Nelder-Mead",
            options={
                # loose on purpose: Nelder-Mead only finds the basin (on Gamma-Gamma's p/gamma
                # ridge tight tolerances ran 40k evaluations); L-BFGS-B below polishes
                "xatol": 1e-4,
                "fatol": 1e-9,
                "maxiter": 4_000,
                "maxfev": 8_000,
            },
        )
        polish = minimize(
            scaled,
            nm.x,
            method="L-BFGS-B",
            bounds=[(-_MAX_ABS_LOG_PARAM, _MAX_ABS_LOG_PARAM)] * len(names),
            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2_000},
        )
    best = polish if polish.fun <= nm.fun else nm
    if not np.isfinite(best.fun) or best.fun >= 1e299:
        raise ValueError(f"maximum likelihood failed: {nm.message}; {polish.message}")
    params = {name: float(v) for name, v in zip(names, np.exp(best.x), strict=True)}
    return params, float(-best.fun * n)


class _BetaGeoBase:
    """What BG/NBD and MBG/NBD share: fitting, P(no purchase), the decisive age.

    A subclass defines ``_ll_terms`` (the per-customer log-likelihood), ``_p_alive`` and
    ``_b_shift``: 0 for BG/NBD (dropout after each repeat purchase, so ``b + x - 1``), 1 for
    MBG/NBD (dropout also right after the first purchase, so ``b + x``).
    """

    model_type = ""
    _param_names = ("r", "alpha", "a", "b")
    _b_shift = 0

    def conditional_expected_purchases(
        self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> np.ndarray | float:
        """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t] (BG/NBD: eq. 10 of [1]).

        With s = ``_b_shift`` (0 for BG/NBD, 1 for MBG/NBD) and c = a + b + x - 1 + s:
        (c / (a - 1)) [1 - ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x+s; c; t/(α+T+t))] P(alive).
        """
        r, alpha, a, b = self._check_fitted()
        ts = _check_nonneg("t", t)
        xs, txs, Ts = _check_rft(x, t_x, T)
        z = ts / (alpha + Ts + ts)
        ratio = np.exp((r + xs) * (np.log(alpha + Ts) - np.log(alpha + Ts + ts)))
        c = a + b + xs - 1 + self._b_shift
        head = c / (a - 1) * (1 - ratio * hyp2f1(r + xs, b + xs + self._b_shift, c, z))
        return _shape_out(head * self._p_alive(r, alpha, a, b, xs, txs, Ts), t, x, t_x, T)

    def __init__(self) -> None:
        pass

    # -- fitting
    def fit(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike):
        """Maximum likelihood on the summary (x, t_x, T), one row per customer."""
        return _fit_summary(self, x, t_x, T)

    def _check_fitted(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "params_"):
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    def log_likelihood(
        self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> np.ndarray | float:
        """Each customer's log-likelihood ln L(r, α, a, b | x, t_x, T) at the fitted parameters."""
        r, alpha, a, b = self._check_fitted()
        xs, txs, Ts = _check_rft(x, t_x, T)
        return _shape_out(self._ll_terms(r, alpha, a, b, xs, txs, Ts), x, t_x, T)

    # -- quantities
    def p_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray | float:
        """P(alive at T | x, t_x, T); see the class docstring for the formula."""
        r, alpha, a, b = self._check_fitted()
        xs, txs, Ts = _check_rft(x, t_x, T)
        return _shape_out(self._p_alive(r, alpha, a, b, xs, txs, Ts), x, t_x, T)

    def p_no_purchase(
        self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> np.ndarray | float:
        """P(no purchase in (T, T + t] | x, t_x, T) = 1 - P(alive) + P(alive) ((α+T)/(α+T+t))^(r+x).

        Given alive at T, λ's posterior is Gamma(r + x, α + T), and E[e^{-λt}] under it is
        the ratio to the power r + x. Equivalently L(x, t_x, T + t) / L(x, t_x, T).
        """
        r, alpha, a, b = self._check_fitted()
        ts = _check_nonneg("t", t)
        xs, txs, Ts = _check_rft(x, t_x, T)
        pa = self._p_alive(r, alpha, a, b, xs, txs, Ts)
        survive = np.exp((r + xs) * (np.log(alpha + Ts) - np.log(alpha + Ts + ts)))
        return _shape_out(np.clip(1.0 - pa + pa * survive, 0.0, 1.0), t, x, t_x, T)

    def decisive_T(
        self, x: ArrayLike, t_x: ArrayLike, threshold: ArrayLike = 0.5
    ) -> np.ndarray | float:
        """The age T* >= t_x at which P(alive | x, t_x, T*) falls to ``threshold`` with no new order.

        P(alive) decreases in T: solving 1 / (1 + (a / (b + x - 1 + s)) ((α+T)/(α+t_x))^(r+x)) = θ
        (s = ``_b_shift``: 0 for BG/NBD, 1 for MBG/NBD) gives the closed form

            T* = (α + t_x) · (((1 - θ) / θ) · (b + x - 1 + s) / a)^(1 / (r + x)) - α.

        Where P(alive) is already at or below θ at T = t_x (just after the last order), T* = t_x.
        BG/NBD with x = 0: P(alive) = 1 at every age (no dropout before a repeat purchase), so
        T* = +inf.
        """
        r, alpha, a, b = self._check_fitted()
        th = _check_threshold(threshold)
        xs, txs, _ = _check_rft(x, t_x, _check_nonneg("t_x", t_x))
        xs, txs, th = np.broadcast_arrays(xs, txs, th)
        odds = (1.0 - th) / th
        bx = b + xs - 1.0 + self._b_shift
        with np.errstate(divide="ignore", invalid="ignore"):
            T_star = (alpha + txs) * np.exp(np.log(odds * bx / a) / (r + xs)) - alpha
        T_star = np.maximum(T_star, txs)
        if self._b_shift == 0:
            T_star = np.where(xs == 0, np.inf, T_star)
        return _shape_out(T_star, x, t_x, threshold)


class BetaGeoModel(_BetaGeoBase):
    r"""The BG/NBD model ("beta-geometric/NBD", Fader, Hardie & Lee 2005).

    Assumptions, per customer:

    1. While active, purchases follow a Poisson process with rate λ.
    2. λ varies across customers as Gamma(r, α) (shape r, rate α).
    3. After any *repeat* purchase the customer becomes inactive with probability p
       (a shifted geometric number of purchases); no dropout before the first repeat purchase.
    4. p varies across customers as Beta(a, b).
    5. λ and p are independent across customers.

    Data, in one time unit (the CDNOW figures use weeks), for a customer first seen at 0:
    ``x`` repeat purchases (the literature's x; lifetimes' "frequency"), ``t_x`` the time of
    the last one ("recency"), ``T`` the time since the first purchase (the customer's age).

    Quantities (equation numbers of [1]):

    - log-likelihood (eq. 6), with δ = 1{x > 0}:
      L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^{r+x})
      + δ · B(a+1, b+x-1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^{r+x});
    - E[X(t)] (eq. 7) = (a+b-1)/(a-1) · [1 - (α/(α+t))^r ₂F₁(r, b; a+b-1; t/(α+t))];
    - E[Y(t) | x, t_x, T] (eq. 10) = (a+b+x-1)/(a-1)
      · [1 - ((α+T)/(α+T+t))^{r+x} ₂F₁(r+x, b+x; a+b+x-1; t/(α+T+t))]
      / [1 + δ · a/(b+x-1) · ((α+T)/(α+t_x))^{r+x}];
    - P(alive | x, t_x, T) (eq. 11; Fader, Hardie & Lee 2008 note) =
      1 / (1 + δ · a/(b+x-1) · ((α+T)/(α+t_x))^{r+x}): 1 for x = 0;
    - P(no purchase in (T, T+t] | x, t_x, T) and the decisive age: see the methods.

    E[X(t)] and E[Y(t) | ...] are finite for every a > 0 (E[X | λ, p] <= λt); the closed
    forms, with their 1/(a-1), are the analytic continuation and hold for a < 1 too (CDNOW's
    a = 0.793), but not at a = 1 exactly, where they are 0/0.

    Attributes
    ----------
    params_ : dict[str, float]
        ``r``, ``alpha``, ``a``, ``b``.
    log_likelihood_ : float
        The total log-likelihood at ``params_``.
    n_customers_ : int

    References
    ----------
    [1] P. S. Fader, B. G. S. Hardie, K. L. Lee (2005), "'Counting Your Customers' the Easy
        Way: An Alternative to the Pareto/NBD Model", Marketing Science 24(2), 275-284.
    [2] P. S. Fader, B. G. S. Hardie, K. L. Lee (2008), "Computing P(alive) Using the BG/NBD
        Model", http://brucehardie.com/notes/021/.
    Adapted in spirit from lifetimes' ``BetaGeoFitter`` and pymc-marketing's ``BetaGeoModel``.
    """

    model_type = "BG/NBD"
    _b_shift = 0

    @staticmethod
    def _ll_terms(r, alpha, a, b, x, t_x, T):
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
        with np.errstate(invalid="ignore", divide="ignore"):
            dead = np.where(
                x > 0,
                betaln(a + 1, b + np.maximum(x, 1) - 1)
                - betaln(a, b)
                - (r + x) * np.log(alpha + t_x),
                -np.inf,
            )
        return common + np.logaddexp(alive, dead)

    @staticmethod
    def _p_alive(r, alpha, a, b, x, t_x, T):
        log_odds = (
            np.log(a)
            - np.log(b + np.maximum(x, 1) - 1)
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
        return np.where(x > 0, 1.0 / (1.0 + np.exp(log_odds)), 1.0)

    def expected_purchases(self, t: ArrayLike) -> np.ndarray | float:
        """E[X(t)]: repeat purchases of a new customer in (0, t] (eq. 7 of [1])."""
        r, alpha, a, b = self._check_fitted()
        ts = _check_nonneg("t", t)
        z = ts / (alpha + ts)
        value = (
            (a + b - 1)
            / (a - 1)
            * (1 - (alpha / (alpha + ts)) ** r * hyp2f1(r, b, a + b - 1, z))
        )
        return _shape_out(value, t)

