"""The Pareto/NBD model of repeat buying (Schmittlein, Morrison & Colombo 1987): ``ParetoNBDModel``."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln, hyp2f1

from .bg_nbd import _check_nonneg, _check_rft, _fit_summary, _shape_out

__all__ = ["ParetoNBDModel"]


def _log_A0(r, alpha, s, beta, x, t_x, T):
    """ln A0 of Fader & Hardie's note ([2], section 4), with the 2F1 argument in [0, 1).

    For α >= β, with m = r + s + x:
      A0 = ₂F₁(m, s+1; m+1; (α-β)/(α+t_x)) / (α+t_x)^m - ₂F₁(m, s+1; m+1; (α-β)/(α+T)) / (α+T)^m;
    for α < β, swap the roles: ₂F₁(m, r+x; m+1; (β-α)/(β+·)) / (β+·)^m. A0 >= 0, and 0 when
    t_x = T (then ln A0 = -inf).
    """
    m = r + s + x
    if alpha >= beta:
        b_, base, d = s + 1.0, alpha, alpha - beta
    else:
        b_, base, d = r + x, beta, beta - alpha
    l1 = np.log(hyp2f1(m, b_, m + 1, d / (base + t_x))) - m * np.log(base + t_x)
    l2 = np.log(hyp2f1(m, b_, m + 1, d / (base + T))) - m * np.log(base + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = l1 + np.log1p(-np.exp(np.minimum(l2 - l1, 0.0)))
    return np.where(T > t_x, out, -np.inf)


class ParetoNBDModel:
    r"""The Pareto/NBD model (Schmittlein, Morrison & Colombo 1987).

    Assumptions, per customer:

    1. While alive, purchases follow a Poisson process with rate λ ~ Gamma(r, α).
    2. The unobserved lifetime is exponential with rate μ ~ Gamma(s, β) (the "Pareto" part:
       the mixture is a Pareto of the second kind).
    3. λ and μ are independent across customers.

    Data, in one time unit (weeks for CDNOW): ``x`` repeat purchases, ``t_x`` the time of the
    last, ``T`` the time since the first purchase.

    Quantities, after Fader & Hardie's note [2] (its section 4 derivation; m = r + s + x):

    - likelihood: L = Γ(r+x) α^r β^s / Γ(r) · [1 / ((α+T)^{r+x} (β+T)^s) + s/m · A0],
      A0 in the numerically stable ₂F₁ form: z = (α-β)/(α+·) with ₂F₁(m, s+1; m+1; z) when
      α >= β, else z = (β-α)/(β+·) with ₂F₁(m, r+x; m+1; z), so that 0 <= z < 1;
    - P(alive | x, t_x, T) = 1 / (1 + s/m · (α+T)^{r+x} (β+T)^s · A0);
    - E[X(t)] = r β / (α (s-1)) · [1 - (β/(β+t))^{s-1}];
    - E[Y(t) | x, t_x, T] = (r+x)(β+T) / ((α+T)(s-1)) · [1 - ((β+T)/(β+T+t))^{s-1}] · P(alive);
    - P(no purchase in (T, T+t] | x, t_x, T) = L(x, t_x, T+t) / L(x, t_x, T): the history
      "x purchases, last at t_x, none in (t_x, T+t]" is the observed one plus no purchase in
      (T, T+t], so the ratio of the two likelihoods is the conditional probability. It counts
      both ways of not buying: staying alive without a purchase and dying in (T, T+t] before
      the next one; it is 1 at t = 0, decreases in t, and tends to 1 - P(alive) · (the
      probability of buying again before dying) as t → ∞.

    s = 1 (α = β) are removable singularities of the closed forms (E[·] is a logarithm
    there); the code does not special-case them.

    Attributes
    ----------
    params_ : dict[str, float]
        ``r``, ``alpha``, ``s``, ``beta``.
    log_likelihood_ : float
    n_customers_ : int

    References
    ----------
    [1] D. C. Schmittlein, D. G. Morrison, R. Colombo (1987), "Counting Your Customers: Who
        Are They and What Will They Do Next?", Management Science 33(1), 1-24.
    [2] P. S. Fader, B. G. S. Hardie (2005), "A Note on Deriving the Pareto/NBD Model and
        Related Expressions", http://brucehardie.com/notes/009/.
    [3] P. S. Fader, B. G. S. Hardie, K. L. Lee (2005), Marketing Science 24(2), 275-284
        (the CDNOW estimates, Table 1).
    """

    model_type = "Pareto/NBD"
    _param_names = ("r", "alpha", "s", "beta")

    def __init__(self) -> None:
        pass

    @staticmethod
    def _ll_terms(r, alpha, s, beta, x, t_x, T):
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        died = np.log(s / (r + s + x)) + _log_A0(r, alpha, s, beta, x, t_x, T)
        return common + np.logaddexp(alive, died)

    @staticmethod
    def _p_alive(r, alpha, s, beta, x, t_x, T):
        log_odds = (
            np.log(s / (r + s + x))
            + (r + x) * np.log(alpha + T)
            + s * np.log(beta + T)
            + _log_A0(r, alpha, s, beta, x, t_x, T)
        )
        return 1.0 / (1.0 + np.exp(log_odds))

    def fit(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> ParetoNBDModel:
        """Maximum likelihood on the summary (x, t_x, T), one row per customer."""
        return _fit_summary(self, x, t_x, T)

    def _check_fitted(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "params_"):
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        p = self.params_
        return p["r"], p["alpha"], p["s"], p["beta"]

    def log_likelihood(
        self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> np.ndarray | float:
        """Each customer's ln L(r, α, s, β | x, t_x, T) at the fitted parameters."""
        params = self._check_fitted()
        xs, txs, Ts = _check_rft(x, t_x, T)
        return _shape_out(self._ll_terms(*params, xs, txs, Ts), x, t_x, T)

    def p_alive(self, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray | float:
        """P(alive at T | x, t_x, T)."""
        params = self._check_fitted()
        xs, txs, Ts = _check_rft(x, t_x, T)
        return _shape_out(self._p_alive(*params, xs, txs, Ts), x, t_x, T)

    def expected_purchases(self, t: ArrayLike) -> np.ndarray | float:
        """E[X(t)]: repeat purchases of a new customer in (0, t]."""
        r, alpha, s, beta = self._check_fitted()
        ts = _check_nonneg("t", t)
        value = r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + ts)) ** (s - 1))
        return _shape_out(value, t)

    def conditional_expected_purchases(
        self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> np.ndarray | float:
        """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t]."""
        r, alpha, s, beta = self._check_fitted()
        ts = _check_nonneg("t", t)
        xs, txs, Ts = _check_rft(x, t_x, T)
        head = (
            (r + xs)
            * (beta + Ts)
            / ((alpha + Ts) * (s - 1))
            * (1 - ((beta + Ts) / (beta + Ts + ts)) ** (s - 1))
        )
        return _shape_out(
            head * self._p_alive(r, alpha, s, beta, xs, txs, Ts), t, x, t_x, T
        )

    def p_no_purchase(
        self, t: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
    ) -> np.ndarray | float:
        """P(no purchase in (T, T + t] | x, t_x, T) = L(x, t_x, T + t) / L(x, t_x, T)."""
        params = self._check_fitted()
        ts = _check_nonneg("t", t)
        xs, txs, Ts = _check_rft(x, t_x, T)
        xs, txs, Ts, ts = np.broadcast_arrays(xs, txs, Ts, ts)
        later = self._ll_terms(*params, xs, txs, Ts + ts)
        now = self._ll_terms(*params, xs, txs, Ts)
        return _shape_out(np.clip(np.exp(later - now), 0.0, 1.0), t, x, t_x, T)
